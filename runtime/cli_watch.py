"""``edgevqa watch``: score a live stream segment by segment as it plays (`edgevqa.live`), printing each
segment's row (or JSON line, or CSV row) the moment it is scored."""

from __future__ import annotations

import argparse
import csv
import json
import queue
import sys
import threading
from typing import Any

from .cli_score import (BELOW_EXIT_STATUS, add_model_arguments, add_threshold_argument, check_output_target,
                        every_seconds, parse_thresholds, scene_cuts_of, scores_below)
from .errors import EdgeVQAError, VideoDecodeError
from .decode import describe_source
from .pipeline import Pipeline


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "watch", help="score live streams (URLs, a pipe, files) segment by segment as they play",
        description="Score a stream as it plays: every --every seconds of video is scored the moment its frames "
                    "are in. SOURCE is a URL FFmpeg opens (rtsp://, http://...), a file, or '-' for standard "
                    "input (a stream format, e.g. `ffmpeg -i rtsp://cam -c copy -f mpegts - | edgevqa watch - "
                    "--every 10`). Stops at the stream's end, after --segments, or on Ctrl-C.")
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="stream URLs, files, or '-' for standard input; several are watched at once (one model)")
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


def _metrics_server(args: argparse.Namespace, sources: list[str], outputs: list[str]) -> tuple[Any, Any]:
    """The Prometheus endpoint asked for with --metrics-port, started (its address on stderr), or (None, None)."""
    if args.metrics_port is None:
        return None, None
    from .metrics import MetricsServer, ScoreMetrics

    metrics = ScoreMetrics(sources, outputs)
    try:
        server = MetricsServer(metrics, args.metrics_port, args.metrics_host)
    except OSError as exc:
        raise EdgeVQAError(f"--metrics-port {args.metrics_port}: cannot listen on {args.metrics_host} "
                           f"({exc.strerror or exc})") from None
    print(f"edgevqa: metrics at {server.url}", file=sys.stderr, flush=True)
    return metrics, server


def _check_arguments(args: argparse.Namespace) -> None:
    if args.segments is not None and args.segments < 1:
        raise EdgeVQAError(f"--segments must be at least 1, got {args.segments}")
    if args.threads is not None and args.threads < 1:
        raise EdgeVQAError(f"--threads must be at least 1, got {args.threads}")
    if args.reconnect is not None and not 0 <= args.reconnect < float("inf"):
        raise EdgeVQAError(f"--reconnect must be a number of seconds of at least 0, got {args.reconnect:g}")
    if args.sources.count("-") > 1:
        raise EdgeVQAError("'-' (standard input) can be given once")
    if args.reconnect is not None and "-" in args.sources:
        raise EdgeVQAError("--reconnect cannot open standard input again; restart the pipe that feeds it instead")
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        raise EdgeVQAError(f"--metrics-port must be 0..65535, got {args.metrics_port}")


def _play(stream: Any, events: "queue.Queue[tuple[int, str, Any]]", k: int) -> None:
    """One stream's thread: each segment, then the end (or the error that ended it), onto ``events``."""
    try:
        for segment in stream:
            events.put((k, "segment", segment))
    except EdgeVQAError as exc:
        events.put((k, "error", exc))
        return
    except BaseException as exc:  # a bug: handed to the main thread, which raises it
        events.put((k, "crash", exc))
        return
    events.put((k, "end", None))


def run(args: argparse.Namespace) -> int:
    seconds = every_seconds(args.every)
    _check_arguments(args)
    options = input_options(args.input_option)
    if args.csv:
        check_output_target(args.csv, [s for s in args.sources if s != "-"], args.force)
    pipeline = Pipeline(args.model, backend=args.backend, threads=args.threads, seed=args.seed,
                        plan_mode=args.plan_mode, device=args.device, deinterlace=args.deinterlace,
                        tone_map=args.tone_map, scene_cuts=scene_cuts_of(args), crop_bars=args.crop_bars,
                        frame_stride=args.frame_stride)
    dims = list(pipeline.manifest.outputs)
    thresholds = parse_thresholds(args.fail_below, dims)
    several = len(args.sources) > 1
    streams = []
    for source in args.sources:
        opened = sys.stdin.buffer if source == "-" else source

        def say(note: str, name: str = describe_source(opened)) -> None:
            print(f"edgevqa: warning: {name}: {note}", file=sys.stderr, flush=True)

        streams.append(pipeline.score_stream(opened, seconds, args.segments, args.input_format, options,
                                             args.reconnect, say))
    names = [stream.name for stream in streams]
    metrics, server = _metrics_server(args, names, dims)
    table = _Table(dims, names if several else None)
    csv_file: Any = None
    writer: Any = None
    counts = [0] * len(streams)
    below = 0
    failures: list[EdgeVQAError] = []
    interrupted = False
    events: queue.Queue = queue.Queue()
    try:
        with pipeline:
            pipeline.activate()
            for k, stream in enumerate(streams):
                threading.Thread(target=_play, args=(stream, events, k), name=f"edgevqa-watch-{k}",
                                 daemon=True).start()
            running = len(streams)
            while running:
                try:
                    k, kind, payload = events.get(timeout=0.5)  # a timeout, so that Ctrl-C is seen
                except queue.Empty:
                    continue
                name = names[k] = streams[k].name
                if kind == "crash":
                    raise payload
                if kind in ("end", "error"):
                    running -= 1
                    if kind == "error" or counts[k] == 0:
                        failure = payload if kind == "error" else EdgeVQAError(
                            f"{name}: the stream ended before a segment of {seconds:g} s could be scored")
                        if isinstance(failure, VideoDecodeError) and args.sources[k] == "-" and counts[k] == 0:
                            failure = VideoDecodeError(
                                f"{failure}; on standard input send a stream format such as MPEG-TS or Matroska "
                                "(ffmpeg ... -f mpegts -): MP4 and MOV need a seekable file")
                        failures.append(failure)
                        if several:
                            print(f"edgevqa: error: {failure}", file=sys.stderr, flush=True)
                    continue
                segment = payload
                if sum(counts) == 0 and not args.json:
                    print(f"model: {pipeline.manifest.name} {pipeline.manifest.version} ({pipeline.model_path})")
                    if not several:
                        print(f"source: {name}")
                    print(table.header(), flush=True)
                if sum(counts) == 0 and args.csv:  # made at the first row: a stream that never plays leaves no file
                    csv_file = open(args.csv, "w", newline="", encoding="utf-8")
                    writer = csv.writer(csv_file)
                    writer.writerow(["video", "start_s", "end_s"] + dims + ["warnings"])
                counts[k] += 1
                low = scores_below(segment["scores"], thresholds)
                below += bool(low)
                if metrics is not None:
                    metrics.record(name, segment, bool(low))
                if args.json:
                    extra = {"video": name, "below": low} if thresholds else {"video": name}
                    print(json.dumps(dict(segment, **extra), sort_keys=True), flush=True)
                else:
                    print(table.row(name, segment), flush=True)
                if low:
                    print(f"edgevqa: below threshold: {name} [{_label(segment)}]: {', '.join(low)}",
                          file=sys.stderr, flush=True)
                for warning in segment["warnings"]:
                    print(f"edgevqa: warning: {name} [{_label(segment)}]: {warning}", file=sys.stderr)
                if writer:
                    writer.writerow([name, segment["start_s"], segment["end_s"]]
                                    + [segment["scores"][d] for d in dims] + ["; ".join(segment["warnings"])])
                    csv_file.flush()
    except KeyboardInterrupt:
        interrupted = True  # the way a user stops watching: what was scored is printed and written
    finally:
        if csv_file:
            csv_file.close()
        if server is not None:
            server.close()
    if interrupted:
        print(f"edgevqa: stopped after {sum(counts)} segment(s)", file=sys.stderr)
        return BELOW_EXIT_STATUS if below else 0
    if failures and not several:
        raise failures[0]
    if failures:
        return 1
    return BELOW_EXIT_STATUS if below else 0


class _Table:
    """Rows of the printed table: the segment's times (and its source, when several are watched), the scores."""

    def __init__(self, dims: list[str], sources: list[str] | None):
        self.dims, self.widths = dims, [max(8, len(d)) for d in dims]
        self.source_width = max([6] + [len(s) for s in sources or []]) if sources else 0

    def _source(self, text: str) -> list[str]:
        return [text.ljust(self.source_width)] if self.source_width else []

    def header(self) -> str:
        return "  ".join(self._source("source") + ["segment".ljust(17)]
                         + [d.ljust(w) for d, w in zip(self.dims, self.widths)])

    def row(self, source: str, segment: dict[str, Any]) -> str:
        cells = [f"{segment['scores'][d]:.2f}".ljust(w) for d, w in zip(self.dims, self.widths)]
        return "  ".join(self._source(source) + [_label(segment).ljust(17)] + cells)
