"""Pipeline-mode benchmark: the whole scoring pipeline on real videos, against decoding alone.

What a video-quality deployment needs beyond trtexec (design note bench.md): time per stage (decode, plan,
sample, infer, aggregate), videos and frames per second, the real-time factor, cold start (model load, first
video) against the steady state, the stage that bounds throughput, and the ratio to decode-only.

Decode-only is defined as PyAV decoding the frames the pipeline decodes: every frame from the first up to the
last one any sampling plan reads (decoding cannot skip frames without seeking), with the pipeline's decoder
thread settings, and nothing else: no plane views, no sampling. The pipeline cannot be faster than that
without a faster decoder, so the ratio is its overhead on top of the decoder.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from edgevqa.errors import BackendUnavailableError, EdgeVQAError

from . import report as rpt
from .stats import DEFAULT_PERCENTILES, fmt, summarize

STAGES = ("decode", "plan", "sample", "infer", "aggregate")
DECODE_ONLY_DEFINITION = ("PyAV decoding the frames the pipeline decodes: frame 0 up to the last frame any sampling "
                          "plan reads, with the pipeline's decoder threads; no plane views, no sampling, no model")


@dataclass
class PipelineBenchOptions:
    videos: Sequence[str]
    model: str | None = None
    backend: str = "ort-cpu"
    threads: int | None = None
    device: str = "cpu"
    seed: int | None = None
    plan_mode: str = "default"
    decode_threads: int = 0
    repeats: int = 3
    prefetch: int = 2
    percentiles: Sequence[float] = DEFAULT_PERCENTILES
    command: str = "edgevqa bench --pipeline"
    extra: dict[str, Any] = field(default_factory=dict)


def last_planned_frame(video: str, manifest: Any, seed: int | None, plan_mode: str) -> tuple[int, Any]:
    """(index of the last frame the pipeline's plans read, the video's `VideoInfo`)."""
    from edgevqa.decode import PyAVDecoder
    from edgevqa.sampling import frames_needed, make_plans

    with PyAVDecoder(video) as decoder:
        info = decoder.info
    needed = frames_needed(make_plans(manifest.views, info, seed, plan_mode))
    return int(needed[-1]), info


def decode_only(video: str, last_index: int, threads: int = 0) -> tuple[float, int]:
    """Seconds PyAV takes to open ``video`` and decode frames 0..``last_index``; and how many it decoded."""
    import av

    start = time.perf_counter()
    decoded = 0
    with av.open(video) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        for _ in container.decode(stream):
            decoded += 1
            if decoded > last_index:
                break
    return time.perf_counter() - start, decoded


def run_pipeline_benchmark(options: PipelineBenchOptions) -> dict[str, Any]:
    from edgevqa.pipeline import Pipeline

    videos = [os.fspath(v) for v in options.videos]
    if not videos:
        raise EdgeVQAError("--pipeline: give at least one video")
    if options.repeats < 1:
        raise EdgeVQAError(f"--repeats must be at least 1, got {options.repeats}")
    for v in videos:
        if "://" not in v and not os.path.isfile(v):
            raise EdgeVQAError(f"{v}: no such video file")

    rss_scoped = rpt.reset_peak_rss()
    rss_before = rpt.current_rss_mib()
    pipeline = Pipeline(options.model, backend=options.backend, threads=options.threads, seed=options.seed,
                        plan_mode=options.plan_mode, decode_threads=options.decode_threads, device=options.device)
    manifest = pipeline.manifest
    with pipeline:
        model_load = pipeline.model_load_seconds or 0.0
        # Cold: the first video after the model loaded (first decoder open, first inference, caches cold).
        t0 = time.perf_counter()
        first = pipeline.score(videos[0])
        first_wall = time.perf_counter() - t0

        probes = [last_planned_frame(v, manifest, options.seed, options.plan_mode) for v in videos]
        per_video: list[dict[str, Any]] = [{"latency": [], "decode_only": [], "stages": {s: [] for s in STAGES},
                                            "decoded": 0, "sampled": 0} for _ in videos]
        # Steady state, one video at a time; decode-only runs interleaved so both see the same machine load.
        # The order alternates between repeats so neither always meets the warmer file cache and clocks.
        for rep in range(options.repeats):
            for k, video in enumerate(videos):
                for which in (("decode", "pipeline") if rep % 2 == 0 else ("pipeline", "decode")):
                    if which == "decode":
                        seconds, decoded = decode_only(video, probes[k][0], options.decode_threads)
                        per_video[k]["decode_only"].append(seconds)
                        per_video[k]["decoded"] = decoded
                        continue
                    t0 = time.perf_counter()
                    result = pipeline.score(video)
                    per_video[k]["latency"].append(time.perf_counter() - t0)
                    per_video[k]["sampled"] = result.frames_decoded
                    for s in STAGES:
                        per_video[k]["stages"][s].append(result.timings[s])
        # Throughput: score_many overlaps decoding of the next videos with inference of the current one.
        queue = [v for _ in range(options.repeats) for v in videos]
        lanes = {"prepare": 0.0, "infer": 0.0}
        t0 = time.perf_counter()
        for result in pipeline.score_many(queue, prefetch=options.prefetch):
            if not result.ok:
                raise EdgeVQAError(result.error or f"{result.video}: scoring failed")
            lanes["prepare"] += sum(result.timings[s] for s in ("decode", "plan", "sample"))
            lanes["infer"] += result.timings["infer"] + result.timings["aggregate"]
        throughput_wall = time.perf_counter() - t0
        describe = pipeline.runner.describe()
    peak_rss = rpt.peak_rss_mib()

    n_rep = options.repeats
    durations = [info.duration for _, info in probes]
    source_frames = [info.num_frames for _, info in probes]
    videos_out = []
    for k, video in enumerate(videos):
        pv, info = per_video[k], probes[k][1]
        lat, dec = float(np.median(pv["latency"])), float(np.median(pv["decode_only"]))
        videos_out.append({
            "video": video, "width": info.width, "height": info.height, "fps": info.fps, "codec": info.codec,
            "duration_s": info.duration, "source_frames": info.num_frames, "last_planned_frame": probes[k][0],
            "decoded_frames": pv["decoded"], "sampled_frames": pv["sampled"],
            "latency_ms": lat * 1000.0, "decode_only_ms": dec * 1000.0, "ratio_to_decode_only": lat / dec,
            "stages_ms": {s: float(np.mean(pv["stages"][s])) * 1000.0 for s in STAGES},
            "realtime_factor": info.duration / lat if lat > 0 else None})

    all_latency = [x for pv in per_video for x in pv["latency"]]
    stage_means = {s: float(np.mean([x for pv in per_video for x in pv["stages"][s]])) * 1000.0 for s in STAGES}
    stage_total = sum(stage_means.values()) or 1.0
    bound = max(STAGES, key=lambda s: stage_means[s])
    seq_wall = float(sum(all_latency))
    decode_only_wall = float(sum(x for pv in per_video for x in pv["decode_only"]))
    decoded_total = sum(pv["decoded"] for pv in per_video) * n_rep
    sampled_total = sum(pv["sampled"] for pv in per_video) * n_rep
    video_seconds = float(sum(durations)) * n_rep
    source_total = sum(source_frames) * n_rep
    lane_bound = max(lanes, key=lanes.get)

    schema, version = rpt.PIPELINE_SCHEMA
    return {
        "schema": schema, "schema_version": version, "command": options.command,
        "model": {"path": pipeline.model_path, "name": manifest.name, "version": manifest.version,
                  "views": [v.name for v in manifest.views], "outputs": list(manifest.outputs)},
        "settings": {"backend": options.backend, "runner": describe, "threads": options.threads,
                     "decode_threads": options.decode_threads or "FFmpeg auto", "seed": options.seed,
                     "plan_mode": options.plan_mode, "repeats": n_rep, "prefetch": options.prefetch,
                     "percentiles": list(options.percentiles), "data_transfers": "none (host backend)"
                     if options.backend == "ort-cpu" else "see runner"},
        "environment": rpt.environment("onnxruntime", "onnx", "av"),
        "definitions": {
            "decode_only": DECODE_ONLY_DEFINITION,
            "latency": "wall time of Pipeline.score(video): open, decode, plan, sample, infer, aggregate",
            "steady_state": f"the median of {n_rep} repeats per video, after a first (cold) video",
            "throughput": f"Pipeline.score_many over the videos {n_rep} times (decoding overlaps inference)",
            "realtime_factor": "seconds of video scored per second of wall time (> 1: faster than real time)",
            "decoded_frames": "frames FFmpeg decoded (0 to the last planned frame)",
            "sampled_frames": "frames handed to the sampler", "source_frames": "frames in the videos",
            "bound_by": "the stage with the largest mean time per video (sequential scoring)",
            "throughput_bound_by": "the slower lane of score_many: prepare (decode+plan+sample) or infer "
                                   "(infer+aggregate)"},
        "cold": {"model_load_ms": model_load * 1000.0, "first_video": first.video,
                 "first_video_ms": first_wall * 1000.0,
                 "first_video_stages_ms": {s: first.timings[s] * 1000.0 for s in STAGES}},
        "videos": videos_out,
        "steady": {"latency": summarize([x * 1000.0 for x in all_latency], options.percentiles).to_dict(),
                   "stages_ms": stage_means,
                   "stage_share_percent": {s: stage_means[s] * 100.0 / stage_total for s in STAGES},
                   "bound_by": bound, "videos_per_s": len(all_latency) / seq_wall,
                   "decoded_fps": decoded_total / seq_wall, "sampled_fps": sampled_total / seq_wall,
                   "source_fps": source_total / seq_wall, "realtime_factor": video_seconds / seq_wall,
                   "wall_s": seq_wall},
        "throughput": {"videos": len(queue), "wall_s": throughput_wall, "videos_per_s": len(queue) / throughput_wall,
                       "decoded_fps": decoded_total / throughput_wall, "sampled_fps": sampled_total / throughput_wall,
                       "source_fps": source_total / throughput_wall,
                       "realtime_factor": video_seconds / throughput_wall,
                       "lanes_ms_per_video": {k: v * 1000.0 / len(queue) for k, v in lanes.items()},
                       "bound_by": lane_bound},
        "decode_only": {"wall_s": decode_only_wall, "videos_per_s": len(all_latency) / decode_only_wall,
                        "decoded_fps": decoded_total / decode_only_wall},
        "ratio_to_decode_only": {"latency": seq_wall / decode_only_wall,
                                 "throughput": throughput_wall / decode_only_wall},
        "memory": {"rss_before_mib": rss_before, "peak_rss_mib": peak_rss,
                   "peak_rss_scope": "since the benchmark started" if rss_scoped else "process lifetime",
                   "peak_device_mib": None},
        "_latencies_ms": [x * 1000.0 for x in all_latency],
    }


def format_pipeline_report(report: dict[str, Any]) -> str:
    s, m, c, st, tp = report["settings"], report["model"], report["cold"], report["steady"], report["throughput"]
    env, ratio = report["environment"], report["ratio_to_decode_only"]
    lines = ["=== Pipeline benchmark ===",
             f"Model: {m['name']} {m['version']} ({m['path']})",
             f"Backend: {s['backend']}; inference threads: {s['threads'] or 'backend default'}; decoder threads: "
             f"{s['decode_threads']}; plan: {s['plan_mode']}, seed {s['seed']}; repeats: {s['repeats']}; "
             f"prefetch: {s['prefetch']}",
             f"CPU: {env['cpu']} ({env['cpu_count']} usable cores); "
             + ", ".join(f"{k} {v}" for k, v in env["libraries"].items() if v),
             "", "=== Videos (steady state, median of repeats) ==="]
    for v in report["videos"]:
        stages = ", ".join(f"{k} {fmt(x)}" for k, x in v["stages_ms"].items())
        lines.append(f"{os.path.basename(v['video'])}: {v['width']}x{v['height']} {v['codec']} "
                     f"{fmt(v['duration_s'])} s, {v['source_frames']} frames, decoded {v['decoded_frames']}, sampled "
                     f"{v['sampled_frames']}; latency {fmt(v['latency_ms'])} ms, decode-only "
                     f"{fmt(v['decode_only_ms'])} ms, ratio {fmt(v['ratio_to_decode_only'])}; stages (ms): {stages}")
    lat = st["latency"]
    lines += ["", "=== Cold start ===",
              f"Model load: {fmt(c['model_load_ms'])} ms",
              f"First video: {fmt(c['first_video_ms'])} ms ("
              + ", ".join(f"{k} {fmt(x)} ms" for k, x in c["first_video_stages_ms"].items()) + ")",
              "", "=== Steady state (one video at a time) ===",
              "Latency per video: " + ", ".join(
                  [f"min = {fmt(lat['min'])} ms", f"max = {fmt(lat['max'])} ms", f"mean = {fmt(lat['mean'])} ms",
                   f"median = {fmt(lat['median'])} ms"]
                  + [f"percentile({p}%) = {fmt(x)} ms" for p, x in lat["percentiles"].items()]),
              "Stages (mean per video): " + ", ".join(
                  f"{k} = {fmt(x)} ms ({fmt(st['stage_share_percent'][k])}%)" for k, x in st["stages_ms"].items()),
              f"Bound by: {st['bound_by']} ({st['bound_by']}-bound)",
              f"Videos/s: {fmt(st['videos_per_s'])}; decoded frames/s: {fmt(st['decoded_fps'])}; sampled frames/s: "
              f"{fmt(st['sampled_fps'])}; source frames/s: {fmt(st['source_fps'])}; real-time factor: "
              f"{fmt(st['realtime_factor'])}x",
              "", f"=== Throughput (score_many, {tp['videos']} videos, prefetch {s['prefetch']}) ===",
              f"Videos/s: {fmt(tp['videos_per_s'])}; decoded frames/s: {fmt(tp['decoded_fps'])}; source frames/s: "
              f"{fmt(tp['source_fps'])}; real-time factor: {fmt(tp['realtime_factor'])}x",
              "Lanes (per video): " + ", ".join(f"{k} = {fmt(x)} ms" for k, x in tp["lanes_ms_per_video"].items())
              + f"; bound by: {tp['bound_by']}",
              "", "=== Against decode-only ===",
              f"Decode-only: {report['definitions']['decode_only']}.",
              f"Decode-only: {fmt(report['decode_only']['videos_per_s'])} videos/s, "
              f"{fmt(report['decode_only']['decoded_fps'])} decoded frames/s",
              f"Ratio pipeline / decode-only: latency {fmt(ratio['latency'])}x, throughput {fmt(ratio['throughput'])}x",
              "", f"Peak RSS: {fmt(report['memory']['peak_rss_mib'])} MiB ({report['memory']['peak_rss_scope']})"]
    return "\n".join(lines)


def plot_pipeline(report: dict[str, Any], path: str) -> None:
    """A PNG with the per-video latency histogram and the mean time per stage."""
    try:
        import matplotlib
    except ImportError as exc:
        raise BackendUnavailableError("bench --plot", "matplotlib", "bench", str(exc)) from exc
    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    fig, (hist, bars) = plt.subplots(1, 2, figsize=(11, 4))
    latencies = report["_latencies_ms"]
    hist.hist(latencies, bins=min(30, max(5, len(latencies) // 2)), color="#4477aa")
    hist.axvline(report["steady"]["latency"]["median"], color="black", linestyle="--", label="median")
    hist.set_xlabel("latency per video (ms)")
    hist.set_ylabel("videos")
    hist.set_title("Pipeline.score latency (steady state)")
    hist.legend()
    names = [_short_name(v["video"], k) for k, v in enumerate(report["videos"])]
    left = np.zeros(len(names))
    colours = ("#4477aa", "#66ccee", "#228833", "#ccbb44", "#ee6677")
    for stage, colour in zip(STAGES, colours):
        widths = np.asarray([v["stages_ms"][stage] for v in report["videos"]])
        bars.barh(names, widths, left=left, color=colour, label=stage)
        left += widths
    bars.scatter([v["decode_only_ms"] for v in report["videos"]], names, color="black", marker="|", s=200,
                 label="decode-only", zorder=3)
    bars.set_xlabel("mean time per video (ms)")
    bars.set_title(f"Stages (bound by {report['steady']['bound_by']})")
    bars.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _short_name(path: str, index: int) -> str:
    name = os.path.basename(path) or path
    return f"{index + 1}. " + (name if len(name) <= 22 else name[:10] + "..." + name[-9:])


def public_report(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if not k.startswith("_")}
