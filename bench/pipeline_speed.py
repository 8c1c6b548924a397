"""Whole pipeline vs PyAV decode-only on one generated 8 s 1080p H.264 clip, measured in one run.

Issue 2's target for the finished runtime: ``Pipeline.score(clip)`` takes at most 1.15x the time PyAV needs to
decode the frames the pipeline decodes (frame 0 to the last planned frame, same decoder threads; see
`edgevqa.bench.pipeline_bench`). Both are measured interleaved, after one warm-up score, and the medians are
compared (the order of the two alternates between repeats).

    python bench/pipeline_speed.py [--model M.onnx] [--repeats 5] [--clip existing.mp4]

Without ``--model`` the shipped default model is used, or, when this installation has none, a probe model
(a few reductions: inference costs next to nothing) with a FasterVQA-style view (1 clip of 8 segments x 4
frames, 7x7 fragments of 32 px), so the ratio then measures decoding, planning and sampling overhead only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from fractions import Fraction

import numpy as np


def write_1080p_clip(path: str, seconds: float = 8.0, fps: int = 25) -> str:
    """An H.264 1920x1080 yuv420p clip of a moving textured scene, rendered at 480x270 and upscaled per frame
    (so memory stays at one frame)."""
    from edgevqa.samples import render_scene

    frames = int(round(seconds * fps))
    return write_upscaled_clip(path, render_scene(480, 270, frames, seed=7), frames, fps)


def write_upscaled_clip(path: str, small: np.ndarray, frames: int, fps: int) -> str:
    """H.264 (libx264 CRF 23, veryfast, yuv420p) of ``frames`` frames: the rendered frames ``small``
    ``[n, h, w, 3]`` upscaled 4x, frame t showing ``small[t % n]``; one full-size frame in memory at a time."""
    import av

    height, width = 4 * small.shape[1], 4 * small.shape[2]
    with av.open(path, mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        stream.codec_context.time_base = Fraction(1, fps)
        for t in range(frames):
            big = np.repeat(np.repeat(small[t % len(small)], 4, axis=0), 4, axis=1)
            frame = av.VideoFrame.from_ndarray(big, format="rgb24")
            frame.pts = t
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def faster_vqa_probe(path: str) -> str:
    from edgevqa.manifest import ViewSpec
    from edgevqa.testing import default_probe_manifest, make_probe_model

    view = ViewSpec(name="video", kind="fragments", num_clips=1, clip_len=32, frame_interval=2, segments_per_clip=8,
                    grid=(7, 7), patch=(32, 32), size=(224, 224), aligned=32)
    return make_probe_model(path, default_probe_manifest(outputs=("overall",), view=view, name="probe-fastervqa"))


def main(argv: list[str] | None = None) -> int:
    from edgevqa.bench.pipeline_bench import decode_only, last_planned_frame
    from edgevqa.pipeline import Pipeline, default_model_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model to score with (default: shipped default, else a probe model)")
    parser.add_argument("--clip", help="use this clip (generated there first when it does not exist) instead of a "
                                       "temporary 8 s 1080p one")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="inference threads")
    parser.add_argument("--decode-threads", type=int, default=0, help="decoder threads (0: FFmpeg chooses)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="edgevqa-speed-") as tmp:
        model = args.model or default_model_path()
        model_note = "given" if args.model else "shipped default"
        if model is None:
            model = faster_vqa_probe(os.path.join(tmp, "probe.onnx"))
            model_note = "probe model, FasterVQA-style view (no default model installed)"
        clip = args.clip
        if clip is None or not os.path.exists(clip):
            t0 = time.perf_counter()
            clip = write_1080p_clip(clip or os.path.join(tmp, "clip_1080p.mp4"))
            print(f"generated {clip}: 1920x1080 H.264, 8 s at 25 fps ({time.perf_counter() - t0:.1f} s to encode)")
        with Pipeline(model, threads=args.threads, decode_threads=args.decode_threads) as pipeline:
            last, info = last_planned_frame(clip, pipeline.manifest, None, "default")
            pipeline.score(clip)  # warm-up: first decoder open, first inference
            pipe_s, dec_s, stages = [], [], []
            for rep in range(args.repeats):
                # Alternate which runs first, so neither always meets the warmer file cache and clocks.
                for which in (("decode", "pipeline") if rep % 2 == 0 else ("pipeline", "decode")):
                    if which == "decode":
                        seconds, decoded = decode_only(clip, last, args.decode_threads)
                        dec_s.append(seconds)
                    else:
                        t0 = time.perf_counter()
                        result = pipeline.score(clip)
                        pipe_s.append(time.perf_counter() - t0)
                        stages.append(result.timings)
    pipe, dec = float(np.median(pipe_s)), float(np.median(dec_s))
    mean_stage = {k: float(np.mean([s[k] for s in stages])) * 1000.0
                  for k in ("decode", "plan", "sample", "infer", "aggregate")}
    print(f"model: {model_note}: {os.path.basename(model)}")
    print(f"clip: {info.width}x{info.height} {info.codec}, {info.num_frames} frames; the plans read frames up to "
          f"{last}, so both decode {decoded} frames; decoder threads {args.decode_threads or 'auto'}; "
          f"{os.cpu_count()} CPUs")
    print(f"decode-only (PyAV, frames 0..{last}): median {dec * 1000:.1f} ms over {args.repeats} runs "
          f"(min {min(dec_s) * 1000:.1f})")
    print(f"pipeline (Pipeline.score):           median {pipe * 1000:.1f} ms over {args.repeats} runs "
          f"(min {min(pipe_s) * 1000:.1f})")
    print("pipeline stages (mean ms): " + ", ".join(f"{k} {v:.1f}" for k, v in mean_stage.items()))
    print(f"ratio pipeline / decode-only: {pipe / dec:.3f} of medians, {min(pipe_s) / min(dec_s):.3f} of minima "
          "(issue-2 target for the finished runtime: <= 1.15)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
