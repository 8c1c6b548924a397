"""Decoded-video types shared by decoders, planners and sampling kernels.

A `Frame` holds zero-copy views of the decoder's planes (Y, U, V; or R, G, B for RGB sources) in display
orientation, plus the colour facts needed to convert only the pixels that a plan keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

COLOR_MATRICES = ("bt601", "bt709", "bt2020")
COLOR_RANGES = ("limited", "full")


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a video from its container, before decoding. Sizes are display sizes."""

    path: str
    width: int
    height: int
    num_frames: int
    fps: float
    duration: float
    pix_fmt: str = "yuv420p"
    codec: str = ""
    bit_depth: int = 8
    chroma_shift: tuple[int, int] = (1, 1)  # (rows, cols) log2 subsampling of U/V in display orientation
    is_rgb: bool = False
    color_matrix: str = "bt601"
    color_range: str = "limited"
    rotation: int = 0  # degrees counter-clockwise applied to coded frames to display them
    frame_count_source: str = "container"  # container | duration | packets | decoded | unknown
    transfer: str = "sdr"  # sdr | pq (SMPTE ST 2084, HDR10) | hlg (ARIB STD-B67): the coded values' transfer curve
    interlaced: bool = False  # each frame holds two fields (1080i/576i broadcast, some cameras), by its first frame
    hdr_peak_nits: float | None = None  # a PQ video's declared peak luminance (MaxCLL, else its mastering display's)
    # Black bars cropped (`edgevqa.bars`): lines at the top, bottom, left and right of the display frame; width and
    # height are then the picture's inside them.
    bars: tuple[int, int, int, int] | None = None
    # Frames missing from the stream (`edgevqa.timeline`): per gap in its timestamps, (seconds from the first frame to
    # the last one before it, its length in seconds). Frames are then counted in display ticks at ``fps``, the
    # frame before each gap held, as a player shows them.
    timestamp_gaps: tuple[tuple[float, float], ...] = ()

    def hdr_note(self, tone_map: bool | str = "auto") -> str | None:
        """What scores of an HDR video mean, for a warning, under a `edgevqa.tonemap.TONE_MAP_MODES` mode; None
        for SDR video."""
        from .tonemap import DEFAULT_PEAK_NITS, SDR_WHITE_NITS, tone_map_mode  # late: as deinterlace_mode below

        if self.transfer == "sdr":
            return None
        looks = {"pq": ("PQ (HDR10)", "dim and washed out"), "hlg": ("HLG", "flat and desaturated")}
        curve, seen = looks.get(self.transfer, (self.transfer, "otherwise"))
        if tone_map_mode(tone_map) == "auto" and not self.is_rgb and self.transfer in looks:
            if self.transfer == "hlg":
                peak = f"a {DEFAULT_PEAK_NITS:.0f}-nit display"
            elif self.hdr_peak_nits:
                peak = f"its declared peak of {self.hdr_peak_nits:.0f} nits"
            else:
                peak = f"no declared peak, {DEFAULT_PEAK_NITS:.0f} nits taken"
            return (f"HDR video ({curve} transfer; {peak}): its frames are tone-mapped to SDR BT.709 before "
                    f"sampling, as a player shows them on an SDR screen (BT.2390 highlight roll-off to "
                    f"{SDR_WHITE_NITS:.0f}-nit reference white)")
        why = ("as asked (tone mapping 'never')" if self.transfer in looks and not self.is_rgb
               else "edgevqa tone-maps PQ and HLG Y'CbCr video only")
        return (f"HDR video ({curve} transfer), not tone-mapped, {why}: its pixels are read as coded, as if SDR, so "
                f"a model trained on SDR video (the default model is) sees them {seen}; the scores describe that "
                "picture, not the HDR one")

    def interlace_note(self, deinterlace: bool | str = "auto") -> str | None:
        """What scores of interlaced video mean, for a warning, under a `edgevqa.deinterlace.DEINTERLACE_MODES`
        mode; None for progressive video left as it is."""
        # Imported here: edgevqa.deinterlace loads edgevqa.kernels, whose reference imports sampling, which
        # imports this module.
        from .deinterlace import deinterlace_mode

        mode = deinterlace_mode(deinterlace)
        if not self.interlaced:
            if mode != "always":
                return None
            return ("every frame is deinterlaced before sampling, as asked (deinterlace 'always'), though the video "
                    "does not flag its frames interlaced")
        if mode != "never":
            return ("interlaced video: its frames are deinterlaced before sampling, as a player shows them (the "
                    "field shown first kept, the other field's lines interpolated where they comb)")
        return ("interlaced video, not deinterlaced: each frame is scored as coded, its two fields woven together, so "
                "anything that moves between the fields shows as combing that a player's deinterlacer would "
                "remove; the scores describe the woven frames")

    def bars_note(self) -> str | None:
        """What cropping black bars did, for a warning; None when there were none."""
        if not self.bars:
            return None
        top, bottom, left, right = self.bars
        kind = " and ".join(k for k, on in (("letterbox", top or bottom), ("pillarbox", left or right)) if on)
        return (f"black bars ({kind}) cropped: the {self.width}x{self.height} picture inside the "
                f"{self.width + left + right}x{self.height + top + bottom} frame is scored (bars: top {top}, "
                f"bottom {bottom}, left {left}, right {right})")

    def gaps_note(self) -> str | None:
        """What holding frames over the gaps in the timestamps did, for a warning; None without gaps."""
        if not self.timestamp_gaps:
            return None
        gaps = self.timestamp_gaps
        held = sum(length for _, length in gaps)
        where = ", ".join(f"{length:.2f} s after {start:.2f} s" for start, length in gaps[:3])
        more = f", and {len(gaps) - 3} more" if len(gaps) > 3 else ""
        return (f"frames are missing from the stream: {len(gaps)} gap(s) in its timestamps ({where}{more}; "
                f"{held:.2f} s in all); read as a player shows them at {self.fps:.3g} fps, the frame before each gap "
                "held until the next is due, so a model sees the freeze a viewer does")

    def picture_notes(self, deinterlace: bool | str = "auto", tone_map: bool | str = "auto") -> list[str]:
        """Warnings about how the coded pictures differ from what is scored (HDR, interlacing, black bars, frames
        missing)."""
        return [note for note in (self.hdr_note(tone_map), self.interlace_note(deinterlace), self.bars_note(),
                                  self.gaps_note()) if note]

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class Frame:
    """One decoded frame: three 2-D plane views (any strides), its index in decode order, and its time.

    ``planes`` are Y, U, V (chroma possibly subsampled by ``chroma_shift``) or R, G, B when ``is_rgb``.
    For grey sources U and V are 1x1 arrays broadcast with zero strides (value mid-grey).
    The arrays may view the decoder's own buffers: keep ``owner`` alive while they are used.
    """

    index: int
    pts: float | None
    planes: tuple[np.ndarray, np.ndarray, np.ndarray]
    bit_depth: int = 8
    is_rgb: bool = False
    chroma_shift: tuple[int, int] = (1, 1)
    color_matrix: str = "bt601"
    color_range: str = "limited"
    owner: Any = field(default=None, repr=False)
    # Set when only the pixels a plan reads were made (a region of an HDR frame, see `PyAVDecoder.regions`):
    # makes the same frame whole.
    whole: Callable[[], "Frame"] | None = field(default=None, repr=False, compare=False)

    @property
    def height(self) -> int:
        return int(self.planes[0].shape[0])

    @property
    def width(self) -> int:
        return int(self.planes[0].shape[1])
