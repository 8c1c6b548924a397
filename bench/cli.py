"""``edgevqa bench`` (model mode with trtexec's flags, or ``--pipeline`` on videos) and ``edgevqa eval``.

Flag spellings follow TensorRT's trtexec (``--onnx=``, ``--shapes=``, ``--warmUp=``, ...) so its users can
switch tools without relearning; both ``--flag=value`` and ``--flag value`` parse. scipy and matplotlib are
imported only when a command needs them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from edgevqa.errors import EdgeVQAError
from edgevqa.video_files import no_videos_error, videos_in_folder

BACKEND_CHOICES = ("ort-cpu", "ort-cuda", "ort-trt", "trt", "torch")

# (flag, dest) of every bench option, in the order the reconstructed command line prints them.
_BENCH_FLAGS = (
    ("--onnx", "onnx"), ("--loadEngine", "load_engine"), ("--model", "model"), ("--pipeline", "pipeline"),
    ("--backend", "backend"), ("--device", "device"), ("--threads", "threads"), ("--shapes", "shapes"),
    ("--loadInputs", "load_inputs"), ("--warmUp", "warm_up"), ("--duration", "duration"),
    ("--iterations", "iterations"), ("--avgRuns", "avg_runs"), ("--percentile", "percentile"),
    ("--infStreams", "inf_streams"), ("--useCudaGraph", "use_cuda_graph"), ("--noDataTransfers", "no_data_transfers"),
    ("--exportTimes", "export_times"), ("--exportProfile", "export_profile"), ("--dumpProfile", "dump_profile"),
    ("--verbose", "verbose"), ("--input-seed", "input_seed"), ("--repeats", "repeats"), ("--seed", "seed"),
    ("--plan-mode", "plan_mode"), ("--decode-threads", "decode_threads"), ("--prefetch", "prefetch"),
    ("--plot", "plot"), ("--json", "json"), ("--force", "force"),
)


def register(subparsers: Any) -> None:
    _register_bench(subparsers)
    _register_eval(subparsers)


# ----------------------------------------------------------------------------------------------- bench

def _register_bench(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "bench", help="benchmark a model (trtexec-style) or the whole pipeline on videos",
        description="Model mode: 'edgevqa bench --onnx=MODEL.onnx [trtexec flags]'. Pipeline mode: "
                    "'edgevqa bench --pipeline VIDEO... [--model M]'.")
    p.set_defaults(func=run_bench, trailing_positionals="videos", bench_parser=p)
    p.add_argument("videos", nargs="*", metavar="VIDEO", help="videos for --pipeline mode")
    model = p.add_argument_group("model (trtexec's flags)")
    model.add_argument("--onnx", metavar="FILE", help="the ONNX model to benchmark")
    model.add_argument("--loadEngine", dest="load_engine", metavar="FILE",
                       help="a serialized engine (needs the TensorRT backend)")
    model.add_argument("--model", metavar="FILE", help="same as --onnx; in --pipeline mode the scoring model")
    model.add_argument("--shapes", metavar="SPEC", help="input shapes, e.g. video:1x3x32x224x224[,name:...]")
    model.add_argument("--loadInputs", dest="load_inputs", metavar="SPEC",
                       help="raw input files, e.g. video:input.bin[,name:file]")
    model.add_argument("--warmUp", dest="warm_up", type=float, default=200.0, metavar="MS",
                       help="warm-up time in ms before timing (default 200)")
    model.add_argument("--duration", type=float, default=3.0, metavar="S",
                       help="minimum timed duration in seconds (default 3)")
    model.add_argument("--iterations", type=int, default=10, metavar="N",
                       help="minimum timed iterations (default 10)")
    model.add_argument("--avgRuns", dest="avg_runs", type=int, default=10, metavar="N",
                       help="queries per line of the trace averages (default 10)")
    model.add_argument("--percentile", default="90,95,99", metavar="P[,P]",
                       help="percentiles to report (default 90,95,99)")
    model.add_argument("--infStreams", dest="inf_streams", type=int, default=1, metavar="N",
                       help="concurrent inference streams (threads on a host backend)")
    model.add_argument("--exportTimes", dest="export_times", metavar="FILE",
                       help="write per-query timings as a JSON array with trtexec's keys")
    model.add_argument("--exportProfile", dest="export_profile", metavar="FILE",
                       help="write per-layer times as JSON (trtexec's shape; separate profiling run)")
    model.add_argument("--dumpProfile", dest="dump_profile", action="store_true", help="print per-layer times")
    model.add_argument("--useCudaGraph", dest="use_cuda_graph", action="store_true",
                       help="capture inference in a CUDA graph (GPU backends)")
    model.add_argument("--noDataTransfers", dest="no_data_transfers", action="store_true",
                       help="leave host/device transfers out (GPU backends)")
    model.add_argument("--verbose", action="store_true", help="also print the metric explanations and runner details")
    model.add_argument("--input-seed", dest="input_seed", type=int, default=1, metavar="N",
                       help="seed of the random inputs (default 1)")
    for flag in ("--fp16", "--int8", "--best", "--bf16", "--fp8", "--saveEngine"):
        model.add_argument(flag, dest="precision_flag", action="append_const", const=flag, help=argparse.SUPPRESS)
    both = p.add_argument_group("both modes")
    both.add_argument("--backend", choices=BACKEND_CHOICES, default=None,
                      help="inference backend (default ort-cpu; trt with --loadEngine)")
    both.add_argument("--device", default="cpu", help="device for GPU backends, e.g. cuda:0")
    both.add_argument("--threads", type=int, default=None, help="inference threads (default: the backend's)")
    both.add_argument("--json", action="store_true", help="print the versioned JSON report instead of text")
    both.add_argument("--force", action="store_true", help="allow output files to replace existing ones")
    pipe = p.add_argument_group("pipeline mode")
    pipe.add_argument("--pipeline", action="store_true", help="benchmark the whole pipeline on the VIDEOs")
    pipe.add_argument("--repeats", type=int, default=3, metavar="N", help="steady-state passes (default 3)")
    pipe.add_argument("--seed", type=int, default=None, help="sampling seed (default: deterministic plan)")
    pipe.add_argument("--plan-mode", dest="plan_mode", choices=("default", "reference"), default="default")
    pipe.add_argument("--decode-threads", dest="decode_threads", type=int, default=0, metavar="N",
                      help="decoder threads (default 0: FFmpeg chooses)")
    pipe.add_argument("--prefetch", type=int, default=2, metavar="N", help="videos decoded ahead (default 2)")
    pipe.add_argument("--plot", metavar="FILE.png", help="draw the latency histogram and stage breakdown")


def _command_line(args: argparse.Namespace) -> str:
    parser = args.bench_parser
    parts = ["edgevqa", "bench"]
    for flag, dest in _BENCH_FLAGS:
        value = getattr(args, dest, None)
        if value is None or value is False or value == parser.get_default(dest):
            continue
        if isinstance(value, float):
            value = f"{value:g}"
        parts.append(flag if value is True else f"{flag}={value}")
    parts += list(args.videos)
    return " ".join(parts)


def run_bench(args: argparse.Namespace) -> int:
    if args.precision_flag:
        raise EdgeVQAError(f"{args.precision_flag[0]}: precision comes from the model file here (as in trtexec 11); "
                           "make an FP16/INT8 model with 'edgevqa export' / 'edgevqa quantize', and engines with "
                           "'edgevqa build'")
    if args.pipeline:
        return _run_pipeline(args)
    if args.videos:
        raise EdgeVQAError(f"videos given ({args.videos[0]}, ...) without --pipeline; add --pipeline to benchmark "
                           "the whole pipeline, or give the model with --onnx=FILE")
    return _run_model(args)


def _run_model(args: argparse.Namespace) -> int:
    from . import report as rpt
    from .model_bench import (ModelBenchOptions, export_profile_json, export_times, format_model_report,
                              format_profile, parse_load_inputs, parse_shapes, passed_line, public_report,
                              run_model_benchmark)
    from .stats import parse_percentiles

    given = [(f, v) for f, v in (("--onnx", args.onnx), ("--loadEngine", args.load_engine), ("--model", args.model))
             if v]
    if not given:
        raise EdgeVQAError("give a model: --onnx=MODEL.onnx (or --loadEngine=ENGINE), or --pipeline VIDEO...")
    if len(given) > 1:
        raise EdgeVQAError(f"give one model, not {' and '.join(f for f, _ in given)}")
    path = given[0][1]
    backend = args.backend or ("trt" if args.load_engine else "ort-cpu")
    try:
        percentiles = parse_percentiles(args.percentile)
    except ValueError as exc:
        raise EdgeVQAError(str(exc)) from None
    for flag, out in (("--exportTimes", args.export_times), ("--exportProfile", args.export_profile)):
        if out:
            rpt.check_output_path(out, flag, args.force)
    if args.plot:
        raise EdgeVQAError("--plot belongs to --pipeline mode")
    command = _command_line(args)
    options = ModelBenchOptions(
        model_path=path, backend=backend, threads=args.threads, device=args.device,
        shapes=parse_shapes(args.shapes) if args.shapes else {},
        load_inputs=parse_load_inputs(args.load_inputs) if args.load_inputs else {},
        warmup_ms=args.warm_up, duration_s=args.duration, iterations=args.iterations, avg_runs=args.avg_runs,
        percentiles=percentiles, inf_streams=args.inf_streams, use_cuda_graph=args.use_cuda_graph,
        no_data_transfers=args.no_data_transfers, export_times=args.export_times,
        export_profile=args.export_profile, dump_profile=args.dump_profile, verbose=args.verbose,
        seed=args.input_seed, command=command)
    try:
        report = run_model_benchmark(options)
    except EdgeVQAError:
        if not args.json:
            print(passed_line(False, command), flush=True)
        raise
    if args.export_times:
        rpt.write_text(args.export_times, json.dumps(export_times(report), indent=1) + "\n")
    if args.export_profile and report.get("profile"):
        rpt.write_text(args.export_profile, json.dumps(export_profile_json(report["profile"]), indent=1) + "\n")
    if args.json:
        print(rpt.dumps(public_report(report)))
        return 0
    print(format_model_report(report, verbose=args.verbose))
    if args.dump_profile and report.get("profile"):
        print(format_profile(report["profile"]))
    print("")
    print(passed_line(True, command))
    return 0


def _run_pipeline(args: argparse.Namespace) -> int:
    from . import report as rpt
    from .pipeline_bench import (PipelineBenchOptions, format_pipeline_report, plot_pipeline, public_report,
                                 run_pipeline_benchmark)
    from .stats import parse_percentiles

    if not args.videos:
        raise EdgeVQAError("--pipeline: give at least one video")
    if args.onnx and args.model:
        raise EdgeVQAError("give the model once: --model (or --onnx)")
    trt_only = [f for f, v in (("--loadEngine", args.load_engine), ("--shapes", args.shapes),
                               ("--loadInputs", args.load_inputs), ("--exportTimes", args.export_times),
                               ("--exportProfile", args.export_profile), ("--dumpProfile", args.dump_profile),
                               ("--infStreams", args.inf_streams != 1)) if v]
    if trt_only:
        raise EdgeVQAError(f"{', '.join(trt_only)}: model-mode flags, not used with --pipeline")
    if args.threads is not None and args.threads < 1:
        raise EdgeVQAError(f"--threads must be at least 1, got {args.threads}")
    if args.decode_threads < 0:
        raise EdgeVQAError(f"--decode-threads must not be negative, got {args.decode_threads}")
    if args.plot:
        rpt.check_output_path(args.plot, "--plot", args.force)
    try:
        percentiles = parse_percentiles(args.percentile)
    except ValueError as exc:
        raise EdgeVQAError(str(exc)) from None
    options = PipelineBenchOptions(
        videos=args.videos, model=args.model or args.onnx, backend=args.backend or "ort-cpu", threads=args.threads,
        device=args.device, seed=args.seed, plan_mode=args.plan_mode, decode_threads=args.decode_threads,
        repeats=args.repeats, prefetch=args.prefetch, percentiles=percentiles, command=_command_line(args))
    report = run_pipeline_benchmark(options)
    if args.plot:
        plot_pipeline(report, args.plot)
    if args.json:
        print(rpt.dumps(public_report(report)))
    else:
        print(format_pipeline_report(report))
        if args.plot:
            print(f"Plot: {args.plot}")
    return 0


# ----------------------------------------------------------------------------------------------- eval

def _register_eval(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "eval", help="accuracy: predictions against MOS labels, or an optimised model against its reference",
        description="'edgevqa eval PREDICTIONS.csv --labels LABELS' scores predictions against MOS; "
                    "'edgevqa eval --compare REF.csv OPT.csv' or '--reference-model FP32.onnx --model OPT.onnx "
                    "--videos DIR' compares an optimised artifact with its reference. Exit code 1 when a gate "
                    "(--atol, --min-srcc) fails.")
    p.set_defaults(func=run_eval)
    p.add_argument("predictions", nargs="?", metavar="PREDICTIONS.csv",
                   help="CSV with a header: 'video' and 'pred' (or one column per dimension), optional 'mos'")
    p.add_argument("--labels", metavar="LABELS", help="MOS labels: CSV with a header (video, mos) or headerless "
                                                      "'path, duration, fps, mos' lines")
    p.add_argument("--model", metavar="FILE", help="score --videos with this model first")
    p.add_argument("--videos", nargs="+", metavar="DIR_OR_FILE", help="videos (or folders of videos) to score")
    p.add_argument("--reference-model", dest="reference_model", metavar="FILE",
                   help="compare --model against this reference model on --videos")
    p.add_argument("--compare", nargs=2, metavar=("REF.csv", "OPT.csv"),
                   help="compare two prediction files (reference first)")
    p.add_argument("--atol", type=float, default=None, help="gate: largest allowed absolute score difference")
    p.add_argument("--min-srcc", dest="min_srcc", type=float, default=None,
                   help="gate: smallest allowed SRCC (with the reference in compare mode, with the MOS otherwise)")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="ort-cpu", help="backend for --model scoring")
    p.add_argument("--threads", type=int, default=None, help="inference threads for --model scoring")
    p.add_argument("--device", default="cpu", help="device for GPU backends")
    p.add_argument("--json", action="store_true", help="print the versioned JSON report")


def expand_videos(items: list[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        if os.path.isdir(item):
            found = videos_in_folder(item, recursive=False)
            if not found:
                raise no_videos_error("--videos", item)
            out += found
        elif os.path.isfile(item):
            out.append(item)
        else:
            raise EdgeVQAError(f"--videos {item}: no such file or folder")
    return out


def _score_with(model: str, videos: list[str], args: argparse.Namespace) -> Any:
    from edgevqa.pipeline import Pipeline

    from .accuracy import table_from_results

    with Pipeline(model, backend=args.backend, threads=args.threads, device=args.device) as pipeline:
        return table_from_results(pipeline.score_many(videos), model)


def run_eval(args: argparse.Namespace) -> int:
    from . import report as rpt
    from .accuracy import check_gates, compare_tables, evaluate, import_scipy, read_labels, read_predictions

    import_scipy()
    if args.threads is not None and args.threads < 1:
        raise EdgeVQAError(f"--threads must be at least 1, got {args.threads}")
    compare_models = args.reference_model is not None
    if args.compare and (compare_models or args.predictions or args.model):
        raise EdgeVQAError("--compare takes two prediction files; give no other predictions or models with it")
    if (args.model or compare_models) and not args.videos:
        raise EdgeVQAError("--model needs --videos DIR (the videos to score)")
    if args.videos and not args.model:
        raise EdgeVQAError("--videos needs --model (the model that scores them)")
    if args.model and args.predictions:
        raise EdgeVQAError(f"give predictions ({args.predictions}) or --model with --videos, not both")
    videos = expand_videos(args.videos) if args.videos else []

    comparison = None
    reference = candidate = None
    if args.compare:
        reference, candidate = read_predictions(args.compare[0]), read_predictions(args.compare[1])
    elif compare_models:
        reference, candidate = _score_with(args.reference_model, videos, args), _score_with(args.model, videos, args)
    if reference is not None:
        comparison = compare_tables(reference, candidate)
    elif args.atol is not None:
        raise EdgeVQAError("--atol gates compare mode (--compare REF.csv OPT.csv, or --reference-model)")

    metrics = None
    if reference is None:
        if args.predictions:
            table = read_predictions(args.predictions)
        elif args.model:
            table = _score_with(args.model, videos, args)
        else:
            raise EdgeVQAError("give PREDICTIONS.csv, or --model M --videos DIR, or --compare REF.csv OPT.csv")
        if args.labels:
            labels, source = read_labels(args.labels), args.labels
        elif table.mos:
            labels, source = table.mos, f"{table.source} (mos column)"
        else:
            raise EdgeVQAError(f"{table.source}: no 'mos' column; give the labels with --labels LABELS")
        metrics = evaluate(table, labels, source)
    elif args.labels:
        labels = read_labels(args.labels)
        metrics = {"reference": evaluate(reference, labels, args.labels),
                   "candidate": evaluate(candidate, labels, args.labels)}

    mos_metrics = metrics if comparison is None else None
    failed = check_gates(comparison, mos_metrics, args.atol, args.min_srcc)
    if args.json:
        schema, version = rpt.COMPARE_SCHEMA if comparison is not None else rpt.EVAL_SCHEMA
        doc: dict[str, Any] = {"schema": schema, "schema_version": version}
        if comparison is not None:
            doc.update(comparison)
            if metrics is not None:
                doc["against_labels"] = metrics
        else:
            doc.update(metrics)
        doc["gates"] = {"atol": args.atol, "min_srcc": args.min_srcc, "failed": failed, "passed": not failed}
        print(rpt.dumps(doc))
    else:
        print(_format_comparison(comparison, metrics) if comparison is not None else _format_metrics(metrics))
    for line in failed:
        print(f"edgevqa: eval: gate failed: {line}", file=sys.stderr)
    if (args.atol is not None or args.min_srcc is not None) and not failed and not args.json:
        print("gates passed")
    return 1 if failed else 0


def _f(value: Any) -> str:
    from .stats import fmt

    return fmt(value) if isinstance(value, (int, float)) else "n/a"


def _metric_line(m: dict[str, Any]) -> str:
    return (f"n = {m['n']}  SRCC = {_f(m['srcc'])}  KRCC = {_f(m['krcc'])}  PLCC = {_f(m['plcc'])} ({m['fit']} fit)  "
            f"PLCC raw = {_f(m['plcc_raw'])}  RMSE = {_f(m['rmse'])}  main score = {_f(m['main_score'])}")


def _format_metrics(metrics: dict[str, Any]) -> str:
    lines = [f"predictions: {metrics['predictions']}; labels: {metrics['labels']}",
             f"[{metrics['dimension']}] " + _metric_line(metrics)]
    for d, m in (metrics.get("dimensions") or {}).items():
        if d != metrics["dimension"]:
            lines.append(f"[{d}] " + _metric_line(m))
    if metrics["unlabelled_count"]:
        lines.append(f"{metrics['unlabelled_count']} prediction(s) without a label were left out "
                     f"(e.g. {metrics['unmatched_predictions'][0]})")
    if metrics["skipped_errors"]:
        lines.append(f"{len(metrics['skipped_errors'])} video(s) failed to score and were left out")
    return "\n".join(lines)


def _format_comparison(comparison: dict[str, Any], metrics: dict[str, Any] | None) -> str:
    lines = [f"reference: {comparison['reference']}; candidate: {comparison['candidate']}; "
             f"{comparison['n']} shared videos"]
    for d, c in comparison["dimensions"].items():
        lines.append(f"[{d}] max |diff| = {_f(c['max_abs_diff'])} (video {c['worst_video']})  mean |diff| = "
                     f"{_f(c['mean_abs_diff'])}  SRCC = {_f(c['srcc'])}  PLCC = {_f(c['plcc'])}")
    if comparison["unmatched"]:
        lines.append(f"{len(comparison['unmatched'])} candidate video(s) not in the reference were left out")
    if metrics is not None:
        for role in ("reference", "candidate"):
            lines.append(f"{role} vs MOS: " + _metric_line(metrics[role]))
    return "\n".join(lines)
