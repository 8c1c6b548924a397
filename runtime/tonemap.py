"""HDR to SDR tone mapping of one decoded frame, so HDR video is scored as an SDR screen shows it.

HDR video (PQ / HDR10, HLG: what phones record by default) codes light on curves an SDR model never saw. Read as
coded, as if SDR, a PQ picture looks dim and washed out and an HLG one flat and desaturated (BT.2020 primaries
read as BT.709), and a model trained on SDR video scores that look. So each sampled frame of such a video is
mapped to SDR BT.709 first, as a player does for an SDR screen:

1. Y'CbCr -> R'G'B' at 14 bits (fixed point, as `edgevqa.kernels.colour`; each pixel takes the chroma sample
   that covers it);
2. the transfer curve -> linear light per channel: PQ's EOTF (SMPTE ST 2084, absolute nits), or HLG's inverse
   OETF with the OOTF of a 1000-nit display (system gamma 1.2, applied per channel);
3. highlights compressed on max(R, G, B), which keeps hues: ITU-R BT.2390's EETF (a Hermite knee in the PQ
   domain) from the video's peak (MaxCLL, else the mastering display's peak, else 1000 nits) down to HDR
   reference white, 203 nits (ITU-R BT.2408), which becomes SDR white;
4. BT.2020 primaries -> BT.709 (linear light; colours outside BT.709 are clipped per channel);
5. BT.1886's inverse (gamma 1/2.4) -> R'G'B' at 12 bits;
6. R'G'B' -> 8-bit limited-range BT.709 Y'CbCr; each chroma sample from the mean R'G'B' of the pixels it
   covers, so the output keeps the input's chroma layout.

Every step after 1 runs in integers through tables made here in float64 (`ToneMap`), so the NumPy form
(`tone_map_planes_reference`, the specification) and the C form (`edgevqa.kernels._tonemap`, run by
`tone_map_planes` where it was built) agree bit for bit; ``EDGEVQA_TONEMAP_LIBRARY=/path/to/_tonemap*.so``
loads another build. `tone_map_planes_float` is the same mapping in float64, for the tests to bound the
integer form's rounding.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from edgevqa.errors import EdgeVQAError
from edgevqa.modes import checked_mode
from edgevqa.kernels.colour import MATRIX_KR_KB, yuv_coefficients
from edgevqa.kernels.extension import load_extension

# Which HDR frames are mapped to SDR: every frame of a PQ or HLG video (auto), or none (never: read as coded).
TONE_MAP_MODES = ("auto", "never")
TONE_MAPPED_TRANSFERS = ("pq", "hlg")
SDR_WHITE_NITS = 203.0  # HDR reference white (ITU-R BT.2408), shown as SDR white
DEFAULT_PEAK_NITS = 1000.0  # a PQ video's peak when it declares none; HLG's nominal display peak
HLG_SYSTEM_GAMMA = 1.2  # BT.2100's OOTF on a 1000-nit display

CODED_BITS = 14  # R'G'B' on the HDR curve (step 1): 0..16383; fewer bits show in colours at the gamut's edge
ENCODED_BITS = 12  # R'G'B' on the SDR curve (step 5): 0..4095
LINEAR_SHIFT = 24  # linear light: SDR white is 1 << 24
GAIN_SHIFT = 16  # tone-curve gain: 1.0 is 1 << 16
GAMUT_SHIFT = 14  # BT.2020 -> BT.709 matrix entries
OUT_SHIFT = 16  # R'G'B' -> Y'CbCr coefficients
# Linear -> R'G'B' (gamma 1/2.4) by table: values under 1 << ENCODE_FINE_BITS one entry each (the curve is
# steep near black), above it one entry per 1 << ENCODE_COARSE_SHIFT values, at the bin's middle.
ENCODE_FINE_BITS = 16
ENCODE_COARSE_SHIFT = 8

# PQ constants (SMPTE ST 2084) and HLG's (ARIB STD-B67, BT.2100).
_PQ_M1, _PQ_M2 = 2610 / 16384, 2523 / 4096 * 128
_PQ_C1, _PQ_C2, _PQ_C3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
_HLG_A, _HLG_B, _HLG_C = 0.17883277, 0.28466892, 0.55991073


def tone_map_mode(value: bool | str) -> str:
    """``value`` as one of `TONE_MAP_MODES` (True is "auto", False "never"); EdgeVQAError otherwise."""
    return checked_mode(value, TONE_MAP_MODES, "tone_map")


def pq_to_nits(signal: np.ndarray) -> np.ndarray:
    """PQ's EOTF: signal 0..1 -> absolute luminance in nits (0..10000)."""
    p = np.power(np.clip(signal, 0.0, 1.0), 1.0 / _PQ_M2)
    return 10000.0 * np.power(np.maximum(p - _PQ_C1, 0.0) / (_PQ_C2 - _PQ_C3 * p), 1.0 / _PQ_M1)


def nits_to_pq(nits: np.ndarray) -> np.ndarray:
    """PQ's inverse EOTF: nits -> signal 0..1."""
    y = np.power(np.clip(np.asarray(nits, np.float64) / 10000.0, 0.0, 1.0), _PQ_M1)
    return np.power((_PQ_C1 + _PQ_C2 * y) / (1.0 + _PQ_C3 * y), _PQ_M2)


def hlg_to_nits(signal: np.ndarray) -> np.ndarray:
    """HLG's inverse OETF, then the OOTF of a `DEFAULT_PEAK_NITS` display per channel: signal 0..1 -> nits."""
    e = np.clip(np.asarray(signal, np.float64), 0.0, 1.0)
    with np.errstate(over="ignore"):
        scene = np.where(e <= 0.5, e * e / 3.0, (np.exp((e - _HLG_C) / _HLG_A) + _HLG_B) / 12.0)
    return DEFAULT_PEAK_NITS * np.power(scene, HLG_SYSTEM_GAMMA)


def bt2390_eetf(nits: np.ndarray, peak_nits: float, target_nits: float = SDR_WHITE_NITS) -> np.ndarray:
    """ITU-R BT.2390's EETF (black at 0): luminance up to ``peak_nits`` -> up to ``target_nits``, the identity
    below the knee. Above the peak, the target."""
    nits = np.asarray(nits, np.float64)
    if peak_nits <= target_nits:
        return np.minimum(nits, target_nits)
    source_max = nits_to_pq(peak_nits)
    e1 = np.minimum(nits_to_pq(nits) / source_max, 1.0)
    max_lum = nits_to_pq(target_nits) / source_max
    knee = 1.5 * max_lum - 0.5
    t = (e1 - knee) / (1.0 - knee)
    spline = ((2 * t**3 - 3 * t**2 + 1) * knee + (t**3 - 2 * t**2 + t) * (1.0 - knee)
              + (-2 * t**3 + 3 * t**2) * max_lum)
    e2 = np.where(e1 < knee, e1, spline)
    return pq_to_nits(e2 * source_max)


def _primaries_to_xyz(xy: list[tuple[float, float]], white: tuple[float, float]) -> np.ndarray:
    m = np.array([[x / y for x, y in xy], [1.0, 1.0, 1.0], [(1 - x - y) / y for x, y in xy]])
    w = np.array([white[0] / white[1], 1.0, (1 - white[0] - white[1]) / white[1]])
    return m * np.linalg.solve(m, w)[None, :]


_D65 = (0.3127, 0.3290)
_BT709_XY = [(0.640, 0.330), (0.300, 0.600), (0.150, 0.060)]
_BT2020_XY = [(0.708, 0.292), (0.170, 0.797), (0.131, 0.046)]
# Linear BT.2020 RGB -> linear BT.709 RGB (about [[1.66, -0.59, -0.07], [-0.12, 1.13, -0.01], [-0.02, -0.10, 1.12]]).
BT2020_TO_BT709 = np.linalg.solve(_primaries_to_xyz(_BT709_XY, _D65), _primaries_to_xyz(_BT2020_XY, _D65))


@dataclass(frozen=True, eq=False)
class ToneMap:
    """The integer tables of one mapping (`tone_map_for`): input ``matrix``/``colour_range``/``bit_depth``,
    ``transfer``, ``peak_nits`` (the luminance mapped to SDR white's)."""

    transfer: str
    peak_nits: float
    matrix: str
    colour_range: str
    bit_depth: int
    to_rgb: np.ndarray  # int32 [y_offset, c_mid, cy, crv, cgu, cgv, cbu] to 14-bit R'G'B'
    linear: np.ndarray  # int32 [16384]: R'G'B' code -> linear light, SDR white = 1 << LINEAR_SHIFT
    gain: np.ndarray  # int32 [16384]: max(R'G'B') code -> tone-curve gain, 1.0 = 1 << GAIN_SHIFT
    gamut: np.ndarray  # int32 [9]: row-major BT.2020 -> BT.709, 1.0 = 1 << GAMUT_SHIFT
    encode: np.ndarray  # uint16 [2 ** 16 + 2 ** 16 + 1]: linear -> 12-bit R'G'B' (see ENCODE_FINE_BITS)
    to_yuv: np.ndarray  # int32 [9]: rows Y', Cb, Cr of 12-bit R'G'B' -> 8-bit, 1.0 = 1 << OUT_SHIFT


def _fixed(values, shift: int) -> np.ndarray:
    return np.round(np.asarray(values, np.float64) * (1 << shift)).astype(np.int32)


@functools.lru_cache(maxsize=16)
def tone_map_for(transfer: str, matrix: str, colour_range: str, bit_depth: int,
                 peak_nits: float | None = None) -> ToneMap:
    """The mapping of ``transfer`` ("pq" or "hlg") video in ``matrix``, ``colour_range``, ``bit_depth``.
    ``peak_nits``: a PQ video's declared peak (None: `DEFAULT_PEAK_NITS`); HLG ignores it."""
    if transfer not in TONE_MAPPED_TRANSFERS:
        raise EdgeVQAError(f"no tone mapping for the {transfer!r} transfer; known: {', '.join(TONE_MAPPED_TRANSFERS)}")
    coded_max, rgb_max = (1 << CODED_BITS) - 1, (1 << ENCODED_BITS) - 1
    to_rgb = np.asarray(yuv_coefficients(matrix, colour_range, bit_depth, coded_max), np.int32)
    signal = np.arange(coded_max + 1, dtype=np.float64) / coded_max
    if transfer == "pq":
        peak = DEFAULT_PEAK_NITS if not peak_nits or peak_nits <= 0 else float(peak_nits)
        nits = pq_to_nits(signal)
    else:
        peak = DEFAULT_PEAK_NITS
        nits = hlg_to_nits(signal)
    peak = min(max(peak, SDR_WHITE_NITS), 10000.0)
    linear = _fixed(nits / SDR_WHITE_NITS, LINEAR_SHIFT)
    # The gain each pixel's channels take, from its largest channel's linear value (as the table holds it).
    brightest = linear.astype(np.float64) / (1 << LINEAR_SHIFT) * SDR_WHITE_NITS
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(brightest > 0, bt2390_eetf(brightest, peak) / brightest, 1.0)
    gamut = BT2020_TO_BT709 if matrix == "bt2020" else np.eye(3)  # BT.2020 video is taken as in BT.2020 primaries
    coarse_bins = np.arange((1 << LINEAR_SHIFT >> ENCODE_COARSE_SHIFT) + 1, dtype=np.float64)
    coarse_at = (coarse_bins * (1 << ENCODE_COARSE_SHIFT) + ((1 << ENCODE_COARSE_SHIFT) - 1) / 2.0)
    fine_at = np.arange(1 << ENCODE_FINE_BITS, dtype=np.float64)
    encode_at = np.concatenate([fine_at, coarse_at]) / (1 << LINEAR_SHIFT)
    encode = np.round(rgb_max * np.power(np.clip(encode_at, 0.0, 1.0), 1.0 / 2.4)).astype(np.uint16)
    kr, kb = MATRIX_KR_KB["bt709"]
    kg = 1.0 - kr - kb
    y_row = np.array([kr, kg, kb]) * 219.0 / rgb_max
    cb_row = np.array([-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5]) * 224.0 / rgb_max
    cr_row = np.array([0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))]) * 224.0 / rgb_max
    return ToneMap(transfer=transfer, peak_nits=peak, matrix=matrix, colour_range=colour_range,
                   bit_depth=bit_depth, to_rgb=to_rgb, linear=linear, gain=_fixed(gain, GAIN_SHIFT),
                   gamut=_fixed(gamut, GAMUT_SHIFT).reshape(9), encode=encode,
                   to_yuv=_fixed(np.stack([y_row, cb_row, cr_row]), OUT_SHIFT).reshape(9))


def _check_planes(planes, chroma_shift, tone_map: ToneMap) -> tuple[int, int, int, int]:
    if len(planes) != 3 or any(np.ndim(p) != 2 for p in planes):
        raise EdgeVQAError("tone mapping needs three 2-D planes (Y, Cb, Cr)")
    sy, sx = (int(s) for s in chroma_shift)
    if not (0 <= sy <= 2 and 0 <= sx <= 2):
        raise EdgeVQAError(f"chroma subsampling shifts must be 0..2, got {chroma_shift}")
    height, width = planes[0].shape
    chroma = (-(-height >> sy), -(-width >> sx))
    if tuple(planes[1].shape) != chroma or tuple(planes[2].shape) != chroma:
        raise EdgeVQAError(f"chroma planes are {planes[1].shape} and {planes[2].shape}; a {height}x{width} luma "
                           f"plane with shifts {chroma_shift} has {chroma}")
    wanted = np.uint8 if tone_map.bit_depth == 8 else np.uint16
    if any(np.asarray(p).dtype != wanted for p in planes):
        raise EdgeVQAError(f"{tone_map.bit_depth}-bit planes must be {np.dtype(wanted).name}, got "
                           f"{', '.join(np.asarray(p).dtype.name for p in planes)}")
    return height, width, sy, sx


def _block_sums(values: np.ndarray, shift_rows: int, shift_cols: int) -> np.ndarray:
    """Sums of ``values`` over the blocks of (1 << shift_rows) x (1 << shift_cols) that chroma samples cover;
    blocks cut by the frame's edge sum what they hold."""
    height, width = values.shape
    block_rows, block_cols = 1 << shift_rows, 1 << shift_cols
    padded = np.zeros((-(-height // block_rows) * block_rows, -(-width // block_cols) * block_cols), values.dtype)
    padded[:height, :width] = values
    return padded.reshape(padded.shape[0] // block_rows, block_rows, padded.shape[1] // block_cols,
                          block_cols).sum(axis=(1, 3))


def tone_map_planes_reference(planes, chroma_shift, tone_map: ToneMap) -> list[np.ndarray]:
    """The specification: HDR ``planes`` (Y, Cb, Cr at ``tone_map.bit_depth``; chroma subsampled by
    ``chroma_shift`` = (rows, cols) log2) -> new uint8 planes of 8-bit limited-range BT.709 Y'CbCr, the
    chroma planes the input's shape."""
    height, width, sy, sx = _check_planes(planes, chroma_shift, tone_map)
    luma = np.asarray(planes[0], np.int64)
    rows, cols = np.arange(height) >> sy, np.arange(width) >> sx
    cb = np.asarray(planes[1], np.int64)[rows[:, None], cols[None, :]]
    cr = np.asarray(planes[2], np.int64)[rows[:, None], cols[None, :]]
    y_offset, c_mid, cy, crv, cgu, cgv, cbu = (int(v) for v in tone_map.to_rgb)
    y, u, v = cy * (luma - y_offset), cb - c_mid, cr - c_mid
    half = 1 << 15
    top = (1 << CODED_BITS) - 1
    codes = [np.clip((y + crv * v + half) >> 16, 0, top), np.clip((y - cgu * u - cgv * v + half) >> 16, 0, top),
             np.clip((y + cbu * u + half) >> 16, 0, top)]
    linear_table = tone_map.linear.astype(np.int64)
    gain = tone_map.gain.astype(np.int64)[np.maximum(np.maximum(codes[0], codes[1]), codes[2])]
    linear = [(linear_table[c] * gain + (1 << (GAIN_SHIFT - 1))) >> GAIN_SHIFT for c in codes]
    m = tone_map.gamut.astype(np.int64).reshape(3, 3)
    one = 1 << LINEAR_SHIFT
    encoded = []
    for r in range(3):
        mixed = (m[r, 0] * linear[0] + m[r, 1] * linear[1] + m[r, 2] * linear[2]
                 + (1 << (GAMUT_SHIFT - 1))) >> GAMUT_SHIFT
        mixed = np.clip(mixed, 0, one)
        index = np.where(mixed < (1 << ENCODE_FINE_BITS), mixed,
                         (1 << ENCODE_FINE_BITS) + (mixed >> ENCODE_COARSE_SHIFT))
        encoded.append(tone_map.encode.astype(np.int64)[index])
    k = tone_map.to_yuv.astype(np.int64).reshape(3, 3)
    out_half = 1 << (OUT_SHIFT - 1)
    out_luma = (k[0, 0] * encoded[0] + k[0, 1] * encoded[1] + k[0, 2] * encoded[2] + (16 << OUT_SHIFT)
                + out_half) >> OUT_SHIFT
    # Chroma: the sum of each block's R'G'B' over its pixel count, rounded.
    count = _block_sums(np.ones((height, width), np.int64), sy, sx)
    sums = [_block_sums(channel, sy, sx) for channel in encoded]
    out = [np.clip(out_luma, 0, 255).astype(np.uint8)]
    for r in (1, 2):
        numerator = k[r, 0] * sums[0] + k[r, 1] * sums[1] + k[r, 2] * sums[2] + count * (128 << OUT_SHIFT)
        denominator = count << OUT_SHIFT
        out.append(np.clip((np.maximum(numerator, 0) + denominator // 2) // denominator, 0, 255).astype(np.uint8))
    return out


def tone_map_planes_float(planes, chroma_shift, tone_map: ToneMap) -> list[np.ndarray]:
    """The same mapping in float64 with no tables or fixed point (each step's formula applied as written):
    what the integer form approximates. Returns float64 planes in 8-bit levels, unrounded."""
    height, width, sy, sx = _check_planes(planes, chroma_shift, tone_map)
    depth_scale = float(1 << (tone_map.bit_depth - 8))
    kr, kb = MATRIX_KR_KB[tone_map.matrix]
    kg = 1.0 - kr - kb
    rows, cols = np.arange(height) >> sy, np.arange(width) >> sx
    luma = np.asarray(planes[0], np.float64)
    cb = np.asarray(planes[1], np.float64)[rows[:, None], cols[None, :]]
    cr = np.asarray(planes[2], np.float64)[rows[:, None], cols[None, :]]
    if tone_map.colour_range == "limited":
        y = (luma - 16 * depth_scale) / (219 * depth_scale)
        u, v = (cb - 128 * depth_scale) / (224 * depth_scale), (cr - 128 * depth_scale) / (224 * depth_scale)
    else:
        full = (1 << tone_map.bit_depth) - 1
        mid = 1 << (tone_map.bit_depth - 1)
        y, u, v = luma / full, (cb - mid) / full, (cr - mid) / full
    rgb = np.clip(np.stack([y + 2 * (1 - kr) * v, y - 2 * (1 - kb) * kb / kg * u - 2 * (1 - kr) * kr / kg * v,
                            y + 2 * (1 - kb) * u]), 0.0, 1.0)
    nits = pq_to_nits(rgb) if tone_map.transfer == "pq" else hlg_to_nits(rgb)
    brightest = nits.max(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(brightest > 0, bt2390_eetf(brightest, tone_map.peak_nits) / brightest, 1.0)
    linear = nits * gain / SDR_WHITE_NITS
    gamut = BT2020_TO_BT709 if tone_map.matrix == "bt2020" else np.eye(3)
    linear = np.clip(np.einsum("rc,chw->rhw", gamut, linear), 0.0, 1.0)
    encoded = np.power(linear, 1.0 / 2.4)
    kr, kb = MATRIX_KR_KB["bt709"]
    kg = 1.0 - kr - kb
    out_y = 16 + 219 * (kr * encoded[0] + kg * encoded[1] + kb * encoded[2])
    count = _block_sums(np.ones((height, width)), sy, sx)
    mean = [_block_sums(channel, sy, sx) / count for channel in encoded]
    out_cb = 128 + 224 * (-kr * mean[0] - kg * mean[1] + (1 - kb) * mean[2]) / (2 * (1 - kb))
    out_cr = 128 + 224 * ((1 - kr) * mean[0] - kg * mean[1] - kb * mean[2]) / (2 * (1 - kr))
    return [out_y, out_cb, out_cr]


def tone_map_region(planes, chroma_shift, tone_map: ToneMap, rows, cols) -> list[np.ndarray]:
    """`tone_map_planes`' result where luma rows ``rows`` cross luma columns ``cols`` (any order, repeats
    allowed), and the chroma samples of those pixels; every other sample of the returned planes is 0. Each
    row and column is taken with the others of its chroma block, so the computed samples equal the whole
    frame's bit for bit. A sampling plan reads a few percent of a frame (FAST-VQA fragments: 224 of 1080
    rows and 224 of 1920 columns), and the rest need not be mapped."""
    height, width, sy, sx = _check_planes(planes, chroma_shift, tone_map)

    def whole_blocks(indices, shift: int, size: int) -> np.ndarray:
        blocks = np.unique(np.asarray(indices, np.int64) >> shift)
        if blocks.size and (blocks[0] < 0 or blocks[-1] << shift >= size):
            raise EdgeVQAError(f"tone_map_region: indices outside the {height}x{width} frame")
        full = (blocks[:, None] << shift) + np.arange(1 << shift)[None, :]
        return full[full < size]

    luma_rows, luma_cols = whole_blocks(rows, sy, height), whole_blocks(cols, sx, width)
    chroma_rows, chroma_cols = np.unique(luma_rows >> sy), np.unique(luma_cols >> sx)
    # The picked rows and columns form a smaller picture with the same block structure (whole blocks, the
    # frame's last one as cut as in the frame): mapped as a picture of its own, it gives the same samples.
    picked = [np.asarray(planes[0])[np.ix_(luma_rows, luma_cols)]] + [
        np.asarray(p)[np.ix_(chroma_rows, chroma_cols)] for p in planes[1:]]
    mapped = tone_map_planes(picked, chroma_shift, tone_map)
    out = [np.zeros((height, width), np.uint8)] + [np.zeros(np.shape(p), np.uint8) for p in planes[1:]]
    out[0][np.ix_(luma_rows, luma_cols)] = mapped[0]
    for whole, part in zip(out[1:], mapped[1:]):
        whole[np.ix_(chroma_rows, chroma_cols)] = part
    return out


def hlg_from_nits(nits: np.ndarray) -> np.ndarray:
    """`hlg_to_nits`' inverse: display nits -> HLG signal 0..1."""
    scene = np.power(np.clip(np.asarray(nits, np.float64) / DEFAULT_PEAK_NITS, 0.0, 1.0), 1.0 / HLG_SYSTEM_GAMMA)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(scene <= 1.0 / 12.0, np.sqrt(3.0 * scene),
                        _HLG_A * np.log(np.maximum(12.0 * scene - _HLG_B, 1e-12)) + _HLG_C)


def sdr_to_hdr_planes(rgb: np.ndarray, transfer: str = "pq", bit_depth: int = 10) -> list[np.ndarray]:
    """An 8-bit SDR BT.709 picture (uint8 RGB ``[H, W, 3]``) as HDR would carry it, without highlight expansion:
    SDR white at 203 nits, BT.709 primaries inside BT.2020, on ``transfer``'s curve, as limited-range BT.2020
    Y'CbCr 4:2:0 planes of ``bit_depth`` bits (chroma: the mean of each 2x2 block). What an SDR-to-HDR
    conversion gives; `tone_map_planes` takes it back to about the same picture (tests, the tone-mapping bench)."""
    height, width = rgb.shape[:2]
    linear = np.power(rgb.astype(np.float64) / 255.0, 2.4) * SDR_WHITE_NITS
    wide = np.einsum("rc,hwc->hwr", np.linalg.inv(BT2020_TO_BT709), linear)
    signal = nits_to_pq(wide) if transfer == "pq" else hlg_from_nits(wide)
    kr, kb = MATRIX_KR_KB["bt2020"]
    kg = 1.0 - kr - kb
    y = kr * signal[..., 0] + kg * signal[..., 1] + kb * signal[..., 2]
    cb, cr = (signal[..., 2] - y) / (2 * (1 - kb)), (signal[..., 0] - y) / (2 * (1 - kr))
    scale = float(1 << (bit_depth - 8))
    top = (1 << bit_depth) - 1
    count = _block_sums(np.ones((height, width)), 1, 1)

    def quantised(values, offset, gain):
        return np.clip(np.round((offset + gain * values) * scale), 0, top).astype(np.uint16)

    return [quantised(y, 16, 219), quantised(_block_sums(cb, 1, 1) / count, 128, 224),
            quantised(_block_sums(cr, 1, 1) / count, 128, 224)]


try:
    _compiled = load_extension("_tonemap", "EDGEVQA_TONEMAP_LIBRARY")
except ImportError:  # built without a C compiler: the reference does the work
    _compiled = None


def tone_map_planes(planes, chroma_shift, tone_map: ToneMap) -> list[np.ndarray]:
    """`tone_map_planes_reference`'s result, from the C form where it was built."""
    height, width, _, _ = _check_planes(planes, chroma_shift, tone_map)
    if _compiled is None or any(not np.asarray(p).flags.aligned for p in planes):
        return tone_map_planes_reference(planes, chroma_shift, tone_map)
    out = [np.empty((height, width), np.uint8), np.empty(planes[1].shape, np.uint8),
           np.empty(planes[1].shape, np.uint8)]
    _compiled.tone_map(*planes, *out, int(chroma_shift[0]), int(chroma_shift[1]), int(tone_map.bit_depth),
                       tone_map.to_rgb, tone_map.linear, tone_map.gain, tone_map.gamut, tone_map.encode,
                       tone_map.to_yuv)
    return out
