"""CUDA sampling kernels: apply a `SamplePlan` to frames already on the GPU (NVDEC NV12, torch, CuPy, DALI).

Same operation and bit-exact results as `edgevqa.kernels.reference` (the kernel source is
``kernels/cuda/sample.cu``). Inputs and outputs are any objects exposing ``__cuda_array_interface__`` (torch,
CuPy, Numba, pycuda) or DLPack (``__dlpack__``: torch, CuPy, DALI, JAX); planes may have any strides (NV12's
interleaved chroma is two views with a 2-byte column stride). Work runs on the caller's stream; when an
input names its producer stream (CUDA array interface v3), the launch waits for it with an event.

Build choice: the kernel is compiled at first use with NVRTC through cuda-python (``cuda.bindings``), for the
exact architecture of the GPU in use (sm_87 on Jetson Orin, sm_90 on H100, whatever comes next), and the cubin
is cached on disk per architecture and source hash (``$EDGEVQA_CACHE_DIR`` or ``~/.cache/edgevqa``). Why not
prebuilt with nvcc: the wheel would then need nvcc and a CUDA toolkit at build time and would carry a fatbin
for a fixed list of architectures, while the package must build and install on machines without CUDA (CI,
CPU servers) and the deployment targets (Jetson, data-centre GPUs) all have the NVRTC library (the CUDA
toolkit or JetPack, torch's CUDA wheels, or PyPI's ``nvidia-cuda-nvrtc``: the ``nvrtc`` extra); the one-off
compile takes well under a second and is cached. NVRTC itself needs no GPU, so CI runs this compile too. CI still compiles the
same ``.cu`` text with nvcc for sm_87 and sm_90 (+PTX) to catch errors without a GPU.

Every driver call, compile and launch is checked and raises `KernelError` with the driver's error name;
``EDGEVQA_CUDA_SYNC=1`` also synchronises after each launch so asynchronous faults surface at their call.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import threading
import weakref
from dataclasses import dataclass
from importlib import resources
from typing import Any, Sequence

import numpy as np

from edgevqa.errors import BackendUnavailableError, KernelError
from edgevqa.sampling import SamplePlan

from .colour import ColourConversion, normalisation_table

__all__ = ["CudaSampler", "sample_frame", "sample", "kernel_source", "PARAM_FIELDS", "MAX_FRAMES", "MAX_JOBS",
           "cuda_available"]

KERNEL_NAME = "edgevqa_sample"
MAX_FRAMES = 32  # EDGEVQA_MAX_FRAMES in sample.cu
MAX_JOBS = 64  # EDGEVQA_MAX_JOBS
BLOCK = (32, 8)  # EDGEVQA_BLOCK_X, EDGEVQA_BLOCK_Y
PIXELS_PER_THREAD = 2  # EDGEVQA_PIXELS_PER_THREAD's default: fastest of 1, 2, 4, 8 on an H200 (2026-11-28)

# The scalar 8-byte words at the start of SampleParams, in order (sample.cu keeps the same order).
PARAM_FIELDS = (
    ("tap_index", 4), ("tap_weight", 4), ("taps", 4), ("grid_h", 1), ("grid_w", 1), ("tile_h", 1), ("tile_w", 1),
    ("out", 1), ("out_stride", 5), ("channels_first", 1), ("table", 1), ("coef", 7), ("is_rgb", 1),
    ("bit_depth", 1), ("wide", 1), ("narrow_math", 1), ("half_out", 1), ("max_value", 1), ("identity", 1),
    ("num_jobs", 1),
)
_OFFSET: dict[str, int] = {}
_words = 0
for _name, _count in PARAM_FIELDS:
    _OFFSET[_name] = _words
    _words += _count
SCALAR_WORDS = _words  # 39
FRAME_WORDS = 9  # 3 planes x (data, row stride, column stride)
PARAM_WORDS = SCALAR_WORDS + FRAME_WORDS * MAX_FRAMES + 2 * MAX_JOBS  # a JobDesc is 4 int32 = 2 words


def kernel_source() -> str:
    """The text of ``kernels/cuda/sample.cu`` (package data)."""
    return resources.files("edgevqa.kernels").joinpath("cuda/sample.cu").read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------- host-side plan


def conversion_fits_int32(coefficients: Sequence[int], max_value: int) -> bool:
    """Whether YUV -> RGB can run in int32 for channel values in 0..max_value (mirrors ``_native.c``)."""
    k = [int(v) for v in coefficients]
    y_span = max(abs(k[0]), abs(max_value - k[0]))
    c_span = max(abs(k[1]), abs(max_value - k[1]))
    y_term = abs(k[2]) * y_span + (1 << 15)
    worst = max(y_term + (abs(k[4]) + abs(k[5])) * c_span, y_term + abs(k[3]) * c_span, y_term + abs(k[6]) * c_span)
    limit = (1 << 31) - 1
    return worst < limit and y_span < limit and c_span < limit


class _PlanTables:
    """Everything a launch needs from the plan and the conversion, on the host, checked once."""

    def __init__(self, plan: SamplePlan, conversion: ColourConversion):
        if not isinstance(plan, SamplePlan):
            raise KernelError(f"plan must be a SamplePlan, got {type(plan).__name__}")
        if not isinstance(conversion, ColourConversion):
            raise KernelError(f"conversion must be a ColourConversion, got {type(conversion).__name__}")
        if not 8 <= int(conversion.bit_depth) <= 16:
            raise KernelError(f"unsupported bit depth {conversion.bit_depth}; 8 to 16 bits are supported")
        self.plan = plan
        tables = (plan.luma_rows, plan.luma_cols, plan.chroma_rows, plan.chroma_cols)
        self.index = [np.ascontiguousarray(t.index, dtype=np.int32) for t in tables]
        self.weight = [np.ascontiguousarray(t.weight, dtype=np.int32) for t in tables]
        shapes = [a.shape for a in self.index]
        for a, w in zip(self.index, self.weight):
            if a.ndim != 5 or a.shape != w.shape or min(a.shape) < 1:
                raise KernelError(f"tap tables must be non-empty [G, gh, gw, L, K] arrays, got {a.shape} / {w.shape}")
        if len({s[:3] for s in shapes}) != 1 or shapes[0][3] != shapes[2][3] or shapes[1][3] != shapes[3][3]:
            raise KernelError(f"tap tables disagree on groups, grid or tile size: {shapes}")
        self.groups, self.grid_h, self.grid_w, self.tile_h = shapes[0][:4]
        self.tile_w = shapes[1][3]
        # Per group: the largest index of each table, checked against the planes at every call.
        self.max_index = [a.reshape(a.shape[0], -1).max(axis=1) for a in self.index]
        if any(int(a.min()) < 0 for a in self.index):
            raise KernelError("the plan has negative tap indices")
        if any(a.size >= 1 << 31 for a in self.index):
            raise KernelError("tap tables of 2**31 entries or more are beyond the CUDA kernel")
        self.slots = np.ascontiguousarray(plan.slots, dtype=np.int32)
        self.tap_group = np.ascontiguousarray(plan.tap_group, dtype=np.int32)
        if self.slots.ndim != 2 or self.tap_group.shape != self.slots.shape:
            raise KernelError("plan.slots and plan.tap_group must be [clips, time] arrays of one shape")
        if self.tap_group.size and (self.tap_group.min() < 0 or self.tap_group.max() >= self.groups):
            raise KernelError(f"plan.tap_group is outside the plan's {self.groups} tap groups")
        self.identity = all(a.shape[4] == 1 for a in self.index) and all(
            bool(np.all(w == 1 << 14)) for w in self.weight)
        self.num_frames = len(plan.frame_indices)
        view = plan.view
        self.dtype = np.dtype(view.dtype)
        self.channels_first = view.layout == "NCTHW"
        n, t = self.slots.shape
        h, w = self.grid_h * self.tile_h, self.grid_w * self.tile_w
        self.out_shape = (n, 3, t, h, w) if self.channels_first else (n, t, 3, h, w)
        self.table = np.ascontiguousarray(normalisation_table(view.mean, view.std, view.dtype))
        self.is_rgb = bool(conversion.is_rgb)
        self.bit_depth = int(conversion.bit_depth)
        self.max_value = (1 << self.bit_depth) - 1
        self.coefficients = [int(v) for v in np.asarray(conversion.coefficients, dtype=np.int32).reshape(-1)]
        if len(self.coefficients) != 7:
            raise KernelError(f"conversion coefficients must hold 7 values, got {len(self.coefficients)}")
        self.narrow_math = conversion_fits_int32(self.coefficients, self.max_value)
        self.plane_typestr = "|u1" if self.bit_depth == 8 else "<u2"
        # Compile-time constants of the kernel built for this plan (NVRTC specialises on them).
        self.flags = {"is_rgb": int(self.is_rgb), "wide": int(self.bit_depth > 8), "identity": int(self.identity),
                      "narrow_math": int(self.narrow_math), "half_out": int(self.dtype == np.float16)}
        if max(h, w) >= 1 << 24:
            raise KernelError(f"output images of {h}x{w} are beyond the CUDA kernel's 2**24 limit")
        # Per slot: its (n, t, group) positions, and the largest index of each table over their groups.
        self.slot_uses: dict[int, list[tuple[int, int, int]]] = {}
        for n_, t_ in zip(*np.nonzero(self.slots >= 0)):
            self.slot_uses.setdefault(int(self.slots[n_, t_]), []).append((int(n_), int(t_), int(self.tap_group[n_, t_])))
        self.slot_max_index = {
            slot: [max(int(m[g]) for _, _, g in uses) for m in self.max_index] for slot, uses in self.slot_uses.items()}

    def uses(self, slot: int) -> list[tuple[int, int, int]]:
        """(n, t, group) of every position frame ``slot`` feeds."""
        return self.slot_uses.get(slot, [])


# --------------------------------------------------------------------------------------------- device arrays


@dataclass
class DeviceArray:
    """What a kernel needs to know about a device array: address, shape, byte strides, element type."""

    ptr: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]  # bytes
    typestr: str  # '|u1', '<u2', '<f2', '<f4'
    readonly: bool = False
    stream: int | None = None  # the producer's stream (CUDA array interface v3), to wait for
    owner: Any = None  # keeps a DLPack capsule alive while the array is described

    @property
    def itemsize(self) -> int:
        return int(self.typestr[2:])


def _contiguous_strides(shape: Sequence[int], itemsize: int) -> tuple[int, ...]:
    strides, step = [], itemsize
    for extent in reversed(shape):
        strides.append(step)
        step *= max(int(extent), 1)
    return tuple(reversed(strides))


def _normalise_typestr(typestr: str) -> str:
    if typestr in ("|u1", "<u1", ">u1"):
        return "|u1"
    if typestr in ("=u2", "<u2") or (typestr == "=u2"):
        return "<u2"
    if typestr in ("<f2", "=f2"):
        return "<f2"
    if typestr in ("<f4", "=f4"):
        return "<f4"
    return typestr


def describe_cuda_array_interface(obj: Any, what: str) -> DeviceArray:
    cai = obj.__cuda_array_interface__
    try:
        shape = tuple(int(s) for s in cai["shape"])
        typestr = _normalise_typestr(str(cai["typestr"]))
        ptr, readonly = cai["data"]
        itemsize = int(typestr[2:]) if typestr[2:].isdigit() else 0
        strides = cai.get("strides")
        strides = _contiguous_strides(shape, itemsize) if strides is None else tuple(int(s) for s in strides)
    except (KeyError, TypeError, ValueError) as exc:
        raise KernelError(f"{what}: malformed __cuda_array_interface__ ({exc})") from exc
    if cai.get("mask") is not None:
        raise KernelError(f"{what}: masked CUDA arrays are not supported")
    stream = cai.get("stream")
    return DeviceArray(int(ptr or 0), shape, strides, typestr, bool(readonly), None if stream is None else int(stream))


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32), ("dtype", _DLDataType),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64)),
                ("byte_offset", ctypes.c_uint64)]


class _DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


_DL_CUDA, _DL_CUDA_MANAGED = 2, 13
_DL_TYPES = {(1, 8): "|u1", (1, 16): "<u2", (2, 16): "<f2", (2, 32): "<f4"}


def describe_dlpack_capsule(capsule: Any, what: str, require_cuda: bool = True) -> DeviceArray:
    """Read a (legacy, unversioned) ``dltensor`` capsule without consuming it: the producer frees it."""
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    try:
        address = get_pointer(capsule, b"dltensor")
    except ValueError as exc:
        raise KernelError(f"{what}: __dlpack__ did not return a 'dltensor' capsule ({exc})") from exc
    tensor = _DLManagedTensor.from_address(address).dl_tensor
    if require_cuda and tensor.device.device_type not in (_DL_CUDA, _DL_CUDA_MANAGED):
        raise KernelError(f"{what} is not in CUDA memory (DLPack device type {tensor.device.device_type}); use "
                          f"edgevqa.kernels.sample_frame for host arrays")
    if tensor.dtype.lanes != 1 or (tensor.dtype.code, tensor.dtype.bits) not in _DL_TYPES:
        raise KernelError(f"{what} has an unsupported DLPack dtype (code {tensor.dtype.code}, "
                          f"{tensor.dtype.bits} bits, {tensor.dtype.lanes} lanes)")
    typestr = _DL_TYPES[(tensor.dtype.code, tensor.dtype.bits)]
    itemsize = tensor.dtype.bits // 8
    shape = tuple(int(tensor.shape[d]) for d in range(tensor.ndim))
    if tensor.strides:
        strides = tuple(int(tensor.strides[d]) * itemsize for d in range(tensor.ndim))
    else:
        strides = _contiguous_strides(shape, itemsize)
    return DeviceArray(int(tensor.data or 0) + int(tensor.byte_offset), shape, strides, typestr, owner=capsule)


def describe_device_array(obj: Any, what: str, stream: int = 0) -> DeviceArray:
    """Describe a device array given through ``__cuda_array_interface__`` or DLPack."""
    if isinstance(obj, DeviceArray):
        return obj
    if type(obj).__module__.startswith("torch") and hasattr(obj, "data_ptr") and hasattr(obj, "is_cuda"):
        return _describe_torch(obj, what)  # direct, several times faster than its array interface
    if getattr(obj, "__cuda_array_interface__", None) is not None:
        return describe_cuda_array_interface(obj, what)
    if hasattr(obj, "__dlpack__"):
        if hasattr(obj, "__dlpack_device__"):
            device_type = int(obj.__dlpack_device__()[0])
            if device_type not in (_DL_CUDA, _DL_CUDA_MANAGED):
                raise KernelError(f"{what} is not in CUDA memory (DLPack device type {device_type}); use "
                                  f"edgevqa.kernels.sample_frame for host arrays")
        try:
            capsule = obj.__dlpack__(stream=stream if stream else 1)  # 1: the legacy default stream
        except TypeError:
            capsule = obj.__dlpack__()
        return describe_dlpack_capsule(capsule, what)
    raise KernelError(f"{what} must be a CUDA array (__cuda_array_interface__ or DLPack), got {type(obj).__name__}")


_TORCH_TYPES = {"torch.uint8": "|u1", "torch.uint16": "<u2", "torch.float16": "<f2", "torch.float32": "<f4"}


def _describe_torch(tensor: Any, what: str) -> DeviceArray:
    if not tensor.is_cuda:
        raise KernelError(f"{what} is a torch tensor on {tensor.device}, not on a CUDA device; use "
                          f"edgevqa.kernels.sample_frame for host arrays")
    typestr = _TORCH_TYPES.get(str(tensor.dtype))
    if typestr is None:
        raise KernelError(f"{what} has dtype {tensor.dtype}; uint8, uint16, float16 or float32 expected")
    size = tensor.element_size()
    return DeviceArray(int(tensor.data_ptr()), tuple(tensor.shape), tuple(s * size for s in tensor.stride()), typestr)


def stream_handle(stream: Any) -> int:
    """A CUstream handle from None (the legacy default stream), an int, or a torch / CuPy / cuda.core stream."""
    if stream is None:
        return 0
    if isinstance(stream, (int, np.integer)):
        return int(stream)
    if hasattr(stream, "__cuda_stream__"):
        return int(stream.__cuda_stream__()[1])
    for attribute in ("cuda_stream", "ptr", "handle"):  # torch.cuda.Stream, cupy Stream, others
        value = getattr(stream, attribute, None)
        if isinstance(value, (int, np.integer)):
            return int(value)
    try:
        return int(stream)  # cuda.bindings CUstream
    except (TypeError, ValueError) as exc:
        raise KernelError(f"cannot use {type(stream).__name__} as a CUDA stream") from exc


# --------------------------------------------------------------------------------------------- launches


@dataclass
class Launch:
    """One kernel launch: the packed parameter block and the grid."""

    params: np.ndarray  # int64 [PARAM_WORDS]
    grid: tuple[int, int, int]
    waits: tuple[int, ...] = ()  # producer streams to wait for first


def _check_plane(tables: _PlanTables, array: DeviceArray, what: str) -> None:
    if len(array.shape) != 2:
        raise KernelError(f"{what} must have 2 dimensions, got shape {array.shape}")
    if array.typestr != tables.plane_typestr:
        raise KernelError(f"{what} has type {array.typestr}, expected {tables.plane_typestr} for "
                          f"{tables.bit_depth}-bit input")
    if min(array.shape) < 1:
        raise KernelError(f"{what} is empty ({array.shape[0]}x{array.shape[1]})")
    if array.itemsize == 2 and (array.ptr % 2 or any(s % 2 for s in array.strides)):
        raise KernelError(f"{what}: 16-bit samples must be 2-byte aligned (pointer and strides)")
    if not array.ptr:
        raise KernelError(f"{what} has a null data pointer")


_INT32_LIMIT = (1 << 31) - 1


def _check_out(tables: _PlanTables, out: DeviceArray) -> None:
    want = "<f2" if tables.dtype == np.float16 else "<f4"
    if out.typestr != want:
        raise KernelError(f"output has type {out.typestr}, the view asks for {tables.dtype}")
    if out.shape != tables.out_shape:
        raise KernelError(f"output has shape {out.shape}, the plan makes {tables.out_shape}")
    if out.readonly:
        raise KernelError("output is read-only")
    if out.ptr % out.itemsize or any(s % out.itemsize for s in out.strides):
        raise KernelError("output must be aligned to its element size (pointer and strides)")
    if not out.ptr and int(np.prod(out.shape)):
        raise KernelError("output has a null data pointer")
    image_axes = (1, 3, 4) if tables.channels_first else (2, 3, 4)
    if sum((out.shape[a] - 1) * abs(out.strides[a]) for a in image_axes) + out.itemsize >= _INT32_LIMIT:
        raise KernelError("one output image spans 2 GiB or more; the CUDA kernel uses 32-bit offsets inside it")


def plan_launches(tables: _PlanTables, frames: Sequence[tuple[int, Sequence[DeviceArray]]], out: DeviceArray,
                  device_pointers: dict[str, int], pixels_per_thread: int = PIXELS_PER_THREAD) -> list[Launch]:
    """Validate ``frames`` ((slot, 3 described planes) pairs) and ``out``, and pack the launches.

    ``device_pointers`` holds the addresses of the plan's tables where the kernel can read them:
    ``tap_index0..3``, ``tap_weight0..3`` and ``table``. Pure host code: tests run it with host addresses.
    """
    _check_out(tables, out)
    jobs: list[tuple[int, int, int, int]] = []  # (frame position, n, t, group)
    for position, (slot, planes) in enumerate(frames):
        if not 0 <= slot < tables.num_frames:
            raise KernelError(f"slot {slot} is outside the plan's {tables.num_frames} frames")
        if len(planes) != 3:
            raise KernelError(f"expected 3 planes (Y, U, V or R, G, B) for slot {slot}, got {len(planes)}")
        uses = tables.uses(slot)
        for k, plane in enumerate(planes):
            _check_plane(tables, plane, f"plane {k} of slot {slot}")
            rows_table, cols_table = (0, 1) if k == 0 or tables.is_rgb else (2, 3)
            if not uses:
                continue
            last_row, last_col = tables.slot_max_index[slot][rows_table], tables.slot_max_index[slot][cols_table]
            if last_row >= plane.shape[0] or last_col >= plane.shape[1]:
                raise KernelError(f"plan reads outside plane {k} of slot {slot} ({plane.shape[0]}x"
                                  f"{plane.shape[1]}): it was made for another frame size or format")
            if last_row * abs(plane.strides[0]) + last_col * abs(plane.strides[1]) >= _INT32_LIMIT:
                raise KernelError(f"plane {k} of slot {slot} spans 2 GiB or more; the CUDA kernel addresses "
                                  f"planes with 32-bit offsets")
        jobs += [(position, n, t, g) for n, t, g in uses]

    base = np.zeros(SCALAR_WORDS, np.int64)

    def put(name: str, values) -> None:
        values = np.atleast_1d(np.asarray(values, dtype=np.int64))
        base[_OFFSET[name]:_OFFSET[name] + values.size] = values

    put("tap_index", [device_pointers[f"tap_index{k}"] for k in range(4)])
    put("tap_weight", [device_pointers[f"tap_weight{k}"] for k in range(4)])
    put("taps", [a.shape[4] for a in tables.index])
    put("grid_h", tables.grid_h), put("grid_w", tables.grid_w)
    put("tile_h", tables.tile_h), put("tile_w", tables.tile_w)
    put("out", out.ptr), put("out_stride", out.strides), put("channels_first", int(tables.channels_first))
    put("table", device_pointers["table"]), put("coef", tables.coefficients)
    put("is_rgb", int(tables.is_rgb)), put("bit_depth", tables.bit_depth), put("wide", int(tables.bit_depth > 8))
    put("narrow_math", int(tables.narrow_math)), put("half_out", int(tables.dtype == np.float16))
    put("max_value", tables.max_value), put("identity", int(tables.identity))

    height, width = tables.grid_h * tables.tile_h, tables.grid_w * tables.tile_w
    grid_xy = (-(-width // (BLOCK[0] * pixels_per_thread)), -(-height // BLOCK[1]))
    launches: list[Launch] = []
    chunk: list[tuple[int, int, int, int]] = []
    chunk_frames: dict[int, int] = {}

    def flush() -> None:
        if not chunk:
            return
        params = np.zeros(PARAM_WORDS, np.int64)
        params[:SCALAR_WORDS] = base
        params[_OFFSET["num_jobs"]] = len(chunk)
        waits = set()
        words = []
        for position in chunk_frames:  # insertion order is local frame order
            for plane in frames[position][1]:
                words += (plane.ptr, plane.strides[0], plane.strides[1])
                if plane.stream is not None:
                    waits.add(plane.stream)
        params[SCALAR_WORDS:SCALAR_WORDS + len(words)] = words
        job_words = params[SCALAR_WORDS + FRAME_WORDS * MAX_FRAMES:].view(np.int32)
        job_words[:4 * len(chunk)] = [v for position, n, t, g in chunk for v in (chunk_frames[position], n, t, g)]
        if out.stream is not None:
            waits.add(out.stream)
        launches.append(Launch(params, (grid_xy[0], grid_xy[1], len(chunk)), tuple(sorted(waits))))
        chunk.clear()
        chunk_frames.clear()

    for job in jobs:
        if len(chunk) == MAX_JOBS or (job[0] not in chunk_frames and len(chunk_frames) == MAX_FRAMES):
            flush()
        chunk_frames.setdefault(job[0], len(chunk_frames))
        chunk.append(job)
    flush()
    return launches


# --------------------------------------------------------------------------------------------- the driver


def _cache_dir() -> str:
    root = os.environ.get("EDGEVQA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "edgevqa")
    return os.path.join(root, "cuda")


def _nvrtc_check(result, what: str):
    err = result[0]
    if int(err) != 0:
        raise KernelError(f"NVRTC {what} failed: {err}")
    return result[1:] if len(result) > 2 else (result[1] if len(result) == 2 else None)


def compile_kernel(nvrtc, arch: int, cache: bool = True, pixels_per_thread: int = PIXELS_PER_THREAD,
                   flags: dict[str, int] | None = None) -> bytes:
    """A cubin of sample.cu for ``sm_<arch>`` (PTX for the newest architecture NVRTC knows when it does not
    know ``arch``), from the disk cache when it is there. ``nvrtc`` is ``cuda.bindings.nvrtc``."""
    source = kernel_source().encode()
    version = _nvrtc_check(nvrtc.nvrtcVersion(), "nvrtcVersion")
    supported = [int(a) for a in _nvrtc_check(nvrtc.nvrtcGetSupportedArchs(), "nvrtcGetSupportedArchs")]
    as_cubin = arch in supported
    target = f"sm_{arch}" if as_cubin else f"compute_{max([a for a in supported if a <= arch] or supported)}"
    options = [f"--gpu-architecture={target}".encode(), b"--std=c++17",
               f"-DEDGEVQA_PIXELS_PER_THREAD={int(pixels_per_thread)}".encode()]
    options += [f"-DEDGEVQA_{name.upper()}={int(value)}".encode() for name, value in sorted((flags or {}).items())]
    key = hashlib.sha256(source + b"\0".join(options) + repr(version).encode()).hexdigest()[:20]
    path = os.path.join(_cache_dir(), f"{KERNEL_NAME}-{key}-{target}.{'cubin' if as_cubin else 'ptx'}")
    if cache:
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except OSError:
            pass
    program = _nvrtc_check(nvrtc.nvrtcCreateProgram(source, b"sample.cu", 0, [], []), "nvrtcCreateProgram")
    try:
        result = nvrtc.nvrtcCompileProgram(program, len(options), options)
        if int(result[0]) != 0:
            size = _nvrtc_check(nvrtc.nvrtcGetProgramLogSize(program), "nvrtcGetProgramLogSize")
            log = b" " * int(size)
            nvrtc.nvrtcGetProgramLog(program, log)
            raise KernelError(f"NVRTC could not compile sample.cu for {target}:\n{log.decode(errors='replace')}")
        if as_cubin:
            size = _nvrtc_check(nvrtc.nvrtcGetCUBINSize(program), "nvrtcGetCUBINSize")
            image = b" " * int(size)
            _nvrtc_check(nvrtc.nvrtcGetCUBIN(program, image), "nvrtcGetCUBIN")
        else:
            size = _nvrtc_check(nvrtc.nvrtcGetPTXSize(program), "nvrtcGetPTXSize")
            image = b" " * int(size)
            _nvrtc_check(nvrtc.nvrtcGetPTX(program, image), "nvrtcGetPTX")
    finally:
        nvrtc.nvrtcDestroyProgram(program)
    if cache:
        try:  # best effort: a read-only home only costs a recompile next time
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(image)
            os.replace(tmp, path)
        except OSError:
            pass
    return image


class _Cuda:
    """cuda-python driver and NVRTC plumbing: contexts, compile + disk cache, modules, launches."""

    _instance: "_Cuda | None" = None
    _lock = threading.Lock()

    @classmethod
    def get(cls) -> "_Cuda":
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def __init__(self):
        try:
            from cuda.bindings import driver, nvrtc
        except ImportError:
            try:
                from cuda import cuda as driver, nvrtc  # cuda-python 12.x layout
            except ImportError as exc:
                raise BackendUnavailableError("cuda-sampling", "cuda-python (cuda.bindings)", "gpu", str(exc)) from exc
        self.driver, self.nvrtc = driver, nvrtc
        try:
            self.check(driver.cuInit(0), "cuInit")
        except RuntimeError as exc:  # cuda.bindings raises this when libcuda.so cannot be loaded
            raise BackendUnavailableError("cuda-sampling", "a CUDA driver (libcuda)", None, str(exc)) from exc
        self.contexts: dict[int, Any] = {}
        self.functions: dict[tuple, Any] = {}
        self.sync_after_launch = os.environ.get("EDGEVQA_CUDA_SYNC", "") not in ("", "0")

    def check(self, result, what: str):
        err = result[0] if isinstance(result, tuple) else result
        if int(err) != 0:
            try:
                name = self.driver.cuGetErrorName(err)[1].decode()
            except Exception:  # noqa: BLE001 - the name is a courtesy; the code is what matters
                name = str(err)
            raise KernelError(f"CUDA {what} failed: {name} ({int(err)})")
        return result[1:] if isinstance(result, tuple) and len(result) > 2 else (
            result[1] if isinstance(result, tuple) and len(result) == 2 else None)

    def device_of(self, ptr: int) -> int:
        """The ordinal of the GPU holding ``ptr`` (device 0 when the driver cannot tell)."""
        d = self.driver
        attribute = d.CUpointer_attribute.CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL
        try:
            return int(self.check(d.cuPointerGetAttribute(attribute, d.CUdeviceptr(ptr)),
                                  "cuPointerGetAttribute(device ordinal)"))
        except KernelError:
            return 0

    def enter(self, ordinal: int) -> None:
        """Make the device's primary context (the one torch and CuPy use) current on this thread."""
        d = self.driver
        if ordinal not in self.contexts:
            device = self.check(d.cuDeviceGet(ordinal), "cuDeviceGet")
            self.contexts[ordinal] = self.check(d.cuDevicePrimaryCtxRetain(device), "cuDevicePrimaryCtxRetain")
        self.check(d.cuCtxPushCurrent(self.contexts[ordinal]), "cuCtxPushCurrent")

    def leave(self) -> None:
        self.check(self.driver.cuCtxPopCurrent(), "cuCtxPopCurrent")

    def function(self, ordinal: int, pixels_per_thread: int = PIXELS_PER_THREAD, flags: dict[str, int] | None = None):
        """The kernel for this device, specialised for ``flags`` (see `_PlanTables.flags`)."""
        flags = flags or {}
        key = (ordinal, pixels_per_thread, tuple(sorted(flags.items())))
        if key not in self.functions:
            d = self.driver
            device = self.check(d.cuDeviceGet(ordinal), "cuDeviceGet")
            attr = d.CUdevice_attribute
            major = self.check(d.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device),
                               "cuDeviceGetAttribute")
            minor = self.check(d.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device),
                               "cuDeviceGetAttribute")
            image = self.compiled(int(major) * 10 + int(minor), pixels_per_thread, flags)
            module = self.check(d.cuModuleLoadData(image), "cuModuleLoadData")
            self.functions[key] = self.check(d.cuModuleGetFunction(module, KERNEL_NAME.encode()),
                                             "cuModuleGetFunction")
        return self.functions[key]

    def compiled(self, arch: int, pixels_per_thread: int, flags: dict[str, int]) -> bytes:
        return compile_kernel(self.nvrtc, arch, pixels_per_thread=pixels_per_thread, flags=flags)

    def upload(self, arrays: dict[str, np.ndarray]) -> tuple[Any, dict[str, int]]:
        """One device allocation holding ``arrays`` (256-byte aligned each); returns it and their addresses."""
        offsets, size = {}, 0
        for name, array in arrays.items():
            offsets[name] = size
            size += -(-array.nbytes // 256) * 256
        d = self.driver
        allocation = self.check(d.cuMemAlloc(max(size, 256)), "cuMemAlloc")
        base = int(allocation)
        for name, array in arrays.items():
            host = np.ascontiguousarray(array)
            self.check(d.cuMemcpyHtoD(d.CUdeviceptr(base + offsets[name]), host, host.nbytes), "cuMemcpyHtoD")
        return allocation, {name: base + off for name, off in offsets.items()}

    def free(self, allocation, ordinal: int) -> None:
        try:
            self.enter(ordinal)
        except KernelError:  # the context is gone (interpreter exit): so is the memory
            return
        try:
            self.driver.cuMemFree(allocation)
        finally:
            self.leave()

    def launch(self, function, launch: Launch, stream: int) -> None:
        d = self.driver
        for producer in launch.waits:
            if producer != stream and not (producer in (0, 1) and stream in (0, 1)):
                event = self.check(d.cuEventCreate(d.CUevent_flags.CU_EVENT_DISABLE_TIMING), "cuEventCreate")
                try:
                    self.check(d.cuEventRecord(event, d.CUstream(producer)), "cuEventRecord")
                    self.check(d.cuStreamWaitEvent(d.CUstream(stream), event, 0), "cuStreamWaitEvent")
                finally:
                    d.cuEventDestroy(event)
        params = launch.params
        pointer_array = (ctypes.c_void_p * 1)(params.ctypes.data)
        self.check(d.cuLaunchKernel(function, *launch.grid, BLOCK[0], BLOCK[1], 1, 0, d.CUstream(stream),
                                    ctypes.addressof(pointer_array), 0), "cuLaunchKernel(edgevqa_sample)")
        if self.sync_after_launch:
            self.check(d.cuStreamSynchronize(d.CUstream(stream)), "kernel edgevqa_sample (synchronised)")


def cuda_available() -> bool:
    """Whether cuda-python imports and a CUDA driver with at least one device answers."""
    try:
        cuda = _Cuda.get()
        return int(cuda.check(cuda.driver.cuDeviceGetCount(), "cuDeviceGetCount")) > 0
    except (BackendUnavailableError, KernelError):
        return False


# --------------------------------------------------------------------------------------------- public API


class CudaSampler:
    """A plan and a colour conversion ready to run on the GPU; the plan's tables are uploaded once per device.

    ``sample(frames, out, stream)`` fills the whole view from every frame of the plan (one launch per
    32 frames); ``sample_frame(planes, slot, out, stream)`` writes what one frame feeds. ``prepare`` returns the
    validated launches for reuse (fixed decoder surfaces), ``run`` launches them.
    """

    def __init__(self, plan: SamplePlan, conversion: ColourConversion, pixels_per_thread: int = PIXELS_PER_THREAD):
        self.tables = _PlanTables(plan, conversion)
        self.pixels_per_thread = int(pixels_per_thread)
        if not 1 <= self.pixels_per_thread <= 16:
            raise KernelError(f"pixels_per_thread must be 1..16, got {pixels_per_thread}")
        self._device: dict[int, tuple[Any, dict[str, int]]] = {}

    def _pointers(self, cuda: _Cuda, ordinal: int) -> dict[str, int]:
        if ordinal not in self._device:
            t = self.tables
            arrays = {f"tap_index{k}": t.index[k] for k in range(4)}
            arrays.update({f"tap_weight{k}": t.weight[k] for k in range(4)})
            arrays["table"] = t.table
            allocation, pointers = cuda.upload(arrays)
            self._device[ordinal] = (allocation, pointers)
            weakref.finalize(self, cuda.free, allocation, ordinal)
        return self._device[ordinal][1]

    def prepare(self, frames: Sequence[tuple[int, Sequence[Any]]], out: Any, stream: Any = None):
        """Validated launches for ((slot, planes), ...) into ``out``: (device ordinal, [Launch, ...])."""
        cuda = _Cuda.get()
        handle = stream_handle(stream)
        out_desc = describe_device_array(out, "output", handle)
        described = [(int(slot), [describe_device_array(p, f"plane {k} of slot {slot}", handle)
                                  for k, p in enumerate(planes)]) for slot, planes in frames]
        ordinal = cuda.device_of(out_desc.ptr) if out_desc.ptr else 0
        cuda.enter(ordinal)
        try:
            pointers = self._pointers(cuda, ordinal)
            cuda.function(ordinal, self.pixels_per_thread, self.tables.flags)
        finally:
            cuda.leave()
        return ordinal, plan_launches(self.tables, described, out_desc, pointers, self.pixels_per_thread)

    def run(self, prepared, stream: Any = None) -> None:
        ordinal, launches = prepared
        cuda = _Cuda.get()
        handle = stream_handle(stream)
        cuda.enter(ordinal)
        try:
            function = cuda.function(ordinal, self.pixels_per_thread, self.tables.flags)
            for launch in launches:
                cuda.launch(function, launch, handle)
        finally:
            cuda.leave()

    def sample_frame(self, planes: Sequence[Any], slot: int, out: Any, stream: Any = None) -> None:
        self.run(self.prepare([(slot, planes)], out, stream), stream)

    def sample(self, frames: Sequence[Sequence[Any]], out: Any, stream: Any = None) -> Any:
        if len(frames) != self.tables.num_frames:
            raise KernelError(f"the plan reads {self.tables.num_frames} frames, {len(frames)} were given")
        self.run(self.prepare(list(enumerate(frames)), out, stream), stream)
        return out


_samplers: dict[tuple[int, int], tuple[Any, Any, CudaSampler]] = {}


def _sampler_for(plan: SamplePlan, conversion: ColourConversion) -> CudaSampler:
    key = (id(plan), id(conversion))
    hit = _samplers.get(key)
    if hit is not None and hit[0]() is plan and hit[1]() is conversion:
        return hit[2]
    sampler = CudaSampler(plan, conversion)
    if len(_samplers) > 16:
        _samplers.clear()
    _samplers[key] = (weakref.ref(plan), weakref.ref(conversion), sampler)
    return sampler


def sample_frame(planes: Sequence[Any], plan: SamplePlan, slot: int, conversion: ColourConversion, out: Any,
                 stream: Any = None) -> None:
    """`edgevqa.kernels.sample_frame` on the GPU: ``planes`` and ``out`` are CUDA arrays; runs on ``stream``
    (None: the legacy default stream; pass ``torch.cuda.current_stream()`` to follow torch)."""
    _sampler_for(plan, conversion).sample_frame(planes, slot, out, stream)


def sample(frames: Sequence[Sequence[Any]], plan: SamplePlan, conversion: ColourConversion, out: Any,
           stream: Any = None) -> Any:
    """`edgevqa.kernels.sample` on the GPU, one launch per 32 frames."""
    return _sampler_for(plan, conversion).sample(frames, out, stream)
