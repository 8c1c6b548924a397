"""The CUDA kernel's code and its Python launch packing, checked on the CPU (no GPU needed).

``kernels/cuda/sample.cu`` compiles for the host with ``EDGEVQA_HOST_EMULATION`` (the per-pixel function is
``__host__ __device__``); a small harness runs it over the launch grid that `edgevqa.kernels.device` packs,
with host addresses in place of device ones. What this leaves to the GPU test (marked ``gpu``): the driver
plumbing (NVRTC, modules, streams, CUDA array interface / DLPack of real device arrays).
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgevqa.errors import KernelError
from edgevqa.kernels import device, reference
from edgevqa.manifest import ViewSpec
from edgevqa.sampling import make_plan

from kernel_inputs import (FORMATS, SMALL_VIEWS, make_frame, random_raw_case, random_view_case, same_bits,
                           sentinel_out, small_plan, video_info)

SOURCE = Path(device.__file__).resolve().parent / "cuda" / "sample.cu"
HARNESS = r"""
#define EDGEVQA_HOST_EMULATION
#include "SOURCE"
#include <cstddef>

extern "C" void edgevqa_emulate(const void *params, int grid_x, int grid_y, int grid_z) {
    const SampleParams &p = *(const SampleParams *)params;
    u32 table[3 * 256];
    for (int e = 0; e < 3 * 256; e++)
        table[e] = p.half_out ? (u32)((const u16 *)p.table)[e] : ((const u32 *)p.table)[e];
    for (int bz = 0; bz < grid_z; bz++)
        for (int by = 0; by < grid_y; by++)
            for (int bx = 0; bx < grid_x; bx++)
                for (int ty = 0; ty < EDGEVQA_BLOCK_Y; ty++)
                    for (int tx = 0; tx < EDGEVQA_BLOCK_X; tx++)
                        sample_thread(p, table, bx, by, bz, tx, ty);
}

extern "C" int edgevqa_pixels_per_thread(void) { return EDGEVQA_PIXELS_PER_THREAD; }

extern "C" long edgevqa_layout(const char *field) {
    const char *names[] = {"tap_index", "tap_weight", "taps", "grid_h", "grid_w", "tile_h", "tile_w", "out",
                           "out_stride", "channels_first", "table", "coef", "is_rgb", "bit_depth", "wide",
                           "narrow_math", "half_out", "max_value", "identity", "num_jobs", "frames", "jobs", "sizeof"};
    const long offsets[] = {offsetof(SampleParams, tap_index), offsetof(SampleParams, tap_weight),
                            offsetof(SampleParams, taps), offsetof(SampleParams, grid_h),
                            offsetof(SampleParams, grid_w), offsetof(SampleParams, tile_h),
                            offsetof(SampleParams, tile_w), offsetof(SampleParams, out),
                            offsetof(SampleParams, out_stride), offsetof(SampleParams, channels_first),
                            offsetof(SampleParams, table), offsetof(SampleParams, coef),
                            offsetof(SampleParams, is_rgb), offsetof(SampleParams, bit_depth),
                            offsetof(SampleParams, wide), offsetof(SampleParams, narrow_math),
                            offsetof(SampleParams, half_out), offsetof(SampleParams, max_value),
                            offsetof(SampleParams, identity), offsetof(SampleParams, num_jobs), offsetof(SampleParams, frames),
                            offsetof(SampleParams, jobs), sizeof(SampleParams)};
    for (unsigned k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        const char *a = names[k], *b = field;
        while (*a && *a == *b) a++, b++;
        if (*a == *b) return offsets[k];
    }
    return -1;
}
"""


def build_emulator(folder: Path, pixels_per_thread: int | None = None, flags: dict[str, int] | None = None):
    compiler = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if compiler is None:
        pytest.skip("no C++ compiler to build the CUDA kernel's host emulation")
    (folder / "harness.cpp").write_text(HARNESS.replace("SOURCE", str(SOURCE)))
    name = "_".join(f"{k}{v}" for k, v in sorted((flags or {}).items()))
    library = folder / f"emulation_{pixels_per_thread}_{name}.so"
    define = [] if pixels_per_thread is None else [f"-DEDGEVQA_PIXELS_PER_THREAD={pixels_per_thread}"]
    define += [f"-DEDGEVQA_{k.upper()}={int(v)}" for k, v in sorted((flags or {}).items())]
    subprocess.run([compiler, "-O2", "-std=c++17", "-shared", "-fPIC", *define, "-o", str(library),
                    str(folder / "harness.cpp")], check=True, capture_output=True, text=True)
    lib = ctypes.CDLL(str(library))
    lib.edgevqa_emulate.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.edgevqa_layout.argtypes = [ctypes.c_char_p]
    lib.edgevqa_layout.restype = ctypes.c_long
    return lib


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """The kernel as compiled by default (the source's EDGEVQA_PIXELS_PER_THREAD)."""
    lib = build_emulator(tmp_path_factory.mktemp("cuda_emulation"))
    assert lib.edgevqa_pixels_per_thread() == device.PIXELS_PER_THREAD
    return lib


def host_array(array: np.ndarray) -> device.DeviceArray:
    typestr = {np.dtype(np.uint8): "|u1", np.dtype(np.uint16): "<u2", np.dtype(np.float16): "<f2",
               np.dtype(np.float32): "<f4"}[array.dtype]
    return device.DeviceArray(array.__array_interface__["data"][0], array.shape, array.strides, typestr,
                              readonly=not array.flags.writeable)


def emulate(lib, plan, conversion, frames, out) -> int:
    """Pack launches exactly as the GPU path does and run them on the CPU; returns the launch count."""
    tables = device._PlanTables(plan, conversion)
    pointers = {f"tap_index{k}": tables.index[k].ctypes.data for k in range(4)}
    pointers.update({f"tap_weight{k}": tables.weight[k].ctypes.data for k in range(4)})
    pointers["table"] = tables.table.ctypes.data
    described = [(slot, [host_array(p) for p in planes]) for slot, planes in frames]
    launches = device.plan_launches(tables, described, host_array(out), pointers, lib.edgevqa_pixels_per_thread())
    for launch in launches:
        assert launch.params.nbytes == lib.edgevqa_layout(b"sizeof")
        lib.edgevqa_emulate(launch.params.ctypes.data, *launch.grid)
    return len(launches)


def assert_emulation_matches(lib, planes, plan, conversion) -> None:
    want, got = sentinel_out(plan), sentinel_out(plan)
    for slot in range(len(plan.frame_indices)):
        reference.sample_frame(planes, plan, slot, conversion, want)
        emulate(lib, plan, conversion, [(slot, planes)], got)
    assert same_bits(got, want)


def test_parameter_block_layout_matches_the_kernel(emulator):
    for name, _ in device.PARAM_FIELDS:
        assert emulator.edgevqa_layout(name.encode()) == 8 * device._OFFSET[name], name
    assert emulator.edgevqa_layout(b"frames") == 8 * device.SCALAR_WORDS
    assert emulator.edgevqa_layout(b"jobs") == 8 * (device.SCALAR_WORDS + device.FRAME_WORDS * device.MAX_FRAMES)
    assert emulator.edgevqa_layout(b"sizeof") == 8 * device.PARAM_WORDS <= 4096
    text = SOURCE.read_text()
    assert f"#define EDGEVQA_MAX_FRAMES {device.MAX_FRAMES}" in text
    assert f"#define EDGEVQA_MAX_JOBS {device.MAX_JOBS}" in text
    assert f"#define EDGEVQA_BLOCK_X {device.BLOCK[0]}" in text and f"#define EDGEVQA_BLOCK_Y {device.BLOCK[1]}" in text


@pytest.mark.parametrize("kind", sorted(SMALL_VIEWS))
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_and_view_kind(emulator, fmt, kind):
    rng = np.random.default_rng([len(fmt), len(kind), 2])
    planes, plan, conversion = random_view_case(rng, fmt, kind, max_half_size=30)
    assert_emulation_matches(emulator, planes, plan, conversion)


@pytest.mark.parametrize("extreme", [False, True])
def test_random_taps_and_weights(emulator, extreme):
    rng = np.random.default_rng(31 + extreme)
    for case in range(20):
        planes, plan, conversion = random_raw_case(rng, case, extreme)
        assert_emulation_matches(emulator, planes, plan, conversion)


@pytest.mark.parametrize("pixels_per_thread", [1, 3])
def test_other_pixels_per_thread(tmp_path, pixels_per_thread):
    lib = build_emulator(tmp_path, pixels_per_thread)
    rng = np.random.default_rng(36 + pixels_per_thread)
    for fmt, kind in (("nv12", "fragments"), ("yuv420p10", "resize_crop"), ("rgb24", "clips")):
        planes, conversion, info = make_frame(fmt, 37, 53, rng, "padded")
        plan = small_plan(kind, video_info(num_frames=20, **info), "NTCHW", "float16", seed=5)
        assert_emulation_matches(lib, planes, plan, conversion)


@pytest.mark.parametrize("fmt,kind,dtype", [("nv12", "fragments", "float16"), ("yuv420p10", "resize_crop", "float32"),
                                              ("rgb24", "clips", "float16"), ("gray10", "fragments", "float32")])
def test_kernels_specialised_for_a_plan(tmp_path, fmt, kind, dtype):
    """The build the GPU path uses: the plan's flags fixed at compile time."""
    rng = np.random.default_rng([len(fmt), len(kind)])
    planes, conversion, info = make_frame(fmt, 229, 231, rng, "padded")
    plan = small_plan(kind, video_info(num_frames=12, **info), "NCTHW", dtype, seed=6)
    if kind == "fragments":  # a view the frame does not need resizing for: identity taps
        plan = make_plan(ViewSpec(num_clips=1, clip_len=4, frame_interval=1, dtype=dtype), video_info(
            num_frames=12, **info), seed=6)
    flags = device._PlanTables(plan, conversion).flags
    assert flags["identity"] == (kind == "fragments")
    lib = build_emulator(tmp_path, device.PIXELS_PER_THREAD, flags)
    assert_emulation_matches(lib, planes, plan, conversion)


def test_fast_vqa_view_on_a_1080p_frame(emulator):
    rng = np.random.default_rng(33)
    planes, conversion, info = make_frame("nv12", 1080, 1920, rng)
    plan = make_plan(ViewSpec(dtype="float16"), video_info(num_frames=120, **info), seed=2)
    want, got = sentinel_out(plan), sentinel_out(plan)
    reference.sample_frame(planes, plan, 5, conversion, want)
    emulate(emulator, plan, conversion, [(5, planes)], got)
    assert same_bits(got, want)


def test_many_frames_split_into_launches(emulator):
    """More than MAX_FRAMES frames and MAX_JOBS positions: several launches, same result."""
    rng = np.random.default_rng(34)
    view = ViewSpec(kind="fragments", grid=(2, 2), patch=(4, 3), size=(8, 6), num_clips=3, clip_len=30,
                    frame_interval=1, aligned=8, layout="NTCHW")
    frames, conversion = [], None
    for _ in range(90):
        planes, conversion, info = make_frame("yuv420p", 19, 23, rng)
        frames.append(planes)
    plan = make_plan(view, video_info(num_frames=90, **info), seed=3)
    assert len(plan.frame_indices) == 90
    want, got = reference.sample(frames, plan, conversion), sentinel_out(plan)
    launches = emulate(emulator, plan, conversion, list(enumerate(frames)), got)
    assert launches >= 3 and same_bits(got, want)


def test_launch_packing_rejects_bad_inputs():
    rng = np.random.default_rng(35)
    planes, conversion, info = make_frame("yuv420p10", 31, 33, rng)
    plan = small_plan("fragments", video_info(num_frames=8, **info))
    tables = device._PlanTables(plan, conversion)
    pointers = {f"tap_index{k}": 16 for k in range(4)} | {f"tap_weight{k}": 16 for k in range(4)} | {"table": 16}
    out = np.zeros(plan.output_shape, np.float32)
    good = [host_array(p) for p in planes]
    device.plan_launches(tables, [(0, good)], host_array(out), pointers)

    def rejects(frames, out_array, words):
        with pytest.raises(KernelError, match=words):
            device.plan_launches(tables, frames, out_array, pointers)

    odd = np.zeros((31, 34), np.uint16)[:, 1:]
    odd_view = device.DeviceArray(good[0].ptr + 1, good[0].shape, good[0].strides, "<u2")
    rejects([(0, good[:2])], host_array(out), "3 planes")
    rejects([(9, good)], host_array(out), "slot")
    rejects([(0, [host_array(planes[0].astype(np.uint8))] + good[1:])], host_array(out), "expected <u2")
    rejects([(0, [host_array(planes[0][:5])] + good[1:])], host_array(out), "outside")
    rejects([(0, [host_array(planes[0][None, 0])] + good[1:])], host_array(out), "outside|2 dimensions")
    rejects([(0, [odd_view] + good[1:])], host_array(out), "aligned")
    assert odd.size  # (an aligned uint16 view is fine; only the shifted pointer is not)
    rejects([(0, good)], host_array(out.astype(np.float16)), "type")
    rejects([(0, good)], host_array(out[:, :, :-1]), "shape")
    frozen = out.copy()
    frozen.flags.writeable = False
    rejects([(0, good)], host_array(frozen), "read-only")
    negative = dataclass_replace_taps(plan, -1)
    with pytest.raises(KernelError, match="negative"):
        device._PlanTables(negative, conversion)


def dataclass_replace_taps(plan, value):
    import dataclasses

    index = plan.luma_rows.index.copy()
    index.flat[0] = value
    return dataclasses.replace(plan, luma_rows=dataclasses.replace(plan.luma_rows, index=index))


# --------------------------------------------------------------------------------------------- array protocols


class FakeCudaArray:
    def __init__(self, **interface):
        self.__cuda_array_interface__ = interface


def test_cuda_array_interface_is_read_with_and_without_strides():
    a = device.describe_device_array(FakeCudaArray(shape=(4, 6), typestr="|u1", data=(4096, False), version=3),
                                     "plane")
    assert (a.ptr, a.shape, a.strides, a.typestr, a.readonly, a.stream) == (4096, (4, 6), (6, 1), "|u1", False, None)
    b = device.describe_device_array(FakeCudaArray(shape=(2, 3, 4, 5, 6), typestr="<f2", data=(8192, True),
                                                   strides=(-2, 4, 8, 16, 32), stream=7, version=3), "out")
    assert b.strides == (-2, 4, 8, 16, 32) and b.readonly and b.stream == 7 and b.itemsize == 2
    with pytest.raises(KernelError, match="malformed"):
        device.describe_device_array(FakeCudaArray(shape=(2,), typestr="|u1"), "plane")


def test_dlpack_capsules_are_read_and_host_arrays_refused():
    array = np.arange(2 * 3 * 5, dtype=np.uint16).reshape(2, 3, 5)[:, ::-1, ::2]
    described = device.describe_dlpack_capsule(array.__dlpack__(), "plane", require_cuda=False)
    assert described.ptr == array.__array_interface__["data"][0]
    assert described.shape == array.shape and described.strides == array.strides and described.typestr == "<u2"
    with pytest.raises(KernelError, match="not in CUDA memory"):
        device.describe_device_array(np.zeros((3, 3), np.uint8), "plane")
    with pytest.raises(KernelError, match="CUDA array"):
        device.describe_device_array([1, 2, 3], "plane")


def test_stream_handles():
    class TorchLike:
        cuda_stream = 1234

    class CupyLike:
        ptr = 99

    class CudaCoreLike:
        def __cuda_stream__(self):
            return (0, 77)

    assert [device.stream_handle(s) for s in (None, 5, TorchLike(), CupyLike(), CudaCoreLike())] == [0, 5, 1234, 99, 77]
    with pytest.raises(KernelError, match="stream"):
        device.stream_handle("default")


def test_kernel_source_is_package_data_without_includes():
    text = device.kernel_source()
    assert "edgevqa_sample" in text and not re.search(r"^\s*#\s*include", text, re.M)


def test_cuda_available_answers_without_raising():
    assert device.cuda_available() in (True, False)
