"""Sampling plans: which frames, and which source pixels with which weights, make each model input.

A plan is pure data, made from container metadata before any decoding, deterministic unless a seed asks for
randomness. Every kernel (the NumPy reference, C, CUDA) applies a plan the same way, so any implementation can
be checked against any other. Semantics follow ``shared/design/sampling.md`` (FAST-VQA fragments, SimpleVQA
views).

Geometry. The output image of one frame is a grid of ``tiles`` (fragments: grid cells; resize views: one tile),
each ``tile_size`` pixels. Output pixel ``(dy, dx)`` of tile ``(i, j)`` of temporal group ``g`` reads

    value = sum_a row_w[g,i,j,dy,a] * ((sum_b col_w[g,i,j,dx,b] * P[row_i[g,i,j,dy,a], col_i[g,i,j,dx,b]] + 64) >> 7)
    value = clamp((value + 2**20) >> 21, 0, 2**bit_depth - 1)

for each plane ``P``; weights are integers summing to ``2**WEIGHT_BITS`` per tap set, so the arithmetic is
exact in every implementation. Luma (or RGB) planes use the ``luma_*`` taps, chroma planes the ``chroma_*``
taps (made for the stream's chroma subsampling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from .errors import PlanError
from .manifest import ViewSpec
from .video import VideoInfo

WEIGHT_BITS = 14
WEIGHT_ONE = 1 << WEIGHT_BITS
PLAN_MODES = ("default", "reference")


@dataclass(frozen=True)
class Taps:
    """Source indices and integer weights along one axis: arrays shaped ``[G, gh, gw, tile_len, K]``."""

    index: np.ndarray  # int32
    weight: np.ndarray  # int32, each [..., :] sums to WEIGHT_ONE

    @property
    def num_taps(self) -> int:
        return int(self.index.shape[-1])


@dataclass(frozen=True)
class SamplePlan:
    """How one view's input tensor is made from a video.

    ``frame_indices`` are the sorted distinct source frames to decode; ``slots[n, t]`` says which of them
    feeds clip ``n``, time ``t``; ``tap_group[n, t]`` selects the first axis of the taps.
    """

    view: ViewSpec
    source_size: tuple[int, int]  # (height, width) of the display frame the plan was made for
    chroma_shift: tuple[int, int]
    frame_indices: np.ndarray
    slots: np.ndarray
    tap_group: np.ndarray
    grid: tuple[int, int]
    tile_size: tuple[int, int]
    luma_rows: Taps
    luma_cols: Taps
    chroma_rows: Taps
    chroma_cols: Taps
    seed: int | None = None
    mode: str = "default"
    notes: tuple[str, ...] = field(default=())
    frames: tuple[int, int] | None = None  # the frames [start, end) the plan was made for

    @property
    def output_size(self) -> tuple[int, int]:
        return (self.grid[0] * self.tile_size[0], self.grid[1] * self.tile_size[1])

    @property
    def output_shape(self) -> tuple[int, int, int, int, int]:
        return self.view.input_shape(int(self.slots.shape[0]))

    def uses_of_slot(self, slot: int) -> list[tuple[int, int]]:
        """The (clip, time) positions fed by decoded frame ``slot`` (an index into ``frame_indices``)."""
        ns, ts = np.nonzero(self.slots == slot)
        return list(zip(ns.tolist(), ts.tolist()))


def plan_region(plan: SamplePlan, slot: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the display frame (luma numbering, repeats kept) that ``plan`` reads of its decoded
    frame ``slot``: every tap of every group the slot's positions use; a chroma sample counts as a luma row and
    column of its block."""
    groups = np.unique(plan.tap_group[plan.slots == slot])
    shift_rows, shift_cols = plan.chroma_shift
    rows = np.concatenate([plan.luma_rows.index[groups].ravel(),
                           plan.chroma_rows.index[groups].ravel().astype(np.int64) << shift_rows])
    cols = np.concatenate([plan.luma_cols.index[groups].ravel(),
                           plan.chroma_cols.index[groups].ravel().astype(np.int64) << shift_cols])
    return rows, cols


def frame_region(uses) -> tuple[np.ndarray, np.ndarray]:
    """The rows and columns every (plan, slot) of ``uses`` reads of one decoded frame (`plan_region`); empty
    arrays when there is none: nothing of that frame is read."""
    parts = [plan_region(plan, slot) for plan, slot in uses]
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate([rows for rows, _ in parts]), np.concatenate([cols for _, cols in parts])


# --------------------------------------------------------------------------------------------- taps


def _identity_taps(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = positions.astype(np.int32)[..., None]
    return idx, np.full_like(idx, WEIGHT_ONE)


def _quantise_weights(weights: np.ndarray) -> np.ndarray:
    """Float weights (rows summing to 1) -> int32 summing exactly to WEIGHT_ONE (residual on the largest)."""
    q = np.rint(weights * WEIGHT_ONE).astype(np.int64)
    residual = WEIGHT_ONE - q.sum(axis=-1)
    largest = np.argmax(weights, axis=-1)
    np.put_along_axis(q, largest[..., None], np.take_along_axis(q, largest[..., None], -1) + residual[..., None], -1)
    return q.astype(np.int32)


def resize_taps(in_size: int, resized_size: int, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Taps reading resized-image coordinates ``positions`` from an axis of ``in_size`` source samples.

    The filter is a triangle (bilinear) whose support widens with the downscale factor (antialiased, as
    PIL and torchvision's ``antialias=True`` do); source coordinates use pixel centres and clamp at the edges.
    """
    positions = np.asarray(positions, dtype=np.float64)
    scale = in_size / resized_size
    support = max(scale, 1.0)
    centre = (positions + 0.5) * scale  # in source pixel units, pixel i covers [i, i+1)
    first = np.floor(centre - support).astype(np.int64)
    k = int(math.ceil(2 * support)) + 1
    src = first[..., None] + np.arange(k)
    weights = np.maximum(0.0, 1.0 - np.abs(src + 0.5 - centre[..., None]) / support)
    # Taps outside the image are dropped and the rest renormalised (PIL / torchvision antialias convention).
    weights = np.where((src >= 0) & (src < in_size), weights, 0.0)
    total = weights.sum(axis=-1, keepdims=True)
    weights = weights / np.where(total > 0, total, 1.0)
    index = np.clip(src, 0, in_size - 1)
    # Drop taps that are zero everywhere so kernels do not loop over dead weight.
    live = np.nonzero(weights.reshape(-1, k).max(axis=0) > 0)[0]
    lo, hi = int(live.min()), int(live.max()) + 1
    weights, index = weights[..., lo:hi], index[..., lo:hi]
    return index.astype(np.int32), _quantise_weights(weights)


def _chroma_size(size: int, shift: int) -> int:
    return -(-size >> shift) if shift else size  # ceil division


# --------------------------------------------------------------------------------------------- temporal


def _rng_for(seed: int | None, view_index: int) -> np.random.Generator | None:
    if seed is None:
        return None
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, view_index])


FRAME_STRIDE_MODES = ("model",)


def check_frame_stride(value) -> str | int:
    """A frame stride setting: "model" (None too: from the model's ``frame_rate``) or a whole number >= 1 of
    frames between those a model reads as consecutive; EdgeVQAError otherwise."""
    if value is None or value == "model":
        return "model"
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PlanError(f"frame stride must be 'model' or a whole number of frames >= 1, got {value!r}")
    return value


def frame_stride(fps: float, frame_rate: float | None) -> int:
    """Every how many frames a model that learnt motion at ``frame_rate`` frames per second reads video at
    ``fps``: the whole number nearest ``fps / frame_rate`` (halves up), at least 1; 1 when either is unknown.

    Rounding to the nearest keeps the rate read within about 2/3 to 4/3 of ``frame_rate`` (at 25: 30 fps is
    read whole, 50 and 60 fps every other frame, 120 fps every fifth), and a variable-rate phone clip whose
    average is a little above 30 is still read frame by frame.
    """
    if frame_rate is None or not fps or not math.isfinite(fps) or fps <= 0:
        return 1
    return max(1, int(math.floor(fps / frame_rate + 0.5)))


def views_at_stride(views, stride: int) -> tuple[ViewSpec, ...]:
    """``views`` reading every ``stride``-th frame where they read runs of frames (``segments`` and
    ``per_second``: ``frame_interval`` times ``stride``); ``key_frames`` views are left as they are."""
    if stride == 1:
        return tuple(views)
    return tuple(replace(v, frame_interval=v.frame_interval * stride) if v.temporal != "key_frames" else v
                 for v in views)


def temporal_indices(view: ViewSpec, num_frames: int, fps: float, mode: str = "default",
                     rng: np.random.Generator | None = None) -> np.ndarray:
    """Source frame index for every (clip, time) of ``view``: int64 array ``[num_clips, clip_len]``."""
    if num_frames < 1:
        raise PlanError("a video with no frames cannot be sampled")
    n_clips, t_len = view.num_clips, view.clip_len
    last = num_frames - 1
    if view.temporal in ("per_second", "key_frames"):
        fps_r = max(1, int(round(fps))) if fps and math.isfinite(fps) else 1
        if view.temporal == "per_second":
            idx = np.arange(n_clips)[:, None] * fps_r + np.arange(t_len)[None, :] * view.frame_interval
        else:
            idx = (np.arange(n_clips)[:, None] * t_len + np.arange(t_len)[None, :]) * fps_r
        return np.minimum(idx, last).astype(np.int64)

    segments = n_clips * view.segments_per_clip
    per_seg = view.frames_per_segment
    span = per_seg * view.frame_interval
    if mode == "reference":
        # FAST-VQA: integer segment length, offset drawn from [0, tlength - span), indices wrap modulo N.
        tlength = num_frames // segments
        starts = np.arange(segments) * tlength
        if tlength > span:
            rng = rng or np.random.default_rng(0)
            offsets = rng.integers(0, tlength - span, size=segments)
        else:
            offsets = np.zeros(segments, dtype=np.int64)
        idx = starts[:, None] + offsets[:, None] + np.arange(per_seg)[None, :] * view.frame_interval
        idx = idx % num_frames
    else:
        seg_len = num_frames / segments
        starts = np.floor(np.arange(segments) * seg_len).astype(np.int64)
        room = np.floor((np.arange(1, segments + 1)) * seg_len).astype(np.int64) - starts - (span - view.frame_interval) - 1
        if np.all(room >= 0):
            offsets = room // 2 if rng is None else np.array([rng.integers(0, r + 1) for r in room])
            idx = starts[:, None] + offsets[:, None] + np.arange(per_seg)[None, :] * view.frame_interval
        else:
            # Too short for the stride: spread the segment's frames evenly inside it rather than wrapping
            # around to the start of the video as the originals do.
            idx = np.floor(starts[:, None] + np.arange(per_seg)[None, :] * (seg_len / per_seg)).astype(np.int64)
        idx = np.minimum(idx, last)
    return idx.reshape(n_clips, t_len).astype(np.int64)


# --------------------------------------------------------------------------------------------- spatial


def _fragment_taps(view: ViewSpec, height: int, width: int, shift: tuple[int, int], groups: int, mode: str,
                   rng: np.random.Generator | None, notes: list[str]):
    gh, gw = view.grid
    ph, pw = view.patch
    out_h, out_w = view.size
    ratio = min(height / out_h, width / out_w)
    if mode == "reference":
        # FAST-VQA upscales small frames by 1/ratio (size floored) but keeps the grid of the original size,
        # so only the top-left original-size region is sampled. Reproduced on purpose for official weights.
        if ratio < 1:
            vh, vw = int(height / ratio), int(width / ratio)
            notes.append(f"reference mode: frame upscaled to {vw}x{vh}, grid kept at {width}x{height}")
        else:
            vh, vw = height, width
        grid_h, grid_w = height, width
    else:
        if ratio < 1:
            s = max(out_h / height, out_w / width)
            vh, vw = max(out_h, int(round(height * s))), max(out_w, int(round(width * s)))
            notes.append(f"frame {width}x{height} smaller than {out_w}x{out_h}: upscaled to {vw}x{vh}")  # W x H
        else:
            vh, vw = height, width
        grid_h, grid_w = vh, vw
    cell_h, cell_w = grid_h // gh, grid_w // gw
    starts_h = np.minimum(np.arange(gh) * cell_h, max(vh - ph, 0))
    starts_w = np.minimum(np.arange(gw) * cell_w, max(vw - pw, 0))

    def offsets(cell: int, patch: int) -> np.ndarray:
        shape = (groups, gh, gw)
        if mode == "reference":
            if cell <= patch:
                return np.zeros(shape, dtype=np.int64)
            return (rng or np.random.default_rng(0)).integers(0, cell - patch, size=shape)
        room = max(cell - patch, 0)
        if rng is None:
            return np.full(shape, room // 2, dtype=np.int64)
        return rng.integers(0, room + 1, size=shape)

    off_h = offsets(cell_h, ph)
    off_w = offsets(cell_w, pw)
    # Virtual-frame coordinates of every output pixel: [G, gh, gw, ph] rows and [G, gh, gw, pw] columns.
    rows = starts_h[None, :, None, None] + off_h[..., None] + np.arange(ph)
    cols = starts_w[None, None, :, None] + off_w[..., None] + np.arange(pw)
    rows = np.minimum(rows, vh - 1)
    cols = np.minimum(cols, vw - 1)

    def axis_taps(pos: np.ndarray, src: int, virt: int, sh: int):
        if virt == src:
            li, lw = _identity_taps(pos)
            ci, cw = _identity_taps(pos >> sh)
        else:
            li, lw = resize_taps(src, virt, pos)
            ci, cw = resize_taps(_chroma_size(src, sh), virt, pos)
        return Taps(li, lw), Taps(ci, cw)

    luma_rows, chroma_rows = axis_taps(rows, height, vh, shift[0])
    luma_cols, chroma_cols = axis_taps(cols, width, vw, shift[1])
    return (gh, gw), (ph, pw), luma_rows, luma_cols, chroma_rows, chroma_cols


def _resize_taps_for_view(view: ViewSpec, height: int, width: int, shift: tuple[int, int]):
    out_h, out_w = view.size
    if view.kind == "resize_crop" and view.short_side is not None:
        s = view.short_side
        if height <= width:
            rh, rw = s, int(s * width / height)
        else:
            rh, rw = int(s * height / width), s
        top = int(round((rh - out_h) / 2.0))
        left = int(round((rw - out_w) / 2.0))
    else:
        rh, rw, top, left = out_h, out_w, 0, 0
    if rh < out_h or rw < out_w:
        raise PlanError(f"resized frame {rw}x{rh} is smaller than the crop {out_w}x{out_h}")
    rpos = (top + np.arange(out_h))[None, None, None, :]
    cpos = (left + np.arange(out_w))[None, None, None, :]
    luma_rows = Taps(*resize_taps(height, rh, rpos))
    luma_cols = Taps(*resize_taps(width, rw, cpos))
    chroma_rows = Taps(*resize_taps(_chroma_size(height, shift[0]), rh, rpos))
    chroma_cols = Taps(*resize_taps(_chroma_size(width, shift[1]), rw, cpos))
    return (1, 1), (out_h, out_w), luma_rows, luma_cols, chroma_rows, chroma_cols


# --------------------------------------------------------------------------------------------- entry point


def make_plan(view: ViewSpec, info: VideoInfo, seed: int | None = None, mode: str = "default",
              view_index: int = 0) -> SamplePlan:
    """The plan for one view of one video.

    ``seed=None`` gives the deterministic plan (segment and cell centres); an integer seed draws offsets
    reproducibly. ``mode='reference'`` reproduces the original FAST-VQA semantics (random offsets in
    ``[0, cell - patch)``, temporal wrap-around, the small-video quirk); it draws with seed 0 when none is given.
    """
    if mode not in PLAN_MODES:
        raise PlanError(f"plan mode must be one of {PLAN_MODES}, got {mode!r}")
    if info.width < 1 or info.height < 1:
        raise PlanError(f"{info.path}: video has no picture size ({info.width}x{info.height})")
    if info.num_frames < 1:
        raise PlanError(f"{info.path}: video has no frames")
    rng = _rng_for(seed if seed is not None or mode == "default" else 0, view_index)
    notes: list[str] = []

    per_frame = temporal_indices(view, info.num_frames, info.fps, mode, rng)
    if per_frame.shape[1] > 1 and np.any(np.diff(per_frame, axis=1) == 0):
        # A clip longer than the video shows some frames twice in a row: a model reads them as a freeze.
        notes.append(f"{info.num_frames} frame(s) in the video, {per_frame.shape[1]} read per clip: some are "
                     f"shown twice in a row, so scores of motion (temporal) read a freeze that is not in the video")
    frame_indices, slots = np.unique(per_frame, return_inverse=True)
    slots = slots.reshape(per_frame.shape).astype(np.int32)

    n, t = per_frame.shape
    if view.kind == "fragments":
        groups_per_clip = -(-t // view.aligned)
        tap_group = (np.arange(n)[:, None] * groups_per_clip + np.arange(t)[None, :] // view.aligned)
        geometry = _fragment_taps(view, info.height, info.width, info.chroma_shift, n * groups_per_clip, mode,
                                  rng, notes)
    else:
        tap_group = np.zeros((n, t), dtype=np.int64)
        geometry = _resize_taps_for_view(view, info.height, info.width, info.chroma_shift)
    grid, tile, lr, lc, cr, cc = geometry
    return SamplePlan(view=view, source_size=(info.height, info.width), chroma_shift=info.chroma_shift,
                      frame_indices=frame_indices.astype(np.int64), slots=slots,
                      tap_group=tap_group.astype(np.int32), grid=grid, tile_size=tile, luma_rows=lr,
                      luma_cols=lc, chroma_rows=cr, chroma_cols=cc, seed=seed, mode=mode, notes=tuple(notes),
                      frames=(0, int(info.num_frames)))


def make_plans(views, info: VideoInfo, seed: int | None = None, mode: str = "default") -> list[SamplePlan]:
    return [make_plan(v, info, seed, mode, i) for i, v in enumerate(views)]


def frames_needed(plans) -> np.ndarray:
    """Sorted distinct source frames that any of ``plans`` reads."""
    if not plans:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate([p.frame_indices for p in plans]))
