"""The NumPy reference for "apply a sampling plan to decoded frames": the specification of every kernel.

Arithmetic is the integer definition in `edgevqa.sampling` (taps) and `edgevqa.kernels.colour`
(YUV -> RGB), then a normalisation table lookup, so the C and CUDA kernels can match it bit for bit.
It is written for clarity over speed; it still never converts a pixel that the plan does not keep.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edgevqa.errors import KernelError
from edgevqa.sampling import SamplePlan, Taps

from .colour import ColourConversion, normalisation_table


def _check_planes(planes: Sequence[np.ndarray], conversion: ColourConversion) -> None:
    if len(planes) != 3:
        raise KernelError(f"expected 3 planes (Y, U, V or R, G, B), got {len(planes)}")
    want = np.uint8 if conversion.bit_depth == 8 else np.uint16
    for k, p in enumerate(planes):
        if not isinstance(p, np.ndarray) or p.ndim != 2:
            raise KernelError(f"plane {k} must be a 2-D numpy array, got {type(p).__name__} "
                              f"with {getattr(p, 'ndim', '?')} dims")
        if p.dtype != want:
            raise KernelError(f"plane {k} has dtype {p.dtype}, expected {np.dtype(want)} for "
                              f"{conversion.bit_depth}-bit input")
        if p.size == 0:
            raise KernelError(f"plane {k} is empty")


def _check_out(out: np.ndarray, plan: SamplePlan) -> None:
    if not isinstance(out, np.ndarray):
        raise KernelError(f"output must be a numpy array, got {type(out).__name__}")
    if out.shape != plan.output_shape:
        raise KernelError(f"output has shape {out.shape}, the plan makes {plan.output_shape}")
    if out.dtype != np.dtype(plan.view.dtype):
        raise KernelError(f"output has dtype {out.dtype}, the view asks for {plan.view.dtype}")


def _apply_taps(plane: np.ndarray, rows: Taps, cols: Taps, group: int, max_value: int) -> np.ndarray:
    """One plane through one tap group: the tiled output image, [gh*th, gw*tw] int64."""
    ri, rw = rows.index[group], rows.weight[group].astype(np.int64)  # [gh, gw, th, Ky]
    ci, cw = cols.index[group], cols.weight[group].astype(np.int64)  # [gh, gw, tw, Kx]
    if int(ri.max(initial=0)) >= plane.shape[0] or int(ci.max(initial=0)) >= plane.shape[1]:
        raise KernelError(f"plan reads outside a {plane.shape[0]}x{plane.shape[1]} plane: it was made for "
                          f"another frame size")
    # src[gh, gw, th, tw, Ky, Kx]
    src = plane[ri[:, :, :, None, :, None], ci[:, :, None, :, None, :]].astype(np.int64)
    horizontal = (src * cw[:, :, None, :, None, :]).sum(axis=-1)
    horizontal = (horizontal + 64) >> 7
    value = (horizontal * rw[:, :, :, None, :]).sum(axis=-1)
    value = np.clip((value + (1 << 20)) >> 21, 0, max_value)
    gh, gw, th, tw = value.shape
    return value.transpose(0, 2, 1, 3).reshape(gh * th, gw * tw)


def _to_rgb(channels: list[np.ndarray], conversion: ColourConversion) -> list[np.ndarray]:
    if conversion.is_rgb:
        if conversion.bit_depth > 8:
            return [c >> (conversion.bit_depth - 8) for c in channels]
        return channels
    y_off, c_mid, cy, crv, cgu, cgv, cbu = (int(v) for v in conversion.coefficients)
    y = channels[0] - y_off
    u = channels[1] - c_mid
    v = channels[2] - c_mid
    half = 1 << 15
    r = (cy * y + crv * v + half) >> 16
    g = (cy * y - cgu * u - cgv * v + half) >> 16
    b = (cy * y + cbu * u + half) >> 16
    return [np.clip(c, 0, 255) for c in (r, g, b)]


def sample_frame_rgb8(planes: Sequence[np.ndarray], plan: SamplePlan, group: int,
                      conversion: ColourConversion) -> np.ndarray:
    """The plan's output image for one frame and tap group as 8-bit RGB, [3, H_out, W_out] uint8."""
    _check_planes(planes, conversion)
    luma_like = conversion.is_rgb
    channels = []
    for k, plane in enumerate(planes):
        if k == 0 or luma_like:
            rows, cols = plan.luma_rows, plan.luma_cols
        else:
            rows, cols = plan.chroma_rows, plan.chroma_cols
        channels.append(_apply_taps(plane, rows, cols, group, conversion.max_value))
    return np.stack(_to_rgb(channels, conversion)).astype(np.uint8)


def sample_frame(planes: Sequence[np.ndarray], plan: SamplePlan, slot: int, conversion: ColourConversion,
                 out: np.ndarray) -> None:
    """Write every (clip, time) position that decoded frame ``slot`` feeds into ``out`` (the view's shape)."""
    _check_out(out, plan)
    if not 0 <= slot < len(plan.frame_indices):
        raise KernelError(f"slot {slot} is outside the plan's {len(plan.frame_indices)} frames")
    table = normalisation_table(plan.view.mean, plan.view.std, plan.view.dtype)
    nct = plan.view.layout == "NCTHW"
    cache: dict[int, np.ndarray] = {}
    for n, t in plan.uses_of_slot(slot):
        group = int(plan.tap_group[n, t])
        if group not in cache:
            rgb = sample_frame_rgb8(planes, plan, group, conversion)
            cache[group] = np.stack([table[c][rgb[c]] for c in range(3)])
        if nct:
            out[n, :, t] = cache[group]
        else:
            out[n, t] = cache[group]


def sample(frames: Sequence[Sequence[np.ndarray]], plan: SamplePlan, conversion: ColourConversion,
           out: np.ndarray | None = None, frame_kernel=None) -> np.ndarray:
    """Apply ``plan`` to ``frames`` (the planes of each of ``plan.frame_indices``, in order).

    ``frame_kernel`` (default: this module's `sample_frame`) lets other implementations reuse the loop.
    """
    frame_kernel = frame_kernel or sample_frame
    if len(frames) != len(plan.frame_indices):
        raise KernelError(f"the plan reads {len(plan.frame_indices)} frames, {len(frames)} were given")
    if out is None:
        out = np.empty(plan.output_shape, dtype=np.dtype(plan.view.dtype))
    for slot, planes in enumerate(frames):
        frame_kernel(planes, plan, slot, conversion, out)
    return out
