"""``edgevqa triton``: write a Triton Inference Server model repository that scores videos (`triton_repo`)."""

from __future__ import annotations

import argparse
from typing import Any

from .cli_score import add_picture_arguments


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("triton", help="write a Triton Inference Server model repository that scores videos "
                                             "sent to it (Python backend running the edgevqa pipeline)")
    p.add_argument("model", nargs="?", default=None, metavar="MODEL",
                   help="an .onnx model with an edgevqa manifest (default: the shipped model)")
    p.add_argument("--out", required=True, metavar="REPO", help="the model repository folder (created if missing)")
    p.add_argument("--name", default="edgevqa", help="the model's name in the repository (default: edgevqa)")
    p.add_argument("--instances", type=int, default=1, help="model instances (each a pipeline on the CPU)")
    p.add_argument("--threads", type=int, default=1, help="decode and inference threads of each instance")
    p.add_argument("--python-path", default=None, metavar="PATHS",
                   help="folders (separated by ':') the server's Python imports edgevqa and its libraries from "
                        "(default: where this edgevqa comes from; '' when the server's Python has it installed)")
    add_picture_arguments(p)  # what the served pipeline does
    p.add_argument("--force", action="store_true", help="replace the model's folder if the repository has it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .pipeline import resolve_model
    from .triton_repo import write_repository

    folder = write_repository(resolve_model(args.model), args.out, name=args.name, instances=args.instances,
                              threads=args.threads, python_path=args.python_path, deinterlace=args.deinterlace,
                              tone_map=args.tone_map, crop_bars=args.crop_bars or "auto", force=args.force)
    print(f"wrote {folder} (config.pbtxt, 1/model.py, 1/model.onnx); start Triton with "
          f"--model-repository={args.out}")
    return 0
