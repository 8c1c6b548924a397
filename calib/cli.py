"""``edgevqa quantize``: FP32 ONNX + calibration videos -> Q/DQ INT8 ONNX, with an accuracy gate.

Exit status: 0 when the model was written to ``--out`` (gate passed or not run), 3 when it failed the accuracy
gate (the model is then written to ``<out>.gate-failed.onnx`` instead), 1 on bad input.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    from .quantize import (DEFAULT_METHOD, DEFAULT_MIN_SRCC, DEFAULT_PERCENTILE, DEFAULT_SAMPLES,
                           DEFAULT_SENSITIVITY_SAMPLES, DEFAULT_SENSITIVITY_TOP, GATE_FAILED_EXIT, METHODS)

    parser = subparsers.add_parser(
        "quantize", help="INT8 post-training quantization (Q/DQ ONNX) calibrated on videos, with an accuracy gate",
        description="Quantize an FP32 edgevqa ONNX model to symmetric int8 Q/DQ (zero points 0, as TensorRT "
                    "requires; ONNX Runtime runs it too). Calibration inputs are made from videos by the inference "
                    "pipeline itself, following the model's manifest. With --holdout, INT8 and FP32 scores are "
                    "compared on held-out videos; a model that fails the gate is written to "
                    f"OUT.gate-failed.onnx instead of --out and the command exits {GATE_FAILED_EXIT}.")
    parser.add_argument("model", metavar="MODEL.onnx", help="FP32 ONNX model with an edgevqa manifest")
    parser.add_argument("--calib", required=True, metavar="VIDEOS",
                        help="calibration videos: a folder (searched recursively), a text file listing paths, or "
                             "one video")
    parser.add_argument("--out", required=True, metavar="MODEL.int8.onnx", help="INT8 model to write")
    parser.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                        help=f"activation range calibration (default {DEFAULT_METHOD})")
    parser.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE,
                        help=f"percentile for --method percentile (default {DEFAULT_PERCENTILE})")
    parser.add_argument("--per-channel", action="store_true", help="quantize weights per output channel")
    parser.add_argument("--reduce-range", action="store_true",
                        help="7-bit weights (-64..63): avoids the int16 saturation of ONNX Runtime's u8 x s8 kernels on "
                             "x86 CPUs without VNNI, which per-channel weights otherwise hit")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES,
                        help=f"calibration inputs to make (several plan seeds per video; default {DEFAULT_SAMPLES})")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="NODE_OR_OPTYPE",
                        help="node names or op types to keep in float (see the sensitivity listing)")
    parser.add_argument("--holdout", metavar="VIDEOS",
                        help="held-out videos (folder, list or video; at least 3, none of them a calibration "
                             "video) for the INT8-vs-FP32 accuracy gate")
    parser.add_argument("--min-srcc", type=float, default=DEFAULT_MIN_SRCC,
                        help=f"gate: minimum SRCC between INT8 and FP32 scores, per dimension (default "
                             f"{DEFAULT_MIN_SRCC}; above 1 always fails)")
    parser.add_argument("--sensitivity", type=int, default=None, metavar="N",
                        help=f"list the N nodes whose quantization alone hurts the scores most (default: the worst "
                             f"{DEFAULT_SENSITIVITY_TOP} when the gate fails; 0: never)")
    parser.add_argument("--sensitivity-samples", type=int, default=DEFAULT_SENSITIVITY_SAMPLES, metavar="N",
                        help=f"calibration samples the sensitivity listing scores (default {DEFAULT_SENSITIVITY_SAMPLES})")
    parser.add_argument("--no-cpu-layout", dest="cpu_layout", action="store_false",
                        help="skip the graph passes that let ONNX Runtime's CPU provider run the model in int8 "
                             "(Relu as LeakyRelu(0), one Q/DQ pair per consumer)")
    parser.add_argument("--plan-mode", choices=("default", "reference"), default="default",
                        help="sampling plan semantics, as for 'edgevqa score' (default: default)")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads for the gate")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="calibration cache folder (default $EDGEVQA_CACHE_DIR/calib or ~/.cache/edgevqa/calib)")
    parser.add_argument("--no-cache", dest="use_cache", action="store_false",
                        help="neither read nor write the calibration cache")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH ('-' for stdout)")
    parser.add_argument("--force", action="store_true", help="overwrite --out (and OUT.gate-failed.onnx)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from .quantize import QuantizeOptions, quantize_model

    options = QuantizeOptions(method=args.method, per_channel=args.per_channel, samples=args.samples,
                              exclude=tuple(args.exclude), holdout=args.holdout, min_srcc=args.min_srcc,
                              force=args.force, cache_dir=args.cache_dir, use_cache=args.use_cache,
                              percentile=args.percentile, sensitivity=args.sensitivity,
                              sensitivity_samples=args.sensitivity_samples, plan_mode=args.plan_mode,
                              threads=args.threads, cpu_layout=args.cpu_layout,
                              reduce_range=args.reduce_range)
    if args.json and args.json != "-":
        from edgevqa.errors import EdgeVQAError
        import os

        if os.path.exists(args.json) and not args.force:
            raise EdgeVQAError(f"--json {args.json}: exists; refusing to overwrite it (use --force)")
    report = quantize_model(args.model, args.calib, args.out, options)
    if args.json == "-":
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print("\n".join(report.lines()))
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(report.to_dict(), fh, indent=2)
                fh.write("\n")
    if report.gate_passed is False:
        sys.stdout.flush()
        failures = report.gate.failures
        reason = "; ".join(failures[:2]) + (f"; and {len(failures) - 2} more" if len(failures) > 2 else "")
        print(f"edgevqa: error: the INT8 model failed the accuracy gate ({reason}); written to {report.written}, "
              f"not {report.out}", file=sys.stderr)
    return report.exit_code
