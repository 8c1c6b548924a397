"""Deinterlacing one decoded frame at a time, so interlaced video is scored as a player shows it.

An interlaced frame holds two fields captured at different instants, on alternate lines (chroma lines too, in
interlaced 4:2:0). Scored as coded, anything that moves between the fields shows as combing, which a player's
deinterlacer removes and a quality model misreads (an interlaced 720-line clip read blur 6 of 100 woven, 88
deinterlaced).

Each frame is deinterlaced on its own: the lines of the field shown first are kept, and each line of the other
field is kept where it agrees with them and replaced where it combs. A line combs where it lies beyond both of
its neighbours in the kept field (above both, or below both) by more than `COMB_THRESHOLD` levels; a smooth
vertical change lies between them and is kept, so still areas keep their full vertical detail. A combed line
is interpolated from the kept field's four nearest lines (the cubic taps -1, 9, 9, -1 over 16). Nothing is
carried from frame to frame, so a frame reached by seeking is deinterlaced exactly as one decoded in order.

`deinterlace_plane_reference` (NumPy) is the specification; `deinterlace_plane` runs the C form
(`edgevqa.kernels._deinterlace`, bit-exact with it, about 2.7 times faster: `bench/deinterlace_speed.py`)
where it was built; ``EDGEVQA_DEINTERLACE_LIBRARY=/path/to/_deinterlace*.so`` loads another build instead.
"""

from __future__ import annotations

import numpy as np

from edgevqa.modes import checked_mode
from edgevqa.kernels.extension import load_extension

COMB_THRESHOLD = 6  # 8-bit levels; scaled up for deeper samples
# Which frames are deinterlaced: those the decoder flags interlaced (auto), every frame (always: raw frames from
# a capture pipeline carry no flag), none (never: the woven fields are scored as coded).
DEINTERLACE_MODES = ("auto", "always", "never")
# AVFieldOrder of the stream -> the field shown first (0 top, 1 bottom): TT and BT show the top field first,
# BB and TB the bottom one. Unknown orders take the top field, as most interlaced HD does.
FIRST_FIELD_OF_ORDER = {2: 0, 3: 1, 4: 1, 5: 0}


def deinterlace_mode(value: bool | str) -> str:
    """``value`` as one of `DEINTERLACE_MODES` (True is "auto", False "never"); EdgeVQAError otherwise."""
    return checked_mode(value, DEINTERLACE_MODES, "deinterlace")


def first_field(field_order: int | None) -> int:
    return FIRST_FIELD_OF_ORDER.get(int(field_order or 0), 0)


try:
    _compiled = load_extension("_deinterlace", "EDGEVQA_DEINTERLACE_LIBRARY")
except ImportError:  # built without a C compiler: the reference does the work
    _compiled = None


def deinterlace_plane(plane: np.ndarray, field: int, bit_depth: int = 8) -> np.ndarray:
    """A new array: ``plane`` ``[H, W]`` (or ``[H, W*C]`` for packed samples) with the lines of the field other
    than ``field`` (0 top, 1 bottom) replaced where they comb against the kept lines."""
    if _compiled is None or plane.ndim != 2 or plane.dtype not in (np.uint8, np.uint16) or not plane.flags.aligned:
        return deinterlace_plane_reference(plane, field, bit_depth)
    out = np.empty(plane.shape, plane.dtype)
    _compiled.deinterlace_plane(plane, out, field, bit_depth, COMB_THRESHOLD << (bit_depth - 8))
    return out


def deinterlace_plane_reference(plane: np.ndarray, field: int, bit_depth: int = 8) -> np.ndarray:
    """`deinterlace_plane` in NumPy: the specification."""
    height = plane.shape[0]
    out = np.array(plane, copy=True)
    kept_count, other_count = len(range(field, height, 2)), len(range(1 - field, height, 2))
    if kept_count == 0 or other_count == 0:
        return out
    # int16 holds every sum below for samples of up to 10 bits (9 * 2 * 1023 < 2**15); deeper ones need int32.
    work = np.int16 if bit_depth <= 10 else np.int32
    # The kept field's lines with two copies of the first line above and of the last below, so that for the
    # other field's n-th line the kept lines around it are views: the line under it is kept line
    # k = n + 1 - field (a top field kept: line 2n + 1 lies between kept lines n and n + 1), padded index k + 2.
    kept = plane[field::2].astype(work)
    padded = np.concatenate([kept[:1], kept[:1], kept, kept[-1:], kept[-1:]])
    first = 1 - field + 2  # padded index of the line under the other field's first line
    rows = slice(first, first + other_count)

    def around(offset: int) -> np.ndarray:
        return padded[rows.start + offset: rows.stop + offset]

    above, below = around(-1), around(0)
    original = plane[1 - field::2].astype(work)
    threshold = COMB_THRESHOLD << (bit_depth - 8)
    to_above, to_below = original - above, original - below
    beyond = ((to_above > threshold) & (to_below > threshold)) | ((to_above < -threshold) & (to_below < -threshold))
    # Combing, not a thin horizontal line of a still picture: the other field is smooth along itself (its
    # lines two apart agree with this one better than the kept lines do).
    neighbours = np.concatenate([original[:1], original, original[-1:]])
    along = np.abs(2 * original - neighbours[:-2] - neighbours[2:])
    across = np.minimum(np.abs(to_above), np.abs(to_below))
    combed = beyond & (along < across)
    if combed.any():
        interpolated = (9 * (above + below) - around(-2) - around(1) + 8) >> 4
        np.clip(interpolated, 0, (1 << bit_depth) - 1, out=interpolated)
        other = out[1 - field::2]
        np.copyto(other, interpolated.astype(plane.dtype), where=combed)
    return out


def deinterlace_planes(planes: list[np.ndarray], field: int, bit_depth: int, shared_chroma: bool = False
                       ) -> list[np.ndarray]:
    """Every plane of a frame deinterlaced (`deinterlace_plane`). ``shared_chroma``: planes 1 and 2 are a
    constant stand-in (grey video) and are passed through."""
    count = 1 if shared_chroma else len(planes)
    return [deinterlace_plane(p, field, bit_depth) if i < count else p for i, p in enumerate(planes)]
