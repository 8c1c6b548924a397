"""Colour conversion constants shared by every sampling kernel.

YUV -> RGB uses 16-bit fixed-point coefficients derived from the matrix's (Kr, Kb) and the range, so that
NumPy, C and CUDA agree bit for bit (sampling.md section 5). For a stream of ``bit_depth`` bits:

    y = Y - y_offset;  u = U - c_mid;  v = V - c_mid
    R = (cy*y + crv*v + 2**(S-1)) >> S
    G = (cy*y - cgu*u - cgv*v + 2**(S-1)) >> S
    B = (cy*y + cbu*u + 2**(S-1)) >> S          each clamped to 0..255, S = 16

The 8-bit RGB value then indexes a per-channel table ``(value - mean) / std`` (float32 or float16).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgevqa.errors import KernelError

COEF_SHIFT = 16
# (Kr, Kb) of each matrix (ITU-R BT.601, BT.709, BT.2020 non-constant luminance).
MATRIX_KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}


@dataclass(frozen=True)
class ColourConversion:
    """How a frame's planes become 8-bit RGB: ``coefficients`` is int32 [y_offset, c_mid, cy, crv, cgu, cgv, cbu]."""

    is_rgb: bool
    bit_depth: int
    coefficients: np.ndarray

    @property
    def max_value(self) -> int:
        return (1 << self.bit_depth) - 1


def yuv_to_rgb_conversion(matrix: str = "bt601", colour_range: str = "limited", bit_depth: int = 8) -> ColourConversion:
    return ColourConversion(False, bit_depth, np.array(yuv_coefficients(matrix, colour_range, bit_depth), np.int32))


def yuv_coefficients(matrix: str, colour_range: str, bit_depth: int, rgb_max: int = 255) -> list[int]:
    """[y_offset, c_mid, cy, crv, cgu, cgv, cbu] of the formulas above, for R'G'B' of 0..``rgb_max`` (8-bit for
    sampling; `edgevqa.tonemap` takes 12 bits)."""
    if matrix not in MATRIX_KR_KB:
        raise KernelError(f"unknown colour matrix {matrix!r}; known: {sorted(MATRIX_KR_KB)}")
    if colour_range not in ("limited", "full"):
        raise KernelError(f"unknown colour range {colour_range!r}; expected 'limited' or 'full'")
    if not 8 <= bit_depth <= 16:
        raise KernelError(f"unsupported bit depth {bit_depth}; 8 to 16 bits are supported")
    kr, kb = MATRIX_KR_KB[matrix]
    kg = 1.0 - kr - kb
    depth_scale = float(1 << (bit_depth - 8))
    if colour_range == "limited":
        y_offset = 16 * (1 << (bit_depth - 8))
        y_gain = rgb_max / (219.0 * depth_scale)
        c_gain = rgb_max / (224.0 * depth_scale)
    else:
        y_offset = 0
        max_code = (1 << bit_depth) - 1
        y_gain = rgb_max / max_code
        c_gain = rgb_max / max_code
    one = float(1 << COEF_SHIFT)
    return [
        y_offset,
        1 << (bit_depth - 1),
        round(y_gain * one),
        round(c_gain * 2.0 * (1.0 - kr) * one),
        round(c_gain * 2.0 * (1.0 - kb) * kb / kg * one),
        round(c_gain * 2.0 * (1.0 - kr) * kr / kg * one),
        round(c_gain * 2.0 * (1.0 - kb) * one),
    ]


def rgb_passthrough(bit_depth: int = 8) -> ColourConversion:
    return ColourConversion(True, bit_depth, np.zeros(7, dtype=np.int32))


def conversion_for_frame(frame) -> ColourConversion:
    """The conversion for a `edgevqa.video.Frame`."""
    if frame.is_rgb:
        return rgb_passthrough(frame.bit_depth)
    return yuv_to_rgb_conversion(frame.color_matrix, frame.color_range, frame.bit_depth)


def normalisation_table(mean, std, dtype: str = "float32") -> np.ndarray:
    """``table[c, v] = (v - mean[c]) / std[c]`` for v in 0..255, computed in float64 then rounded to ``dtype``."""
    values = np.arange(256, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64)[:, None]
    std = np.asarray(std, dtype=np.float64)[:, None]
    return ((values[None, :] - mean) / std).astype(np.dtype(dtype))
