"""INT8 (Q/DQ, `edgevqa quantize`) vs FP32 on ONNX Runtime's CPU provider, per video, measured in one run.

For each video: the model time (``Runner.infer`` on that video's inputs, median of ``--repeats`` after a
warm-up) and the whole-pipeline time (``Pipeline.score``: decode, plan, sample, infer; median of
``--pipeline-repeats``), FP32 and each INT8 variant interleaved so machine load hits them alike, with
``--threads`` ONNX Runtime threads (2 by default). Prints a table of times and FP32/INT8 ratios and the score
difference.

    python bench/int8_speed.py [--model M.onnx] [--videos DIR_OR_LIST] [--calib DIR_OR_LIST] [--threads 2]

Without ``--model`` it uses the shipped default model, else exports ``athqa_tiny`` (needs the ``export``
extra). Without ``--videos`` it uses the shared test clips when present, else generated clips; calibration
clips are always generated unless ``--calib`` names some. INT8 variants: per-tensor weights; per-channel
weights with 7-bit range (``--reduce-range``, what x86 CPUs without VNNI need); and, with ``--no-layout-too``,
the latter without the ONNX Runtime CPU layout passes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def default_videos(folder: str) -> list[str]:
    shared = sorted(str(p) for p in SHARED_VIDEOS.glob("*.mp4")) if SHARED_VIDEOS.is_dir() else []
    if shared:
        return shared
    from edgevqa.samples import write_clip

    return [write_clip(os.path.join(folder, f"bench{i}.mp4"), width=w, height=h, num_frames=100, seed=40 + i)
            for i, (w, h) in enumerate([(640, 360), (1280, 720), (320, 240)])]


def calibration_clips(folder: str) -> str:
    from edgevqa.samples import write_clip

    os.makedirs(folder, exist_ok=True)
    for i, (w, h) in enumerate([(480, 270), (640, 360), (400, 300), (960, 540)]):
        write_clip(os.path.join(folder, f"calib{i}.mp4"), width=w, height=h, num_frames=60, seed=i, crf=18 + 6 * i)
    return folder


def resolve_model(model: str | None, folder: str) -> str:
    if model:
        return model
    from edgevqa.pipeline import default_model_path

    shipped = default_model_path()
    if shipped:
        return shipped
    from edgevqa.export import export_onnx

    path = os.path.join(folder, "athqa_tiny.onnx")
    export_onnx("athqa_tiny", path)
    return path


def median_infer(runner, feed, repeats: int) -> float:
    runner.infer(feed)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        runner.infer(feed)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="FP32 ONNX model with a manifest (default: shipped model / athqa_tiny)")
    parser.add_argument("--videos", help="videos to time (folder, list or file; default: shared clips)")
    parser.add_argument("--calib", help="calibration videos (default: generated clips)")
    parser.add_argument("--samples", type=int, default=16, help="calibration samples (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    parser.add_argument("--repeats", type=int, default=10, help="timed inferences per video and model")
    parser.add_argument("--pipeline-repeats", type=int, default=3, help="timed Pipeline.score calls per video")
    parser.add_argument("--no-layout-too", action="store_true",
                        help="also time per-channel INT8 without the ORT CPU layout passes")
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="edgevqa-int8-bench-")
    try:
        return run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: str) -> int:
    from edgevqa.calib import QuantizeOptions, quantize_model
    from edgevqa.calib.videos import resolve_video_set
    from edgevqa.pipeline import Pipeline

    model = resolve_model(args.model, work)
    videos = [v.path for v in resolve_video_set(args.videos, "--videos")] if args.videos else default_videos(work)
    calib = args.calib or calibration_clips(os.path.join(work, "calib"))

    variants = {"int8/tensor": dict(per_channel=False),
                "int8/channel": dict(per_channel=True, reduce_range=True)}
    if args.no_layout_too:
        variants["int8/ch-nolayout"] = dict(per_channel=True, reduce_range=True, cpu_layout=False)
    paths = {"fp32": model}
    for name, extra in variants.items():
        out = os.path.join(work, name.replace("/", "-") + ".onnx")
        quantize_model(model, calib, out, QuantizeOptions(samples=args.samples, cache_dir=os.path.join(work, "cache"),
                                                          **extra))
        paths[name] = out

    pipelines = {name: Pipeline(path, threads=args.threads) for name, path in paths.items()}
    for pipeline in pipelines.values():
        pipeline.activate()
    flags = cpu_flags()
    vnni = "avx512_vnni" in flags or "avx_vnni" in flags
    print(f"model {model} ({pipelines['fp32'].manifest.name}); ONNX Runtime CPU, {args.threads} threads; "
          f"AVX2 {'yes' if 'avx2' in flags else 'no'}, VNNI {'yes' if vnni else 'no'}")
    print(f"median of {args.repeats} inferences and {args.pipeline_repeats} whole-pipeline scores per video; "
          f"ratio = FP32 time / INT8 time")
    header = f"{'video':<34} {'variant':<17} {'infer ms':>9} {'ratio':>6} {'pipeline ms':>12} {'ratio':>6} {'|dscore|':>9}"
    print(header)
    print("-" * len(header))
    infer_ratios: dict[str, list[float]] = {n: [] for n in variants}
    pipe_ratios: dict[str, list[float]] = {n: [] for n in variants}
    for video in videos:
        feed = pipelines["fp32"].prepare(video).feed
        infer = {name: [] for name in pipelines}
        total = {name: [] for name in pipelines}
        scores = {}
        # Interleave the models so load from other processes falls on all of them alike.
        for round_index in range(max(1, args.pipeline_repeats)):
            order = list(pipelines) if round_index % 2 == 0 else list(reversed(pipelines))
            for name in order:
                pipeline = pipelines[name]
                infer[name].append(median_infer(pipeline.runner, feed, max(1, args.repeats // args.pipeline_repeats)))
                result = pipeline.score(video)
                total[name].append(result.timings["total"])
                scores[name] = result.scores
        base_infer = statistics.median(infer["fp32"])
        base_total = statistics.median(total["fp32"])
        label = os.path.basename(video)[:34]
        for name in pipelines:
            t_infer, t_total = statistics.median(infer[name]), statistics.median(total[name])
            diff = max(abs(scores[name][k] - scores["fp32"][k]) for k in scores["fp32"])
            ratio_i, ratio_t = base_infer / t_infer, base_total / t_total
            if name != "fp32":
                infer_ratios[name].append(ratio_i)
                pipe_ratios[name].append(ratio_t)
            print(f"{label:<34} {name:<17} {t_infer * 1e3:>9.1f} {ratio_i:>6.2f} {t_total * 1e3:>12.1f} "
                  f"{ratio_t:>6.2f} {diff:>9.4f}")
            label = ""
    print("-" * len(header))
    for name in variants:
        print(f"{'geometric mean':<34} {name:<17} {'':>9} {float(np.exp(np.mean(np.log(infer_ratios[name])))):>6.2f} "
              f"{'':>12} {float(np.exp(np.mean(np.log(pipe_ratios[name])))):>6.2f}")
    for pipeline in pipelines.values():
        pipeline.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
