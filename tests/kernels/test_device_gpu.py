"""The CUDA kernel on a real GPU against the NumPy reference, bit for bit (marked ``gpu``).

Runs on the lent GPU machine through ``kernels/cuda/gpu_check.sh``; skipped where cuda-python, a CUDA driver
or torch is missing. Device buffers are allocated with torch; planes with arbitrary (also negative and zero)
strides are handed over as ``__cuda_array_interface__`` views of them, torch tensors directly, and DLPack.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from edgevqa.errors import KernelError
from edgevqa.kernels import device, reference
from edgevqa.manifest import ViewSpec
from edgevqa.sampling import make_plan

from kernel_inputs import (FORMATS, SMALL_VIEWS, make_frame, random_raw_case, random_view_case, same_bits,
                           sentinel_out, small_plan, video_info)

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def torch():
    if not device.cuda_available():
        pytest.skip("no CUDA device (or cuda-python / the CUDA driver is missing)")
    torch = pytest.importorskip("torch", reason="the GPU tests allocate device memory with torch")
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    return torch


class CudaView:
    """A strided view of device memory described only by ``__cuda_array_interface__`` (negative strides too)."""

    def __init__(self, owner, ptr, shape, strides, typestr, readonly=False):
        self.owner = owner
        self.__cuda_array_interface__ = dict(shape=tuple(shape), strides=tuple(strides), typestr=typestr,
                                             data=(ptr, readonly), version=3)


def to_device(torch, array: np.ndarray) -> CudaView:
    """Upload the bytes a NumPy view spans and describe the same view on the device."""
    ptr = array.__array_interface__["data"][0]
    low = ptr + sum(min(0, (n - 1) * s) for n, s in zip(array.shape, array.strides))
    high = ptr + sum(max(0, (n - 1) * s) for n, s in zip(array.shape, array.strides)) + array.itemsize
    raw = np.frombuffer((ctypes.c_char * (high - low)).from_address(low), np.uint8).copy()
    buffer = torch.from_numpy(raw).cuda()
    typestr = {1: "|u1", 2: "<u2"}[array.itemsize] if array.dtype.kind == "u" else array.dtype.str
    return CudaView(buffer, buffer.data_ptr() + (ptr - low), array.shape, array.strides, typestr)


def empty_out(torch, plan):
    dtype = torch.float16 if plan.view.dtype == "float16" else torch.float32
    out = torch.empty(plan.output_shape, dtype=dtype, device="cuda")
    out.view(torch.uint8).fill_(0xA5)
    return out


def to_host(torch, out) -> np.ndarray:
    torch.cuda.synchronize()
    return out.cpu().numpy()


def assert_gpu_matches(torch, planes, plan, conversion, stream=None) -> None:
    want = sentinel_out(plan)
    out = empty_out(torch, plan)
    on_device = [to_device(torch, p) for p in planes]
    for slot in range(len(plan.frame_indices)):
        reference.sample_frame(planes, plan, slot, conversion, want)
        device.sample_frame(on_device, plan, slot, conversion, out, stream=stream)
    assert same_bits(to_host(torch, out), want)


@pytest.mark.parametrize("kind", sorted(SMALL_VIEWS))
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_and_view_kind(torch, fmt, kind):
    rng = np.random.default_rng([len(fmt), len(kind), 3])
    planes, plan, conversion = random_view_case(rng, fmt, kind, max_half_size=40)
    assert_gpu_matches(torch, planes, plan, conversion)


@pytest.mark.parametrize("extreme", [False, True])
def test_random_taps_and_weights(torch, extreme):
    rng = np.random.default_rng(41 + extreme)
    for case in range(12):
        planes, plan, conversion = random_raw_case(rng, case, extreme)
        assert_gpu_matches(torch, planes, plan, conversion)


def test_torch_tensors_dlpack_and_a_side_stream(torch):
    """NV12 as torch tensors (CAI), the output through DLPack only, all on a non-default stream."""
    rng = np.random.default_rng(43)
    planes, conversion, info = make_frame("nv12", 1080, 1920, rng)
    plan = make_plan(ViewSpec(dtype="float16"), video_info(num_frames=64, **info), seed=4)
    luma = torch.from_numpy(np.ascontiguousarray(planes[0])).cuda()
    uv = torch.from_numpy(np.ascontiguousarray(planes[1].base if planes[1].base is not None else planes[1])).cuda()
    uv = uv.reshape(planes[1].shape[0], -1)
    on_device = (luma, uv[:, 0::2], uv[:, 1::2])
    out = empty_out(torch, plan)

    class DLPackOnly:
        def __init__(self, tensor):
            self.tensor = tensor

        def __dlpack__(self, stream=None):
            return self.tensor.__dlpack__(stream=stream)

        def __dlpack_device__(self):
            return self.tensor.__dlpack_device__()

    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        for slot in (0, 7, len(plan.frame_indices) - 1):
            device.sample_frame(on_device, plan, slot, conversion, DLPackOnly(out), stream=side)
    side.synchronize()
    want = sentinel_out(plan)
    for slot in (0, 7, len(plan.frame_indices) - 1):
        reference.sample_frame(planes, plan, slot, conversion, want)
    assert same_bits(out.cpu().numpy(), want)


def test_many_frames_in_several_launches(torch):
    rng = np.random.default_rng(44)
    view = ViewSpec(kind="fragments", grid=(2, 2), patch=(4, 3), size=(8, 6), num_clips=3, clip_len=30,
                    frame_interval=1, aligned=8, layout="NTCHW")
    frames, conversion = [], None
    for _ in range(90):
        planes, conversion, info = make_frame("yuv420p", 19, 23, rng)
        frames.append(planes)
    plan = make_plan(view, video_info(num_frames=90, **info), seed=3)
    want = reference.sample(frames, plan, conversion)
    out = empty_out(torch, plan)
    device.sample([[to_device(torch, p) for p in planes] for planes in frames], plan, conversion, out)
    assert same_bits(to_host(torch, out), want)


def test_errors_are_kernel_errors(torch):
    rng = np.random.default_rng(45)
    planes, conversion, info = make_frame("yuv420p", 41, 43, rng)
    plan = small_plan("fragments", video_info(num_frames=8, **info))
    out = empty_out(torch, plan)
    on_device = [to_device(torch, p) for p in planes]
    with pytest.raises(KernelError, match="not in CUDA memory"):
        device.sample_frame(planes, plan, 0, conversion, out)
    with pytest.raises(KernelError, match="type"):
        device.sample_frame(on_device, plan, 0, conversion, out.half())
    with pytest.raises(KernelError, match="outside"):
        device.sample_frame([to_device(torch, planes[0][:9])] + on_device[1:], plan, 0, conversion, out)
