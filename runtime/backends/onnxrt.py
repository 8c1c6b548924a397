"""ONNX Runtime backend (CPU by default; other execution providers by name)."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import BackendUnavailableError, ModelError
from .base import Runner, TensorMeta

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailableError("ort-cpu", "onnxruntime", None, str(exc)) from exc
    return onnxruntime


class OrtRunner(Runner):
    """Runs an ONNX file (path or serialized bytes) with ONNX Runtime.

    ``threads`` sets the intra-op thread count (None: ONNX Runtime's default, one per physical core).
    """

    backend_name = "ort-cpu"

    def __init__(self, model: str | os.PathLike | bytes, threads: int | None = None,
                 providers: Sequence[Any] | None = None, session_options: Any = None,
                 graph_optimization: str = "all", enable_profiling: bool = False):
        super().__init__()
        self.model = model if isinstance(model, bytes) else os.fspath(model)
        self.threads = threads
        self.providers = list(providers) if providers else ["CPUExecutionProvider"]
        self.session_options = session_options
        self.graph_optimization = graph_optimization
        self.enable_profiling = enable_profiling
        self.session: Any = None

    @property
    def model_name(self) -> str:
        return "<bytes>" if isinstance(self.model, bytes) else self.model

    def activate_impl(self) -> None:
        ort = import_onnxruntime()
        opts = self.session_options or ort.SessionOptions()
        if self.threads is not None:
            if self.threads < 1:
                raise ModelError(f"threads must be >= 1, got {self.threads}")
            opts.intra_op_num_threads = int(self.threads)
            opts.inter_op_num_threads = 1
        levels = {"none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                  "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
        opts.graph_optimization_level = levels[self.graph_optimization]
        opts.enable_profiling = self.enable_profiling
        opts.log_severity_level = 3
        if not isinstance(self.model, bytes) and not os.path.isfile(self.model):
            raise ModelError(f"{self.model}: no such model file")
        try:
            self.session = ort.InferenceSession(self.model, sess_options=opts, providers=self.providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types for bad files
            reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.model_name}: ONNX Runtime cannot load the model ({reason})") from exc

    def deactivate_impl(self) -> None:
        self.session = None

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        try:
            values = self.session.run(names, dict(feed))
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.model_name}: inference failed ({reason})") from exc
        return dict(zip(names, values))

    def _meta(self, items) -> list[TensorMeta]:
        return [TensorMeta(i.name, _ORT_TYPES.get(i.type, i.type), tuple(i.shape)) for i in items]

    def get_input_metadata_impl(self) -> list[TensorMeta]:
        return self._meta(self.session.get_inputs())

    def get_output_metadata_impl(self) -> list[TensorMeta]:
        return self._meta(self.session.get_outputs())

    def describe(self) -> dict[str, Any]:
        ort = import_onnxruntime()
        info: dict[str, Any] = {"backend": self.backend_name, "onnxruntime": ort.__version__,
                                "providers": self.session.get_providers() if self.session else self.providers,
                                "intra_op_threads": self.threads, "graph_optimization": self.graph_optimization}
        return info
