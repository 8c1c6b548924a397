"""What HDR tone mapping costs: the C form (`edgevqa.kernels._tonemap`) against its NumPy specification on
decoded HDR frames, beside the time to decode them, and a whole score with and without it, in one run.

Generates a 10-bit PQ HEVC clip (a rendered scene carried as HDR by `edgevqa.tonemap.sdr_to_hdr_planes`,
libx265 CRF 20, ``--size`` 1920x1080 by default; kept in the work folder), decodes ``--frames`` frames, and
times on every frame's planes (median over ``--repeats`` passes): the C tone mapper on whole frames, on the
region a FAST-VQA fragment plan reads (`tone_map_region`: what the pipeline maps), the NumPy one, and decoding;
checks they agree bit for bit. Then scores the clip with the default model, tone-mapped and read as coded
(median of ``--repeats``): the pipeline maps only the frames a model samples (8 of a clip for the default
model), and of those only the pixels its plans read.

    python bench/tonemap_speed.py [--size 1920x1080] [--frames 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "edgevqa-tonemap-bench"))
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    os.makedirs(args.work, exist_ok=True)

    from edgevqa import tonemap
    from edgevqa.decode import PyAVDecoder
    from edgevqa.manifest import ViewSpec
    from edgevqa.pipeline import Pipeline
    from edgevqa.samples import render_scene, write_hdr_clip
    from edgevqa.sampling import make_plan, plan_region

    clip = os.path.join(args.work, f"pq_{width}x{height}_{args.frames}.mp4")
    if not os.path.exists(clip):
        write_hdr_clip(clip + ".tmp.mp4", render_scene(width, height, args.frames, seed=5), "pq", codec="libx265",
                       crf=20, overwrite=True)
        os.replace(clip + ".tmp.mp4", clip)

    decode_s = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        with PyAVDecoder(clip, tone_map="never") as decoder:
            count = sum(1 for _frame in decoder.frames(range(args.frames)))
        decode_s.append((time.perf_counter() - started) / count)
    with PyAVDecoder(clip, tone_map="never") as decoder:
        info = decoder.info
        planes = [[p.copy() for p in frame.planes] for frame in decoder.frames(range(args.frames))]
    if tonemap._compiled is None:
        print("the C tone mapper is not built: nothing to compare")
        return 1
    mapping = tonemap.tone_map_for(info.transfer, info.color_matrix, info.color_range, info.bit_depth,
                                   info.hdr_peak_nits)
    shift = info.chroma_shift

    def timed(function) -> tuple[float, list[list[np.ndarray]]]:
        """Median seconds a frame of ``function(slot, planes)`` over every frame, and its last outputs."""
        times, out = [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            out = [function(slot, frame) for slot, frame in enumerate(planes)]
            times.append((time.perf_counter() - started) / len(planes))
        return statistics.median(times), out

    c_s, c_out = timed(lambda _, frame: tonemap.tone_map_planes(frame, shift, mapping))
    ref_s, ref_out = timed(lambda _, frame: tonemap.tone_map_planes_reference(frame, shift, mapping))
    # What the pipeline maps for a FAST-VQA fragment plan (7x7 cells of 32x32): the region each frame's slot reads.
    plan = make_plan(ViewSpec(), dataclasses.replace(info, num_frames=len(planes)))
    regions = [tuple(np.unique(v) for v in plan_region(plan, slot)) for slot in range(len(planes))]
    region_s, region_out = timed(lambda slot, frame: tonemap.tone_map_region(frame, shift, mapping, *regions[slot]))
    region_equal = all(np.array_equal(part[0][np.ix_(*regions[k])], whole[0][np.ix_(*regions[k])])
                       for k, (part, whole) in enumerate(zip(region_out, c_out)))
    region_share = np.mean([len(r) * len(c) for r, c in regions]) / (info.width * info.height)
    equal = all(np.array_equal(a, b) for fa, fb in zip(c_out, ref_out) for a, b in zip(fa, fb))
    score_s = {}
    with Pipeline() as mapped, Pipeline(tone_map="never") as coded:
        for name, pipeline in (("tone-mapped", mapped), ("as coded", coded)):
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                result = pipeline.score(clip)
                times.append(time.perf_counter() - started)
            score_s[name] = (statistics.median(times), result.scores["overall"])
    decode = statistics.median(decode_s)
    ms = lambda s: f"{s * 1e3:8.3f} ms/frame"  # noqa: E731
    print(f"clip: {width}x{height} HEVC {info.pix_fmt}, {len(planes)} frames, {info.transfer}, "
          f"{info.color_matrix} {info.color_range}, peak {mapping.peak_nits:.0f} nits")
    print(f"decode (PyAV)            {ms(decode)}")
    print(f"C tone mapping           {ms(c_s)}  ({100 * c_s / decode:.1f} % of decode)")
    print(f"C, a fragment plan's region {ms(region_s)}  ({100 * region_s / decode:.1f} % of decode; "
          f"{100 * region_share:.1f} % of the pixels; equal to the whole frame's there: {region_equal})")
    print(f"NumPy tone mapping       {ms(ref_s)}  (C is {ref_s / c_s:.1f}x faster)")
    print(f"C == NumPy bit for bit: {equal}")
    for name, (seconds, overall) in score_s.items():
        print(f"score, {name:12s} {seconds:8.3f} s   overall {overall:6.2f}")
    return 0 if equal and region_equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
