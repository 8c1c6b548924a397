"""INT8 calibration: Q/DQ ONNX models calibrated on real video samples, with accuracy gates.

``quantize_model(model, calib_videos, out, QuantizeOptions(...))`` is the library entry point behind
``edgevqa quantize``; see `edgevqa.calib.quantize`. Importing this package is light: ONNX Runtime's
quantization tools load on first use.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "quantize_model": "edgevqa.calib.quantize",
    "QuantizeOptions": "edgevqa.calib.quantize",
    "QuantizeReport": "edgevqa.calib.quantize",
    "GATE_FAILED_EXIT": "edgevqa.calib.quantize",
    "qdq_summary": "edgevqa.calib.quantize",
    "spearman_srcc": "edgevqa.calib.stats",
    "resolve_video_set": "edgevqa.calib.videos",
    "run_gate": "edgevqa.calib.gate",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'edgevqa.calib' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
