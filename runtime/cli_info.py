"""``edgevqa info`` (versions, providers, CPU; a model's manifest; or how edgevqa reads a video) and
``edgevqa make-sample`` (a clip to try the tool on)."""

from __future__ import annotations

import argparse
import json
import os
import platform
from importlib import metadata, util
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("info", help="versions of edgevqa and its libraries, providers, CPU; or a model's "
                                           "manifest, or how edgevqa reads a video")
    p.add_argument("model", nargs="?", default=None, metavar="MODEL_OR_VIDEO",
                   help="print this model's manifest instead (an .onnx file: name, version, outputs, view, recipe "
                        "hash, ...), or what edgevqa reads from this video (size, frame rate and count, pixel "
                        "format, bit depth, colour matrix and range, transfer, interlacing, rotation) and what it "
                        "will warn about")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_info)
    s = subparsers.add_parser("make-sample", help="write a small rendered sample clip (H.264, 4 s, 640x360)")
    s.add_argument("out", metavar="OUT.mp4")
    s.add_argument("--force", action="store_true", help="replace OUT if it exists")
    s.set_defaults(func=run_make_sample)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _importable(module: str) -> bool:
    try:
        return util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package raises instead of returning None
        return False


def collect_info() -> dict[str, Any]:
    """Versions and capabilities, without importing optional heavy libraries (torch, tensorrt)."""
    import av
    import numpy
    import onnxruntime

    from . import __version__, kernels
    from .pipeline import default_model_path

    ffmpeg = getattr(av, "ffmpeg_version_info", None) or "unknown"
    info = {
        "edgevqa": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "onnx": _version("onnx"),
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": onnxruntime.get_available_providers(),
        "pyav": av.__version__,
        "ffmpeg": ffmpeg,
        "sampling_kernels": _kernels_in_use(kernels),
        "default_model": default_model_path(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "optional": {name: _version(dist) if _importable(mod) else None
                     for name, mod, dist in (("torch", "torch", "torch"), ("tensorrt", "tensorrt", "tensorrt"),
                                             ("nvidia-dali", "nvidia.dali", "nvidia-dali-cuda130"),
                                             ("cuda-python", "cuda", "cuda-python"), ("scipy", "scipy", "scipy"),
                                             ("ray", "ray", "ray"))},
    }
    return info


def _kernels_in_use(kernels) -> str:
    """``native (avx2+fma rows)``, ``native (scalar rows)`` (an aarch64 build, say) or ``reference``."""
    implementation = getattr(kernels, "IMPLEMENTATION", "reference")
    if implementation != "native":
        return implementation
    from .kernels import native

    return f"native ({native._native.vector_rows()} rows)"


def run_info(args: argparse.Namespace) -> int:
    if args.model is not None:
        from .errors import ModelError
        from .manifest import load_manifest

        if not os.path.isfile(args.model) and "://" not in args.model:
            raise ModelError(f"{args.model}: no such file")
        if _is_model(args.model):
            info = load_manifest(args.model).to_dict()
        else:
            info = video_info(args.model)
    else:
        info = collect_info()
    if args.json:
        print(json.dumps(info, sort_keys=True))
        return 0
    for key, value in info.items():
        if isinstance(value, dict) and key == "optional":
            value = ", ".join(f"{k} {v or 'not installed'}" for k, v in value.items())
        elif isinstance(value, (dict, list, tuple)):
            value = json.dumps(value, sort_keys=True)
        print(f"{key:>22}: {value}")
    return 0


def _is_model(path: str) -> bool:
    """An ONNX model (by its name, or by its first bytes: a protobuf's ir_version field) rather than a video."""
    from .manifest import sidecar_path

    if path.lower().endswith(".onnx") or os.path.isfile(sidecar_path(path)):
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(1) == b"\x08"  # field 1 (ir_version), varint: how every ONNX file begins
    except OSError:
        return False


def video_info(source: str) -> dict[str, Any]:
    """What the decoder reads from ``source`` before decoding it all, and the warnings a score would carry
    about the picture (HDR, interlacing, black bars), with the default settings (deinterlaced, tone-mapped, bars
    cropped)."""
    from .decode import probe

    found = probe(source, crop_bars="auto")
    return {**found.to_dict(), "notes": found.picture_notes()}


def run_make_sample(args: argparse.Namespace) -> int:
    from .samples import write_sample_clip

    path = write_sample_clip(args.out, overwrite=args.force)
    print(f"wrote {path}")
    return 0
