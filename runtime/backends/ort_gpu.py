"""ONNX Runtime on the GPU: the CUDA execution provider (``ort-cuda``) and the TensorRT one (``ort-trt``).

Provider options follow ONNX Runtime's execution-provider pages:

- CUDA EP: ``device_id``, ``cudnn_conv_algo_search=EXHAUSTIVE`` (convolution algorithms are timed once per
  shape; our shapes are fixed per model), ``do_copy_in_default_stream``;
- TensorRT EP: ``device_id``, engine and timing caches under the user's cache folder (one per model file, keyed
  by its SHA-256, so a changed model never picks up a stale engine), ``trt_fp16_enable=False`` because precision
  is in the ONNX (FP16 / Q/DQ graphs), profile shapes over the clip axis as for our own TensorRT builds, and the
  CUDA EP behind it for any node TensorRT does not take.

Inference goes through I/O binding: host inputs are copied once to the device, device inputs
(``__cuda_array_interface__``, e.g. torch CUDA tensors from the device sampler) are bound in place, outputs are
allocated on the device by ONNX Runtime and only the small score tensors come back to the host.

onnxruntime-gpu replaces the CPU ``onnxruntime`` package (both install the same module): uninstall
``onnxruntime`` before installing the ``gpu`` extra.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import BackendUnavailableError, ModelError
from ..manifest import load_manifest
from . import cuda_runtime
from .onnxrt import OrtRunner, import_onnxruntime
from .shape_profiles import clip_profiles, onnx_input_shapes, ort_trt_profile_options

GPU_EXTRA = "gpu"
PROVIDER_OF_BACKEND = {"ort-cuda": "CUDAExecutionProvider", "ort-trt": "TensorrtExecutionProvider"}


def user_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "edgevqa")


def model_cache_dir(model_path: str, root: str | None = None) -> str:
    """The TensorRT-EP cache folder of one model file: ``<root>/ort-trt/<stem>-<sha256 prefix>``."""
    digest = hashlib.sha256()
    with open(model_path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    stem = os.path.splitext(os.path.basename(model_path))[0] or "model"
    return os.path.join(root or user_cache_dir(), "ort-trt", f"{stem}-{digest.hexdigest()[:16]}")


def cuda_provider_options(device_id: int) -> dict[str, Any]:
    return {"device_id": device_id, "cudnn_conv_algo_search": "EXHAUSTIVE", "do_copy_in_default_stream": True}


def tensorrt_provider_options(device_id: int, cache_dir: str, profile_options: Mapping[str, str] | None = None,
                              workspace_mb: int | None = None, dla_core: int | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "device_id": device_id,
        "trt_fp16_enable": False,  # precision lives in the ONNX (FP16 tensors / Q/DQ nodes)
        "trt_int8_enable": False,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": cache_dir,
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": cache_dir,
    }
    if workspace_mb is not None:
        options["trt_max_workspace_size"] = int(workspace_mb) << 20
    if dla_core is not None:
        options["trt_dla_enable"] = True
        options["trt_dla_core"] = int(dla_core)
    options.update(profile_options or {})
    return options


def provider_list(backend: str, device_id: int, model_path: str | None = None, cache_root: str | None = None,
                  max_clips: int | None = None, workspace_mb: int | None = None,
                  dla_core: int | None = None) -> list[tuple[str, dict[str, Any]] | str]:
    """The ``providers=`` list for an InferenceSession of ``backend`` ('ort-cuda' or 'ort-trt')."""
    cuda = ("CUDAExecutionProvider", cuda_provider_options(device_id))
    if backend == "ort-cuda":
        return [cuda, "CPUExecutionProvider"]
    if backend != "ort-trt":
        raise ModelError(f"provider_list: unknown GPU backend {backend!r}")
    if model_path is None:
        raise ModelError("the TensorRT execution provider needs the model's path (for its caches and profiles)")
    profiles = clip_profiles(load_manifest(model_path), onnx_input_shapes(model_path), model_path, max_clips)
    trt = ("TensorrtExecutionProvider",
           tensorrt_provider_options(device_id, model_cache_dir(model_path, cache_root),
                                     ort_trt_profile_options(profiles), workspace_mb, dla_core))
    return [trt, cuda, "CPUExecutionProvider"]


def require_provider(backend: str, ort: Any = None) -> None:
    """`BackendUnavailableError` naming the ``gpu`` extra when this ONNX Runtime lacks ``backend``'s provider."""
    ort = ort or import_onnxruntime()
    wanted = PROVIDER_OF_BACKEND[backend]
    available = list(ort.get_available_providers())
    if wanted not in available:
        raise BackendUnavailableError(
            backend, f"ONNX Runtime's {wanted}", GPU_EXTRA,
            f"onnxruntime {ort.__version__} offers {', '.join(available)}; the GPU providers come with "
            "onnxruntime-gpu, which replaces the CPU onnxruntime package: uninstall onnxruntime first")


_ELEMENT_TYPES = {np.dtype(np.float32): np.float32, np.dtype(np.float16): np.float16,
                  np.dtype(np.int64): np.int64, np.dtype(np.int32): np.int32}


class OrtGpuRunner(OrtRunner):
    """ONNX Runtime with the CUDA or TensorRT execution provider and I/O binding on one CUDA device."""

    def __init__(self, model: str | os.PathLike, backend: str = "ort-cuda", device: str = "cuda:0",
                 threads: int | None = None, cache_root: str | None = None, max_clips: int | None = None,
                 workspace_mb: int | None = None, dla_core: int | None = None,
                 outputs_on_device: bool = False):
        if backend not in PROVIDER_OF_BACKEND:
            raise ModelError(f"OrtGpuRunner: backend must be one of {sorted(PROVIDER_OF_BACKEND)}, got {backend!r}")
        model = os.fspath(model)
        self.device_id = cuda_runtime.parse_cuda_device(device)
        providers: Sequence[Any] | None = None
        if backend == "ort-cuda":
            providers = provider_list(backend, self.device_id)
        self._provider_args = dict(cache_root=cache_root, max_clips=max_clips, workspace_mb=workspace_mb,
                                   dla_core=dla_core)
        super().__init__(model, threads=threads, providers=providers)
        self.backend_name = backend
        self.outputs_on_device = outputs_on_device
        # ONNX Runtime's name of the memory the bindings use; tests set "cpu" to run this code with the CPU EP.
        self.io_device = "cuda"
        self._binding: Any = None

    def activate_impl(self) -> None:
        ort = import_onnxruntime()
        require_provider(self.backend_name, ort)
        if not os.path.isfile(self.model):
            raise ModelError(f"{self.model}: no such model file")
        if self.backend_name == "ort-trt":
            self.providers = provider_list("ort-trt", self.device_id, self.model, **self._provider_args)
            os.makedirs(self.providers[0][1]["trt_engine_cache_path"], exist_ok=True)
        super().activate_impl()
        active = self.session.get_providers()
        wanted = PROVIDER_OF_BACKEND[self.backend_name]
        if wanted not in active:
            # ONNX Runtime falls back to the CPU when the provider's libraries (CUDA, cuDNN, TensorRT) fail to
            # load; running silently on the CPU would make every number wrong.
            self.session = None
            raise BackendUnavailableError(self.backend_name, f"a working {wanted}", GPU_EXTRA,
                                          f"ONNX Runtime fell back to {', '.join(active)}; check that the CUDA "
                                          "and cuDNN (and TensorRT) libraries it needs are installed")
        self._binding = self.session.io_binding()

    def deactivate_impl(self) -> None:
        self._binding = None
        super().deactivate_impl()

    def infer_impl(self, feed: Mapping[str, Any]) -> dict[str, Any]:
        ort = import_onnxruntime()
        binding = self._binding
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        keep_alive = []
        for meta in self.session.get_inputs():
            if meta.name not in feed:
                raise ModelError(f"{self.model_name}: input '{meta.name}' is missing from the feed")
            value = feed[meta.name]
            on_device = cuda_runtime.cuda_array_pointer(value)
            if on_device is not None:
                ptr, shape, dtype = on_device
                if dtype not in _ELEMENT_TYPES:
                    raise ModelError(f"{self.model_name}: device input '{meta.name}' has unsupported dtype {dtype}")
                binding.bind_input(meta.name, self.io_device, self.device_id, _ELEMENT_TYPES[dtype], list(shape), ptr)
            else:
                array = np.ascontiguousarray(value)
                device_value = ort.OrtValue.ortvalue_from_numpy(array, self.io_device, self.device_id)
                keep_alive.append(device_value)
                binding.bind_ortvalue_input(meta.name, device_value)
        names = [o.name for o in self.session.get_outputs()]
        for name in names:
            binding.bind_output(name, self.io_device, self.device_id)
        try:
            self.session.run_with_iobinding(binding)
        except Exception as exc:  # ORT raises its own Fail/RuntimeException types
            reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.model_name}: inference failed ({reason})") from exc
        if self.outputs_on_device:
            return dict(zip(names, binding.get_outputs()))
        return dict(zip(names, binding.copy_outputs_to_cpu()))

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(backend=self.backend_name, device=f"cuda:{self.device_id}", io_binding=True)
        return info
