"""Scoring a set of videos: one `Pipeline.score_many` against `edgevqa.batch` on Ray Data, in one run.

Generates ``--videos`` H.264 clips (rendered scenes, ``--seconds`` long, 1280x720 by default, each its own
seed), then scores them all with the default model (or ``--model``):

- ``score_many``: one process, the decoder's and ONNX Runtime's default threads, one video decoding ahead of
  inference (what `edgevqa score` does);
- ``ray``: `edgevqa.batch.score_dataset` with ``--actors`` actors on a local Ray of the machine's CPUs, each
  actor one CPU (a decoder and inference on one thread each), the way `edgevqa batch` runs; Ray's start and the
  actors' model loading are timed apart from the scoring.

Reports the wall time and videos per second of each, and whether every score is identical.

    python bench/batch_speed.py [--videos 16] [--seconds 4] [--size 1280x720] [--actors N] [--model M.onnx]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def write_clips(folder: str, count: int, seconds: float, width: int, height: int, fps: int = 25) -> list[str]:
    from edgevqa.bench.pipeline_speed import write_upscaled_clip
    from edgevqa.samples import render_scene

    clips = []
    for i in range(count):
        path = os.path.join(folder, f"clip{i:03d}_{width}x{height}.mp4")
        if not os.path.exists(path):
            scene = render_scene(width // 4, height // 4, int(round(seconds * fps)), seed=100 + i)
            write_upscaled_clip(path + ".tmp.mp4", scene, len(scene), fps)
            os.replace(path + ".tmp.mp4", path)
        clips.append(path)
    return clips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--actors", type=int, default=None, help="default: the machine's CPUs")
    parser.add_argument("--model", default=None)
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "edgevqa-batch-bench"))
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    os.makedirs(args.work, exist_ok=True)

    import ray

    import edgevqa.batch as batch
    from edgevqa.pipeline import Pipeline

    started = time.perf_counter()
    clips = write_clips(args.work, args.videos, args.seconds, width, height)
    print(f"{len(clips)} clips of {args.seconds:g} s at {width}x{height} in {args.work} "
          f"({time.perf_counter() - started:.1f} s to make or find)")

    with Pipeline(args.model) as pipeline:
        pipeline.activate()
        started = time.perf_counter()
        local = [r.scores for r in pipeline.score_many(clips)]
        local_seconds = time.perf_counter() - started

    cpus = os.cpu_count() or 1
    actors = args.actors or cpus
    started = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    ray_start = time.perf_counter() - started
    try:
        # Ray Data starts a fresh actor pool for each dataset it runs, so the pool's start and each actor's
        # model load are inside this time, as they are for every `edgevqa batch` run.
        started = time.perf_counter()
        rows = list(batch.score_dataset(clips, args.model, actors=actors, cpus_per_actor=1, batch_size=1,
                                        threads=1, decode_threads=1).iter_rows())
        ray_seconds = time.perf_counter() - started
    finally:
        ray.shutdown()
    names = list(local[0])
    identical = all(r["ok"] for r in rows) and [{n: r[n] for n in names} for r in rows] == local

    print(f"score_many (one process, default threads)   {local_seconds:7.2f} s  {len(clips) / local_seconds:6.2f} "
          "videos/s")
    print(f"Ray Data, {actors} actor(s) x 1 CPU                 {ray_seconds:7.2f} s  "
          f"{len(clips) / ray_seconds:6.2f} videos/s  (actors' start and model load included; Ray's own start "
          f"{ray_start:.1f} s more)")
    print(f"Ray / score_many: {local_seconds / ray_seconds:.2f}x the throughput; scores identical: {identical}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
