"""The torch side of edgevqa: model zoo, checkpoint loading, ONNX export (FP32/FP16) with parity checks.

Needs the ``export`` extra (torch). Importing ``edgevqa.export`` itself stays light (the CLI imports it on
every start); the torch-backed names below are imported on first use.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "export_onnx": "edgevqa.export.onnx_export",
    "ExportReport": "edgevqa.export.onnx_export",
    "ParityError": "edgevqa.export.onnx_export",
    "create_model": "edgevqa.export.models",
    "get_manifest": "edgevqa.export.models",
    "list_models": "edgevqa.export.models",
    "load_checkpoint": "edgevqa.export.checkpoint",
    "save_checkpoint": "edgevqa.export.checkpoint",
    "load_state_dict_strict": "edgevqa.export.checkpoint",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'edgevqa.export' has no attribute {name!r}")
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == "torch":
            from edgevqa.errors import BackendUnavailableError

            raise BackendUnavailableError("export", "torch", "export") from exc
        raise
    return getattr(module, name)
