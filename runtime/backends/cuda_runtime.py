"""The few CUDA runtime calls the TensorRT runner needs, through NVIDIA's cuda-python bindings.

cuda-python (``cuda.bindings.runtime``; ``cuda.cudart`` in releases before 12.6) mirrors the CUDA runtime API:
each call returns a tuple whose first item is a ``cudaError_t``. `check` turns a failure into `EdgeVQAError`
naming the call. Buffers are plain ``cudaMalloc`` / ``cudaMallocHost`` allocations (pinned host memory makes
``cudaMemcpyAsync`` truly asynchronous and about 3x faster than pageable copies on an H100).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError, EdgeVQAError


def import_cudart(backend: str = "trt"):
    """The cuda-python runtime module, or `BackendUnavailableError` naming the ``gpu`` extra."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6
        except ImportError as exc:
            raise BackendUnavailableError(backend, "cuda-python (the 'cuda-python' package)", "gpu",
                                          str(exc)) from exc
    return cudart


def check(cudart: Any, result: Any, what: str) -> Any:
    """Unpack a cuda-python result tuple, raising on an error code; returns the value(s) after the code."""
    if isinstance(result, tuple):
        err, rest = result[0], result[1:]
    else:
        err, rest = result, ()
    if int(err) != int(cudart.cudaError_t.cudaSuccess):
        name = getattr(err, "name", str(err))
        raise EdgeVQAError(f"CUDA call {what} failed: {name}")
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else rest


def parse_cuda_device(device: str | int | None) -> int:
    """``'cuda'`` / ``'cuda:N'`` / ``N`` -> N; anything else raises `EdgeVQAError`."""
    if device is None:
        return 0
    if isinstance(device, int):
        index = device
    else:
        text = str(device).strip().lower()
        if text == "cuda":
            return 0
        if not text.startswith("cuda:") or not text[5:].isdigit():
            raise EdgeVQAError(f"device {device!r} is not a CUDA device; give cuda or cuda:N (e.g. cuda:0)")
        index = int(text[5:])
    if index < 0:
        raise EdgeVQAError(f"CUDA device index must be >= 0, got {index}")
    return index


@dataclass(frozen=True)
class GpuFacts:
    name: str
    compute_capability: str
    total_memory: int


def gpu_facts(cudart: Any, index: int) -> GpuFacts:
    count = check(cudart, cudart.cudaGetDeviceCount(), "cudaGetDeviceCount")
    if index >= count:
        raise EdgeVQAError(f"CUDA device {index} does not exist (this machine has {count})")
    props = check(cudart, cudart.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return GpuFacts(name=name.strip("\x00").strip(), compute_capability=f"{props.major}.{props.minor}",
                    total_memory=int(props.totalGlobalMem))


class _GrowingAllocation:
    """A CUDA allocation that grows on demand (never shrinks); subclasses name the allocate/free calls."""

    _allocate = ""
    _release = ""

    def __init__(self, cudart: Any):
        self._cudart = cudart
        self.ptr = 0
        self.nbytes = 0

    def ensure(self, nbytes: int) -> int:
        if nbytes > self.nbytes:
            self.free()
            size = max(nbytes, 256)
            self.ptr = int(check(self._cudart, getattr(self._cudart, self._allocate)(size), self._allocate))
            self.nbytes = size
        return self.ptr

    def free(self) -> None:
        if self.ptr:
            check(self._cudart, getattr(self._cudart, self._release)(self.ptr), self._release)
            self.ptr, self.nbytes = 0, 0


class DeviceBuffer(_GrowingAllocation):
    """A ``cudaMalloc`` allocation that grows on demand (never shrinks)."""

    _allocate, _release = "cudaMalloc", "cudaFree"


class PinnedBuffer(_GrowingAllocation):
    """A page-locked host allocation (``cudaMallocHost``) viewed as NumPy arrays; grows on demand."""

    _allocate, _release = "cudaMallocHost", "cudaFreeHost"

    def view(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """An array over the first bytes of the buffer (valid until the buffer grows or is freed)."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        self.ensure(nbytes)
        raw = (ctypes.c_uint8 * max(nbytes, 1)).from_address(self.ptr)
        return np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape, dtype=np.int64))).reshape(shape)


def cuda_array_pointer(value: Any) -> tuple[int, tuple[int, ...], np.dtype] | None:
    """(device pointer, shape, dtype) of a C-contiguous device array (``__cuda_array_interface__``), else None."""
    interface = getattr(value, "__cuda_array_interface__", None)
    if interface is None:
        return None
    shape = tuple(int(s) for s in interface["shape"])
    dtype = np.dtype(interface["typestr"])
    strides = interface.get("strides")
    if strides is not None:
        expected = []
        step = dtype.itemsize
        for size in reversed(shape):
            expected.append(step)
            step *= size
        if tuple(strides) != tuple(reversed(expected)):
            raise EdgeVQAError("device input must be C-contiguous (call .contiguous() first)")
    return int(interface["data"][0]), shape, dtype
