"""How well `edgevqa.scenecuts.is_scene_cut` tells cuts from temporal distortions, on what the model reads.

    python bench/scene_cut_detection.py [--frames 16] [--joins 120] [--sources N]

Every source of the recipe's content list (`edgevqa.export.recipe.content.default_content`) gives a pristine
clip and its versions with each temporal distortion (freeze, stutter, shake, flicker) at severities 0.6 and 1.
Each is encoded (libx264, CRF 18), decoded and sampled with the default model's fragment view as the pipeline
samples it; every pair of consecutive frames is a pair that is not a cut, and a cut flagged there is a false
cut (a snippet would move off a distortion the model should see). Then ``--joins`` clips of four frames of one
source followed by four of another, drawn at random: the pair across the join is a cut, and one not flagged
there is a missed cut (the snippet stays, read as before).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np


def signatures(frames: np.ndarray, view, workdir: str) -> list:
    """The cut signature of every frame of ``frames`` (uint8 RGB ``[T, H, W, 3]``), as the pipeline reads it."""
    from edgevqa import kernels
    from edgevqa.decode import PyAVDecoder
    from edgevqa.samples import write_clip
    from edgevqa.sampling import make_plan
    from edgevqa.scenecuts import cut_signature

    path = write_clip(os.path.join(workdir, "clip.mp4"), frames=frames, fps=24, crf=18, threads=1, overwrite=True)
    out = []
    with PyAVDecoder(path) as decoder:
        plan = make_plan(view, decoder.info)
        buffer = np.empty(plan.output_shape, np.float32)
        clip, t = plan.uses_of_slot(0)[0]
        conversion = None
        for frame in decoder.frames():
            conversion = conversion or kernels.conversion_for_frame(frame)
            kernels.sample_frame(frame.planes, plan, 0, conversion, buffer)
            out.append(cut_signature(buffer[clip, :, t], view, plan.grid))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=16, help="frames per clip")
    parser.add_argument("--joins", type=int, default=120, help="clips joining two sources")
    parser.add_argument("--sources", type=int, default=None, help="use only the first N sources")
    args = parser.parse_args(argv)

    from edgevqa.export.recipe import content as content_mod
    from edgevqa.export.recipe import distortions as dist
    from edgevqa.pipeline import Pipeline
    from edgevqa.scenecuts import is_scene_cut

    started = time.perf_counter()
    view = Pipeline().manifest.views[0]
    sources = content_mod.default_content()[:args.sources]
    clips = {s.name: s.clip(np.random.default_rng([1, i]), args.frames) for i, s in enumerate(sources)}
    pairs, false_cuts = 0, []
    with tempfile.TemporaryDirectory() as workdir:
        for name, clip in clips.items():
            versions = [("pristine", clip)] + [
                (f"{kind} {level}", dist.apply(clip, dist.Distortion({"temporal": level}, {"temporal": kind}, seed=3)))
                for kind in dist.KINDS["temporal"] for level in (0.6, 1.0)]
            for label, frames in versions:
                sig = signatures(frames, view, workdir)
                pairs += len(sig) - 1
                false_cuts += [(name, label, i) for i in range(len(sig) - 1) if is_scene_cut(sig[i], sig[i + 1])]
        rng = np.random.default_rng(0)
        names = list(clips)
        flagged = 0
        for _ in range(args.joins):
            a, b = rng.choice(len(names), 2, replace=False)
            first, second = clips[names[a]], clips[names[b]]
            h, w = min(first.shape[1], second.shape[1]), min(first.shape[2], second.shape[2])
            sig = signatures(np.concatenate([first[:4, :h, :w], second[:4, :h, :w]]), view, workdir)
            flagged += is_scene_cut(sig[3], sig[4])
    print(f"sources: {len(clips)}, {args.frames} frames each; view: {view.kind} {view.grid[0]}x{view.grid[1]}x"
          f"{view.patch[0]}")
    print(f"pairs of consecutive frames, pristine and temporally distorted: {pairs}; flagged as cuts: "
          f"{len(false_cuts)}" + (" (" + "; ".join(f"{n}, {lab}, frames {i}-{i + 1}" for n, lab, i in false_cuts)
                                  + ")" if false_cuts else ""))
    print(f"joins of two sources: {args.joins}; flagged as cuts: {flagged} ({flagged / max(args.joins, 1):.0%})")
    print(f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
