"""Scoring a long video: seeking to the keyframe before each planned frame vs decoding straight through.

The pipeline decodes only the frames a plan names plus what the codec needs to reach them. For a clip of 8 to
20 s that is every frame up to the last planned one; for a film, whose planned frames lie minutes apart,
`PyAVDecoder` seeks across gaps of `PyAVDecoder.SEEK_MIN_GAP` frames or more. This scores one generated long
H.264 clip (libx264's default keyframe interval, 250 frames) both ways with the same model, alternating, and
reports the medians, the frames that went through the codec, and whether the scores are identical.

``--every S [S ...]`` also scores the clip over time (`Pipeline(segment_seconds=S)`) and reports, for each S,
the time, the frames decoded, the segments, the peak of the memory Python and NumPy allocate during one score
(tracemalloc; the whole-video score's own peak first, for comparison), and whether the whole video's scores
stayed as they were.

    python bench/long_video_speed.py [--seconds 120] [--clip long.mp4] [--model M.onnx] [--repeats 3]
                                     [--every 10 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np


def write_long_clip(path: str, seconds: float, fps: int = 25, width: int = 1280, height: int = 720) -> str:
    """An H.264 clip of a 10 s rendered scene played forwards and backwards until ``seconds`` are filled."""
    from edgevqa.bench.pipeline_speed import write_upscaled_clip
    from edgevqa.samples import render_scene

    scene = render_scene(width // 4, height // 4, 10 * fps, seed=11)
    tmp = path + ".tmp.mp4"
    write_upscaled_clip(tmp, np.concatenate([scene, scene[::-1]]), int(round(seconds * fps)), fps)
    os.replace(tmp, path)
    return path


def score_once(pipeline, clip: str, min_gap: int) -> tuple[float, dict, int, int]:
    """(seconds, scores, seeks, frames through the codec) of one score with the given seeking threshold."""
    from edgevqa import decode

    counts = {}
    original = decode.PyAVDecoder.close

    def close_and_count(self):
        counts["seeks"], counts["through"] = self.seeks, self.frames_through_decoder
        original(self)

    saved_gap = decode.PyAVDecoder.SEEK_MIN_GAP
    decode.PyAVDecoder.SEEK_MIN_GAP, decode.PyAVDecoder.close = min_gap, close_and_count
    try:
        started = time.perf_counter()
        result = pipeline.score(clip)
        seconds = time.perf_counter() - started
    finally:
        decode.PyAVDecoder.SEEK_MIN_GAP, decode.PyAVDecoder.close = saved_gap, original
    if not result.ok:
        raise SystemExit(f"scoring failed: {result.error}")
    return seconds, result.scores, counts["seeks"], counts["through"]


def segments_report(model: str | None, clip: str, every: list[float], repeats: int) -> bool:
    """Print the over-time rows (see the module docstring); True when no whole-video score moved."""
    import tracemalloc

    from edgevqa.pipeline import Pipeline

    def peak_bytes(pipeline) -> int:
        tracemalloc.start()
        try:
            pipeline.score(clip)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    with Pipeline(model) as whole:
        reference = whole.score(clip)
        print(f"whole video only            {reference.timings['total']:7.2f} s   {reference.frames_decoded:6d} frames "
              f"decoded, peak {peak_bytes(whole) / 2**20:6.1f} MiB allocated")
    unchanged = True
    for seconds in every:
        with Pipeline(model, segment_seconds=seconds) as pipeline:
            runs = [pipeline.score(clip) for _ in range(max(1, repeats))]
            result = runs[0]
            unchanged &= all(r.scores == reference.scores for r in runs)
            elapsed = statistics.median(r.timings["total"] for r in runs)
            label = f"every {seconds:g} s"
            print(f"{label:28s}{elapsed:7.2f} s   "
                  f"{result.frames_decoded:6d} frames decoded, {len(result.segments)} segments "
                  f"({result.timings['segments']:.2f} s scoring them), peak {peak_bytes(pipeline) / 2**20:6.1f} MiB "
                  "allocated")
    print(f"whole-video scores unchanged with segments: {unchanged}")
    return unchanged


def main(argv: list[str] | None = None) -> int:
    from edgevqa.decode import PyAVDecoder
    from edgevqa.pipeline import Pipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the generated clip")
    parser.add_argument("--clip", help="score this clip (generated there first when it does not exist)")
    parser.add_argument("--model", default=None, help="model (default: the shipped default model)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--every", type=float, nargs="*", default=[], metavar="SECONDS",
                        help="also score over time with segments of these lengths")
    args = parser.parse_args(argv)
    clip = args.clip or os.path.join(tempfile.gettempdir(), f"edgevqa-long-{int(args.seconds)}s.mp4")
    if not os.path.exists(clip):
        started = time.perf_counter()
        write_long_clip(clip, args.seconds)
        print(f"wrote {clip} in {time.perf_counter() - started:.0f} s")
    with PyAVDecoder(clip) as decoder:
        info = decoder.info
    straight, seeking = [], []
    with Pipeline(args.model) as pipeline:
        pipeline.score(clip)  # warm-up
        for repeat in range(args.repeats):
            order = [(straight, 10**12), (seeking, PyAVDecoder.SEEK_MIN_GAP)]
            for runs, gap in (order if repeat % 2 == 0 else order[::-1]):
                runs.append(score_once(pipeline, clip, gap))
        name = f"{pipeline.manifest.name} {pipeline.manifest.version}"
    same = all(run[1] == straight[0][1] for run in straight + seeking)
    s_time, k_time = statistics.median(r[0] for r in straight), statistics.median(r[0] for r in seeking)
    print(f"clip: {clip}: {info.num_frames} frames of {info.width}x{info.height} at {info.fps:g} fps "
          f"({info.duration:.0f} s); model {name}; median of {args.repeats}, alternating")
    print(f"decoding straight through   {s_time:7.2f} s   {straight[0][3]:6d} frames through the codec")
    print(f"seeking across long gaps    {k_time:7.2f} s   {seeking[0][3]:6d} frames through the codec, "
          f"{seeking[0][2]} seeks")
    print(f"speed-up                    {s_time / k_time:7.1f} x")
    print(f"scores identical: {same} (overall {seeking[0][1].get('overall', float('nan')):.2f})")
    if args.every:
        same &= segments_report(args.model, clip, args.every, args.repeats)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
