"""Backend selection for everything but ``ort-cpu``: name + device -> a `Runner`, or one clear error.

`edgevqa.pipeline.make_runner` hands every non-CPU backend here. Each check runs before any video is decoded,
so ``edgevqa score --backend trt --device cuda:0`` without TensorRT fails at once with a
`BackendUnavailableError` naming the extra to install. Runners are still cheap to construct; their heavy work
(engine load, session creation, CUDA-graph capture) happens in ``activate()``.

| backend    | runs                               | device       | needs (extra)                        |
|------------|------------------------------------|--------------|--------------------------------------|
| ort-cuda   | .onnx, ONNX Runtime CUDA EP        | cuda:N       | onnxruntime-gpu, cuda-python (gpu)   |
| ort-trt    | .onnx, ONNX Runtime TensorRT EP    | cuda:N       | onnxruntime-gpu + TensorRT (gpu)     |
| trt        | engine from ``edgevqa build``      | cuda:N       | tensorrt (tensorrt), cuda-python     |
| torch      | torch checkpoint / zoo name        | cpu, cuda:N  | torch (export); CUDA build for cuda  |
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import EdgeVQAError, ModelError
from .base import Runner

GPU_ONLY_BACKENDS = ("ort-cuda", "ort-trt", "trt")
BACKENDS = GPU_ONLY_BACKENDS + ("torch",)


def _require_cuda_device(backend: str, device: str | None) -> str:
    from .cuda_runtime import parse_cuda_device

    text = (device or "cpu").strip().lower()
    if text == "cpu":
        raise EdgeVQAError(f"backend '{backend}' runs on a CUDA GPU; choose one with --device cuda:N "
                           "(e.g. --device cuda:0)")
    return f"cuda:{parse_cuda_device(text)}"


def make_runner(model_path: str, backend: str, threads: int | None = None, device: str = "cpu",
                **options: Any) -> Runner:
    """The runner for ``backend`` on ``device``; ``options`` go to the runner's constructor."""
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}; choose one of ort-cpu, {', '.join(BACKENDS)}")
    model_path = os.fspath(model_path)
    if backend == "torch":
        from .torch_backend import TorchRunner, import_torch, resolve_torch_device

        import_torch()
        resolved = resolve_torch_device(device)
        return TorchRunner(model_path, device=resolved, threads=threads, **options)

    cuda_device = _require_cuda_device(backend, device)
    if backend == "trt":
        from .tensorrt import ENGINE_SUFFIXES, TrtRunner, import_tensorrt

        if model_path.endswith(".onnx"):
            raise ModelError(f"{model_path}: backend 'trt' runs TensorRT engines; build one first with: edgevqa "
                             f"build {model_path} --save-engine {model_path[:-5]}.plan (or use --backend ort-trt)")
        if not model_path.endswith(ENGINE_SUFFIXES):
            raise ModelError(f"{model_path}: backend 'trt' expects an engine file ({', '.join(ENGINE_SUFFIXES)}) "
                             "made by 'edgevqa build'")
        import_tensorrt("trt")
        from .cuda_runtime import import_cudart

        import_cudart("trt")
        return TrtRunner(model_path, device=cuda_device, **options)

    from .ort_gpu import OrtGpuRunner, require_provider

    require_provider(backend)
    if not model_path.endswith(".onnx"):
        raise ModelError(f"{model_path}: backend '{backend}' runs ONNX files (.onnx)")
    return OrtGpuRunner(model_path, backend=backend, device=cuda_device, threads=threads, **options)
