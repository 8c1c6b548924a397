"""torch backend: a zoo model (checkpoint or random weights) run eagerly, or on CUDA in FP16 with CUDA graphs.

On CUDA the model is BatchNorm-folded (as for export), cast to FP16, converted to channels-last (cuDNN's
fastest layout for FP16 convolutions on tensor cores) and, per distinct set of input shapes, captured once into
a CUDA graph (``torch.cuda.graph``, PyTorch's "CUDA Graphs" notes): later calls copy the inputs into the
graph's static tensors and replay it, so a whole forward costs one launch instead of hundreds. A model whose
forward cannot be captured falls back to eager FP16, and `describe()` says why.

On the CPU it runs FP32 eager, through the same code, so CPU tests can check it against ONNX Runtime.

Sources: a checkpoint written by ``edgevqa.export.save_checkpoint`` (or a foreign one the zoo maps), a zoo name
(random weights; for benchmarks), or an ``nn.Module`` carrying a ``manifest``. An ONNX file is refused: its
weights are BatchNorm-folded graph constants that do not map back onto the module.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Mapping

import numpy as np

from ..errors import BackendUnavailableError, EdgeVQAError, ModelError
from ..manifest import ModelManifest
from .base import Runner, TensorMeta

TORCH_EXTRA = "export"
PRECISIONS = ("auto", "fp32", "fp16")
MAX_GRAPHS = 4


def import_torch(backend: str = "torch"):
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailableError(backend, "torch", TORCH_EXTRA, str(exc)) from exc
    return torch


def resolve_torch_device(device: str | None) -> str:
    """'cpu' | 'cuda' | 'cuda:N' -> a torch device string; CUDA that torch cannot see raises
    `BackendUnavailableError`."""
    text = (device or "cpu").strip().lower()
    if text == "cpu":
        return "cpu"
    from .cuda_runtime import parse_cuda_device

    index = parse_cuda_device(text)
    torch = import_torch()
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise BackendUnavailableError("torch", f"a CUDA device for {device}", None,
                                      f"torch {torch.__version__} ({build}) sees no CUDA GPU")
    count = torch.cuda.device_count()
    if index >= count:
        raise EdgeVQAError(f"device {device}: torch sees {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    return f"cuda:{index}"


def load_torch_model(source: Any) -> tuple[Any, ModelManifest]:
    """(module in eval mode, manifest) from a checkpoint path, a zoo name, or a module with ``manifest``."""
    import_torch()
    try:
        from edgevqa.export.checkpoint import load_checkpoint
        from edgevqa.export.models import create_model, list_models
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("torch", "onnxscript"):
            raise BackendUnavailableError("torch", exc.name, TORCH_EXTRA) from exc
        raise
    from torch import nn

    if isinstance(source, nn.Module):
        manifest = getattr(source, "manifest", None)
        if not isinstance(manifest, ModelManifest):
            raise ModelError(f"{type(source).__name__} has no 'manifest' (ModelManifest) attribute")
        return source.eval(), manifest
    text = os.fspath(source)
    if text.endswith(".onnx"):
        raise ModelError(f"{text}: the torch backend runs torch checkpoints or zoo models, not ONNX graphs; give "
                         "the checkpoint the ONNX was exported from (with its .manifest.json sidecar)")
    if os.path.exists(text):
        model = load_checkpoint(text)
    elif text in list_models():
        model = create_model(text)
    else:
        raise ModelError(f"'{text}' is neither a checkpoint file nor a zoo model ({', '.join(list_models())})")
    return model.eval(), model.manifest


def to_channels_last(module: Any) -> Any:
    """Store 4-D weights channels-last and 5-D ones channels-last-3d, in place; returns ``module``.

    ``Module.to(memory_format=torch.channels_last)`` refuses models with 5-D weights (Conv3d), which every
    video model here has, so each parameter is converted by its rank.
    """
    import torch

    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.dim() == 4:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
        elif tensor.dim() == 5:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last_3d)
    return module


class TorchRunner(Runner):
    """Runs a zoo model with torch. ``precision='auto'`` is FP16 on CUDA and FP32 on the CPU.

    ``infer`` takes host arrays or torch tensors (CUDA tensors stay on the device) and returns host arrays
    (float32). CUDA graphs are used on CUDA when ``cuda_graphs`` (default) and inputs keep their shapes.
    """

    backend_name = "torch"

    def __init__(self, source: Any, device: str = "cpu", precision: str = "auto", cuda_graphs: bool = True,
                 channels_last: bool = True, fuse: bool = True, threads: int | None = None,
                 warmup_iterations: int = 3):
        super().__init__()
        if precision not in PRECISIONS:
            raise EdgeVQAError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.source = source
        self.device_name = device or "cpu"
        self.precision = precision
        self.use_cuda_graphs = cuda_graphs
        self.channels_last = channels_last
        self.fuse = fuse
        self.threads = threads
        self.warmup_iterations = max(1, int(warmup_iterations))
        self.manifest: ModelManifest | None = None
        self.graph_fallback_reason: str | None = None
        self._torch: Any = None
        self._model: Any = None
        self._device: Any = None
        self._dtype: Any = None
        self._graphs: dict[tuple, tuple[Any, list[Any], dict[str, Any]]] = {}

    @property
    def model_name(self) -> str:
        return self.source if isinstance(self.source, str) else type(self.source).__name__

    def activate_impl(self) -> None:
        torch = import_torch()
        device = resolve_torch_device(self.device_name)
        model, manifest = load_torch_model(self.source)
        if self.threads is not None and device == "cpu":
            if self.threads < 1:
                raise EdgeVQAError(f"threads must be >= 1, got {self.threads}")
            torch.set_num_threads(int(self.threads))
        on_cuda = device.startswith("cuda")
        half = self.precision == "fp16" or (self.precision == "auto" and on_cuda)
        if half and not on_cuda:
            raise EdgeVQAError("FP16 needs a CUDA device; on the CPU the torch backend runs FP32")
        deploy = copy.deepcopy(model)
        if self.fuse:
            from edgevqa.export.models.layers import fuse_model

            deploy = fuse_model(deploy)
        deploy = deploy.eval().to(device)
        dtype = torch.float16 if half else torch.float32
        deploy = deploy.to(dtype)
        if on_cuda and self.channels_last:
            to_channels_last(deploy)
        self._torch, self._model, self._device, self._dtype = torch, deploy, torch.device(device), dtype
        self.manifest = manifest
        self._graphs.clear()

    def deactivate_impl(self) -> None:
        self._graphs.clear()
        self._model = None
        if self._device is not None and self._device.type == "cuda":
            self._torch.cuda.empty_cache()

    # ---------------------------------------------------------------- inference

    def _to_device(self, value: Any) -> Any:
        torch = self._torch
        tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
        return tensor.to(self._device, dtype=self._dtype, non_blocking=True)

    def _forward(self, inputs: list[Any]) -> dict[str, Any]:
        result = self._model(*inputs)
        missing = [n for n in self.manifest.outputs if n not in result]
        if missing:
            raise ModelError(f"{self.model_name}: the model returns no outputs {missing} named by its manifest")
        return {name: result[name] for name in self.manifest.outputs}

    def _graph_for(self, inputs: list[Any]):
        """The captured graph for these input shapes (capturing it on first use), or None to run eagerly."""
        key = tuple(tuple(t.shape) for t in inputs)
        if key in self._graphs:
            return self._graphs[key]
        if len(self._graphs) >= MAX_GRAPHS or self.graph_fallback_reason is not None:
            return None
        torch = self._torch
        static_inputs = [t.clone() for t in inputs]
        try:
            # Warm up on a side stream (cuDNN autotuning, lazy allocations) before capture, as the docs ask.
            side = torch.cuda.Stream(device=self._device)
            side.wait_stream(torch.cuda.current_stream(self._device))
            with torch.cuda.stream(side):
                for _ in range(self.warmup_iterations):
                    self._forward(static_inputs)
            torch.cuda.current_stream(self._device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_outputs = self._forward(static_inputs)
        except Exception as exc:  # capture errors come as RuntimeError or torch's AcceleratorError: run eagerly
            self.graph_fallback_reason = f"CUDA graph capture failed ({str(exc).splitlines()[0][:200]}); eager FP16"
            return None
        entry = (graph, static_inputs, static_outputs)
        self._graphs[key] = entry
        return entry

    def infer_impl(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        torch = self._torch
        missing = [v.name for v in self.manifest.views if v.name not in feed]
        if missing:
            raise ModelError(f"{self.model_name}: inputs {missing} are missing from the feed")
        with torch.inference_mode():
            inputs = [self._to_device(feed[v.name]) for v in self.manifest.views]
            entry = None
            if self._device.type == "cuda" and self.use_cuda_graphs:
                entry = self._graph_for(inputs)
            if entry is not None:
                graph, static_inputs, static_outputs = entry
                for dst, src in zip(static_inputs, inputs):
                    dst.copy_(src)
                graph.replay()
                outputs = static_outputs
            else:
                outputs = self._forward(inputs)
            return {name: t.detach().float().cpu().numpy() for name, t in outputs.items()}

    # ---------------------------------------------------------------- metadata

    def get_input_metadata_impl(self) -> list[TensorMeta]:
        return [TensorMeta(v.name, v.dtype, (None,) + tuple(v.input_shape()[1:])) for v in self.manifest.views]

    def get_output_metadata_impl(self) -> list[TensorMeta]:
        return [TensorMeta(name, "float32", (None,)) for name in self.manifest.outputs]

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"backend": self.backend_name, "device": str(self._device or self.device_name),
                                "precision": "fp16" if self._dtype is not None and self._dtype != getattr(
                                    self._torch, "float32", None) else ("fp32" if self._dtype is not None
                                                                        else self.precision),
                                "cuda_graphs": bool(self.use_cuda_graphs and self._device is not None
                                                    and self._device.type == "cuda"
                                                    and self.graph_fallback_reason is None),
                                "channels_last": self.channels_last, "graphs_captured": len(self._graphs)}
        if self._torch is not None:
            info["torch"] = self._torch.__version__
        if self.graph_fallback_reason:
            info["graph_fallback"] = self.graph_fallback_reason
        return info
