"""TensorRT backend: build an engine from ONNX (`build_engine`) and run it (`TrtRunner`).

Written against the TensorRT Python API of 10.x and 11.x (the "Python API" pages of the TensorRT docs and
Polygraphy's ``backend/trt`` loaders, which it follows in shape):

- networks are **strongly typed**: precision comes from the ONNX (FP16 tensors and casts, INT8 Q/DQ), never
  from builder flags. TensorRT 10 needs ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``; in 11 it is always on
  and the flag is deprecated, so it is only passed to 10.x;
- one optimisation profile over the clip axis (`shape_profiles.clip_profiles`);
- a timing cache file that is read when present and written back after the build (later builds on the same
  GPU skip most tactic timing);
- the workspace memory-pool limit; a DLA core with GPU fallback for Jetson;
- the serialised engine is written with a sidecar manifest carrying a stamp (`engine_stamp`), checked on load.

Running uses ``IExecutionContext.execute_async_v3`` on a CUDA stream with tensor addresses set per call;
host inputs are staged through pinned buffers (cuda-python), device inputs (``__cuda_array_interface__``,
e.g. torch CUDA tensors from the device sampler) are bound in place with no copy.

Engines execute code when deserialised: load only engine files you built or trust (see `engine_stamp`).
Nothing here is exercised without TensorRT and a GPU; its pure parts (stamps, profiles) are tested everywhere.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..errors import BackendUnavailableError, EdgeVQAError, ModelError
from ..manifest import ModelManifest, load_manifest
from . import cuda_runtime
from .base import Runner, TensorMeta
from .engine_stamp import DeviceFacts, EngineStamp, check_stamp, make_stamp, read_engine_sidecar, write_engine_sidecar
from .shape_profiles import InputProfile, clip_profiles, onnx_input_shapes

TENSORRT_EXTRA = "tensorrt"
ENGINE_SUFFIXES = (".plan", ".engine", ".trt")


def import_tensorrt(backend: str = "trt"):
    """The ``tensorrt`` module, or `BackendUnavailableError` naming the ``tensorrt`` extra."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailableError(backend, "TensorRT (the 'tensorrt' Python package, 10.x or 11.x)",
                                      TENSORRT_EXTRA, str(exc)) from exc
    return trt


def tensorrt_major(trt: Any) -> int:
    try:
        return int(str(trt.__version__).split(".")[0])
    except (AttributeError, ValueError):
        return 0


def network_creation_flags(trt: Any) -> int:
    """Creation flags for a strongly typed network on this TensorRT (0 on 11+, where it is the only mode)."""
    if tensorrt_major(trt) >= 11:
        return 0
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if flag is None:
        raise BackendUnavailableError("trt", "TensorRT 10 or newer (strongly typed networks)", TENSORRT_EXTRA,
                                      f"found TensorRT {trt.__version__}")
    return 1 << int(flag)


def _make_logger(trt: Any):
    """A TensorRT logger that keeps errors and warnings (for our messages) instead of printing them."""

    class CollectingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self.warnings: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                self.errors.append(str(msg))
            elif severity == trt.ILogger.Severity.WARNING:
                self.warnings.append(str(msg))

    return CollectingLogger()


def _device_facts(trt: Any, cudart: Any, device_index: int) -> DeviceFacts:
    gpu = cuda_runtime.gpu_facts(cudart, device_index)
    return DeviceFacts(tensorrt_version=str(trt.__version__), gpu_name=gpu.name,
                       compute_capability=gpu.compute_capability)


def _numpy_dtype(trt: Any, dtype: Any) -> np.dtype:
    try:
        return np.dtype(trt.nptype(dtype))
    except (TypeError, AttributeError):
        raise ModelError(f"TensorRT tensor type {dtype} has no NumPy equivalent") from None


# ------------------------------------------------------------------------------------------------ build


@dataclass
class BuildOptions:
    """``edgevqa build`` settings. ``workspace_mb=None`` leaves TensorRT's default (the GPU's memory)."""

    timing_cache: str | None = None
    workspace_mb: int | None = None
    dla_core: int | None = None
    max_clips: int | None = None
    min_clips: int = 1
    device: str = "cuda:0"
    force: bool = False

    def validate(self) -> None:
        if self.workspace_mb is not None and self.workspace_mb < 1:
            raise EdgeVQAError(f"--workspace must be a positive number of MiB, got {self.workspace_mb}")
        if self.dla_core is not None and self.dla_core < 0:
            raise EdgeVQAError(f"--dla-core must be >= 0, got {self.dla_core}")
        if self.max_clips is not None and self.max_clips < 1:
            raise EdgeVQAError(f"--max-clips must be >= 1, got {self.max_clips}")


@dataclass
class BuildReport:
    engine_path: str
    sidecar_path: str
    stamp: EngineStamp
    seconds: float
    timing_cache: str | None
    warnings: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        s = self.stamp
        lines = [f"built {self.engine_path} in {self.seconds:.1f} s",
                 f"  TensorRT {s.tensorrt_version} on {s.gpu_name} (compute capability {s.compute_capability})"
                 + (f", DLA core {s.dla_core} with GPU fallback" if s.dla_core is not None else ""),
                 f"  manifest and stamp: {self.sidecar_path}"]
        for p in s.profiles:
            lines.append(f"  profile '{p.name}': min {list(p.min)} opt {list(p.opt)} max {list(p.max)}")
        if self.timing_cache:
            lines.append(f"  timing cache: {self.timing_cache}")
        lines.extend(f"  warning: {w}" for w in self.warnings[:5])
        return lines


def plan_build(onnx_path: str, engine_path: str, options: BuildOptions) -> tuple[ModelManifest, list[InputProfile]]:
    """Every check that needs no TensorRT: paths, options, manifest, profiles. Returns (manifest, profiles)."""
    options.validate()
    if not os.path.isfile(onnx_path):
        raise ModelError(f"{onnx_path}: no such ONNX file")
    if os.path.isdir(engine_path):
        raise ModelError(f"{engine_path}: is a directory; give the engine file to write (e.g. model.plan)")
    if os.path.exists(engine_path) and not options.force:
        raise ModelError(f"{engine_path}: exists; refusing to overwrite it (add --force)")
    if os.path.abspath(engine_path) == os.path.abspath(onnx_path):
        raise ModelError(f"{engine_path}: is the input ONNX file; choose another engine path")
    parent = os.path.dirname(os.path.abspath(engine_path))
    if not os.path.isdir(parent):
        raise ModelError(f"{engine_path}: the folder {parent} does not exist")
    if options.timing_cache and os.path.isdir(options.timing_cache):
        raise ModelError(f"--timing-cache {options.timing_cache}: is a directory; give a file")
    manifest = load_manifest(onnx_path)
    profiles = clip_profiles(manifest, onnx_input_shapes(onnx_path), onnx_path, options.max_clips,
                             options.min_clips)
    return manifest, profiles


def build_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike,
                 options: BuildOptions | None = None) -> BuildReport:
    """Compile ``onnx_path`` into a TensorRT engine at ``engine_path`` (+ sidecar manifest with stamp)."""
    onnx_path, engine_path = os.fspath(onnx_path), os.fspath(engine_path)
    options = options or BuildOptions()
    manifest, profiles = plan_build(onnx_path, engine_path, options)
    trt = import_tensorrt("trt")
    cudart = cuda_runtime.import_cudart("trt")
    device_index = cuda_runtime.parse_cuda_device(options.device)
    check_call = cuda_runtime.check
    check_call(cudart, cudart.cudaSetDevice(device_index), "cudaSetDevice")
    facts = _device_facts(trt, cudart, device_index)

    start = time.perf_counter()
    logger = _make_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(network_creation_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(onnx_path):
        problems = [str(parser.get_error(i)) for i in range(parser.num_errors)] or logger.errors
        raise ModelError(f"{onnx_path}: TensorRT's ONNX parser rejects the model: "
                         f"{'; '.join(p.splitlines()[0] for p in problems[:3]) or 'no reason given'}")
    config = builder.create_builder_config()
    if options.workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_mb) << 20)
    profile = builder.create_optimization_profile()
    for p in profiles:
        profile.set_shape(p.name, p.min, p.opt, p.max)
    config.add_optimization_profile(profile)
    if options.dla_core is not None:
        cores = int(getattr(builder, "num_DLA_cores", 0))
        if cores == 0:
            raise ModelError(f"--dla-core {options.dla_core}: this device ({facts.gpu_name}) has no DLA "
                             "(DLA cores exist on Jetson AGX/NX modules)")
        if options.dla_core >= cores:
            raise ModelError(f"--dla-core {options.dla_core}: this device has {cores} DLA core(s) "
                             f"(0..{cores - 1})")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(options.dla_core)
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    cache_bytes = b""
    if options.timing_cache and os.path.isfile(options.timing_cache):
        with open(options.timing_cache, "rb") as fh:
            cache_bytes = fh.read()
    cache = config.create_timing_cache(cache_bytes)
    # A cache from another GPU or TensorRT is rejected rather than silently used (ignore_mismatch=False).
    if not config.set_timing_cache(cache, False):
        raise ModelError(f"--timing-cache {options.timing_cache}: TensorRT rejects it (made by another TensorRT "
                         "version or GPU?); remove it or give a new file")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        reason = "; ".join(e.splitlines()[0] for e in logger.errors[:3]) or "no reason given"
        raise ModelError(f"{onnx_path}: TensorRT could not build an engine ({reason})")
    seconds = time.perf_counter() - start

    parent = os.path.dirname(os.path.abspath(engine_path))
    fd, tmp = tempfile.mkstemp(prefix=".edgevqa-engine-", suffix=".plan", dir=parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(memoryview(serialized))
        os.replace(tmp, engine_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if options.timing_cache:
        updated = config.get_timing_cache().serialize()
        with open(options.timing_cache, "wb") as fh:
            fh.write(memoryview(updated))
    stamp = make_stamp(engine_path, facts, profiles, options.dla_core, onnx_path)
    sidecar = write_engine_sidecar(engine_path, manifest, stamp)
    return BuildReport(engine_path=engine_path, sidecar_path=sidecar, stamp=stamp, seconds=seconds,
                       timing_cache=options.timing_cache, warnings=list(logger.warnings))


# ------------------------------------------------------------------------------------------------ run


class TrtRunner(Runner):
    """Runs a TensorRT engine built by `build_engine` on one CUDA device.

    ``infer`` takes host arrays (staged through pinned buffers) or C-contiguous device arrays of the engine's
    input dtype (bound in place), and returns host arrays. Call after `activate()`.
    """

    backend_name = "trt"

    def __init__(self, engine_path: str | os.PathLike, device: str = "cuda:0", verify_checksum: bool = True):
        super().__init__()
        self.engine_path = os.fspath(engine_path)
        self.device_index = cuda_runtime.parse_cuda_device(device)
        self.verify_checksum = verify_checksum
        self.warnings: list[str] = []
        self.manifest: ModelManifest | None = None
        self.stamp: EngineStamp | None = None
        self._trt: Any = None
        self._cudart: Any = None
        self._runtime: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._stream: Any = None
        self._inputs: list[str] = []
        self._outputs: list[str] = []
        self._device_buffers: dict[str, cuda_runtime.DeviceBuffer] = {}
        self._host_buffers: dict[str, cuda_runtime.PinnedBuffer] = {}

    def activate_impl(self) -> None:
        if not os.path.isfile(self.engine_path):
            raise ModelError(f"{self.engine_path}: no such engine file")
        manifest, stamp = read_engine_sidecar(self.engine_path)
        trt = import_tensorrt("trt")
        cudart = cuda_runtime.import_cudart("trt")
        check = cuda_runtime.check
        check(cudart, cudart.cudaSetDevice(self.device_index), "cudaSetDevice")
        facts = _device_facts(trt, cudart, self.device_index)
        self.warnings = check_stamp(self.engine_path, stamp, facts, self.verify_checksum)
        logger = _make_logger(trt)
        runtime = trt.Runtime(logger)
        if stamp.dla_core is not None:
            runtime.DLA_core = int(stamp.dla_core)
        with open(self.engine_path, "rb") as fh:
            engine = runtime.deserialize_cuda_engine(fh.read())
        if engine is None:
            reason = "; ".join(e.splitlines()[0] for e in logger.errors[:2]) or "no reason given"
            raise ModelError(f"{self.engine_path}: TensorRT cannot deserialise the engine ({reason})")
        context = engine.create_execution_context()
        if context is None:
            raise ModelError(f"{self.engine_path}: TensorRT cannot create an execution context (out of GPU memory?)")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._stream = check(cudart, cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._trt, self._cudart, self._runtime, self._engine, self._context = trt, cudart, runtime, engine, context
        self.manifest, self.stamp = manifest, stamp

    def deactivate_impl(self) -> None:
        for buffer in list(self._device_buffers.values()) + list(self._host_buffers.values()):
            buffer.free()
        self._device_buffers.clear()
        self._host_buffers.clear()
        if self._stream is not None:
            cuda_runtime.check(self._cudart, self._cudart.cudaStreamDestroy(self._stream), "cudaStreamDestroy")
        self._context = self._engine = self._runtime = self._stream = None

    def _buffers(self, name: str) -> tuple[cuda_runtime.DeviceBuffer, cuda_runtime.PinnedBuffer]:
        if name not in self._device_buffers:
            self._device_buffers[name] = cuda_runtime.DeviceBuffer(self._cudart)
            self._host_buffers[name] = cuda_runtime.PinnedBuffer(self._cudart)
        return self._device_buffers[name], self._host_buffers[name]

    def infer_impl(self, feed: Mapping[str, Any]) -> dict[str, np.ndarray]:
        trt, cudart, context, engine = self._trt, self._cudart, self._context, self._engine
        check = cuda_runtime.check
        missing = [n for n in self._inputs if n not in feed]
        if missing:
            raise ModelError(f"{self.engine_path}: inputs {missing} are missing from the feed")
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self._inputs:
            value = feed[name]
            want = _numpy_dtype(trt, engine.get_tensor_dtype(name))
            on_device = cuda_runtime.cuda_array_pointer(value)
            if on_device is not None:
                ptr, shape, dtype = on_device
                if dtype != want:
                    raise ModelError(f"{self.engine_path}: device input '{name}' is {dtype}, the engine takes {want}")
            else:
                array = np.asarray(value)
                shape = tuple(array.shape)
                device, host = self._buffers(name)
                staged = host.view(shape, want)
                np.copyto(staged, array, casting="same_kind")
                ptr = device.ensure(staged.nbytes)
                check(cudart, cudart.cudaMemcpyAsync(ptr, host.ptr, staged.nbytes, h2d, self._stream),
                      "cudaMemcpyAsync")
            self._check_profile(name, shape)
            if not context.set_input_shape(name, shape):
                raise ModelError(f"{self.engine_path}: input '{name}' shape {list(shape)} is outside the engine's "
                                 "profile")
            context.set_tensor_address(name, ptr)
        results: dict[str, np.ndarray] = {}
        staged_outputs = []
        for name in self._outputs:
            shape = tuple(context.get_tensor_shape(name))
            dtype = _numpy_dtype(trt, engine.get_tensor_dtype(name))
            device, host = self._buffers(name)
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            context.set_tensor_address(name, device.ensure(nbytes))
            staged_outputs.append((name, shape, dtype, device, host, nbytes))
        if not context.execute_async_v3(int(self._stream)):
            raise ModelError(f"{self.engine_path}: TensorRT execution failed")
        for name, shape, dtype, device, host, nbytes in staged_outputs:
            host.ensure(nbytes)
            check(cudart, cudart.cudaMemcpyAsync(host.ptr, device.ptr, nbytes, d2h, self._stream), "cudaMemcpyAsync")
        check(cudart, cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        for name, shape, dtype, device, host, nbytes in staged_outputs:
            results[name] = host.view(shape, dtype).copy()
        return results

    def _check_profile(self, name: str, shape: tuple[int, ...]) -> None:
        for p in self.stamp.profiles if self.stamp else ():
            if p.name == name and not p.admits(shape):
                raise ModelError(f"{self.engine_path}: input '{name}' shape {list(shape)} is outside the engine's "
                                 f"profile (min {list(p.min)}, max {list(p.max)}); rebuild with --max-clips")

    def _meta(self, names: list[str]) -> list[TensorMeta]:
        metas = []
        for name in names:
            shape = tuple(int(d) if d >= 0 else None for d in self._engine.get_tensor_shape(name))
            metas.append(TensorMeta(name, str(_numpy_dtype(self._trt, self._engine.get_tensor_dtype(name))), shape))
        return metas

    def get_input_metadata_impl(self) -> list[TensorMeta]:
        return self._meta(self._inputs)

    def get_output_metadata_impl(self) -> list[TensorMeta]:
        return self._meta(self._outputs)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"backend": self.backend_name, "engine": self.engine_path,
                                "device": f"cuda:{self.device_index}"}
        if self.stamp is not None:
            info.update(tensorrt=self.stamp.tensorrt_version, built_on=self.stamp.gpu_name,
                        compute_capability=self.stamp.compute_capability, dla_core=self.stamp.dla_core)
        return info
