"""A low-level-feature video quality net: fixed quality measurements on fragments, then a small learnt head.

The feature stage follows the two-level, low-complexity design of TLVQM (Korhonen, "Two-Level Approach for
No-Reference Consumer Video Quality Assessment", IEEE TIP 2019): a handful of classic, cheap, interpretable
distortion measurements, each one a published no-reference indicator, pooled over the clip; only the mapping
from measurements to scores is learnt. Every measurement is an ordinary tensor expression (convolutions,
differences, means), so the whole net exports to one ONNX graph and runs wherever the fragments view runs. The
measurements, all on the fragments mosaic (each 32x32 cell keeps native resolution, FAST-VQA, Wu et al. 2022),
computed inside each cell so no difference crosses a cell border:

- blur: the re-blur ratio of Crete et al. (SPIE 2007: how much of a cell's gradient survives a 9-tap box
  blur), horizontal and vertical pooled, and also per direction (horizontal, vertical and the two diagonals),
  of which the largest and the smallest are kept: motion blur wipes out the detail along its direction only,
  which the pooled ratio and the isotropic measures see halved (Crete's paper keeps the larger of the
  horizontal and vertical ratios for this reason; the diagonal box has 7 taps, spanning about the 8 px of the
  horizontal one); and the energy ratio of the Laplacian at full and half
  resolution (detail left at the finest scale);
- noise: Immerkaer's estimator (CVIU 1996: mean |L| * sqrt(pi / 2) / 6 with the 3x3 kernel that cancels
  edges to second order) on Y', Cb and Cr, pooled with a soft minimum over cells, so flat cells decide;
- compression: blockiness as the peak-to-mean ratio of the horizontal / vertical difference energy over the
  eight column (row) phases (block edges sit at one phase, whatever the unknown fragment offset), on luma
  (8-pixel blocks) and chroma (16-pixel blocks at 4:2:0), and the share of nearly flat 4x4 blocks (coarse
  quantisation wipes out fine texture);
- colour: Hasler and Suesstrunk's colourfulness (SPIE 2003), mean chroma magnitude, the grey-world cast (mean
  Cb / Cr), casts where real scenes are nearly neutral (the mean chroma of the darkest and of the brightest
  pixels, after the white-patch / shadow assumptions of colour constancy) and the share of nearly neutral
  pixels (a cast moves them all off grey; saturated content has few to begin with), the chroma's spread
  around its mean and the cast over that spread (desaturation shrinks the spread, a cast moves the mean and
  leaves the spread; every other colour measurement rises alike with a cast and with more saturation), and
  banding cues: the
  share of exactly equal neighbours per R, G, B channel, the mean size of the steps that are not zero, and
  how far the values sit on a lattice with a step of k = 8, 16 or 32 levels: the magnitude of the value
  histogram's Fourier coefficient at 1 / k cycles per level (the mean of exp(2 pi i v / k) over the pixels of a
  channel) less the one at 1.125 / k. A channel quantised to steps of k levels keeps that coefficient near 1
  through a mild re-encode; a smooth histogram, however narrow, has two nearly equal neighbouring coefficients;
- temporal, per pair of consecutive frames inside each snippet: mean absolute frame difference (freezes give
  exact zeros after H.264, stutter makes them uneven), the brightness gain shared by all cells, counted in
  proportion to the share of the cells' change it explains, and how far it stands above the changes the cells
  do not share (flicker scales every cell alike; motion and scene cuts do not), and the per-cell translation
  of a Lucas-Kanade least-squares fit on mean-removed cells (shake makes it change direction from pair to
  pair; smooth camera motion does not) with its residual; and the camera's translation between frames up to
  12 px, from integral projections (the cells' column and row means matched at every whole-pixel shift, the
  classic global motion estimate of digital stabilisers), its mean size and its mean change from pair to
  pair (shake jumps, a pan is steady);
- natural-scene statistics after BRISQUE (Mittal, Moorthy and Bovik, IEEE TIP 2012), at full and half
  resolution: the variance and the shape (mean |x| / rms) of the mean-subtracted contrast-normalised (MSCN)
  luma, and the correlation of neighbouring MSCN values in four directions (blur raises it, noise lowers it,
  blocking bends it);
- gradient coherence (the structure tensor's anisotropy; motion blur leaves one direction sharp);
- context: mean luma, luma contrast and the gradient energy, so the head can tell content from distortion.

The head standardises the measurements (training-set mean and std, stored in the net) and maps them with a
two-layer MLP to one output per quality dimension, shaped ``[clips, 1]``. Each dimension's MLP is the mean of
``members`` small MLPs trained independently from different initialisations (a bagging-style ensemble: one
MLP's score moved by several points from seed to seed on the same clip; the mean of five moves far less).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgevqa.errors import ModelError
from edgevqa.manifest import IMAGENET_MEAN_255, IMAGENET_STD_255, ModelManifest, ViewSpec

from .registry import ModelEntry, register_model

DEFAULT_OUTPUTS = ("overall", "color", "noise", "artifact", "blur", "temporal")

FEATURE_NAMES = (
    "blur_reblur", "blur_band_1_2", "blur_band_2_4", "blur_reblur_max", "blur_reblur_min",
    "noise_y", "noise_cb", "noise_cr", "noise_y_mean",
    "block_y", "block_chroma", "flat_4x4",
    "colourfulness", "chroma_magnitude", "cast", "cast_relative", "zero_steps", "step_size",
    "neutral_share", "shadow_cast", "highlight_cast", "lattice_8", "lattice_16", "lattice_32",
    "chroma_spread", "cast_over_spread",
    "motion", "freeze_min", "freeze_share", "motion_unevenness", "flicker", "flicker_coherence",
    "flow_speed", "flow_jerk", "flow_residual", "shift_speed", "shift_jerk",
    "luma_mean", "luma_contrast", "gradient",
    "mscn_variance_1", "mscn_shape_1", "mscn_pair_h_1", "mscn_pair_v_1", "mscn_pair_d1_1", "mscn_pair_d2_1",
    "mscn_variance_2", "mscn_shape_2", "mscn_pair_h_2", "mscn_pair_v_2", "mscn_pair_d1_2", "mscn_pair_d2_2",
    "coherence",
)

_CONTEXT = ("luma_mean", "luma_contrast", "gradient")
SHIFT_RANGE = 12  # px, the largest camera shift between frames `_global_shift` looks for (cells are 32 px)
_SPATIAL = ("blur_reblur", "blur_band_1_2", "blur_band_2_4", "noise_y", "noise_cb", "noise_cr", "noise_y_mean",
            "block_y", "block_chroma", "flat_4x4", "coherence") + tuple(n for n in FEATURE_NAMES if n.startswith("mscn_"))
# Blocking is a horizontal and vertical discontinuity: the diagonal MSCN neighbour products at full resolution
# see texture, noise and blur, not blocks, and through them the artifact head moved with those distortions
# (2.8 leaves them out of its family: quality bench, three training seeds each, strictly falling sweeps 55.9 to
# 62.7 % against 52.5 to 55.9 %, pairs 90.5 to 91.5 % against 88.8 to 90.2 %, artifact Spearman 0.837 to 0.848
# against 0.847 to 0.857; leaving out the horizontal and vertical ones too was worse with both seeds tried).
_DIAGONAL_FINE = ("mscn_pair_d1_1", "mscn_pair_d2_1")
# What each dimension's head may read. A head that saw every measurement learnt shortcuts (the colour score
# leant on fine-texture statistics that a re-encode nudges); each reads its own family plus the context.
FEATURE_GROUPS = {
    "color": ("colourfulness", "chroma_magnitude", "cast", "cast_relative", "zero_steps", "step_size",
              "neutral_share", "shadow_cast", "highlight_cast", "lattice_8", "lattice_16", "lattice_32",
              "chroma_spread", "cast_over_spread", "flat_4x4")
             + _CONTEXT,
    "noise": _SPATIAL + _CONTEXT,
    "artifact": tuple(n for n in _SPATIAL if n not in _DIAGONAL_FINE) + _CONTEXT,
    "blur": _SPATIAL + ("blur_reblur_max", "blur_reblur_min") + _CONTEXT,
    "temporal": ("motion", "freeze_min", "freeze_share", "motion_unevenness", "flicker", "flicker_coherence",
                 "flow_speed", "flow_jerk", "flow_residual", "shift_speed", "shift_jerk", "noise_y") + _CONTEXT,
}
# How the overall score follows from the dimension scores (0..100, higher is better): the product of the
# per-dimension losses, the same mapping the training targets are made with (export/recipe/distortions.py),
# so overall falls whenever any dimension falls.
OVERALL_WEIGHT = {"blur": 0.9, "noise": 0.8, "artifact": 0.9, "color": 0.7, "temporal": 0.8}
# Where the exported scores leave the identity and approach their bounds (see `bounded_score`).
SCORE_KNEE = 2.0

_BT601 = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))


def bounded_score(score: torch.Tensor, knee: float = SCORE_KNEE) -> torch.Tensor:
    """A score in 0..100 that keeps its order: the identity on ``[knee, 100 - knee]``, hyperbolic tails below
    and above (slope 1 at the joins), so ``-inf..inf`` maps strictly increasingly into ``(0, 100)``.

    A clamp to 0..100 ties every head output beyond a bound: a distorted clip then reads as high as its
    pristine version (2.6 read exactly 100 on 47 % of the quality bench's noise, artifact, blur and temporal
    scores), and the overall score, the product of the dimension scores, loses the order too. The hyperbolic
    tails keep float32 resolution far out: a head output of 1000 still reads below 100 (100 - knee^2 /
    (1000 - 100 + 2 knee)); in float32, outputs past about 10^6 read 100. Only the exported net applies it;
    the recipe trains on the clamped scores (`head_outputs`)."""
    high = 100.0 - knee
    above = high + knee - knee / (1.0 + torch.relu(score - high) / knee)
    below = knee / (1.0 + torch.relu(knee - score) / knee)
    return torch.where(score > high, above, torch.where(score < knee, below, score))


def _cells(plane: torch.Tensor, patch: tuple[int, int]) -> torch.Tensor:
    """``[N, T, H, W]`` mosaic of ``patch``-sized fragments -> ``[N, T, cells, ph, pw]``: one slice per fragment."""
    n, t, h, w = plane.shape
    ph, pw = patch
    gh, gw = h // ph, w // pw
    return plane.reshape(n, t, gh, ph, gw, pw).permute(0, 1, 2, 4, 3, 5).reshape(n, t, gh * gw, ph, pw)


def _conv_cells(cells: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Valid 2-D convolution of every cell with ``kernel`` ``[kh, kw]`` (no cell borders crossed)."""
    n, t, c, ph, pw = cells.shape
    out = F.conv2d(cells.reshape(n * t * c, 1, ph, pw), kernel[None, None])
    return out.reshape(n, t, c, out.shape[-2], out.shape[-1])


def _log(x: torch.Tensor, floor: float) -> torch.Tensor:
    return torch.log(x + floor)


class HeadEnsemble(nn.Module):
    """``members`` MLPs of the same shape; the output is their mean, or one member's while it is trained."""

    def __init__(self, inputs: int, hidden: int, members: int):
        super().__init__()
        if members < 1:
            raise ModelError(f"lowlevel_mlp: members must be at least 1, got {members}")
        self.members = nn.ModuleList(
            nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                          nn.Linear(hidden, 1)) for _ in range(members))

    def forward(self, x: torch.Tensor, member: int | None = None) -> torch.Tensor:
        if member is not None:
            return self.members[member](x)
        return torch.stack([m(x) for m in self.members], dim=0).mean(dim=0)


class LowLevelQualityNet(nn.Module):
    """Fixed quality measurements (see the module docstring) + a learnt MLP; fragments in, scores out."""

    def __init__(self, patch: tuple[int, int] = (32, 32), frames_per_snippet: int = 4,
                 outputs: Sequence[str] = DEFAULT_OUTPUTS, hidden: int = 16,
                 mean: Sequence[float] = IMAGENET_MEAN_255, std: Sequence[float] = IMAGENET_STD_255,
                 score_scale: tuple[float, float] = (25.0, 50.0), members: int = 1):
        super().__init__()
        self.patch = tuple(patch)  # the mosaic may hold any number of cells: the measurements pool over them
        self.frames_per_snippet = int(frames_per_snippet)
        self.outputs = tuple(outputs)
        self.register_buffer("input_mean", torch.tensor(mean, dtype=torch.float32).reshape(1, 3, 1, 1, 1))
        self.register_buffer("input_std", torch.tensor(std, dtype=torch.float32).reshape(1, 3, 1, 1, 1))
        self.register_buffer("to_ycbcr", torch.tensor(_BT601, dtype=torch.float32))
        self.register_buffer("laplacian", torch.tensor([[0., 1., 0.], [1., -4., 1.], [0., 1., 0.]]))
        self.register_buffer("immerkaer", torch.tensor([[1., -2., 1.], [-2., 4., -2.], [1., -2., 1.]]))
        self.register_buffer("box9", torch.full((1, 9), 1.0 / 9.0))
        # The box blur along the main diagonal: 7 taps span 6 * sqrt(2) = 8.5 px, about the 8 px of box9, so
        # that isotropic blur reads about the same in all four directions (9 taps read 0.12 higher diagonally).
        self.register_buffer("diagonal7", torch.eye(7) / 7.0)
        taps = torch.exp(-0.5 * (torch.arange(7, dtype=torch.float32) - 3.0) ** 2 / (7.0 / 6.0) ** 2)
        self.register_buffer("gauss7", torch.outer(taps, taps) / taps.sum() ** 2)  # BRISQUE's local window
        width = len(FEATURE_NAMES)
        # Standardisation of the measurements, set from the training set by `set_feature_statistics`.
        self.register_buffer("feature_mean", torch.zeros(width))
        self.register_buffer("feature_std", torch.ones(width))
        unknown = [n for n in self.outputs if n != "overall" and n not in FEATURE_GROUPS]
        if unknown:
            raise ModelError(f"lowlevel_mlp has no measurements for output(s) {unknown}")
        self.dimensions = tuple(n for n in self.outputs if n != "overall")
        self.score_scale, self.score_centre = float(score_scale[0]), float(score_scale[1])
        self.heads = nn.ModuleDict()
        self.head_members = int(members)
        self.active_member: int | None = None  # set while one member of every head is trained
        for name in self.dimensions:
            columns = [FEATURE_NAMES.index(f) for f in FEATURE_GROUPS[name]]
            self.register_buffer(f"columns_{name}", torch.tensor(columns, dtype=torch.long))
            self.heads[name] = HeadEnsemble(len(columns), hidden, self.head_members)

    # ------------------------------------------------------------------------------------- measurements

    def features(self, video: torch.Tensor) -> torch.Tensor:
        """``[clips, 3, T, H, W]`` normalised fragments -> ``[clips, len(FEATURE_NAMES)]`` measurements."""
        rgb = torch.clamp(video * self.input_std + self.input_mean, 0.0, 255.0)
        # Y' of every frame for the temporal measurements; the spatial ones read the first frame of each
        # snippet only (spatial distortions hold over the clip, and it costs a quarter).
        y = (self.to_ycbcr[0, 0] * rgb[:, 0] + self.to_ycbcr[0, 1] * rgb[:, 1] + self.to_ycbcr[0, 2] * rgb[:, 2])
        step = max(self.frames_per_snippet, 1)
        still_rgb = rgb[:, :, ::step]
        still = F.conv3d(still_rgb, self.to_ycbcr[:, :, None, None, None])
        y_still, cb, cr = still[:, 0], still[:, 1], still[:, 2]
        y_cells = _cells(y_still, self.patch)
        parts = [self._blur(y_cells), self._noise(y_cells, _cells(cb, self.patch), _cells(cr, self.patch)),
                 self._compression(y_cells, _cells(cb, self.patch), _cells(cr, self.patch)),
                 self._colour(still_rgb, y_still, cb, cr), self._temporal(y), self._context(y_still, y_cells),
                 self._scene_statistics(y_cells), self._coherence(y_cells)]
        return torch.cat(parts, dim=1)

    def _blur(self, y: torch.Tensor) -> torch.Tensor:
        # Crete's re-blur ratio, horizontal and vertical, pooled as a ratio of sums over all cells and frames
        # (textured cells weigh more: flat cells say nothing about blur).
        lost, total = [], []
        for cells in (y, y.transpose(-1, -2)):
            blurred = _conv_cells(cells, self.box9)
            original = cells[..., :, 4:-4]
            d_original = torch.abs(original[..., 1:] - original[..., :-1])
            d_blurred = torch.abs(blurred[..., 1:] - blurred[..., :-1])
            lost.append(torch.relu(d_original - d_blurred).sum(dim=(1, 2, 3, 4)))
            total.append(d_original.sum(dim=(1, 2, 3, 4)))
        # The diagonals: a cell and its mirror image, each along its main diagonal.
        for cells in (y, y.flip(-1)):
            blurred = _conv_cells(cells, self.diagonal7)
            original = cells[..., 3:-3, 3:-3]
            d_original = torch.abs(original[..., 1:, 1:] - original[..., :-1, :-1])
            d_blurred = torch.abs(blurred[..., 1:, 1:] - blurred[..., :-1, :-1])
            lost.append(torch.relu(d_original - d_blurred).sum(dim=(1, 2, 3, 4)))
            total.append(d_original.sum(dim=(1, 2, 3, 4)))
        reblur = (lost[0] + lost[1]) / (total[0] + total[1] + 1.0)
        directional = torch.stack([a / (b + 1.0) for a, b in zip(lost, total)], dim=1)
        n, t, c, ph, pw = y.shape
        half = F.avg_pool2d(y.reshape(n * t * c, 1, ph, pw), 2).reshape(n, t, c, ph // 2, pw // 2)
        quarter = F.avg_pool2d(half.reshape(n * t * c, 1, ph // 2, pw // 2), 2).reshape(n, t, c, ph // 4, pw // 4)
        lap = [torch.abs(_conv_cells(level, self.laplacian)).mean(dim=(-1, -2)).sum(dim=(1, 2))
               for level in (y, half, quarter)]
        return torch.stack([reblur, _log(lap[0], 1.0) - _log(lap[1], 1.0), _log(lap[1], 1.0) - _log(lap[2], 1.0),
                            directional.amax(dim=1), directional.amin(dim=1)], dim=1)

    def _noise(self, y: torch.Tensor, cb: torch.Tensor, cr: torch.Tensor) -> torch.Tensor:
        scale = math.sqrt(math.pi / 2.0) / 6.0
        sigmas = [torch.abs(_conv_cells(p, self.immerkaer)).mean(dim=(-1, -2)) * scale for p in (y, cb, cr)]
        pooled = []
        for sigma in sigmas:
            # Soft minimum over the cells of each frame: the flattest cells carry the noise alone.
            log_sigma = _log(sigma, 0.05)
            weights = torch.softmax(-4.0 * log_sigma, dim=2)
            pooled.append((weights * log_sigma).sum(dim=2).mean(dim=1))
        pooled.append(_log(sigmas[0].mean(dim=(1, 2)), 0.05))
        return torch.stack(pooled, dim=1)

    def _blockiness(self, cells: torch.Tensor, period: int) -> torch.Tensor:
        """Peak-to-mean ratio (log) of the column-difference energy over the ``period`` phases, both axes."""
        ratios = []
        for oriented in (cells, cells.transpose(-1, -2)):
            diff = torch.abs(oriented[..., 1:] - oriented[..., :-1])  # [N, T, C, ph, pw - 1]
            usable = (diff.shape[-1] // period) * period
            per_column = diff[..., :usable].mean(dim=(1, 3))  # [N, C, usable]: fixed positions over frames
            phases = per_column.reshape(per_column.shape[0], per_column.shape[1], usable // period, period)
            phases = phases.mean(dim=2)  # [N, C, period]
            ratio = _log(phases.amax(dim=2), 0.5) - _log(phases.mean(dim=2), 0.5)
            ratios.append(ratio.mean(dim=1))
        return 0.5 * (ratios[0] + ratios[1])

    def _compression(self, y: torch.Tensor, cb: torch.Tensor, cr: torch.Tensor) -> torch.Tensor:
        block_y = self._blockiness(y, 8)
        block_c = 0.5 * (self._blockiness(cb, 16) + self._blockiness(cr, 16))
        n, t, c, ph, pw = y.shape
        flat = y.reshape(n * t * c, 1, ph, pw)
        variance = F.avg_pool2d(flat * flat, 4) - F.avg_pool2d(flat, 4) ** 2
        flat_share = torch.exp(-variance.clamp(min=0.0) / 0.5).reshape(n, -1).mean(dim=1)
        return torch.stack([block_y, block_c, flat_share], dim=1)

    def _colour(self, rgb: torch.Tensor, y: torch.Tensor, cb: torch.Tensor, cr: torch.Tensor) -> torch.Tensor:
        r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
        rg = r - g
        yb = 0.5 * (r + g) - b
        dims = (2, 3)
        colourfulness = (torch.sqrt(rg.var(dim=dims) + yb.var(dim=dims) + 1e-6)
                         + 0.3 * torch.sqrt(rg.mean(dim=dims) ** 2 + yb.mean(dim=dims) ** 2 + 1e-6)).mean(dim=1)
        chroma = torch.sqrt(cb * cb + cr * cr + 1e-6)
        magnitude = chroma.mean(dim=(1, 2, 3))
        cast = torch.sqrt(cb.mean(dim=(1, 2, 3)) ** 2 + cr.mean(dim=(1, 2, 3)) ** 2 + 1e-6)
        # The chroma's spread around its mean: desaturation shrinks it, an additive cast leaves it alone. Every
        # other colour measurement rises with a cast as with more saturation, so without it "more colourful"
        # read as better even when all of it was a tint (a muted clip with a cast).
        spread = torch.sqrt(cb.var(dim=(1, 2, 3)) + cr.var(dim=(1, 2, 3)) + 1e-6)
        # Shadows and highlights of real scenes are close to neutral, so their mean chroma is the cast (an
        # additive Cb / Cr shift moves them as much as anything else); weights fall off over 24 levels.
        neutral_share = torch.exp(-chroma / 6.0).mean(dim=(1, 2, 3))
        extremes = []
        for weight in (torch.exp(-torch.clamp(y, min=0.0) / 24.0), torch.exp(-torch.clamp(255.0 - y, min=0.0) / 24.0)):
            total = weight.sum(dim=(1, 2, 3)) + 1.0
            extremes.append(_log(torch.sqrt((weight * cb).sum(dim=(1, 2, 3)) ** 2
                                            + (weight * cr).sum(dim=(1, 2, 3)) ** 2 + 1e-6) / total, 1.0))
        # Banding: quantised channels leave runs of equal neighbours and steps of one quantum between runs.
        cells = _cells(rgb.reshape(-1, *rgb.shape[2:]), self.patch)
        steps = torch.abs(cells[..., 1:] - cells[..., :-1])
        zero = (steps < 0.5).to(steps.dtype)
        zero_share = zero.mean(dim=(1, 2, 3, 4)).reshape(rgb.shape[0], 3).mean(dim=1)
        nonzero = 1.0 - zero
        step_size = ((steps * nonzero).sum(dim=(1, 2, 3, 4)) / (nonzero.sum(dim=(1, 2, 3, 4)) + 1.0))
        step_size = step_size.reshape(rgb.shape[0], 3).mean(dim=1)
        return torch.stack([_log(colourfulness, 1.0), _log(magnitude, 1.0), _log(cast, 0.5),
                            cast / (magnitude + 1.0), zero_share, _log(step_size, 0.5), neutral_share,
                            extremes[0], extremes[1], *self._lattice(rgb), _log(spread, 1.0),
                            cast / (spread + 1.0)], dim=1)

    @staticmethod
    def _lattice(rgb: torch.Tensor) -> list[torch.Tensor]:
        """Banding as values on a lattice: per k in (8, 16, 32), |mean exp(2 pi i v / k)| less the same at
        1.125 / k cycles per level, averaged over R, G, B. Angle doubling gives 1/16 and 1/8 from 1/32 (two
        cosines and sines per value instead of six); 1.125 / k is a multiple of 1/32 for none of the three."""
        values = torch.round(rgb).reshape(rgb.shape[0], 3, -1)
        magnitudes = []
        for cycles in (1.0 / 32.0, 1.125 / 32.0):
            angle = values * (2.0 * math.pi * cycles)
            cos, sin = torch.cos(angle), torch.sin(angle)
            per_k = []
            for _ in range(3):  # the base frequency, then twice and four times it
                per_k.append(torch.sqrt(cos.mean(dim=2) ** 2 + sin.mean(dim=2) ** 2 + 1e-12).mean(dim=1))
                cos, sin = cos * cos - sin * sin, 2.0 * cos * sin
            magnitudes.append(per_k)
        on, off = magnitudes
        return [on[2] - off[2], on[1] - off[1], on[0] - off[0]]  # k = 8, 16, 32

    def _temporal(self, y: torch.Tensor) -> torch.Tensor:
        n, t = y.shape[0], y.shape[1]
        f = self.frames_per_snippet
        if f < 2 or t % f:
            return torch.zeros(n, 11, dtype=y.dtype, device=y.device)
        snippets = y.reshape(n, t // f, f, *y.shape[2:])
        later, earlier = snippets[:, :, 1:], snippets[:, :, :-1]
        motion = torch.abs(later - earlier).mean(dim=(-1, -2))  # [N, S, f-1]
        mean_motion = motion.mean(dim=(1, 2))
        freeze_min = motion.amin(dim=2).mean(dim=1) / (mean_motion + 0.1)
        freeze_share = torch.exp(-motion / 0.2).mean(dim=(1, 2))
        unevenness = (motion.std(dim=2) / (motion.mean(dim=2) + 0.1)).mean(dim=1)
        # Flicker is a gain that every cell shares; motion and scene cuts change each cell's brightness its own
        # way. Per cell and frame pair: the change of log mean brightness; its mean over the cells is the shared
        # gain, the mean distance from that mean the part the cells do not share.
        y_cells = _cells(y, self.patch)  # [N, T, C, ph, pw]
        cell_brightness = y_cells.mean(dim=(-1, -2)).reshape(n, t // f, f, -1)  # [N, S, f, C]
        log_brightness = torch.log(cell_brightness + 8.0)
        change = log_brightness[:, :, 1:] - log_brightness[:, :, :-1]
        gain = change.mean(dim=3)  # [N, S, f-1]
        unshared = torch.abs(change - gain[..., None]).mean(dim=3)
        # The gain counts in proportion to how much of the cells' change it explains: a camera moving through
        # real light changes brightness too, but unevenly across the cells.
        shared = torch.abs(gain)
        flicker = (shared * shared / (shared + unshared + 0.005)).mean(dim=(1, 2))
        flicker_coherence = (shared / (unshared + 0.005)).mean(dim=(1, 2))
        # Lucas-Kanade translation per cell and frame pair (least squares on the brightness-constancy equation),
        # at half resolution: a quarter of the cost, and twice the displacement range.
        half = F.avg_pool2d(y, 2)
        half_cells = _cells(half, (self.patch[0] // 2, self.patch[1] // 2))
        cells = half_cells.reshape(n, t // f, f, *half_cells.shape[2:])  # [N, S, f, C, ph / 2, pw / 2]
        # Each cell's mean taken out of each frame: brightness constancy up to an offset, so flicker does not
        # read as motion (its own cues above measure it).
        cells = cells - cells.mean(dim=(-1, -2), keepdim=True)
        a, b = cells[:, :, :-1], cells[:, :, 1:]
        mid = 0.5 * (a + b)
        ix = 0.5 * (mid[..., 1:-1, 2:] - mid[..., 1:-1, :-2])
        iy = 0.5 * (mid[..., 2:, 1:-1] - mid[..., :-2, 1:-1])
        it = (b - a)[..., 1:-1, 1:-1]
        sxx, syy, sxy = (ix * ix).sum(dim=(-1, -2)), (iy * iy).sum(dim=(-1, -2)), (ix * iy).sum(dim=(-1, -2))
        sxt, syt = (ix * it).sum(dim=(-1, -2)), (iy * it).sum(dim=(-1, -2))
        ridge = 1.0 + 0.01 * (sxx + syy)
        det = (sxx + ridge) * (syy + ridge) - sxy * sxy
        u = -((syy + ridge) * sxt - sxy * syt) / det
        v = -((sxx + ridge) * syt - sxy * sxt) / det  # [N, S, f-1, C]
        speed = torch.sqrt(u * u + v * v + 1e-6).mean(dim=(1, 2, 3))
        if f > 2:
            jerk = torch.sqrt((u[:, :, 1:] - u[:, :, :-1]) ** 2 + (v[:, :, 1:] - v[:, :, :-1]) ** 2 + 1e-6)
            jerk = jerk.mean(dim=(1, 2, 3))
        else:
            jerk = torch.zeros_like(speed)
        residual = torch.abs(it + ix * u[..., None, None] + iy * v[..., None, None]).mean(dim=(1, 2, 3, 4, 5))
        residual = residual / (torch.abs(it).mean(dim=(1, 2, 3, 4, 5)) + 0.1)
        shift = self._global_shift(y_cells)  # [N, S, f-1, 2]
        shift_speed = torch.sqrt((shift * shift).sum(dim=-1) + 1e-6).mean(dim=(1, 2))
        if f > 2:
            change = shift[:, :, 1:] - shift[:, :, :-1]
            shift_jerk = torch.sqrt((change * change).sum(dim=-1) + 1e-6).mean(dim=(1, 2))
        else:
            shift_jerk = torch.zeros_like(shift_speed)
        return torch.stack([_log(mean_motion, 0.1), freeze_min, freeze_share, unevenness, _log(flicker, 0.002),
                            flicker_coherence, _log(speed, 0.01), _log(jerk, 0.01), residual,
                            _log(shift_speed, 0.5), _log(shift_jerk, 0.5)], dim=1)

    def _global_shift(self, y_cells: torch.Tensor) -> torch.Tensor:
        """The camera's translation between consecutive frames of each snippet, ``[N, S, f-1, 2]`` whole pixels
        (x, y), up to SHIFT_RANGE, from the luma cut into cells (``_cells``, ``[N, T, C, ph, pw]``): integral projections (each cell's column and row means, the mean taken out,
        so flicker does not count), matched at every shift, their mean absolute difference averaged over the
        cells, the cheapest shift taken (a tiny cost per pixel of shift breaks ties towards rest).

        Why: Lucas-Kanade above sees a pixel or two; shake moves frames by up to 10 px and a fast pan by 12,
        so both read as the same failure there. Here a smooth pan is a steady shift and shake a jumping one."""
        n, t = y_cells.shape[0], y_cells.shape[1]
        f = self.frames_per_snippet
        cells = y_cells.reshape(n, t // f, f, -1, *self.patch)  # [N, S, f, C, ph, pw]
        shifts = []
        for profile in (cells.mean(dim=-2), cells.mean(dim=-1)):  # along x (column means), along y (row means)
            profile = profile - profile.mean(dim=-1, keepdim=True)
            a, b = profile[:, :, :-1], profile[:, :, 1:]
            length = profile.shape[-1]
            costs = []
            for s in range(-SHIFT_RANGE, SHIFT_RANGE + 1):
                if s >= 0:
                    d = torch.abs(a[..., :length - s] - b[..., s:])
                else:
                    d = torch.abs(a[..., -s:] - b[..., :length + s])
                costs.append(d.mean(dim=-1).mean(dim=-1) + 1e-3 * abs(s))
            cost = torch.stack(costs, dim=-1)  # [N, S, f-1, shifts]
            shifts.append(cost.argmin(dim=-1).to(y_cells.dtype) - SHIFT_RANGE)
        return torch.stack(shifts, dim=-1)

    def _context(self, y: torch.Tensor, y_cells: torch.Tensor) -> torch.Tensor:
        gradient = (torch.abs(y_cells[..., 1:] - y_cells[..., :-1]).mean(dim=(1, 2, 3, 4))
                    + torch.abs(y_cells[..., 1:, :] - y_cells[..., :-1, :]).mean(dim=(1, 2, 3, 4)))
        return torch.stack([y.mean(dim=(1, 2, 3)) / 255.0, _log(y.std(dim=(1, 2, 3)), 1.0), _log(gradient, 0.5)],
                           dim=1)

    def _scene_statistics(self, y: torch.Tensor) -> torch.Tensor:
        n, t, c, ph, pw = y.shape
        half = F.avg_pool2d(y.reshape(n * t * c, 1, ph, pw), 2).reshape(n, t, c, ph // 2, pw // 2)
        out = []
        for level in (y, half):
            mu = _conv_cells(level, self.gauss7)
            sigma = torch.sqrt(torch.relu(_conv_cells(level * level, self.gauss7) - mu * mu) + 1e-6)
            centre = level[..., 3:-3, 3:-3]
            mscn = (centre - mu) / (sigma + 1.0)
            power = (mscn * mscn).mean(dim=(1, 2, 3, 4))
            shape = torch.abs(mscn).mean(dim=(1, 2, 3, 4)) / torch.sqrt(power + 1e-6)
            pairs = [mscn[..., :, 1:] * mscn[..., :, :-1], mscn[..., 1:, :] * mscn[..., :-1, :],
                     mscn[..., 1:, 1:] * mscn[..., :-1, :-1], mscn[..., 1:, :-1] * mscn[..., :-1, 1:]]
            correlations = [p.mean(dim=(1, 2, 3, 4)) / (power + 1e-3) for p in pairs]
            out += [_log(power, 1e-3), shape] + correlations
        return torch.stack(out, dim=1)

    def _coherence(self, y: torch.Tensor) -> torch.Tensor:
        gx = y[..., 1:-1, 2:] - y[..., 1:-1, :-2]
        gy = y[..., 2:, 1:-1] - y[..., :-2, 1:-1]
        jxx, jyy, jxy = (gx * gx).mean(dim=(-1, -2)), (gy * gy).mean(dim=(-1, -2)), (gx * gy).mean(dim=(-1, -2))
        anisotropy = torch.sqrt((jxx - jyy) ** 2 + 4 * jxy * jxy + 1e-6) / (jxx + jyy + 1.0)
        weights = jxx + jyy
        return ((anisotropy * weights).sum(dim=(1, 2)) / (weights.sum(dim=(1, 2)) + 1.0))[:, None]

    # ------------------------------------------------------------------------------------- head

    def set_feature_statistics(self, features: torch.Tensor) -> None:
        """Standardise the head's inputs with the mean and std of training ``features`` ``[N, F]``."""
        self.feature_mean.copy_(features.mean(dim=0))
        self.feature_std.copy_(features.std(dim=0).clamp(min=1e-4))

    def head_outputs(self, features: torch.Tensor, bounded: bool = False) -> dict[str, torch.Tensor]:
        """The learnt mapping alone: measurements ``[N, F]`` -> ``{output: [N, 1]}``.

        Outputs are in the manifest's raw units: ``score = scale * output + centre`` (``score_scale``);
        ``overall`` is computed from the dimension scores (`OVERALL_WEIGHT`), not learnt. Training uses the
        dimension scores as they are and the overall score from them clamped to 0..100; ``bounded`` (the
        exported net, `forward`) maps every dimension score through `bounded_score` first, which keeps
        their order where a clamp would tie them."""
        standard = (features - self.feature_mean) / self.feature_std
        out = {name: self.heads[name](standard.index_select(1, getattr(self, f"columns_{name}")), self.active_member)
               for name in self.dimensions}
        if bounded:
            out = {name: (bounded_score(value * self.score_scale + self.score_centre) - self.score_centre)
                   / self.score_scale for name, value in out.items()}
        if "overall" in self.outputs:
            overall = torch.ones_like(out[self.dimensions[0]])
            for name in self.dimensions:
                score = out[name] * self.score_scale + self.score_centre
                if not bounded:
                    score = torch.clamp(score, 0.0, 100.0)
                overall = overall * (1.0 - OVERALL_WEIGHT[name] * (1.0 - score / 100.0))
            out["overall"] = (100.0 * overall - self.score_centre) / self.score_scale
        return {name: out[name] for name in self.outputs}

    def forward(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head_outputs(self.features(video), bounded=True)

    def fuse(self) -> "LowLevelQualityNet":
        """Nothing to fold (no BatchNorm); kept so every zoo model exports the same way."""
        self.eval()
        return self


# --------------------------------------------------------------------------------------------- registry


def lowlevel_manifest(frames: int, snippets: int, grid, patch: int, outputs: Sequence[str] = DEFAULT_OUTPUTS,
                      num_clips: int = 1) -> ModelManifest:
    """Fragments view: ``snippets`` runs of ``frames // snippets`` consecutive frames (so frame-to-frame changes
    are visible), ``grid`` cells of ``patch`` pixels at fixed positions over the clip."""
    gh, gw = (grid, grid) if isinstance(grid, int) else tuple(grid)
    view = ViewSpec(name="video", kind="fragments", num_clips=num_clips, clip_len=frames, frame_interval=1,
                    segments_per_clip=snippets, temporal="segments", grid=(gh, gw), patch=(patch, patch),
                    aligned=frames, size=(gh * patch, gw * patch), mean=IMAGENET_MEAN_255, std=IMAGENET_STD_255)
    return ModelManifest(name="lowlevel_mlp", views=(view,), outputs=tuple(outputs), version="0",
                         description="low-level quality measurements + MLP head; untrained unless a checkpoint "
                                     "says otherwise",
                         metadata={"family": "lowlevel"})


def _check(frames: int, snippets: int, patch: int) -> None:
    if snippets < 1 or frames % snippets:
        raise ModelError(f"lowlevel_mlp: frames ({frames}) must be a multiple of snippets ({snippets})")
    if patch < 16 or patch % 16:
        raise ModelError(f"lowlevel_mlp: patch must be a multiple of 16 (two chroma block periods), got {patch}")


def _build(frames: int = 8, snippets: int = 2, grid=7, patch: int = 32, outputs: Sequence[str] = DEFAULT_OUTPUTS,
           num_clips: int = 1, hidden: int = 16, members: int = 5) -> LowLevelQualityNet:
    _check(frames, snippets, patch)
    return LowLevelQualityNet((patch, patch), frames // snippets, outputs, hidden, members=members)


def _manifest(frames: int = 8, snippets: int = 2, grid=7, patch: int = 32, outputs: Sequence[str] = DEFAULT_OUTPUTS,
              num_clips: int = 1, hidden: int = 16, members: int = 5) -> ModelManifest:
    _check(frames, snippets, patch)
    return lowlevel_manifest(frames, snippets, grid, patch, outputs, num_clips)


register_model(ModelEntry(name="lowlevel_mlp", family="lowlevel", build=_build, manifest=_manifest,
                          description="TLVQM-style fixed quality measurements (blur, noise, blocking, colour, "
                                      "temporal) on 7x7 fragments of two 4-frame snippets + per-dimension "
                                      "2-layer MLP heads (mean of 5 independently trained members)",
                          defaults={"frames": 8, "snippets": 2, "grid": 7, "patch": 32, "members": 5}))
