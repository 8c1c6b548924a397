"""``edgevqa watch``: score a live stream segment by segment as it plays (`edgevqa.live`), printing each
segment's row (or JSON line, or CSV row) the moment it is scored."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

from .cli_score import (BELOW_EXIT_STATUS, add_model_arguments, add_threshold_argument, check_output_target,
                        every_seconds, parse_thresholds, scores_below)
from .errors import EdgeVQAError, VideoDecodeError
from .pipeline import Pipeline


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "watch", help="score a live stream (URL, pipe, growing file) segment by segment as it plays",
        description="Score a stream as it plays: every --every seconds of video is scored the moment its frames "
                    "are in. SOURCE is a URL FFmpeg opens (rtsp://, http://...), a file, or '-' for standard "
                    "input (a stream format, e.g. `ffmpeg -i rtsp://cam -c copy -f mpegts - | edgevqa watch - "
                    "--every 10`). Stops at the stream's end, after --segments, or on Ctrl-C.")
    p.add_argument("source", metavar="SOURCE", help="stream URL, file, or '-' for standard input")
    p.add_argument("--every", type=float, required=True, metavar="SECONDS", help="segment length in seconds")
    p.add_argument("--segments", type=int, default=None, metavar="N", help="stop after N segments")
    p.add_argument("--reconnect", type=float, default=None, metavar="SECONDS",
                   help="when the stream stops or fails after it played, open it again after SECONDS (a camera "
                        "that dropped); until Ctrl-C or --segments")
    p.add_argument("--input-format", metavar="NAME",
                   help="FFmpeg demuxer to read SOURCE with, e.g. rawvideo, mpegts, h264 (default: probed)")
    p.add_argument("--input-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an FFmpeg input option, repeatable: video_size=1920x1080, pixel_format=nv12 and "
                        "framerate=30 for raw frames; rtsp_transport=tcp; timeout=5000000 (microseconds)")
    add_model_arguments(p)
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: ONNX Runtime's)")
    p.add_argument("--json", action="store_true", help="print one JSON object per segment per line")
    p.add_argument("--csv", metavar="FILE", help="also append each segment's row to this CSV file as it is scored")
    p.add_argument("--force", action="store_true", help="allow --csv to replace an existing file")
    add_threshold_argument(p, "a segment")
    p.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                   help="serve the latest scores as Prometheus metrics at http://HOST:PORT/metrics (0: a free port, "
                        "printed on stderr)")
    p.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                   help="address the metrics server listens on (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.set_defaults(func=run)


def _label(segment: dict[str, Any]) -> str:
    return f"{segment['start_s']:.2f}-{segment['end_s']:.2f} s"


def input_options(items: list[str]) -> dict[str, str]:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise EdgeVQAError(f"--input-option {item!r}: write it as KEY=VALUE, e.g. pixel_format=nv12")
        options[key.strip()] = value
    return options


def _metrics_server(args: argparse.Namespace, source: str, outputs: list[str]) -> tuple[Any, Any]:
    """The Prometheus endpoint asked for with --metrics-port, started (its address on stderr), or (None, None)."""
    if args.metrics_port is None:
        return None, None
    from .metrics import MetricsServer, ScoreMetrics

    if not 0 <= args.metrics_port <= 65535:
        raise EdgeVQAError(f"--metrics-port must be 0..65535, got {args.metrics_port}")
    metrics = ScoreMetrics(source, outputs)
    try:
        server = MetricsServer(metrics, args.metrics_port, args.metrics_host)
    except OSError as exc:
        raise EdgeVQAError(f"--metrics-port {args.metrics_port}: cannot listen on {args.metrics_host} "
                           f"({exc.strerror or exc})") from None
    print(f"edgevqa: metrics at {server.url}", file=sys.stderr, flush=True)
    return metrics, server


def run(args: argparse.Namespace) -> int:
    seconds = every_seconds(args.every)
    if args.segments is not None and args.segments < 1:
        raise EdgeVQAError(f"--segments must be at least 1, got {args.segments}")
    if args.threads is not None and args.threads < 1:
        raise EdgeVQAError(f"--threads must be at least 1, got {args.threads}")
    if args.reconnect is not None and not 0 <= args.reconnect < float("inf"):
        raise EdgeVQAError(f"--reconnect must be a number of seconds of at least 0, got {args.reconnect:g}")
    if args.reconnect is not None and args.source == "-":
        raise EdgeVQAError("--reconnect cannot open standard input again; restart the pipe that feeds it instead")
    source: Any = sys.stdin.buffer if args.source == "-" else args.source
    options = input_options(args.input_option)
    if args.csv:
        check_output_target(args.csv, [] if args.source == "-" else [args.source], args.force)
    pipeline = Pipeline(args.model, backend=args.backend, threads=args.threads, seed=args.seed,
                        plan_mode=args.plan_mode, device=args.device)
    dims = list(pipeline.manifest.outputs)
    thresholds = parse_thresholds(args.fail_below, dims)
    widths = [max(8, len(d)) for d in dims]
    csv_file: Any = None
    writer: Any = None

    def say(note: str) -> None:
        print(f"edgevqa: warning: {stream.name}: {note}", file=sys.stderr, flush=True)

    stream = pipeline.score_stream(source, seconds, args.segments, args.input_format, options, args.reconnect, say)
    metrics, server = _metrics_server(args, stream.name, dims)
    count = below = 0
    interrupted = False
    try:
        with pipeline:
            for segment in stream:
                if count == 0 and not args.json:
                    print(f"model: {pipeline.manifest.name} {pipeline.manifest.version} ({pipeline.model_path})")
                    print(f"source: {stream.name}")
                    print("  ".join(["segment".ljust(17)] + [d.ljust(w) for d, w in zip(dims, widths)]), flush=True)
                if count == 0 and args.csv:  # made at the first row, so a stream that never plays leaves no file
                    csv_file = open(args.csv, "w", newline="", encoding="utf-8")
                    writer = csv.writer(csv_file)
                    writer.writerow(["video", "start_s", "end_s"] + dims + ["warnings"])
                count += 1
                low = scores_below(segment["scores"], thresholds)
                below += bool(low)
                if metrics is not None:
                    metrics.record(segment, bool(low))
                if args.json:
                    extra = {"video": stream.name, "below": low} if thresholds else {"video": stream.name}
                    print(json.dumps(dict(segment, **extra), sort_keys=True), flush=True)
                else:
                    cells = [f"{segment['scores'][d]:.2f}".ljust(w) for d, w in zip(dims, widths)]
                    print("  ".join([_label(segment).ljust(17)] + cells), flush=True)
                if low:
                    print(f"edgevqa: below threshold: {stream.name} [{_label(segment)}]: {', '.join(low)}",
                          file=sys.stderr, flush=True)
                for warning in segment["warnings"]:
                    print(f"edgevqa: warning: {stream.name} [{_label(segment)}]: {warning}", file=sys.stderr)
                if writer:
                    writer.writerow([stream.name, segment["start_s"], segment["end_s"]]
                                    + [segment["scores"][d] for d in dims] + ["; ".join(segment["warnings"])])
                    csv_file.flush()
    except VideoDecodeError as exc:
        if args.source == "-" and count == 0:
            raise VideoDecodeError(f"{exc}; on standard input send a stream format such as MPEG-TS or Matroska "
                                   "(ffmpeg ... -f mpegts -): MP4 and MOV need a seekable file") from exc
        raise
    except KeyboardInterrupt:
        interrupted = True  # the way a user stops watching: what was scored is printed and written
    finally:
        if csv_file:
            csv_file.close()
        if server is not None:
            server.close()
    if interrupted:
        print(f"edgevqa: stopped after {count} segment(s)", file=sys.stderr)
    elif count == 0:
        raise EdgeVQAError(f"{stream.name}: the stream ended before a segment of {seconds:g} s could be scored")
    return BELOW_EXIT_STATUS if below else 0
