"""``edgevqa export NAME|CHECKPOINT --out model.onnx [--fp16] [--opset N] [--frames N]``.

Imports torch only inside `run`, so ``edgevqa --help`` works without the ``export`` extra.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from edgevqa.errors import BackendUnavailableError, ModelError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a zoo model or checkpoint to ONNX (FP32/FP16) with parity checks",
        description="Export a model to one self-contained ONNX file with its manifest embedded. The graph is "
                    "checked against the torch FP32 model on random inputs (and a real video with --video) "
                    "before the file is written.")
    parser.add_argument("model", nargs="?", help="a zoo name (see --list) or a checkpoint file")
    parser.add_argument("--out", "-o", help="the .onnx file to write")
    parser.add_argument("--fp16", action="store_true", help="write an FP16 graph (pooling statistics stay FP32)")
    parser.add_argument("--io-dtype", choices=("float32", "float16"), default=None,
                        help="input/output tensor type of the graph (default float32; float16 needs --fp16)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset, 18..23 (default 18; TensorRT 10 parses up to 20)")
    parser.add_argument("--frames", type=int, default=None,
                        help="frames per clip (ATHQA) or key frames / seconds (SimpleVQA) the model is built for")
    parser.add_argument("--arch", default=None, help="zoo variant of a checkpoint that does not name one")
    parser.add_argument("--motion-weights", default=None, metavar="PATH",
                        help="SlowFast weights (pytorchvideo SLOWFAST_8x8_R50.pyth) for an official SimpleVQA "
                             "checkpoint, which holds none")
    parser.add_argument("--video", default=None, help="also check parity on inputs sampled from this video")
    parser.add_argument("--gate", type=float, default=None,
                        help="maximum relative parity error (default 1e-4 FP32, 5e-2 FP16)")
    parser.add_argument("--sample-bit-depth", type=int, default=None, metavar="BITS",
                        help="the sample precision the model was trained on (8 if it saw only 8-bit video): deeper "
                             "video is rounded to it before sampling (default: none, the decoded precision)")
    parser.add_argument("--frame-rate", type=float, default=None, metavar="FPS",
                        help="the frame rate whose motion the model learnt (25 for 24-30 fps training videos): "
                             "video at about k times it is read every k-th frame (default: none, every frame)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random parity inputs")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--list", action="store_true", help="list the zoo's model names and exit")
    parser.set_defaults(func=run)


def _import_export():
    try:
        from edgevqa.export import models, onnx_export
    except ModuleNotFoundError as exc:
        if exc.name in ("torch", "onnxscript"):
            raise BackendUnavailableError("export", exc.name, "export") from exc
        raise
    return models, onnx_export


def run(args: argparse.Namespace) -> int:
    models, onnx_export = _import_export()
    if args.list:
        for name in models.list_models():
            entry = models.model_entry(name)
            print(f"{name:<22} {entry.description}")
        return 0
    if not args.model:
        raise ModelError("export: give a model name or checkpoint (edgevqa export --list shows the names)")
    if not args.out:
        raise ModelError("export: give the output file with --out model.onnx")
    # The exporter logs a warning per missing torchvision operator; they are irrelevant to our models.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    report = onnx_export.export_onnx(
        args.model, args.out, fp16=args.fp16, io_dtype=args.io_dtype,
        opset=args.opset or onnx_export.DEFAULT_OPSET, frames=args.frames, arch=args.arch,
        motion_weights=args.motion_weights,
        parity_video=args.video, gate=args.gate, seed=args.seed, force=args.force,
        sample_bit_depth=args.sample_bit_depth, frame_rate=args.frame_rate)
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print("\n".join(report.summary_lines()))
    return 0
