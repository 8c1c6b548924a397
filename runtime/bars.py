"""Black bars around the picture (letterbox, pillarbox), found so that the model samples the picture alone.

A film of 2.39:1 shown in a 16:9 frame, 4:3 footage in a 16:9 frame, or a portrait phone video padded to
landscape carries black bars as part of every frame. The fragments that fall on them are flat black, which
the default model reads as lost detail and colour: a 720p shared test clip scored overall 86.4 as 1280x536
and 77.6 letterboxed to 1280x720 (colour 85.3 and 75.6, temporal 99.5 and 93.5); as 960x720 and pillarboxed
to 1280x720, 87.4 and 73.3 (blur 99.3 and 74.2). The decoder crops them (`PyAVDecoder`, ``crop_bars``), as
``ffmpeg -vf cropdetect`` finds them for an encoder.

A bar is a band along the frame's edge whose samples all lie within `BAR_LEVELS` 8-bit levels of black, with
neutral chroma. Bars are cropped in pairs only: top and bottom (or left and right) both at least
`MIN_BAR_SHARE` of the side and within a factor `MAX_BAR_RATIO` of each other, since a letterbox is centred
while a dark sky or a dark floor lies on one side only. A frame tells nothing (a later one is looked at) when
what would be left is under `MIN_PICTURE_SHARE` of a side, or under `MIN_LIT_SHARE` of it is brighter than a bar:
a title card or a dark shot says nothing of where the picture ends. Edges move inward to whole chroma samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .modes import checked_mode

BAR_LEVELS = 10  # 8-bit levels above black (16 in limited range, 0 in full) that a bar sample may reach
BAR_CHROMA_LEVELS = 8  # 8-bit levels from neutral that a bar's chroma may reach
OUTLIERS = 1 / 500  # share of a line's samples allowed past those (noise, a stray logo pixel) in a bar
MIN_BAR_SHARE = 0.015
MAX_BAR_RATIO = 2.0
MIN_PICTURE_SHARE = 0.25
# A frame with less of its picture lit than this (a title card, a dark shot) does not show where the picture
# ends: a later frame is looked at.
MIN_LIT_SHARE = 0.3


CROP_BARS_MODES = ("auto", "never")


def crop_bars_mode(value: bool | str) -> str:
    """``value`` as one of `CROP_BARS_MODES` (True is "auto", False "never"); EdgeVQAError otherwise."""
    return checked_mode(value, CROP_BARS_MODES, "crop_bars")


@dataclass(frozen=True)
class Bars:
    """Lines of bar at each edge of a display frame."""

    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0

    def __bool__(self) -> bool:
        return bool(self.top or self.bottom or self.left or self.right)

    def picture_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the picture inside the bars."""
        return width - self.left - self.right, height - self.top - self.bottom

    def crop(self, planes, chroma_shift: tuple[int, int]) -> tuple:
        """Views of ``planes`` (Y'CbCr with subsampled chroma, or RGB) inside the bars: nothing is copied."""
        h, w = planes[0].shape
        sy, sx = chroma_shift
        luma = planes[0][self.top:h - self.bottom, self.left:w - self.right]
        chroma = [p[self.top >> sy:(h - self.bottom + (1 << sy) - 1) >> sy,
                    self.left >> sx:(w - self.right + (1 << sx) - 1) >> sx] for p in planes[1:]]
        return (luma, *chroma)


def _content_lines(planes, chroma_shift, depth: int, is_rgb: bool, full_range: bool) -> tuple[np.ndarray, ...]:
    """Per display row and column, how many samples are not bar (too bright, or coloured); and how many luma
    (or RGB) samples are lit."""
    scale = 1 << (depth - 8)
    black = 0 if full_range or is_rgb else 16 * scale
    limit = black + BAR_LEVELS * scale
    h, w = planes[0].shape
    if is_rgb:
        content = np.zeros((h, w), dtype=bool)
        for plane in planes:
            content |= plane > limit
        rows = content.sum(axis=1)
        return rows, content.sum(axis=0), int(rows.sum())
    content = planes[0] > limit
    rows, cols = content.sum(axis=1), content.sum(axis=0)
    lit = int(rows.sum())
    sy, sx = chroma_shift
    mid = 128 * scale
    for plane in planes[1:]:
        if plane.strides == (0, 0):
            continue  # grey: no chroma
        coloured = np.abs(plane.astype(np.int32) - mid) > BAR_CHROMA_LEVELS * scale
        # a chroma sample covers 2**sy rows and 2**sx columns of luma
        rows = rows + np.repeat(coloured.sum(axis=1) << sx, 1 << sy)[:h]
        cols = cols + np.repeat(coloured.sum(axis=0) << sy, 1 << sx)[:w]
    return rows, cols, lit


def _pair(near: int, far: int, side: int) -> tuple[int, int]:
    """Two opposite bars kept when both are wide enough and alike, else none."""
    least = max(2, int(np.ceil(MIN_BAR_SHARE * side)))
    if near >= least and far >= least and max(near, far) <= MAX_BAR_RATIO * min(near, far):
        return near, far
    return 0, 0


def find_bars(planes, chroma_shift: tuple[int, int], depth: int = 8, is_rgb: bool = False,
              full_range: bool = False) -> Bars | None:
    """The bars of one display-oriented frame; None when the frame is too dark to tell (all black, a title card,
    a dark shot: less than `MIN_LIT_SHARE` of what would be its picture lit)."""
    h, w = planes[0].shape
    rows, cols, lit = _content_lines(planes, chroma_shift, depth, is_rgb, full_range)
    picture_rows = np.flatnonzero(rows > OUTLIERS * w)
    if picture_rows.size == 0:
        return None
    top, bottom = _pair(int(picture_rows[0]), h - 1 - int(picture_rows[-1]), h)
    # the columns of the rows kept: a letterboxed picture's columns are judged inside its own rows
    if top or bottom:
        _, cols, _ = _content_lines(Bars(top, bottom).crop(planes, chroma_shift), chroma_shift, depth, is_rgb,
                                    full_range)
    picture_cols = np.flatnonzero(cols > OUTLIERS * (h - top - bottom))
    if picture_cols.size == 0:
        return None
    left, right = _pair(int(picture_cols[0]), w - 1 - int(picture_cols[-1]), w)
    # inward to whole chroma samples, so the picture's chroma starts at a sample of its own
    sy, sx = (0, 0) if is_rgb else chroma_shift
    if top:
        top, bottom = -(-top >> sy) << sy, h - ((h - bottom) >> sy << sy)
    if left:
        left, right = -(-left >> sx) << sx, w - ((w - right) >> sx << sx)
    if (h - top - bottom) < MIN_PICTURE_SHARE * h or (w - left - right) < MIN_PICTURE_SHARE * w:
        return None  # a small bright thing on black (a logo, a line of text): not where a picture ends
    if lit < MIN_LIT_SHARE * (h - top - bottom) * (w - left - right):
        return None
    return Bars(top, bottom, left, right)
