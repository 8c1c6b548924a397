"""``edgevqa build MODEL.onnx --save-engine MODEL.plan [--timing-cache F] [--workspace MB] [--dla-core N]``.

Compiles an ONNX model into a TensorRT engine (trtexec's ``--onnx ... --saveEngine`` for our models: strongly
typed, one clip-axis profile from the manifest) and writes the engine's sidecar manifest with its stamp.
TensorRT is imported inside `run` only, so ``edgevqa --help`` works without it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "build", help="build a TensorRT engine from an ONNX model (needs TensorRT and a GPU)",
        description="Build a TensorRT engine (strongly typed: precision comes from the ONNX) with one "
                    "optimisation profile over the clip axis, and write MODEL.plan.manifest.json beside it "
                    "(the model's manifest plus a stamp of TensorRT version and GPU, checked when the engine "
                    "loads). Engines execute code when loaded: share and load only engines from trusted sources.")
    p.add_argument("onnx", metavar="MODEL.onnx", help="an ONNX model with an edgevqa manifest")
    p.add_argument("--save-engine", required=True, metavar="MODEL.plan", help="the engine file to write")
    p.add_argument("--timing-cache", metavar="FILE", default=None,
                   help="TensorRT timing cache: read when it exists, written back after the build")
    p.add_argument("--workspace", type=int, metavar="MB", default=None,
                   help="workspace memory-pool limit in MiB (default: TensorRT's)")
    p.add_argument("--dla-core", type=int, metavar="N", default=None,
                   help="build for DLA core N with GPU fallback (Jetson AGX/NX)")
    p.add_argument("--max-clips", type=int, metavar="N", default=None,
                   help="largest clip count the engine accepts (default: 4 x the manifest's)")
    p.add_argument("--device", default="cuda:0", help="the GPU to build for (default cuda:0)")
    p.add_argument("--force", action="store_true", help="overwrite --save-engine if it exists")
    p.add_argument("--json", action="store_true", help="print the build report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .tensorrt import BuildOptions, build_engine

    options = BuildOptions(timing_cache=args.timing_cache, workspace_mb=args.workspace, dla_core=args.dla_core,
                           max_clips=args.max_clips, device=args.device, force=args.force)
    report = build_engine(args.onnx, args.save_engine, options)
    if args.json:
        json.dump({"engine": report.engine_path, "sidecar": report.sidecar_path, "seconds": report.seconds,
                   "timing_cache": report.timing_cache, "stamp": report.stamp.to_dict(),
                   "warnings": report.warnings}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print("\n".join(report.summary_lines()))
    return 0
