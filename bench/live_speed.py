"""Whether live scoring keeps up: a stream scored segment by segment (`Pipeline.score_stream`, what
`edgevqa watch` runs), as fast as the machine goes.

Generates one H.264 clip (a rendered scene, ``--seconds`` long, 1920x1080 at 30 fps by default; kept in the
work folder), then scores it as a stream with ``--every`` second segments, ``--repeats`` times, and reports
the median wall time, the real-time factor (seconds of video scored per second of wall time: above 1 keeps up
with a live source of that size and rate), the frames decoded per second, and each segment's scoring time
(inference and aggregation after its inputs are complete). Also checks that the segments score as the whole
file's segments do.

    python bench/live_speed.py [--seconds 20] [--size 1920x1080] [--fps 30] [--every 2] [--repeats 3]
                               [--model M.onnx]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--every", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default=None)
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "edgevqa-live-bench"))
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    os.makedirs(args.work, exist_ok=True)

    from edgevqa.bench.pipeline_speed import write_upscaled_clip
    from edgevqa.pipeline import Pipeline
    from edgevqa.samples import render_scene

    clip = os.path.join(args.work, f"live_{width}x{height}_{args.fps}fps_{args.seconds:g}s.mp4")
    if not os.path.exists(clip):
        frames = int(round(args.seconds * args.fps))
        scene = render_scene(width // 4, height // 4, min(frames, 10 * args.fps), seed=21)
        write_upscaled_clip(clip + ".tmp.mp4", scene, frames, args.fps)
        os.replace(clip + ".tmp.mp4", clip)

    walls, decoded, scoring, segments = [], 0, [], []
    with Pipeline(args.model) as pipeline:
        pipeline.activate()
        for _ in range(args.repeats):
            stream = pipeline.score_stream(clip, args.every)
            started = time.perf_counter()
            segments = []
            for segment in stream:
                segments.append(segment)
            walls.append(time.perf_counter() - started)
            decoded = stream.frames_decoded
            scoring.extend(stream.scoring_seconds)
    with Pipeline(args.model, segment_seconds=args.every) as pipeline:
        reference = pipeline.score(clip).segments
    same = [s["scores"] for s in segments] == [s["scores"] for s in reference[:len(segments)]]

    wall = statistics.median(walls)
    video_seconds = decoded / args.fps
    print(f"clip: {clip} ({width}x{height}, {args.fps} fps, {video_seconds:g} s); model: "
          f"{os.path.basename(pipeline.model_path)}; segments of {args.every:g} s: {len(segments)}")
    print(f"wall time (median of {args.repeats})       {wall:8.3f} s")
    print(f"real-time factor                  {video_seconds / wall:8.2f} x   (above 1 keeps up with a live source)")
    print(f"frames decoded per second         {decoded / wall:8.1f}")
    print(f"scoring a complete segment        {1000 * statistics.median(scoring):8.2f} ms median, "
          f"{1000 * max(scoring):.2f} ms at most")
    print(f"segments equal the whole file's --every segments: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
