"""``edgevqa score``: score videos with a model and print a table, JSON lines, or a CSV file."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import sys
from typing import Any

from .deinterlace import DEINTERLACE_MODES
from .bars import CROP_BARS_MODES
from .scenecuts import SCENE_CUT_MODES
from .tonemap import TONE_MAP_MODES
from .errors import EdgeVQAError, PlanError
from .pipeline import BACKENDS, Pipeline
from .sampling import check_frame_stride
from .segments import check_segment_seconds
from .video_files import no_videos_error, videos_in_folder


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("score", help="score videos with a quality model",
                              description="Score videos. Without --model the shipped default model is used.")
    p.add_argument("videos", nargs="+", metavar="VIDEO",
                   help="video files, folders (every video file under them, by extension, sorted), URLs FFmpeg can "
                        "open, or '-' for a video on standard input (read whole; for a live stream use 'watch')")
    add_model_arguments(p)
    add_time_range_arguments(p)
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: ONNX Runtime's)")
    p.add_argument("--json", action="store_true", help="print one JSON object per video per line")
    p.add_argument("--csv", metavar="FILE", help="also write the scores to this CSV file")
    p.add_argument("--force", action="store_true", help="allow --csv and --save-inputs to replace existing files")
    p.add_argument("--triton", metavar="URL", default=None,
                   help="score on a Triton Inference Server serving an `edgevqa triton` repository (e.g. "
                        "http://localhost:8000) instead of here; the model and its settings are the server's")
    p.add_argument("--triton-model", metavar="NAME", default="edgevqa", help="the model's name on that server")
    p.add_argument("--save-inputs", metavar="DIR", default=None,
                   help="also write what the model saw as PNG pictures into DIR, one per video, view and clip "
                        "(VIDEO.VIEW.clipN.png: the clip's frames side by side, normalisation undone)")
    p.add_argument("--every", type=float, default=None, metavar="SECONDS",
                   help="also score consecutive segments of this many seconds (scores over time; one decode pass)")
    add_threshold_argument(p, "a video")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run, trailing_positionals="videos")


def add_model_arguments(p: Any) -> None:
    """The options that say which model scores and how (shared by score, watch and batch)."""
    p.add_argument("--model", default=None, help="an .onnx model with an edgevqa manifest (default: shipped model)")
    p.add_argument("--seed", type=int, default=None,
                   help="draw sampling offsets with this seed (default: deterministic centred plan)")
    p.add_argument("--plan-mode", choices=("default", "reference"), default="default",
                   help="'reference' reproduces the original FAST-VQA sampling, quirks included")
    p.add_argument("--scene-cuts", choices=("model",) + SCENE_CUT_MODES, default="model",
                   help="avoid: move each snippet of consecutive frames the model reads off a scene cut inside it "
                        "(a cut is not a temporal flaw); keep: read the frames planned; model (default): what the "
                        "model's manifest says (the shipped model avoids them)")
    p.add_argument("--frame-stride", type=frame_stride_argument, default="model", metavar="model|N",
                   help="read the model's runs of consecutive frames every N frames; model (default): from the frame "
                        "rate the model learnt motion at, so 50 and 60 fps video is read every other frame by the "
                        "shipped model (it learnt 25 fps); 1: every frame at any rate")
    p.add_argument("--backend", choices=BACKENDS, default="ort-cpu", help="inference backend")
    p.add_argument("--device", default="cpu", help="device for GPU backends, e.g. cuda:0")
    add_picture_arguments(p)


def frame_stride_argument(text: str) -> str | int:
    """``--frame-stride`` checked: "model" or a whole number >= 1."""
    try:
        return check_frame_stride(text)
    except EdgeVQAError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def scene_cuts_of(args: argparse.Namespace) -> str | None:
    """``--scene-cuts`` as `Pipeline` takes it (None: the model's choice)."""
    return None if args.scene_cuts == "model" else args.scene_cuts


def add_picture_arguments(p: Any) -> None:
    """How coded pictures become what is scored: --deinterlace, --tone-map and --crop-bars (score, watch, batch,
    triton)."""
    p.add_argument("--deinterlace", choices=DEINTERLACE_MODES, default="auto",
                   help="auto (default): deinterlace the frames the video flags interlaced, as a player does; always: "
                        "every frame (raw frames from a capture pipeline carry no flag); never: score them woven")
    p.add_argument("--no-deinterlace", dest="deinterlace", action="store_const", const="never",
                   help="the same as --deinterlace never")
    p.add_argument("--tone-map", choices=TONE_MAP_MODES, default="auto",
                   help="auto (default): map HDR (PQ, HLG) video to SDR BT.709 before sampling, as a player does for "
                        "an SDR screen; never: read its pixels as coded, as if SDR")
    p.add_argument("--no-tone-map", dest="tone_map", action="store_const", const="never",
                   help="the same as --tone-map never")
    p.add_argument("--crop-bars", choices=CROP_BARS_MODES, default=None,
                   help="auto (default; never with --plan-mode reference): crop black bars (letterbox, pillarbox) "
                        "found at the start, so the picture alone is scored; never: score whole frames")
    p.add_argument("--no-crop-bars", dest="crop_bars", action="store_const", const="never",
                   help="the same as --crop-bars never")


BELOW_EXIT_STATUS = 3  # every video scored, and a score fell below a --fail-below threshold


def add_time_range_arguments(p: Any) -> None:
    """--start, --end, --duration: score a part of each video (shared by score and batch)."""
    p.add_argument("--start", type=parse_time, default=None, metavar="TIME",
                   help="score each video from this time on: seconds (90.5) or [HH:]MM:SS[.fff] (1:30.5)")
    end = p.add_mutually_exclusive_group()
    end.add_argument("--end", type=parse_time, default=None, metavar="TIME",
                     help="score each video up to this time (default: its end)")
    end.add_argument("--duration", type=parse_time, default=None, metavar="TIME",
                     help="score this long a part of each video, from --start (default 0)")


def parse_time(text: str) -> float:
    """Seconds from "90.5", "1:30.5" or "0:01:30.5"; argparse turns the ValueError into a usage error."""
    parts = text.strip().split(":")
    if not 1 <= len(parts) <= 3 or any(not p.strip() for p in parts):
        raise ValueError(text)
    seconds = 0.0
    for part in parts:
        value = float(part)
        if not math.isfinite(value) or value < 0:
            raise ValueError(text)
        seconds = seconds * 60 + value
    return seconds


parse_time.__name__ = "time"  # argparse names the type in its error: "invalid time value: 'x'"


def time_range_of(args: Any) -> tuple[float, float | None] | None:
    """The (start, end) seconds --start, --end and --duration ask for; None when none is given."""
    if args.start is None and args.end is None and args.duration is None:
        return None
    start = args.start or 0.0
    end = args.end if args.duration is None else start + args.duration
    if end is not None and end <= start:
        raise EdgeVQAError(f"--end must come after --start ({start:g} s), got {end:g} s" if args.duration is None
                           else f"--duration must be more than 0 s, got {args.duration:g}")
    return start, end


def add_threshold_argument(p: Any, what: str) -> None:
    p.add_argument("--fail-below", action="append", default=[], metavar="NAME=SCORE",
                   help=f"a quality gate, repeatable: exit with status {BELOW_EXIT_STATUS} when {what} scores below "
                        "SCORE on output NAME (e.g. overall=40); each such score is named on stderr")


def parse_thresholds(items: list[str], outputs: list[str]) -> dict[str, float]:
    """``--fail-below NAME=SCORE`` items as {output: score}, checked against the model's outputs."""
    thresholds: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            score = float(value)
        except ValueError:
            score = math.nan
        if not sep or not name or not math.isfinite(score):
            raise EdgeVQAError(f"--fail-below {item!r}: write it as NAME=SCORE, e.g. overall=40")
        if name not in outputs:
            raise EdgeVQAError(f"--fail-below {item!r}: the model has no output {name!r} (it has: {', '.join(outputs)})")
        thresholds[name] = score
    return thresholds


def scores_below(scores: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    """Each score under its threshold, as ``name score < threshold``."""
    return [f"{name} {scores[name]:.2f} < {limit:g}" for name, limit in thresholds.items() if scores[name] < limit]


def expand_folders(items: list[str]) -> list[str]:
    """Each folder replaced by the video files under it (an error when it holds none); anything else as given, so
    that a missing file or a URL is reported or opened by the pipeline like any other video."""
    videos: list[str] = []
    for item in items:
        if os.path.isdir(item):
            found = videos_in_folder(item)
            if not found:
                raise no_videos_error("", item)
            videos += found
        else:
            videos.append(item)
    return videos


def check_output_target(path: str, videos: list[str], force: bool, flag: str = "--csv") -> None:
    """A file the command may write: not an input video, not a folder, not an existing file unless ``force``."""
    target = os.path.abspath(path)
    if any(os.path.abspath(v) == target for v in videos):
        raise EdgeVQAError(f"{flag} {path}: is one of the input videos; choose another file")
    if os.path.isdir(path):
        raise EdgeVQAError(f"{flag} {path}: is a directory")
    if os.path.exists(path) and not force:
        raise EdgeVQAError(f"{flag} {path}: already exists; add --force to replace it")


def _segment_label(segment: dict[str, Any]) -> str:
    return f"{segment['start_s']:.2f}-{segment['end_s']:.2f} s"


def _format_table(rows: list[dict[str, Any]], dims: list[str]) -> str:
    header = ["video"] + dims + ["time_s"]
    body = []
    for r in rows:
        name = os.path.basename(r["video"]) or r["video"]
        if r["error"]:
            body.append([name, f"ERROR: {r['error']}"])
        else:
            body.append([name] + [f"{r['scores'][d]:.2f}" for d in dims] + [f"{r['timings']['total']:.2f}"])
            for segment in r.get("segments") or []:  # scores over time, under their video
                body.append([f"  {_segment_label(segment)}"] + [f"{segment['scores'][d]:.2f}" for d in dims] + [""])
    widths = [max(len(header[i]), *(len(b[i]) for b in body if len(b) > i and not b[1].startswith("ERROR")))
              if i < len(header) else 0 for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    for b in body:
        if b[1].startswith("ERROR"):
            lines.append(f"{b[0].ljust(widths[0])}  {b[1]}")
        else:
            lines.append("  ".join(c.ljust(w) for c, w in zip(b, widths)))
    return "\n".join(lines)


class InputPictureWriter:
    """``--save-inputs``: each scored video's model inputs as PNG pictures (`edgevqa.input_images`), one per view
    and clip, named ``STEM.VIEW.clipN.png`` after the video (``stdin`` for standard input; a stem given twice gets
    ``-2``, ``-3``, ...). Every name is checked before anything is scored: existing files are kept unless
    ``force``."""

    def __init__(self, folder: str, manifest: Any, videos: list[str], force: bool):
        self.folder, self.manifest = folder, manifest
        stems: list[str] = []
        for video in videos:
            base = "stdin" if video == "-" else os.path.splitext(os.path.basename(video.rstrip("/")))[0]
            stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in base).strip("._") or "video"
            unique, n = stem, 1
            while unique in stems:
                n += 1
                unique = f"{stem}-{n}"
            stems.append(unique)
        self.paths = [{(view.name, k): os.path.join(folder, f"{stem}.{view.name}.clip{k}.png")
                       for view in manifest.views for k in range(view.num_clips)} for stem in stems]
        existing = [p for paths in self.paths for p in paths.values() if os.path.exists(p)]
        if existing and not force:
            raise EdgeVQAError(f"--save-inputs: {existing[0]} already exists"
                               f"{f' (and {len(existing) - 1} more)' if len(existing) > 1 else ''}; add --force to "
                               "replace them")

    def write(self, index: int, result: Any) -> None:
        """The pictures of the ``index``-th video's ``result``."""
        from .input_images import clip_pictures, png_bytes

        os.makedirs(self.folder, exist_ok=True)
        for view in self.manifest.views:
            for k, picture in enumerate(clip_pictures(result.inputs[view.name], view)):
                with open(self.paths[index][(view.name, k)], "wb") as fh:
                    fh.write(png_bytes(picture))


class Progress:
    """A one-line progress indicator on stderr (redrawn on a terminal, one line per video otherwise)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.done = total, enabled and total > 1, 0
        self.tty = sys.stderr.isatty()

    def step(self, name: str, ok: bool) -> None:
        if not self.enabled:
            return
        self.done += 1
        width = 24
        filled = int(width * self.done / self.total)
        bar = "#" * filled + "." * (width - filled)
        text = f"[{bar}] {self.done}/{self.total} {'ok ' if ok else 'ERR'} {os.path.basename(name)}"
        if self.tty:
            sys.stderr.write("\r" + text[:120].ljust(120))
            if self.done == self.total:
                sys.stderr.write("\n")
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    if args.threads is not None and args.threads < 1:
        raise EdgeVQAError(f"--threads must be at least 1, got {args.threads}")
    args.videos = expand_folders(args.videos)
    if args.csv:
        check_output_target(args.csv, [v for v in args.videos if v != "-"], args.force)
    if args.videos.count("-") > 1:
        raise EdgeVQAError("'-' (standard input) can be given once")
    # '-' reads the video from standard input, whole (a pipe's length is known only at its end)
    inputs = [sys.stdin.buffer if v == "-" else v for v in args.videos]
    if args.save_inputs is not None and os.path.exists(args.save_inputs) and not os.path.isdir(args.save_inputs):
        raise EdgeVQAError(f"--save-inputs {args.save_inputs}: exists and is not a directory")
    pictures = None
    if args.triton:
        scorer, outputs = _triton_scorer(args)
        context: Any = contextlib.nullcontext()
    else:
        scorer = Pipeline(args.model, backend=args.backend, threads=args.threads, seed=args.seed,
                          plan_mode=args.plan_mode, device=args.device, segment_seconds=every_seconds(args.every),
                          deinterlace=args.deinterlace, keep_inputs=args.save_inputs is not None,
                          tone_map=args.tone_map, time_range=time_range_of(args), scene_cuts=scene_cuts_of(args),
                          crop_bars=args.crop_bars, frame_stride=args.frame_stride)
        outputs, context = list(scorer.manifest.outputs), scorer
        if args.save_inputs is not None:
            pictures = InputPictureWriter(args.save_inputs, scorer.manifest, args.videos, args.force)
    thresholds = parse_thresholds(args.fail_below, outputs)
    rows: list[dict[str, Any]] = []
    progress = Progress(len(args.videos), not args.quiet)
    failed = below = 0
    with context:
        for index, result in enumerate(scorer.score_many(inputs)):
            row = result.to_dict()
            rows.append(row)
            failed += not result.ok
            low = scores_below(result.scores, thresholds) if result.ok else []
            if low:  # said whatever the output format: a gate's reason belongs beside its exit status
                below += 1
                print(f"edgevqa: below threshold: {result.video}: {', '.join(low)}", file=sys.stderr)
            progress.step(result.video, result.ok)
            if pictures is not None and result.ok:
                pictures.write(index, result)
            if args.json:
                print(json.dumps(row, sort_keys=True), flush=True)
            else:
                if not result.ok and len(args.videos) > 1:
                    print(f"edgevqa: error: {result.error}", file=sys.stderr)
                # The table has no room for them, and a score from an upscaled or damaged video needs saying.
                for warning in row.get("warnings") or []:
                    about = "" if warning.startswith(result.video) else f"{result.video}: "
                    print(f"edgevqa: warning: {about}{warning}", file=sys.stderr)
                for segment in row.get("segments") or []:
                    for warning in segment["warnings"]:
                        print(f"edgevqa: warning: {result.video} [{_segment_label(segment)}]: {warning}",
                              file=sys.stderr)
    dims = outputs
    if not args.json:
        if len(args.videos) == 1 and failed:
            raise EdgeVQAError(rows[0]["error"])
        if args.triton:
            served = next((r for r in rows if not r["error"]), {"model": args.triton_model, "model_version": "?"})
            print(f"model: {served['model']} {served['model_version']} (served by {scorer.url}, as "
                  f"{args.triton_model!r})")
        else:
            print(f"model: {scorer.manifest.name} {scorer.manifest.version} ({scorer.model_path})")
        print(_format_table(rows, dims))
    if args.csv:
        _write_csv(args.csv, rows, dims, segments=args.every is not None)
    return 1 if failed else BELOW_EXIT_STATUS if below else 0


def _triton_scorer(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """``--triton``: the server scores; settings that only a local pipeline has are refused, not ignored."""
    from .triton_client import TritonScorer

    local = {"--model": args.model is not None, "--every": args.every is not None,
             "--save-inputs": args.save_inputs is not None, "--seed": args.seed is not None,
             "--plan-mode": args.plan_mode != "default", "--backend": args.backend != "ort-cpu",
             "--device": args.device != "cpu", "--threads": args.threads is not None,
             "--deinterlace": args.deinterlace != "auto", "--tone-map": args.tone_map != "auto",
             "--start/--end/--duration": time_range_of(args) is not None,
             "--scene-cuts": args.scene_cuts != "model", "--crop-bars": args.crop_bars is not None,
             "--frame-stride": args.frame_stride != "model"}
    given = [flag for flag, on in local.items() if on]
    if given:
        raise EdgeVQAError(f"--triton: {', '.join(given)} set(s) the local pipeline, which --triton does not use; the "
                           "served repository's settings apply (`edgevqa triton` writes them)")
    scorer = TritonScorer(args.triton, args.triton_model)
    return scorer, scorer.outputs


def every_seconds(seconds: float | None) -> float | None:
    if seconds is None:
        return None
    try:
        return check_segment_seconds(seconds)
    except PlanError:  # the same check as the pipeline's, in the flag's words
        raise EdgeVQAError(f"--every must be a positive number of seconds, got {seconds:g}") from None


def csv_header(dims: list[str], segments: bool) -> list[str]:
    return ["video"] + (["start_s", "end_s"] if segments else []) + dims + ["time_s", "error", "warnings"]


def csv_rows(r: dict[str, Any], dims: list[str], segments: bool) -> list[list[Any]]:
    """The CSV rows of one result (`Result.to_dict`): the video's, then with ``segments`` one per segment, whose
    start_s and end_s columns are empty on the video's row."""
    span = [""] * 2 if segments else []
    rows = [[r["video"]] + span + [r["scores"].get(d, "") for d in dims]
            + [r["timings"].get("total", ""), r["error"] or "", "; ".join(r.get("warnings") or [])]]
    for g in r.get("segments") or [] if segments else []:
        rows.append([r["video"], g["start_s"], g["end_s"]] + [g["scores"][d] for d in dims]
                    + ["", "", "; ".join(g["warnings"])])
    return rows


def _write_csv(path: str, rows: list[dict[str, Any]], dims: list[str], segments: bool) -> None:
    """One row per video; with ``segments``, two more columns (start_s, end_s: empty for the whole video) and a
    row per segment after its video's row."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(csv_header(dims, segments))
        for r in rows:
            writer.writerows(csv_rows(r, dims, segments))
