"""``edgevqa batch``: score a large set of videos on Ray Data (`edgevqa.batch`) into one JSON lines, CSV or
Parquet file, written as the rows arrive, in input order."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from typing import Any

from .cli_score import (Progress, add_model_arguments, add_time_range_arguments, check_output_target, csv_header,
                        csv_rows, every_seconds, expand_folders, scene_cuts_of, time_range_of)
from .errors import EdgeVQAError

OUTPUT_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "batch", help="score a large set of videos on Ray Data (a pool of actors, local or on a cluster)",
        description="Score many videos on Ray Data: each actor holds one pipeline, the rows are written to --out "
                    "in input order as they arrive. Needs the 'ray' extra; every node of a cluster needs edgevqa "
                    "and must see the videos and the model at the same paths.")
    p.add_argument("videos", nargs="*", metavar="VIDEO", help="video files, folders (every video under them) or URLs")
    p.add_argument("--list", metavar="FILE", dest="video_list",
                   help="also score the videos named in this file, one per line ('#' starts a comment)")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="where the scores go: .jsonl (one `score --json` object per video), .csv (as `score --csv`) "
                        "or .parquet (one row per video, a column per score, the whole result as JSON)")
    p.add_argument("--force", action="store_true", help="allow --out to replace an existing file")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run: keep the rows in FILE.partial (.jsonl or .csv) and score only "
                        "the videos it does not hold yet")
    add_model_arguments(p)
    add_time_range_arguments(p)
    p.add_argument("--actors", type=int, default=None,
                   help="pipelines scoring at once (default: the cluster's CPUs over --cpus-per-actor)")
    p.add_argument("--cpus-per-actor", type=int, default=1,
                   help="CPUs each actor reserves; its decoder and inference use that many threads (default 1)")
    p.add_argument("--gpus-per-actor", type=float, default=0.0, help="GPUs each actor reserves (GPU backends)")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join, e.g. 'auto' or ray://host:10001 (default: $RAY_ADDRESS, else a local "
                        "Ray started for this run)")
    p.add_argument("--every", type=float, default=None, metavar="SECONDS",
                   help="also score consecutive segments of this many seconds")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run, trailing_positionals="videos")


def read_video_list(path: str) -> list[str]:
    """The videos a list file names: one per line, blank lines and '#' comments skipped."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        raise EdgeVQAError(f"--list {path}: no such file") from None
    except IsADirectoryError:
        raise EdgeVQAError(f"--list {path}: is a directory, not a list of videos") from None
    except UnicodeDecodeError:
        raise EdgeVQAError(f"--list {path}: not a UTF-8 text file of video paths") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def output_format(path: str) -> str:
    fmt = OUTPUT_FORMATS.get(os.path.splitext(path)[1].lower())
    if fmt is None:
        raise EdgeVQAError(f"--out {path}: say the format by the extension: {', '.join(OUTPUT_FORMATS)}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise EdgeVQAError(f"--out {path}: folder {folder} does not exist")
    return fmt


def partial_path(path: str) -> str:
    return path + ".partial"


def rows_written(path: str, fmt: str, dims: list[str], segments: bool) -> dict[str, bool]:
    """The videos an interrupted run's partial file holds, each with whether it was scored (else it failed). A last line cut short by the interruption is
    removed from the file (its video is scored again). Only line-per-row formats can be resumed."""
    partial = partial_path(path)
    if fmt == "parquet":
        raise EdgeVQAError(f"--resume {path}: a Parquet file cannot be resumed (an interrupted one has no footer); "
                           "write .jsonl or .csv for runs you may need to resume")
    if not os.path.isfile(partial):
        raise EdgeVQAError(f"--resume: {partial} does not exist, so there is no interrupted run to continue")
    with open(partial, "rb") as fh:
        data = fh.read()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with open(partial, "r+b") as fh:
            fh.truncate(len(complete))
    lines = complete.decode("utf-8", errors="replace").splitlines()
    if fmt == "jsonl":
        try:
            records = [json.loads(line) for line in lines if line.strip()]
            return {r["video"]: r["error"] is None for r in records}
        except (ValueError, KeyError, TypeError) as exc:
            raise EdgeVQAError(f"--resume: {partial} is not this command's JSON lines ({exc})") from None
    header = csv_header(dims, segments)
    rows = list(csv.reader(lines))
    if not rows or rows[0] != header:
        raise EdgeVQAError(f"--resume: {partial} does not start with the header this run writes "
                           f"({','.join(header)}): another model or --every setting?")
    # with --every, a video's segment rows carry start_s; its own row leaves it empty
    error = header.index("error")
    return {row[0]: row[error] == "" for row in rows[1:] if len(row) == len(header) and (not segments or row[1] == "")}


class ScoreWriter:
    """Writes result rows to ``path + '.partial'`` and renames it to ``path`` when every row is in, so an
    interrupted run never leaves a file that looks complete (nor replaces the one asked for)."""

    def __init__(self, path: str, fmt: str, dims: list[str], segments: bool, resume: bool = False):
        self.path, self.fmt, self.dims, self.segments = path, fmt, dims, segments
        self.partial = partial_path(path)
        self._parquet: Any = None
        self._pending: list[dict[str, Any]] = []
        if fmt == "parquet":
            import pyarrow.parquet as pq  # Ray Data's own dependency

            self._parquet = pq.ParquetWriter(self.partial, self._schema())
            self._fh = None
        else:
            self._fh = open(self.partial, "a" if resume else "w", newline="", encoding="utf-8")
            if fmt == "csv":
                self._csv = csv.writer(self._fh)
                if not resume:
                    self._csv.writerow(csv_header(dims, segments))

    def _schema(self) -> Any:
        from .batch import row_schema

        return row_schema(self.dims)

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "parquet":
            self._pending.append(row)
            if len(self._pending) >= 256:
                self._flush()
            return
        record = json.loads(row["result"])
        if self.fmt == "jsonl":
            self._fh.write(json.dumps(record, sort_keys=True) + "\n")
        else:
            self._csv.writerows(csv_rows(record, self.dims, self.segments))
        self._fh.flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._pending:
            schema = self._schema()
            columns = {name: [_cell(r[name]) for r in self._pending] for name in schema.names}
            self._parquet.write_table(pa.table(columns, schema=schema))
            self._pending = []

    def finish(self) -> None:
        self.close()
        os.replace(self.partial, self.path)

    def close(self) -> None:
        if self._parquet is not None:
            self._flush()
            self._parquet.close()
            self._parquet = None
        elif self._fh is not None and not self._fh.closed:
            self._fh.close()


def _cell(value: Any) -> Any:
    """A row value as Arrow takes it: Ray hands lists back as NumPy arrays and numbers as NumPy scalars."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _ray_failure(exc: BaseException) -> EdgeVQAError | None:
    """The user error behind a Ray failure (an actor whose pipeline could not start, say), if there is one."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, EdgeVQAError):
            return exc
        exc = getattr(exc, "cause", None) or exc.__cause__
    return None


def _quiet_ray() -> None:
    """Ray's own chatter (execution plans, progress bars) off stderr, where this command reports; a
    failure still comes back as an exception. A user's own setting of these variables is kept."""
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")


def run(args: argparse.Namespace) -> int:
    from . import batch

    videos = expand_folders(list(args.videos) + (read_video_list(args.video_list) if args.video_list else []))
    if not videos:
        raise EdgeVQAError("no videos to score: name files or folders, or give --list FILE")
    fmt = output_format(args.out)
    check_output_target(args.out, videos, args.force, flag="--out")
    if os.path.exists(partial_path(args.out)) and not (args.resume or args.force):
        raise EdgeVQAError(f"--out {args.out}: {partial_path(args.out)} holds an interrupted run's rows; add --resume "
                           "to continue it, or --force to start over")
    if args.cpus_per_actor < 1:
        raise EdgeVQAError(f"--cpus-per-actor must be at least 1, got {args.cpus_per_actor}")
    if args.actors is not None:
        batch.check_actor_count(args.actors)
    segments = every_seconds(args.every)
    from .manifest import load_manifest
    from .pipeline import resolve_model

    model_path = os.path.abspath(resolve_model(args.model))
    dims = list(load_manifest(model_path).outputs)
    total = len(videos)
    failed = 0
    if args.resume:
        done = rows_written(args.out, fmt, dims, segments is not None)
        kept = {batch.worker_path(v) for v in videos} & set(done)
        failed = sum(not done[v] for v in kept)
        videos = [v for v in videos if batch.worker_path(v) not in kept]
        if not args.quiet:
            print(f"edgevqa: resuming: {total - len(videos)} of {total} video(s) already in "
                  f"{partial_path(args.out)}", file=sys.stderr)
        if not videos:
            ScoreWriter(args.out, fmt, dims, segments is not None, resume=True).finish()
            return _summary(args, total, failed, model_path, 0)
    ray = batch.import_ray()
    started = not ray.is_initialized()  # a program calling `main` may have its own Ray running: use that one
    if started:
        _quiet_ray()
        ray.init(address=args.address, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    writer = None
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # rows reach the file in input order
        context.enable_progress_bars = False
        actors = args.actors or max(1, int(ray.cluster_resources().get("CPU", 1)) // args.cpus_per_actor)
        dataset = batch.score_dataset(videos, model_path, actors=actors, cpus_per_actor=args.cpus_per_actor,
                                      gpus_per_actor=args.gpus_per_actor, batch_size=1, backend=args.backend,
                                      threads=args.cpus_per_actor, decode_threads=args.cpus_per_actor,
                                      seed=args.seed, plan_mode=args.plan_mode, device=args.device,
                                      segment_seconds=segments, deinterlace=args.deinterlace,
                                      tone_map=args.tone_map, time_range=time_range_of(args),
                                      scene_cuts=scene_cuts_of(args), crop_bars=args.crop_bars,
                                      frame_stride=args.frame_stride)
        writer = ScoreWriter(args.out, fmt, dims, segments=segments is not None, resume=args.resume)
        progress = Progress(len(videos), not args.quiet)
        for row in dataset.iter_rows():
            writer.write(row)
            failed += not row["ok"]
            progress.step(row["video"], bool(row["ok"]))
            if not row["ok"] and not args.quiet:
                print(f"edgevqa: error: {row['error']}", file=sys.stderr)
        writer.finish()
    except ray.exceptions.RayError as exc:
        cause = _ray_failure(exc)
        raise (cause or EdgeVQAError(f"batch scoring failed in Ray: {exc}")) from exc
    finally:
        if writer is not None:
            writer.close()
        if started:
            ray.shutdown()
    return _summary(args, total, failed, model_path, actors)


def _summary(args: argparse.Namespace, total: int, failed: int, model_path: str, actors: int) -> int:
    if not args.quiet:
        pool = f" on {actors} actor(s)" if actors else ""
        print(f"edgevqa: {total - failed} of {total} video(s) scored with {os.path.basename(model_path)}{pool}; "
              f"{failed} failed; wrote {args.out}", file=sys.stderr)
    return 1 if failed else 0
