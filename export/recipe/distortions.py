"""Synthetic distortions with a controlled severity per quality dimension, and the scores they imply.

The default model is trained on pristine content degraded on purpose, because no labelled VQA set (and no
public weights) can be downloaded where edgevqa is built or deployed. The distortion families follow the
synthetic-distortion literature (LIVE/CSIQ-style Gaussian blur, white noise and JPEG/H.264 compression;
KADID-10k's colour and banding families) and the six dimensions of the NTIRE 2025 UGC track (color, noise,
artifact, blur, temporal, overall).

Frames are RGB float32 arrays ``[T, H, W, 3]`` on the 0..255 scale. Every family takes a severity ``s`` in
[0, 1]; ``s = 0`` leaves the frames unchanged. What a severity means, per family:

==========  ==================  ===============================================================================
dimension   kind                severity s ->
==========  ==================  ===============================================================================
blur        gaussian            Gaussian kernel, sigma = 3.5 s px
            defocus             uniform disk, radius = 6 s px
            motion              line of length 1 + 14 s px at a random angle (one per clip)
noise       gaussian_luma       N(0, 28 s) added to Y' (BT.601 full-range Y'CbCr), fresh every frame
            gaussian_chroma     N(0, 28 s) added to Cb and Cr
            gaussian_rgb        N(0, 22 s) added to each of R, G, B independently
            poisson             photon noise of variance x / k, k = 128 / (24 s)^2 (std 24 s at x = 128),
                                drawn as the Gaussian of that variance
artifact    h264_crf            the final libx264 encode uses CRF 12 + 39 s (instead of the pristine CRF 12)
            h264_bitrate        the final libx264 encode targets 2.0 * 0.004^s bits per pixel
            jpeg                8x8 DCT quantisation of Y'CbCr with the JPEG (ITU T.81 Annex K) tables scaled
                                for quality 95 - 90 s, 4:2:0 chroma, then the pristine CRF 12 encode
color       desaturate          chroma scaled by 1 - s
            cast                Cb, Cr shifted by 45 s in a random hue direction (per clip)
            banding             each channel quantised to 256 / 2^(5 s) levels (8 levels at s = 1)
temporal    freeze              random holds of 2 .. 2 + 6 s frames covering about 75 s % of the clip
            stutter             frame-rate drop: show source frame k * floor(i / k), k = 1 + round(5 s)
            shake               per-frame random camera translation, amplitude 10 s px
            flicker             per-frame brightness gain 1 + 0.35 s u, u uniform in [-1, 1]
==========  ==================  ===============================================================================

Targets (0..100, higher is better):

    score_d  = 100 * (1 - s_d) ** GAMMA                                  for d in blur, noise, artifact, color,
                                                                          temporal (GAMMA = 1)
    overall  = 100 * prod_d (1 - OVERALL_WEIGHT[d] * s_d)                 weights: blur .9, noise .8,
                                                                          artifact .9, color .7, temporal .8

so a single distortion at full severity costs its dimension everything and the overall score 70-90 %, and
the overall score falls monotonically with every severity.

Order in the pixel domain (as a camera and a delivery chain would add them): temporal resampling (freeze,
stutter) -> shake -> blur -> noise -> colour -> flicker -> JPEG blocking; then the clip is encoded with
libx264 (the artifact dimension's H.264 kinds set the encoder's rate control), so compression is real.

A dimension whose distortion, alone, changes no pixel of the clip (desaturating greyscale content, freezing a
still scene) is labelled pristine: `without_no_ops`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

DIMENSIONS = ("color", "noise", "artifact", "blur", "temporal")
OUTPUT_NAMES = ("overall",) + DIMENSIONS
KINDS: dict[str, tuple[str, ...]] = {
    "blur": ("gaussian", "defocus", "motion"),
    "noise": ("gaussian_luma", "gaussian_chroma", "gaussian_rgb", "poisson"),
    "artifact": ("h264_crf", "h264_bitrate", "jpeg"),
    "color": ("desaturate", "cast", "banding"),
    "temporal": ("freeze", "stutter", "shake", "flicker"),
}
GAMMA = 1.0
OVERALL_WEIGHT = {"blur": 0.9, "noise": 0.8, "artifact": 0.9, "color": 0.7, "temporal": 0.8}
PRISTINE_CRF = 12


# ------------------------------------------------------------------------------------------ targets


def dimension_score(severity: float) -> float:
    """The 0..100 target of one dimension at ``severity`` (see the module docstring)."""
    s = min(max(float(severity), 0.0), 1.0)
    return 100.0 * (1.0 - s) ** GAMMA


def overall_score(severities: Mapping[str, float]) -> float:
    """The 0..100 overall target for a severity per dimension (missing dimensions are pristine)."""
    value = 1.0
    for dim in DIMENSIONS:
        s = min(max(float(severities.get(dim, 0.0)), 0.0), 1.0)
        value *= 1.0 - OVERALL_WEIGHT[dim] * s
    return 100.0 * value


def target_scores(severities: Mapping[str, float]) -> dict[str, float]:
    """Targets for every output name (``OUTPUT_NAMES``)."""
    unknown = set(severities) - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"unknown distortion dimensions {sorted(unknown)}; known: {DIMENSIONS}")
    scores = {"overall": overall_score(severities)}
    for dim in DIMENSIONS:
        scores[dim] = dimension_score(severities.get(dim, 0.0))
    return scores


# ------------------------------------------------------------------------------------------ specs


@dataclass(frozen=True)
class Distortion:
    """One clip's distortions: ``severity[dim]`` in [0, 1] and ``kind[dim]`` for every distorted dimension."""

    severity: Mapping[str, float] = field(default_factory=dict)
    kind: Mapping[str, str] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        for dim, s in self.severity.items():
            if dim not in DIMENSIONS:
                raise ValueError(f"unknown distortion dimension {dim!r}; known: {DIMENSIONS}")
            if not 0.0 <= float(s) <= 1.0:
                raise ValueError(f"severity of {dim} must be in [0, 1], got {s}")
            kind = self.kind.get(dim)
            if float(s) > 0 and kind not in KINDS[dim]:
                raise ValueError(f"{dim} needs a kind from {KINDS[dim]}, got {kind!r}")

    def level(self, dim: str) -> float:
        return float(self.severity.get(dim, 0.0))

    def targets(self) -> dict[str, float]:
        return target_scores({d: self.level(d) for d in DIMENSIONS})

    def to_dict(self) -> dict[str, Any]:
        return {"severity": {d: round(float(s), 6) for d, s in sorted(self.severity.items())},
                "kind": dict(sorted(self.kind.items())), "seed": int(self.seed)}


def random_distortion(rng: np.random.Generator, pristine: float = 0.12, single: float = 0.48) -> Distortion:
    """A training draw: pristine with probability ``pristine``, one dimension with ``single``, else 2-3."""
    u = rng.random()
    if u < pristine:
        dims: list[str] = []
    elif u < pristine + single:
        dims = [str(rng.choice(DIMENSIONS))]
    else:
        dims = [str(d) for d in rng.choice(DIMENSIONS, size=int(rng.integers(2, 4)), replace=False)]
    severity = {d: float(rng.uniform(0.05, 1.0)) for d in dims}
    kind = {d: str(rng.choice(KINDS[d])) for d in dims}
    return Distortion(severity, kind, int(rng.integers(0, 2**31 - 1)))


# ------------------------------------------------------------------------------------------ colour space

# BT.601 full-range Y'CbCr; the JPEG (JFIF) convention.
_RGB_TO_YCC = np.array([[0.299, 0.587, 0.114],
                        [-0.168736, -0.331264, 0.5],
                        [0.5, -0.418688, -0.081312]], dtype=np.float32)
_YCC_TO_RGB = np.linalg.inv(_RGB_TO_YCC.astype(np.float64)).astype(np.float32)


def rgb_to_ycc(frames: np.ndarray) -> np.ndarray:
    ycc = frames @ _RGB_TO_YCC.T
    ycc[..., 1:] += 128.0
    return ycc


def ycc_to_rgb(ycc: np.ndarray) -> np.ndarray:
    shifted = ycc.copy()
    shifted[..., 1:] -= 128.0
    return shifted @ _YCC_TO_RGB.T


# ------------------------------------------------------------------------------------------ blur


def _convolve_frames(frames: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    from scipy.signal import fftconvolve

    kernel = (kernel / kernel.sum()).astype(np.float32)
    kh, kw = kernel.shape
    # Reflect-pad so the borders do not darken, then keep the 'valid' part: the same size as the input.
    padded = np.pad(frames, ((0, 0), (kh // 2, kh - 1 - kh // 2), (kw // 2, kw - 1 - kw // 2), (0, 0)),
                    mode="reflect")
    return fftconvolve(padded, kernel[None, :, :, None], mode="valid", axes=(1, 2)).astype(np.float32)


def blur(frames: np.ndarray, severity: float, kind: str, rng: np.random.Generator) -> np.ndarray:
    if severity <= 0:
        return frames
    if kind == "gaussian":
        from scipy.ndimage import gaussian_filter

        sigma = 3.5 * severity
        return gaussian_filter(frames, sigma=(0, sigma, sigma, 0), mode="reflect").astype(np.float32)
    if kind == "defocus":
        radius = 6.0 * severity
        r = int(math.ceil(radius))
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float64)
        # Anti-aliased disk: coverage falls from 1 to 0 over one pixel at the rim.
        disk = np.clip(radius + 0.5 - np.hypot(yy, xx), 0.0, 1.0)
        return _convolve_frames(frames, disk)
    if kind == "motion":
        length = 1.0 + 14.0 * severity
        angle = rng.uniform(0.0, math.pi)
        r = int(math.ceil(length / 2)) + 1
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float64)
        along = xx * math.cos(angle) + yy * math.sin(angle)
        across = -xx * math.sin(angle) + yy * math.cos(angle)
        line = np.clip(1.0 - np.abs(across), 0.0, 1.0) * np.clip(length / 2 + 0.5 - np.abs(along), 0.0, 1.0)
        return _convolve_frames(frames, line)
    raise ValueError(f"unknown blur kind {kind!r}; known: {KINDS['blur']}")


# ------------------------------------------------------------------------------------------ noise


def noise(frames: np.ndarray, severity: float, kind: str, rng: np.random.Generator) -> np.ndarray:
    if severity <= 0:
        return frames
    if kind in ("gaussian_luma", "gaussian_chroma"):
        ycc = rgb_to_ycc(frames)
        sigma = 28.0 * severity
        channels = [0] if kind == "gaussian_luma" else [1, 2]
        for c in channels:
            ycc[..., c] += rng.standard_normal(ycc.shape[:-1], dtype=np.float32) * sigma
        return ycc_to_rgb(ycc)
    if kind == "gaussian_rgb":
        return frames + rng.standard_normal(frames.shape, dtype=np.float32) * (22.0 * severity)
    if kind == "poisson":
        # Photon noise has variance x / k; at these photon counts (k >= 0.22 per level, x k >> 10 for all but
        # the darkest pixels) the Gaussian of the same variance is indistinguishable and ten times cheaper.
        photons_per_level = 128.0 / (24.0 * severity) ** 2
        std = np.sqrt(np.clip(frames, 0, 255) / photons_per_level)
        return frames + rng.standard_normal(frames.shape, dtype=np.float32) * std
    raise ValueError(f"unknown noise kind {kind!r}; known: {KINDS['noise']}")


# ------------------------------------------------------------------------------------------ artifact

# ITU-T T.81 Annex K luminance and chrominance quantisation tables (quality 50).
_JPEG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.float32).reshape(8, 8)
_JPEG_CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32, dtype=np.float32).reshape(8, 8)


def _jpeg_table(base: np.ndarray, quality: float) -> np.ndarray:
    # The IJG scaling of the Annex K tables by a 1..100 quality.
    quality = min(max(quality, 1.0), 100.0)
    scale = 5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality
    return np.clip(np.floor((base * scale + 50.0) / 100.0), 1.0, 255.0)


def _quantise_blocks(plane: np.ndarray, table: np.ndarray) -> np.ndarray:
    """8x8 DCT quantisation of ``[T, H, W]`` planes (H, W multiples of 8)."""
    from scipy.fft import dctn, idctn

    t, h, w = plane.shape
    blocks = (plane - 128.0).reshape(t, h // 8, 8, w // 8, 8).transpose(0, 1, 3, 2, 4)
    coeffs = dctn(blocks, axes=(-2, -1), norm="ortho")
    # norm='ortho' DCT-II equals JPEG's FDCT scaled by 1 (T.81 defines the same orthonormal transform).
    coeffs = np.round(coeffs / table) * table
    restored = idctn(coeffs, axes=(-2, -1), norm="ortho") + 128.0
    return restored.transpose(0, 1, 3, 2, 4).reshape(t, h, w).astype(np.float32)


def jpeg_blocking(frames: np.ndarray, severity: float) -> np.ndarray:
    """JPEG-style blocking at quality ``95 - 90 s`` (4:2:0 chroma), every frame coded independently."""
    if severity <= 0:
        return frames
    quality = 95.0 - 90.0 * severity
    t, h, w, _ = frames.shape
    ph, pw = -h % 16, -w % 16
    padded = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    ycc = rgb_to_ycc(padded)
    out = np.empty_like(ycc)
    out[..., 0] = _quantise_blocks(ycc[..., 0], _jpeg_table(_JPEG_LUMA, quality))
    hh, ww = (h + ph) // 2, (w + pw) // 2
    for c in (1, 2):
        small = ycc[..., c].reshape(t, hh, 2, ww, 2).mean(axis=(2, 4))
        small_pad = np.pad(small, ((0, 0), (0, -hh % 8), (0, -ww % 8)), mode="edge")
        coded = _quantise_blocks(small_pad, _jpeg_table(_JPEG_CHROMA, quality))[:, :hh, :ww]
        out[..., c] = np.repeat(np.repeat(coded, 2, axis=1), 2, axis=2)
    return ycc_to_rgb(out)[:, :h, :w]


@dataclass(frozen=True)
class EncodeSettings:
    """How the distorted clip is encoded with libx264: constant quality (``crf``) or a target ``bit_rate``."""

    crf: int | None = PRISTINE_CRF
    bits_per_pixel: float | None = None
    preset: str = "veryfast"

    def bit_rate(self, width: int, height: int, fps: float) -> int | None:
        if self.bits_per_pixel is None:
            return None
        return max(8_000, int(self.bits_per_pixel * width * height * fps))


def without_no_ops(frames: np.ndarray, distortion: Distortion) -> Distortion:
    """``distortion`` less every dimension whose distortion, applied alone, leaves ``frames`` exactly as they are.

    Desaturating greyscale content and freezing a still scene change no pixel: such a clip is the pristine
    one, and labelling it with the severity (as the raw draw would) teaches the model two targets for one
    input. H.264 rate control is never a no-op (it changes the encode, not the pixels). The quality bench
    counts such clips as severity 0 for the same reason.
    """
    pristine = np.asarray(frames)
    if pristine.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 to compare exactly, got {pristine.dtype}")
    keep = {}
    for dim, s in distortion.severity.items():
        kind = distortion.kind.get(dim)
        if float(s) <= 0:
            continue
        pixel_domain = not (dim == "artifact" and kind != "jpeg")
        alone = Distortion({dim: s}, {dim: kind}, distortion.seed)
        if not pixel_domain or not np.array_equal(apply(pristine, alone), pristine):
            keep[dim] = s
    return Distortion(keep, {d: distortion.kind[d] for d in keep}, distortion.seed)


def encode_settings(distortion: Distortion) -> EncodeSettings:
    s = distortion.level("artifact")
    kind = distortion.kind.get("artifact")
    if s > 0 and kind == "h264_crf":
        return EncodeSettings(crf=int(round(PRISTINE_CRF + 39 * s)))
    if s > 0 and kind == "h264_bitrate":
        return EncodeSettings(crf=None, bits_per_pixel=2.0 * 0.004 ** s)
    return EncodeSettings()


# ------------------------------------------------------------------------------------------ colour


def colour(frames: np.ndarray, severity: float, kind: str, rng: np.random.Generator) -> np.ndarray:
    if severity <= 0:
        return frames
    if kind == "desaturate":
        ycc = rgb_to_ycc(frames)
        ycc[..., 1:] = 128.0 + (ycc[..., 1:] - 128.0) * (1.0 - severity)
        return ycc_to_rgb(ycc)
    if kind == "cast":
        hue = rng.uniform(0.0, 2.0 * math.pi)
        ycc = rgb_to_ycc(frames)
        ycc[..., 1] += 45.0 * severity * math.cos(hue)
        ycc[..., 2] += 45.0 * severity * math.sin(hue)
        return ycc_to_rgb(ycc)
    if kind == "banding":
        levels = 256.0 / 2.0 ** (5.0 * severity)
        step = 256.0 / levels
        return (np.floor(np.clip(frames, 0, 255) / step) + 0.5) * step
    raise ValueError(f"unknown colour kind {kind!r}; known: {KINDS['color']}")


# ------------------------------------------------------------------------------------------ temporal


def temporal_source_indices(num_frames: int, severity: float, kind: str, rng: np.random.Generator) -> np.ndarray:
    """For freeze/stutter: which source frame each output frame shows (other kinds: the identity)."""
    index = np.arange(num_frames)
    if severity <= 0 or kind not in ("freeze", "stutter"):
        return index
    if kind == "stutter":
        k = 1 + int(round(5 * severity))
        return (index // k) * k
    # freeze: holds placed at random until about 75 s % of the frames repeat their predecessor.
    held = np.zeros(num_frames, dtype=bool)
    goal = 0.75 * severity * num_frames
    max_hold = 2 + int(round(6 * severity))
    attempts = 0
    while held.sum() < goal and attempts < 10 * num_frames:
        attempts += 1
        start = int(rng.integers(0, max(num_frames - 1, 1)))
        length = int(rng.integers(2, max_hold + 1))
        held[start + 1:start + length] = True
    out = index.copy()
    for i in range(1, num_frames):
        if held[i]:
            out[i] = out[i - 1]
    return out


def _shift_frames(frames: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    pad = int(max(np.abs(dy).max(), np.abs(dx).max())) + 1
    padded = np.pad(frames, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    t, h, w, _ = frames.shape
    out = np.empty_like(frames)
    for i in range(t):
        y0, x0 = pad + int(dy[i]), pad + int(dx[i])
        out[i] = padded[i, y0:y0 + h, x0:x0 + w]
    return out


def shake(frames: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    if severity <= 0:
        return frames
    amplitude = 10.0 * severity
    t = frames.shape[0]
    dy = np.rint(rng.uniform(-1, 1, t) * amplitude)
    dx = np.rint(rng.uniform(-1, 1, t) * amplitude)
    return _shift_frames(frames, dy, dx)


def flicker(frames: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    if severity <= 0:
        return frames
    gain = 1.0 + 0.35 * severity * rng.uniform(-1.0, 1.0, frames.shape[0]).astype(np.float32)
    return frames * gain[:, None, None, None]


# ------------------------------------------------------------------------------------------ all together


def apply(frames: np.ndarray, distortion: Distortion) -> np.ndarray:
    """The distorted clip (pixel-domain part; the H.264 part is `encode_settings`), uint8 ``[T, H, W, 3]``.

    ``frames`` is uint8 or float RGB ``[T, H, W, 3]``; the same ``distortion`` (seed included) always gives
    the same output.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3] RGB, got shape {frames.shape}")
    rng = np.random.default_rng(distortion.seed)
    x = frames.astype(np.float32)
    t_kind = distortion.kind.get("temporal", "")
    t_sev = distortion.level("temporal")
    x = x[temporal_source_indices(x.shape[0], t_sev, t_kind, rng)]
    if t_kind == "shake":
        x = shake(x, t_sev, rng)
    x = blur(x, distortion.level("blur"), distortion.kind.get("blur", ""), rng)
    x = noise(x, distortion.level("noise"), distortion.kind.get("noise", ""), rng)
    x = colour(x, distortion.level("color"), distortion.kind.get("color", ""), rng)
    if t_kind == "flicker":
        x = flicker(x, t_sev, rng)
    if distortion.kind.get("artifact") == "jpeg":
        x = jpeg_blocking(np.clip(x, 0, 255), distortion.level("artifact"))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)
