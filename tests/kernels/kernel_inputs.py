"""Generated inputs for the kernel tests: frames in every decoder format, odd plane layouts, small views.

Plane layouts follow what `edgevqa.decode` hands on: planar YUV (any subsampling, 8 to 16 bits), NV12 (two
views of one interleaved chroma plane), grey (chroma broadcast with zero strides), packed RGB/BGR (three
views with a column stride of 3), rotated frames (np.rot90 views with negative strides).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edgevqa.kernels.colour import rgb_passthrough, yuv_to_rgb_conversion
from edgevqa.manifest import ViewSpec
from edgevqa.sampling import SamplePlan, Taps, make_plan
from edgevqa.video import VideoInfo

SHARED_VIDEOS = Path(__file__).resolve().parents[3] / "shared" / "data" / "videos"

# name -> (chroma shift, bit depth, is_rgb, layout kind)
FORMATS = {
    "yuv420p": ((1, 1), 8, False, "planar"),
    "yuv422p": ((0, 1), 8, False, "planar"),
    "yuv444p": ((0, 0), 8, False, "planar"),
    "yuv420p10": ((1, 1), 10, False, "planar"),
    "yuv422p12": ((0, 1), 12, False, "planar"),
    "nv12": ((1, 1), 8, False, "semi"),
    "gray": ((0, 0), 8, False, "gray"),
    "gray10": ((0, 0), 10, False, "gray"),
    "rgb24": ((0, 0), 8, True, "packed"),
    "bgr24": ((0, 0), 8, True, "packed_bgr"),
    "gbrp10": ((0, 0), 10, True, "planar"),
}

STRIDE_VARIANTS = ("contiguous", "padded", "rot90", "rot180", "rot270", "flipped", "fortran", "column_step")

# Small views of each kind, so the NumPy reference stays fast.
SMALL_VIEWS = {
    "fragments": ViewSpec(kind="fragments", grid=(3, 2), patch=(5, 7), size=(15, 14), num_clips=2, clip_len=4,
                          frame_interval=1, aligned=2),
    "resize_crop": ViewSpec(kind="resize_crop", size=(9, 11), short_side=12, temporal="key_frames", num_clips=1,
                            clip_len=2),
    "clips": ViewSpec(kind="clips", size=(8, 10), temporal="per_second", num_clips=2, clip_len=3, frame_interval=1),
}


def chroma_size(size: int, shift: int) -> int:
    return -(-size >> shift) if shift else size


def with_layout(plane: np.ndarray, variant: str, rng: np.random.Generator) -> np.ndarray:
    """A view with the same content as ``plane`` and the memory layout ``variant``."""
    if variant == "contiguous":
        return np.ascontiguousarray(plane)
    if variant == "padded":  # FFmpeg line sizes: rows padded, the view cut to the width
        pad = int(rng.integers(1, 40))
        buf = np.zeros((plane.shape[0], plane.shape[1] + pad), plane.dtype)
        buf[:, : plane.shape[1]] = plane
        return buf[:, : plane.shape[1]]
    if variant.startswith("rot"):
        k = int(variant[3:]) // 90
        return np.rot90(np.ascontiguousarray(np.rot90(plane, -k)), k)
    if variant == "flipped":
        return np.ascontiguousarray(plane[::-1, ::-1])[::-1, ::-1]
    if variant == "fortran":
        return np.asfortranarray(plane)
    if variant == "column_step":
        step = int(rng.integers(2, 4))
        buf = np.zeros((plane.shape[0], plane.shape[1] * step), plane.dtype)
        buf[:, ::step] = plane
        return buf[:, ::step]
    raise ValueError(variant)


def make_frame(fmt: str, height: int, width: int, rng: np.random.Generator, variant: str = "contiguous",
               over_range: bool = False):
    """(planes, conversion, info kwargs) for one random frame of ``fmt``; ``over_range`` puts values above the
    bit depth's maximum into >8-bit planes (garbage high bits), which kernels must clamp like the reference."""
    shift, depth, is_rgb, kind = FORMATS[fmt]
    dtype = np.uint8 if depth == 8 else np.uint16
    top = 1 << 16 if over_range and depth > 8 else 1 << depth

    def plane(h, w):
        return rng.integers(0, top, size=(h, w)).astype(dtype)

    ch, cw = chroma_size(height, shift[0]), chroma_size(width, shift[1])
    if kind == "planar":
        planes = [plane(height, width), plane(ch, cw), plane(ch, cw)]
        planes = [with_layout(p, variant, rng) for p in planes]
    elif kind == "semi":
        luma = with_layout(plane(height, width), variant, rng)
        uv = np.ascontiguousarray(np.stack([plane(ch, cw), plane(ch, cw)], axis=-1).reshape(ch, 2 * cw))
        planes = [luma, uv[:, 0::2], uv[:, 1::2]]
    elif kind == "gray":
        luma = with_layout(plane(height, width), variant, rng)
        mid = np.full((1, 1), 1 << (depth - 1), dtype=dtype)
        grey = np.lib.stride_tricks.as_strided(mid, shape=luma.shape, strides=(0, 0), writeable=False)
        planes = [luma, grey, grey]
    else:
        packed = rng.integers(0, top, size=(height, width * 3)).astype(dtype)
        order = (0, 1, 2) if kind == "packed" else (2, 1, 0)
        planes = [packed[:, c::3] for c in order]
    if is_rgb:
        conversion = rgb_passthrough(depth)
    else:
        matrix = ("bt601", "bt709", "bt2020")[int(rng.integers(0, 3))]
        conversion = yuv_to_rgb_conversion(matrix, ("limited", "full")[int(rng.integers(0, 2))], depth)
    info = dict(width=width, height=height, bit_depth=depth, chroma_shift=shift, is_rgb=is_rgb)
    return planes, conversion, info


def video_info(num_frames: int = 200, fps: float = 25.0, **kwargs) -> VideoInfo:
    return VideoInfo(path="generated", num_frames=num_frames, fps=fps, duration=num_frames / fps, **kwargs)


def small_plan(kind: str, info: VideoInfo, layout: str = "NCTHW", dtype: str = "float32", seed=None,
               mode: str = "default") -> SamplePlan:
    view = dataclasses.replace(SMALL_VIEWS[kind], layout=layout, dtype=dtype)
    return make_plan(view, info, seed=seed, mode=mode)


def random_view_case(rng: np.random.Generator, fmt: str, kind: str, max_half_size: int):
    """A random odd-sized frame of ``fmt`` (random stride variant) and a ``kind`` plan for it, random layout
    and dtype: ``(planes, plan, conversion)``. Shared by the device tests so every device sees the same cases."""
    height, width = (int(v) * 2 + 1 for v in rng.integers(6, max_half_size, size=2))
    variant = STRIDE_VARIANTS[int(rng.integers(0, len(STRIDE_VARIANTS)))]
    planes, conversion, info = make_frame(fmt, height, width, rng, variant, over_range=bool(rng.integers(0, 2)))
    layout, dtype = ("NCTHW", "NTCHW")[int(rng.integers(0, 2))], ("float32", "float16")[int(rng.integers(0, 2))]
    plan = small_plan(kind, video_info(num_frames=int(rng.integers(3, 60)), **info), layout, dtype,
                      seed=int(rng.integers(0, 1000)))
    return planes, plan, conversion


def random_raw_case(rng: np.random.Generator, case: int, extreme: bool):
    """Case ``case`` of a random-taps sweep: ``(planes, plan, conversion)`` with arbitrary tap tables."""
    fmt = ("yuv420p", "yuv420p10", "rgb24", "nv12")[case % 4]
    planes, conversion, _ = make_frame(fmt, int(rng.integers(1, 25)), int(rng.integers(1, 25)), rng)
    plan = random_raw_plan(rng, planes, extreme, ("NCTHW", "NTCHW")[case % 2], ("float32", "float16")[case % 3 % 2])
    return planes, plan, conversion


def random_raw_plan(rng: np.random.Generator, planes, extreme_weights: bool = False, layout: str = "NCTHW",
                    dtype: str = "float32") -> SamplePlan:
    """A plan with arbitrary taps (any K, any int32 weights), slots and tap groups: the arithmetic's corners."""
    gh, gw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    th, tw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    groups = int(rng.integers(1, 4))
    n, t = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    frames = int(rng.integers(1, 4))

    def taps(length: int, limit: int) -> Taps:
        k = int(rng.integers(1, 5))
        index = rng.integers(0, limit, size=(groups, gh, gw, length, k)).astype(np.int32)
        if extreme_weights:
            weight = rng.integers(-(2 ** 31), 2 ** 31, size=index.shape, dtype=np.int64).astype(np.int32)
        else:
            weight = rng.integers(-3000, 20000, size=index.shape).astype(np.int32)
        return Taps(index, weight)

    luma, chroma = planes[0].shape, planes[1].shape
    view = ViewSpec(kind="fragments", grid=(gh, gw), patch=(th, tw), size=(gh * th, gw * tw), num_clips=n,
                    clip_len=t, aligned=1, layout=layout, dtype=dtype)
    return SamplePlan(view=view, source_size=luma, chroma_shift=(0, 0),
                      frame_indices=np.arange(frames, dtype=np.int64),
                      slots=rng.integers(0, frames, size=(n, t)).astype(np.int32),
                      tap_group=rng.integers(0, groups, size=(n, t)).astype(np.int32), grid=(gh, gw),
                      tile_size=(th, tw), luma_rows=taps(th, luma[0]),
                      luma_cols=taps(tw, luma[1]), chroma_rows=taps(th, min(chroma[0], planes[2].shape[0])),
                      chroma_cols=taps(tw, min(chroma[1], planes[2].shape[1])))


def sentinel_out(plan: SamplePlan) -> np.ndarray:
    """An output filled with a recognisable pattern, so untouched positions compare too."""
    out = np.empty(plan.output_shape, dtype=np.dtype(plan.view.dtype))
    out.view(np.uint8)[...] = 0xA5
    return out


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))
