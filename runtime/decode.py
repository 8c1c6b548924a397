"""Decoding on the host with PyAV (FFmpeg): frames handed on as zero-copy plane views, never converted to RGB.

`PyAVDecoder` opens a path, URL, bytes or file object, reports `VideoInfo` from the container (the first
frame is decoded once to learn rotation and colour facts, and kept, so nothing is decoded twice), and yields
only the frames a plan asks for, stopping as soon as the last one is out. Where the frames asked for lie far
apart in a long MP4/MOV or Matroska/WebM file, it seeks to the keyframe before each instead of decoding every
frame in between (`PyAVDecoder.SEEK_MIN_GAP`).
"""

from __future__ import annotations

import functools
import io
import math
import os
from dataclasses import replace
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .deinterlace import deinterlace_mode, deinterlace_planes, first_field
from .errors import VideoDecodeError
from .bars import Bars, crop_bars_mode, find_bars
from .timeline import MAX_LOST_SHARE, Timeline, display_timeline, gap_ticks, is_gap
from .tonemap import TONE_MAPPED_TRANSFERS, tone_map_for, tone_map_mode, tone_map_planes, tone_map_region
from .video import Frame, VideoInfo

# Pixel formats whose planes are handed on as they are: name -> (is_rgb, bit depth, chroma shift, kind).
_NATIVE_FORMATS = {
    "yuv420p": (False, 8, (1, 1), "planar"),
    "yuvj420p": (False, 8, (1, 1), "planar"),
    "yuv422p": (False, 8, (0, 1), "planar"),
    "yuvj422p": (False, 8, (0, 1), "planar"),
    "yuv444p": (False, 8, (0, 0), "planar"),
    "yuvj444p": (False, 8, (0, 0), "planar"),
    "yuv420p10le": (False, 10, (1, 1), "planar"),
    "yuv422p10le": (False, 10, (0, 1), "planar"),
    "yuv444p10le": (False, 10, (0, 0), "planar"),
    "yuv420p12le": (False, 12, (1, 1), "planar"),
    "yuv422p12le": (False, 12, (0, 1), "planar"),  # HEVC/AV1 range extensions, cameras
    "yuv444p12le": (False, 12, (0, 0), "planar"),
    "yuv444p16le": (False, 16, (0, 0), "planar"),  # the fallback of deeper formats
    # With alpha (ProRes 4444, VP9 and FFV1 with alpha): the colour planes as they are, alpha left aside as a
    # player showing the video on its own does.
    "yuva420p": (False, 8, (1, 1), "planar"),
    "yuva422p": (False, 8, (0, 1), "planar"),
    "yuva444p": (False, 8, (0, 0), "planar"),
    "yuva420p10le": (False, 10, (1, 1), "planar"),
    "yuva422p10le": (False, 10, (0, 1), "planar"),
    "yuva444p10le": (False, 10, (0, 0), "planar"),
    "yuva444p12le": (False, 12, (0, 0), "planar"),
    "nv12": (False, 8, (1, 1), "semi"),
    "gray": (False, 8, (0, 0), "gray"),
    "gray10le": (False, 10, (0, 0), "gray"),
    "gray12le": (False, 12, (0, 0), "gray"),
    "rgb24": (True, 8, (0, 0), "packed"),
    "bgr24": (True, 8, (0, 0), "packed_bgr"),
    # Planar RGB (VP9, FFV1, DNxHR 444, lossless RGB codecs) stores green, blue, red.
    "gbrp": (True, 8, (0, 0), "planar_gbr"),
    "gbrp10le": (True, 10, (0, 0), "planar_gbr"),
    "gbrp12le": (True, 12, (0, 0), "planar_gbr"),
    "gbrap": (True, 8, (0, 0), "planar_gbr"),
    "gbrap10le": (True, 10, (0, 0), "planar_gbr"),
    "gbrap12le": (True, 12, (0, 0), "planar_gbr"),
    "gbrp16le": (True, 16, (0, 0), "planar_gbr"),  # the fallback of deeper RGB formats
}
# Packed RGB with a fourth byte (alpha or padding: PNG, QuickTime Animation, screen captures): the byte offsets
# of red, green and blue in each pixel's four.
_PACKED4_ORDER = {"rgba": (0, 1, 2), "rgb0": (0, 1, 2), "bgra": (2, 1, 0), "bgr0": (2, 1, 0), "argb": (1, 2, 3),
                  "0rgb": (1, 2, 3), "abgr": (3, 2, 1), "0bgr": (3, 2, 1)}
_NATIVE_FORMATS.update({name: (True, 8, (0, 0), "packed4") for name in _PACKED4_ORDER})


@functools.lru_cache(maxsize=64)  # asked once per converted frame
def _format_facts(name: str) -> tuple[int, bool]:
    """(sample depth, whether RGB) of pixel format ``name`` by FFmpeg's description: palette formats count as
    RGB; an unknown name as 8-bit Y'CbCr."""
    try:
        described = _import_av().video.format.VideoFormat(name)
        return max(c.bits for c in described.components), bool(described.is_rgb) or name == "pal8"
    except (ValueError, AttributeError):
        return 8, False


def _fallback_format(name: str) -> str:
    """What libswscale converts a frame of an unlisted format ``name`` to, once per kept frame (a copy): Y'CbCr
    4:4:4, or planar RGB for RGB and palette formats (no colour matrix in between), at 8 bits, or at 16 for
    formats with deeper samples, which would lose precision at 8."""
    bits, rgb = _format_facts(name)
    return ("gbrp16le" if bits > 8 else "gbrp") if rgb else ("yuv444p16le" if bits > 8 else "yuv444p")

_MAX_CORRUPT_PACKETS = 64

# Demuxers whose files carry a keyframe index (sample tables, cues), so that a seek lands on the keyframe asked
# for. Others (MPEG-TS, raw streams, ...) are decoded straight through.
_INDEXED_FORMATS = frozenset({"mov", "mp4", "matroska", "webm"})


class _SeekMismatch(Exception):
    """Frames after a seek did not line up with the packet table: decode from the start instead."""

# AVColorTransferCharacteristic codes (libavutil/pixfmt.h) of HDR curves -> our names; every other code is SDR.
_TRANSFER = {16: "pq", 18: "hlg"}

# AVColorSpace codes (libavutil/pixfmt.h) -> our matrix names.
_COLORSPACE = {1: "bt709", 5: "bt601", 6: "bt601", 4: "bt601", 7: "bt601", 9: "bt2020", 10: "bt2020"}


def describe_source(source: Any) -> str:
    """What messages call a video source: its path, its size in bytes, or its file object's name."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    name = getattr(source, "name", None)
    if isinstance(name, int):  # a file object made from a descriptor (os.fdopen, a pipe) is named by its number
        return f"<file descriptor {name}>"
    return os.fspath(name) if isinstance(name, (str, os.PathLike)) and name else f"<{type(source).__name__}>"


def _import_av():
    try:
        import av
    except ImportError as exc:  # av is a base dependency; a broken install is still a clear message
        from .errors import BackendUnavailableError

        raise BackendUnavailableError("pyav-decode", "PyAV (the 'av' package)", None, str(exc)) from exc
    return av


def _rotation_of(frame: Any) -> int:
    try:
        angle = float(frame.rotation or 0)
    except (AttributeError, TypeError, ValueError):
        return 0
    return int(round(angle / 90.0)) % 4 * 90


def _coded_region(region: tuple[np.ndarray, np.ndarray], rotation: int, coded_shape: tuple[int, int]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Display rows and columns -> the coded rows and columns they show, for ``rotation`` as in
    `_rotate_planes` (np.rot90 k times: k = 1 shows coded column W-1-i as row i and coded row j as column j)."""
    rows, cols = (np.asarray(v, np.int64) for v in region)
    height, width = coded_shape
    k = (rotation // 90) % 4
    if k == 1:
        return cols, width - 1 - rows
    if k == 2:
        return height - 1 - rows, width - 1 - cols
    if k == 3:
        return height - 1 - cols, rows
    return rows, cols


def _rotate_planes(planes: list[np.ndarray], rotation: int) -> list[np.ndarray]:
    """Views of the planes in display orientation (``rotation`` degrees counter-clockwise)."""
    k = (rotation // 90) % 4
    return planes if k == 0 else [np.rot90(p, k) for p in planes]


def _is_animated_webp(source: Any) -> bool:
    """Whether a path or in-memory file holds an animated WebP (an extended header with its animation flag)."""
    try:
        if isinstance(source, io.BytesIO):
            head = source.getvalue()[:21]
        elif isinstance(source, str) and "://" not in source:
            with open(source, "rb") as fh:
                head = fh.read(21)
        else:
            return False
    except OSError:
        return False
    return head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8X" and len(head) > 20 and bool(head[20] & 0x02)


def _count_leading_discards(records: Sequence[tuple[int | None, bool, bool]]) -> int:
    """The discarded packets (see `PyAVDecoder._packet_records`) before the first group of pictures that holds
    none: in decode order, the B-frames of the cut's own group that precede the cut come after its first shown
    frame."""
    dropped = 0
    shown = False
    for _, keyframe, discarded in records:
        if shown and keyframe and not discarded:
            break
        dropped += discarded
        shown |= not discarded
    return dropped


class PyAVDecoder:
    """Decode one video with PyAV. Use as a context manager; `info` is ready after construction."""

    # A gap of at least this many frames before the next frame asked for is crossed by seeking to the keyframe
    # before that frame (when the file allows it, see `_seek_table`) instead of decoding every frame in between.
    # A VQA clip of 8 to 20 s has shorter gaps, so it is decoded straight through as before; a film is not.
    SEEK_MIN_GAP = 250
    seeks = 0  # seeks made
    frames_through_decoder = 0  # every frame the codec put out, the skipped ones included

    def __init__(self, source: Any, threads: int = 0, live: bool = False, input_format: str | None = None,
                 input_options: dict[str, str] | None = None, name: str | None = None,
                 deinterlace: bool | str = "auto", max_bit_depth: int | None = None, tone_map: bool | str = "auto",
                 crop_bars: bool | str = "never"):
        """``input_format`` and ``input_options`` go to FFmpeg's demuxer as ``-f`` and ``-KEY VALUE`` before
        ``-i`` would (a raw stream's ``video_size``, ``pixel_format`` and ``framerate``; ``rtsp_transport``;
        ``timeout``). ``name`` is what messages call the source (default: its path, or a description).
        ``deinterlace``: "auto" (or True) deinterlaces the frames flagged interlaced, as a player shows them;
        "always" every frame; "never" (or False) none (`edgevqa.deinterlace`); `deinterlaced_frames` counts them.
        ``max_bit_depth``: frames with deeper samples come out rounded to that many bits (`reduce_bit_depth`), the
        precision a model was trained on. ``tone_map``: "auto" (or True) maps the frames of HDR (PQ, HLG) Y'CbCr
        video to 8-bit SDR BT.709, as a player shows them on an SDR screen; "never" (or False) reads them as coded
        (`edgevqa.tonemap`); `tone_mapped_frames` counts them. ``crop_bars``: "auto" (or True) crops black bars
        (letterbox, pillarbox) found at the start (`edgevqa.bars`; `info` then gives the picture's size and
        ``bars``); "never" (or False, the default here; `Pipeline` crops) keeps whole frames."""
        self.name = name or describe_source(source)
        self.deinterlace = deinterlace_mode(deinterlace)
        self.max_bit_depth = max_bit_depth
        self.tone_map = tone_map_mode(tone_map)
        self.crop_bars = crop_bars_mode(crop_bars)
        self._bars = Bars()
        self.deinterlaced_frames = 0
        self.tone_mapped_frames = 0
        self.live_gaps = []
        self._open_arguments = {"format": input_format, "options": dict(input_options or {})}
        self._threads = threads
        # A live source (a stream still playing, a growing file) is never read ahead to count its frames.
        self._live = live
        av = _import_av()
        self._av = av
        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            if "://" not in path:
                if not os.path.exists(path):
                    raise VideoDecodeError(f"{path}: no such file")
                if os.path.isdir(path):
                    raise VideoDecodeError(f"{path}: is a directory, not a video file")
                if os.path.getsize(path) == 0:
                    raise VideoDecodeError(f"{path}: file is empty")
            opened: Any = path
            self._reopenable: Any = path
        elif isinstance(source, (bytes, bytearray, memoryview)):
            if len(source) == 0:
                raise VideoDecodeError(f"{self.name}: no data")
            opened = io.BytesIO(bytes(source))
            self._reopenable = io.BytesIO(bytes(source))
        else:
            opened = source
            self._reopenable = None
        try:
            self._container = av.open(opened, mode="r", **self._open_arguments)
        except av.FFmpegError as exc:
            raise VideoDecodeError(f"{self.name}: not a readable video ({_ffmpeg_reason(exc)})") from exc
        except (OSError, ValueError) as exc:
            raise VideoDecodeError(f"{self.name}: cannot open ({exc})") from exc
        try:
            self._open_stream()
        except BaseException:
            self._container.close()
            raise

    # ------------------------------------------------------------------ probing

    def _open_stream(self) -> None:
        av = self._av
        streams = self._container.streams.video
        if not streams:
            kinds = sorted({s.type for s in self._container.streams}) or ["none"]
            raise VideoDecodeError(f"{self.name}: has no video stream (streams found: {', '.join(kinds)})")
        fmt_name = self._container.format.name or ""
        if fmt_name == "webp_pipe" and _is_animated_webp(self._reopenable):
            raise VideoDecodeError(f"{self.name}: is an animated WebP, which this FFmpeg (libavcodec "
                                   f"{'.'.join(map(str, av.library_versions.get('libavcodec', ())))}) cannot decode; "
                                   "convert it to a video first (Pillow or ImageMagick read it)")
        if fmt_name.endswith("_pipe") or fmt_name == "image2":
            raise VideoDecodeError(f"{self.name}: is a still image ({fmt_name.replace('_pipe', '')}), not a video")
        # Cover art (an audio file's album picture, a video's thumbnail) is a one-picture "video" stream.
        moving = [k for k, s in enumerate(streams) if not s.disposition & av.stream.Disposition.attached_pic]
        if not moving:
            raise VideoDecodeError(f"{self.name}: has no video stream, only cover art (an attached picture); an audio "
                                   "file?")
        # Of several video tracks, the one the file marks as its default, else the first.
        marked = [k for k in moving if streams[k].disposition & av.stream.Disposition.default]
        self._video_position = (marked or moving)[0]  # among the container's video streams
        stream = streams[self._video_position]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = self._threads
        self._stream = stream
        # The field deinterlacing keeps (0 top, 1 bottom): the one the stream shows first.
        self.kept_field = first_field(getattr(stream.codec_context, "field_order", 0))
        self._frames_iter = self._raw_frames()
        try:
            first = next(self._frames_iter, None)
        except av.FFmpegError as exc:
            raise VideoDecodeError(f"{self.name}: cannot decode the video ({_ffmpeg_reason(exc)})") from exc
        if first is None:
            detail = (f" ({self.corrupt_packets} damaged packets, last error: {self.last_packet_error})"
                      if self.corrupt_packets else "")
            raise VideoDecodeError(f"{self.name}: video stream has no decodable frames{detail}")
        self._pending: list[Any] = [first]
        self.info = self._make_info(stream, first)
        if self.crop_bars == "auto":
            bars = self._find_bars(first)
            if bars:
                width, height = bars.picture_size(self.info.width, self.info.height)
                self.info = replace(self.info, width=width, height=height,
                                    bars=(bars.top, bars.bottom, bars.left, bars.right))
                self._bars = bars

    # Frames read from the start, at most, for one that is not all black (a fade in) to find bars on.
    BAR_LOOKAHEAD_FRAMES = 48

    def _find_bars(self, first: Any) -> Bars:
        """The black bars of the first frame that is not all black: the first frame, else (a path or bytes,
        not a live source) one of the next `BAR_LOOKAHEAD_FRAMES` read from a second handle."""
        bars = self._bars_of(first)
        if bars is not None or not self._can_read_ahead:
            return bars or Bars()
        av = self._av
        try:
            with av.open(self._second_handle(), mode="r", **self._open_arguments) as other:
                for k, raw in enumerate(other.decode(other.streams.video[self._video_position])):
                    if k >= self.BAR_LOOKAHEAD_FRAMES:
                        break
                    if k and (raw.width, raw.height) == self._coded_size:
                        bars = self._bars_of(raw)
                        if bars is not None:
                            return bars
        except (av.FFmpegError, OSError, IndexError):
            pass
        return Bars()

    def _bars_of(self, raw: Any) -> Bars | None:
        """`edgevqa.bars.find_bars` on a decoded frame as it will be shown (None: all black)."""
        if raw.format.name not in _NATIVE_FORMATS:
            raw = raw.reformat(format=_fallback_format(raw.format.name))
        if raw.format.name != self.info.pix_fmt and self.info.pix_fmt in _NATIVE_FORMATS:
            return None  # another format than the stream's first: judged on frames as the stream starts
        frame = self._frame_of(0, raw, bool(getattr(raw, "interlaced_frame", False)), count=False)
        return find_bars(frame.planes, frame.chroma_shift, frame.bit_depth, frame.is_rgb,
                         frame.color_range == "full")

    def _raw_frames(self) -> Iterator[Any]:
        # A damaged packet is skipped (players do the same); a stream of nothing but damage is an error.
        av = self._av
        for packet in self._container.demux(self._stream):
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                self.corrupt_packets += 1
                self.last_packet_error = _ffmpeg_reason(exc)
                if self.corrupt_packets > _MAX_CORRUPT_PACKETS:
                    raise
                continue
            yield from frames
        try:
            yield from self._stream.codec_context.decode(None)  # drain delayed frames
        except av.FFmpegError:
            pass  # draining a decoder that saw only damage can fail too; nothing more to yield

    corrupt_packets = 0
    last_packet_error: str | None = None

    def _make_info(self, stream: Any, first: Any) -> VideoInfo:
        fmt = first.format.name
        is_rgb, depth, shift, _ = _NATIVE_FORMATS.get(fmt) or _NATIVE_FORMATS[_fallback_format(fmt)]
        if fmt not in _NATIVE_FORMATS:  # the info says what the video holds, whatever it is converted to
            depth = _format_facts(fmt)[0]
        rotation = _rotation_of(first)
        width, height = first.width, first.height
        self._coded_size = (first.width, first.height)
        if rotation in (90, 270):
            width, height = height, width
            shift = (shift[1], shift[0])
        fps = _frame_rate(stream)
        duration = _duration_seconds(stream, self._container)
        num_frames, source = int(stream.frames or 0), "container"
        dropped = self._leading_discarded_packets() if num_frames > 0 else 0
        if dropped:
            # An MP4/MOV edit list starting between keyframes (a stream-copied cut) hides the frames before its
            # start: they are decoded as references and dropped, yet the container's count includes them, and a
            # plan over that count would read its last frames past the video's end.
            num_frames, source = max(num_frames - dropped, 1), "packets"
        if num_frames <= 0 and self._reopenable is not None and not self._live:
            num_frames, source = self._count_packets(), "packets"
        if num_frames <= 0 and duration > 0 and fps > 0:
            num_frames, source = int(round(duration * fps)), "duration"
        if num_frames <= 0:
            num_frames, source = 1, "unknown"
        if duration <= 0 and fps > 0:
            duration = num_frames / fps
        self.timeline = self._display_timeline(stream, num_frames) if source in ("container", "packets") else None
        gaps: tuple = ()
        if self.timeline is not None:  # plans count display ticks, at the stream's own rate
            num_frames, fps, gaps = self.timeline.ticks, self.timeline.fps, self.timeline.gaps
        matrix = _COLORSPACE.get(int(first.colorspace or 0), "bt601")
        transfer = _TRANSFER.get(int(first.color_trc or 0), "sdr")
        peak = _declared_peak_nits(first) if transfer == "pq" else None
        full = int(first.color_range or 0) == 2 or fmt.startswith("yuvj")
        return VideoInfo(path=self.name, width=width, height=height, num_frames=num_frames, fps=fps,
                         duration=duration, pix_fmt=fmt, codec=stream.codec_context.name, bit_depth=depth,
                         chroma_shift=shift, is_rgb=is_rgb, color_matrix=matrix,
                         color_range="full" if full else "limited", rotation=rotation,
                         frame_count_source=source, transfer=transfer, hdr_peak_nits=peak,
                         interlaced=bool(getattr(first, "interlaced_frame", False)), timestamp_gaps=gaps)

    def _display_timeline(self, stream: Any, coded_frames: int) -> Timeline | None:
        """`edgevqa.timeline.display_timeline` of the stream's packets, for a path or bytes whose timestamps
        may leave gaps: an MKV or MPEG-TS file whose packets were counted anyway, or a file whose average frame
        rate differs from the rate FFmpeg reads off its first timestamps (a constant-rate MP4 is not read
        ahead). None when the packets disagree with the frame count or lack timestamps."""
        if not self._can_read_ahead:
            return None
        if self._packets is None:
            average, base = (float(r) if r else 0.0 for r in (stream.average_rate, stream.guessed_rate))
            if not (average > 0 and base > 0 and abs(average / base - 1) > 0.01):
                return None
        if not stream.time_base:
            return None
        stamps = [pts for pts, _, discarded in self._packet_records() if not discarded]
        if len(stamps) != coded_frames or any(pts is None for pts in stamps):
            return None
        return display_timeline(np.asarray(stamps, dtype=np.float64) * float(stream.time_base))

    @property
    def _can_read_ahead(self) -> bool:
        """Whether the source may be read from a second handle before decoding: a path or bytes, not a live
        source (still playing) or a URL (read over the network)."""
        return not self._live and self._reopenable is not None and not (
            isinstance(self._reopenable, str) and "://" in self._reopenable)

    def _second_handle(self) -> Any:
        """What `av.open` needs to read the same source again from its start (a path or in-memory bytes)."""
        if isinstance(self._reopenable, io.BytesIO):
            self._reopenable.seek(0)
        return self._reopenable

    # Packets read at most to find where an edit list's dropped lead ends (one group of pictures, usually).
    DISCARD_SCAN_PACKETS = 2000

    def _leading_discarded_packets(self) -> int:
        """How many packets before the first frame shown the demuxer marks to be decoded and dropped: the frames
        an MP4/MOV edit list cuts off at the start. Read from a second handle, packets only, up to the first
        keyframe after the first frame shown (the next group of pictures needs nothing before the cut), so a
        long file is not read through. 0 for other formats, live sources and URLs (nothing is read ahead)."""
        if not self._can_read_ahead:
            return 0
        if not {"mov", "mp4"} & set((self._container.format.name or "").split(",")):
            return 0
        if self._packets is not None:
            return _count_leading_discards(self._packets)
        av = self._av
        records: list[tuple[int | None, bool, bool]] = []
        try:
            with av.open(self._second_handle(), mode="r", **self._open_arguments) as other:
                shown = False
                for packet in other.demux(other.streams.video[self._video_position]):
                    if not packet.size:
                        continue
                    discarded = bool(packet.is_discard)
                    if shown and packet.is_keyframe and not discarded or len(records) >= self.DISCARD_SCAN_PACKETS:
                        break
                    records.append((packet.pts, bool(packet.is_keyframe), discarded))
                    shown |= not discarded
        except (av.FFmpegError, OSError, IndexError):
            return 0
        return _count_leading_discards(records)

    def _count_packets(self) -> int:
        """Frames in the stream by demuxing a second handle (no decoding), when the container has no count."""
        return len(self._packet_records())

    _packets: list[tuple[int | None, bool, bool]] | None = None

    def _packet_records(self) -> list[tuple[int | None, bool, bool]]:
        """(pts, keyframe, to be discarded) of every non-empty video packet, demuxed once from a second handle
        (no decoding) and kept: a file without a frame count is read here at open, and again for the seek
        table otherwise. Empty when the second handle cannot be read to its end."""
        if self._packets is None:
            av = self._av
            try:
                with av.open(self._second_handle(), mode="r", **self._open_arguments) as other:
                    self._packets = [(packet.pts, bool(packet.is_keyframe), bool(packet.is_discard))
                                     for packet in other.demux(other.streams.video[self._video_position])
                                     if packet.size]
            except (av.FFmpegError, OSError, IndexError):
                self._packets = []
        return self._packets

    # ------------------------------------------------------------------ decoding

    def frames(self, indices: Iterable[int] | None = None) -> Iterator[Frame]:
        """Yield the frames with the given (sorted, distinct) indices; all frames when ``indices`` is None.

        Decoding stops after the last index asked for. Frames past the real end of the stream are simply
        not yielded: the caller decides what to do about them. With a `timeline` (frames missing from the
        stream), indices count its display ticks, and a frame held over a gap is yielded once per tick.
        """
        if self.timeline is None:
            coded = self._coded_frames(indices)
            yield from self._held_over_gaps(coded) if self._live and indices is None else coded
            return
        shown = self.timeline.shown
        ticks = np.arange(shown.size) if indices is None else np.asarray(
            sorted(set(int(i) for i in indices)), dtype=np.int64)
        ticks = ticks[(ticks >= 0) & (ticks < shown.size)]  # past the end: not yielded, as without a timeline
        coded = shown[ticks]  # non-decreasing, as ticks are
        regions = self.regions

        def span(c: int) -> np.ndarray:
            return ticks[np.searchsorted(coded, c, side="left"):np.searchsorted(coded, c, side="right")]

        if regions is not None:  # a frame held over several ticks is read where any of them reads it
            self.regions = lambda c: _union_regions([regions(int(t)) for t in span(c)])
        try:
            for frame in self._coded_frames(None if indices is None else np.unique(coded)):
                for tick in span(frame.index):
                    yield replace(frame, index=int(tick))
        finally:
            self.regions = regions

    # Frames missing from the stream (gaps in its timestamps) laid on display ticks (`edgevqa.timeline`);
    # None: the frames follow each other evenly, and frame indices count coded frames.
    timeline: Timeline | None = None
    # A live source's gaps held so far (`live_gaps`, set in __init__), as `VideoInfo.timestamp_gaps` gives a
    # file's: seconds from its first frame to the last one before the gap, the gap's length.
    # Frames of a live source whose spacing must confirm its declared rate before gaps are held.
    LIVE_RATE_FRAMES = 24

    def _held_over_gaps(self, coded: Iterator[Frame]) -> Iterator[Frame]:
        """A live source's frames as a player shows them (`edgevqa.timeline` for a stream whose timestamps
        cannot be read ahead): a gap of more than 1.75 frame periods at the declared rate holds the frame before
        it for the ticks the gap lasts. Held only once the first `LIVE_RATE_FRAMES` frames' median spacing
        confirms the declared rate (within 10 %), and no more once over a quarter of the frames were followed
        by a gap (a rate of its own); a jump of `MAX_HELD_SECONDS` or more holds nothing."""
        self.live_gaps = []
        period = 1.0 / self.info.fps if self.info.fps > 0 else 0.0
        spacings: list[float] = []
        confirmed = None
        prev, first_time, tick, frames = None, None, -1, 0
        for frame in coded:
            frames += 1
            if first_time is None:
                first_time = frame.pts
            if prev is not None and frame.pts is not None and prev.pts is not None and period:
                spacing = frame.pts - prev.pts
                if confirmed is None:
                    spacings.append(spacing)
                    if len(spacings) >= self.LIVE_RATE_FRAMES:
                        confirmed = abs(float(np.median(spacings)) / period - 1) <= 0.1
                if confirmed and is_gap(spacing, period) and len(self.live_gaps) < MAX_LOST_SHARE * frames:
                    held = prev.whole() if prev.whole is not None else prev  # all of it: other ticks read elsewhere
                    for _ in range(int(gap_ticks(spacing, period)) - 1):
                        tick += 1
                        yield replace(held, index=tick)
                    self.live_gaps.append((round(prev.pts - (first_time or 0.0), 3), round(spacing, 3)))
            tick += 1
            yield replace(frame, index=tick)
            prev = frame

    def _coded_frames(self, indices: Iterable[int] | None = None) -> Iterator[Frame]:
        """`frames` by coded frame (in presentation order), whatever the timeline."""
        wanted = None if indices is None else np.asarray(sorted(set(int(i) for i in indices)), dtype=np.int64)
        if wanted is not None and wanted.size == 0:
            return
        table = None if wanted is None else self._seek_table(wanted)
        if table is not None:
            yield from self._frames_seeking(wanted, table)
        else:
            yield from self._frames_in_order(wanted)

    def _frames_in_order(self, wanted: np.ndarray | None) -> Iterator[Frame]:
        """Decode straight through from where the decoder stands, counting frames in decode-output order."""
        last = None if wanted is None else int(wanted[-1])
        pos = 0
        index = -1
        for index, raw in enumerate(self._iter_all()):
            if last is not None and index > last:
                break
            if wanted is None or (pos < wanted.size and wanted[pos] == index):
                pos += 1
                yield self._to_frame(index, raw)
        else:
            self._coded_in_stream = index + 1

    def _iter_all(self) -> Iterator[Any]:
        av = self._av
        while self._pending:
            yield self._counted(self._pending.pop(0))
        try:
            for raw in self._frames_iter:
                yield self._counted(raw)
        except av.FFmpegError as exc:
            # A damaged tail ends the stream; what was decoded so far stands, as players do.
            self.decode_error = f"{self.name}: decoding stopped early ({_ffmpeg_reason(exc)})"

    def _counted(self, raw: Any) -> Any:
        # Every frame decoded so far counts, the skipped ones too: a damaged reference frame spoils the frames
        # predicted from it.
        self.concealed_frames += bool(getattr(raw, "is_corrupt", False))
        self.frames_through_decoder += 1
        return raw

    # ------------------------------------------------------------------ seeking

    def _seek_table(self, wanted: np.ndarray) -> tuple[np.ndarray, dict[int, int], np.ndarray] | None:
        """(pts of every frame in display order, frame index of each pts, indices of the keyframes) when seeking
        can pay and the file allows it, else None.

        Seeking is used only when some gap before a frame asked for reaches `SEEK_MIN_GAP`, on a fresh decoder,
        for a path or bytes (a second handle demuxes the whole file once: packets only, no decoding) in a format
        with a keyframe index, and when every packet has its own timestamp and the first decoded frame carries
        the earliest one (an edit list that hides frames would break the count). Packets the demuxer marks for
        discarding (the frames before a stream-copied cut) are decoded and dropped, so they are not frames."""
        gaps = np.diff(np.concatenate(([0], wanted)))
        if int(gaps.max()) < self.SEEK_MIN_GAP or self._reopenable is None or len(self._pending) != 1:
            return None
        if self.frames_through_decoder or not _INDEXED_FORMATS & set((self._container.format.name or "").split(",")):
            return None
        first_pts = self._pending[0].pts
        stamps, keys = [], []
        for pts_of_packet, keyframe, discarded in self._packet_records():
            if discarded:
                continue
            if pts_of_packet is None:
                return None
            stamps.append(int(pts_of_packet))
            keys.append(keyframe)
        order = np.argsort(stamps, kind="stable")
        pts = np.asarray(stamps, dtype=np.int64)[order]
        if first_pts is None or pts.size == 0 or int(pts[0]) != int(first_pts) or np.any(np.diff(pts) <= 0):
            return None
        index_of = {int(p): i for i, p in enumerate(pts)}
        key_indices = np.flatnonzero(np.asarray(keys, dtype=bool)[order])
        if key_indices.size == 0:
            return None
        return pts, index_of, key_indices

    def _frames_seeking(self, wanted: np.ndarray, table: tuple[np.ndarray, dict[int, int], np.ndarray]
                        ) -> Iterator[Frame]:
        """`frames` for far-apart indices: decode through short gaps, seek across long ones.

        Frames are identified by their timestamps' rank in the packet table. Decoding from a keyframe gives the
        frames from that keyframe on exactly as decoding from the start does; every frame is checked to follow
        the one before it (no gap, no repeat, no damage flag), and on any surprise the video is decoded again
        from the start, as without seeking."""
        pts, index_of, key_indices = table
        yielded = -1
        try:
            source = self._iter_all()
            floor, expected = 0, 0  # after a seek: the keyframe's index; the index the next frame must have
            for target in (int(t) for t in wanted):
                if target >= pts.size:
                    return  # the stream holds fewer frames: not yielded, as when decoding straight through
                # The last keyframe at or before the target; a stream-copied cut may start before its first
                # listed keyframe (the frames before the cut are decoded and dropped), and there is none.
                at = int(np.searchsorted(key_indices, target, side="right")) - 1
                key = int(key_indices[at]) if at >= 0 else -1
                if key - expected >= self.SEEK_MIN_GAP:
                    self._seek(int(pts[key]))
                    source = self._iter_seeked()
                    floor, expected = key, key
                for raw in source:
                    index = None if raw.pts is None else index_of.get(int(raw.pts))  # None: no such frame
                    if index is not None and index < floor:
                        continue  # leading frames of the keyframe sought to (open GOP), never asked for
                    if index != expected or (self.seeks and getattr(raw, "is_corrupt", False)):
                        raise _SeekMismatch
                    expected += 1
                    if index == target:
                        yielded = index
                        yield self._to_frame(index, raw)
                        break
                else:
                    self._coded_in_stream = expected
                    return  # the stream ended early
        except _SeekMismatch:
            yield from self._frames_from_start(wanted[wanted > yielded])

    def _seek(self, timestamp: int) -> None:
        self._frames_iter.close()
        self._container.seek(timestamp, stream=self._stream, backward=True, any_frame=False)
        self._stream.codec_context.flush_buffers()
        self._pending = []
        self._frames_iter = self._raw_frames()
        self.seeks += 1

    def _iter_seeked(self) -> Iterator[Any]:
        # As _iter_all, but a frame flagged corrupt is not counted as damage here: after a seek it may be a
        # leading frame whose references lie before the keyframe; one that is asked for ends the seeking.
        try:
            for raw in self._frames_iter:
                self.frames_through_decoder += 1
                yield raw
        except self._av.FFmpegError as exc:
            self.decode_error = f"{self.name}: decoding stopped early ({_ffmpeg_reason(exc)})"

    def _frames_from_start(self, wanted: np.ndarray) -> Iterator[Frame]:
        """Open the source again and decode it straight through (the damage counts start over too)."""
        self._frames_iter.close()
        self._container.close()
        source = self._second_handle()
        if isinstance(source, io.BytesIO):  # its own buffer object: the packet table's handle stays untouched
            source = io.BytesIO(source.getvalue())
        self._container = self._av.open(source, mode="r", **self._open_arguments)
        self.corrupt_packets, self.last_packet_error, self.concealed_frames, self.decode_error = 0, None, 0, None
        self.reformatted_frames, self.format_changes, self.rescaled_frames, self.size_changes = 0, (), 0, ()
        self.deinterlaced_frames = self.tone_mapped_frames = 0
        stream = self._container.streams.video[self._video_position]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = self._threads
        self._stream, self._pending, self._frames_iter = stream, [], self._raw_frames()
        if wanted.size:
            yield from self._frames_in_order(wanted)

    decode_error: str | None = None
    _coded_in_stream: int | None = None  # coded frames in the stream, once decoding reached its end

    @property
    def frames_in_stream(self) -> int | None:
        """How many frames the stream holds, once decoding reached its end (None before): a container may
        declare more (a file cut short, a recording that starts between keyframes). Counted as `frames` counts
        them: display ticks when the stream has a `timeline`."""
        if self._coded_in_stream is None or self.timeline is None:
            return self._coded_in_stream
        return self.timeline.ticks_before(self._coded_in_stream)
    concealed_frames = 0  # frames FFmpeg flagged corrupt (decoded with error concealment)

    @property
    def damaged(self) -> bool:
        """Whether the frames read so far met damage: packets that failed to decode, frames decoded with error
        concealment, or a stream that ended in an error."""
        return bool(self.corrupt_packets or self.concealed_frames or self.decode_error)

    def damage_report(self) -> str:
        """One line on the damage met so far (empty when none)."""
        parts = []
        if self.corrupt_packets:
            parts.append(f"{self.corrupt_packets} packet(s) could not be decoded "
                         f"(last error: {self.last_packet_error})")
        if self.concealed_frames:
            parts.append(f"{self.concealed_frames} frame(s) were decoded with error concealment")
        if self.decode_error:
            parts.append("decoding ended in an error")
        return f"{self.name}: damaged stream: " + "; ".join(parts) if parts else ""

    @property
    def threads(self) -> int:
        """The decoder's thread count (0: FFmpeg's choice)."""
        return self._threads

    @property
    def reopenable(self) -> bool:
        """Whether the same source can be opened again (a path, URL or bytes; not a file object)."""
        return self._reopenable is not None

    reformatted_frames = 0  # frames converted because the pixel format changed mid-stream
    format_changes: tuple[tuple[int, str], ...] = ()  # (frame index, format) where the coded format changed
    rescaled_frames = 0  # frames scaled because the frame size changed mid-stream
    size_changes: tuple[tuple[int, str], ...] = ()  # (frame index, "WxH") where the coded size changed

    def format_report(self) -> str:
        """One line on pixel-format and frame-size changes met so far (empty when none)."""
        said = []
        if self.reformatted_frames:
            changes = ", ".join(f"{i} ({fmt})" for i, fmt in self.format_changes)
            said.append(f"the pixel format changed mid-stream (the stream started as {self.info.pix_fmt}; changed "
                        f"at sampled frame(s) {changes}): {self.reformatted_frames} sampled frame(s) were converted "
                        f"to {self.info.pix_fmt}")
        if self.rescaled_frames:
            first = "x".join(map(str, self._coded_size))
            changes = ", ".join(f"{i} ({size})" for i, size in self.size_changes)
            said.append(f"the frame size changed mid-stream (the stream started at {first}; changed at sampled "
                        f"frame(s) {changes}): {self.rescaled_frames} sampled frame(s) were scaled to {first} "
                        "(bicubic), as a player shows them")
        return "; ".join(said)

    @staticmethod
    def _note_change(changes: tuple[tuple[int, str], ...], index: int, value: str, first: str):
        """``changes`` with (index, value) added where the value differs from the one before."""
        before = changes[-1][1] if changes else first
        return changes + ((index, value),) if value != before else changes

    def _to_frame(self, index: int, raw: Any) -> Frame:
        info = self.info
        interlaced = bool(getattr(raw, "interlaced_frame", False))  # of the decoded frame, whatever reformat follows
        fmt = raw.format.name
        size = f"{raw.width}x{raw.height}"
        first_size = "x".join(map(str, self._coded_size))
        self.format_changes = self._note_change(self.format_changes, index, fmt, info.pix_fmt)
        self.size_changes = self._note_change(self.size_changes, index, size, first_size)
        if fmt != info.pix_fmt or size != first_size:
            # Plans and the colour conversion are made for the stream's first format and size: a frame in
            # another (a concatenated stream, an adaptive stream switching quality) is converted and scaled
            # to them, as a player would show it, never read with the wrong layout.
            self.reformatted_frames += fmt != info.pix_fmt
            self.rescaled_frames += size != first_size
            fmt = info.pix_fmt
            raw = raw.reformat(width=self._coded_size[0], height=self._coded_size[1], format=fmt,
                               interpolation="BICUBIC")
        if fmt not in _NATIVE_FORMATS:
            raw = raw.reformat(format=_fallback_format(fmt))
        region = self.regions(index) if self.regions is not None and self.tones_mapped else None
        if region is not None and self._bars:  # the plans' rows and columns are the picture's, inside the bars
            region = (np.asarray(region[0]) + self._bars.top, np.asarray(region[1]) + self._bars.left)
        return self._frame_of(index, raw, interlaced, region)

    # With tone mapping, frame index -> the (rows, columns) of the display frame that will be read (empty: none),
    # or None for all of it: set by `edgevqa.feed.sample_plans` and the live path from their plans, so that only
    # those pixels are mapped.
    regions: Callable[[int], tuple[np.ndarray, np.ndarray] | None] | None = None

    def _frame_of(self, index: int, raw: Any, interlaced: bool,
                  region: tuple[np.ndarray, np.ndarray] | None = None, count: bool = True) -> Frame:
        """The `Frame` of ``raw`` (in a listed format, at the stream's size). ``region``: display rows and
        columns, the only pixels an HDR frame is tone-mapped at; the frame's `Frame.whole` then makes it all."""
        info = self.info
        is_rgb, depth, shift, kind = _NATIVE_FORMATS[raw.format.name]
        planes = _plane_views(raw, kind, depth)
        if self.deinterlace == "always" or (self.deinterlace == "auto" and interlaced):
            # In coded orientation, before rotating: the fields alternate along the coded lines.
            planes = deinterlace_planes(planes, self.kept_field, depth, shared_chroma=kind == "gray")
            self.deinterlaced_frames += count
        rotation = _rotation_of(raw)
        matrix, colour_range = info.color_matrix, info.color_range
        whole = None
        if self.tones_mapped and not is_rgb:  # (a frame converted from an unlisted format is Y'CbCr)
            mapping = tone_map_for(info.transfer, matrix, colour_range, depth, info.hdr_peak_nits)
            if region is None:
                planes = tone_map_planes(planes, shift, mapping)
            else:
                planes = tone_map_region(planes, shift, mapping, *_coded_region(region, rotation, planes[0].shape))
                whole = functools.partial(self._frame_of, index, raw, interlaced, None, False)
            depth, matrix, colour_range = 8, "bt709", "limited"
            self.tone_mapped_frames += count
        if self.max_bit_depth is not None and depth > self.max_bit_depth:
            planes = reduce_bit_depth(planes, depth, self.max_bit_depth, shared_chroma=kind == "gray")
            depth = self.max_bit_depth
        planes = _rotate_planes(planes, rotation)
        if rotation in (90, 270):
            shift = (shift[1], shift[0])
        if self._bars:
            planes = self._bars.crop(planes, (0, 0) if is_rgb else shift)
        return Frame(index=index, pts=raw.time, planes=tuple(planes), bit_depth=depth, is_rgb=is_rgb,
                     chroma_shift=shift, color_matrix=matrix, color_range=colour_range, owner=raw, whole=whole)

    @property
    def tones_mapped(self) -> bool:
        """Whether frames are tone-mapped to SDR: an HDR Y'CbCr video, with ``tone_map`` "auto"."""
        return self.tone_map == "auto" and self.info.transfer in TONE_MAPPED_TRANSFERS and not self.info.is_rgb

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "PyAVDecoder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _declared_peak_nits(frame: Any) -> float | None:
    """A PQ frame's declared peak luminance: its content light level (MaxCLL), else its mastering display's
    peak; None when it declares neither."""
    found = {}
    container = getattr(frame, "side_data", None)
    for name in ("CONTENT_LIGHT_LEVEL", "MASTERING_DISPLAY_METADATA"):
        try:  # by name: PyAV 18.1.0 iterates the entries, 18.1.1 their types
            data = container.get(name) if container is not None else None
        except (KeyError, TypeError, ValueError):
            data = None
        if data is not None:
            found[name] = np.frombuffer(bytes(memoryview(data)), "<i4")
    light = found.get("CONTENT_LIGHT_LEVEL")  # AVContentLightMetadata: MaxCLL, MaxFALL
    if light is not None and light.size >= 1 and light[0] > 0:
        return float(light[0])
    mastering = found.get("MASTERING_DISPLAY_METADATA")  # AVMasteringDisplayMetadata: ... max_luminance, has_*
    if mastering is not None and mastering.size >= 22 and mastering[21] and mastering[19] > 0 and mastering[18] > 0:
        return float(mastering[18]) / float(mastering[19])
    return None


def reduce_bit_depth(planes: list[np.ndarray], depth: int, target: int, shared_chroma: bool = False
                     ) -> list[np.ndarray]:
    """``planes`` of ``depth``-bit samples rounded to ``target`` bits (half up, the top clamped: 10-bit 1023
    becomes 8-bit 255), as new arrays (uint8 for 8 bits). The limited-range levels map onto each other exactly
    (10-bit 64 and 940 become 16 and 235). ``shared_chroma``: planes 1 and 2 are grey video's constant
    stand-in, made again at the new depth."""
    shift = depth - target
    top = (1 << target) - 1
    dtype = np.uint8 if target == 8 else np.dtype("<u2")
    reduced = [np.minimum((p.astype(np.uint32) + (1 << (shift - 1))) >> shift, top).astype(dtype)
               for p in (planes[:1] if shared_chroma else planes)]
    if shared_chroma:
        mid = np.full((1, 1), 1 << (target - 1), dtype=dtype)
        grey = np.lib.stride_tricks.as_strided(mid, shape=reduced[0].shape, strides=(0, 0), writeable=False)
        reduced += [grey, grey]
    return reduced


def _plane_array(plane: Any, dtype: np.dtype, width: int, channels: int = 1) -> np.ndarray:
    itemsize = np.dtype(dtype).itemsize
    arr = np.frombuffer(plane, dtype=dtype)
    arr = arr[: plane.height * (plane.line_size // itemsize)].reshape(plane.height, plane.line_size // itemsize)
    return arr[:, : width * channels]


def _plane_views(raw: Any, kind: str, depth: int) -> list[np.ndarray]:
    dtype = np.dtype(np.uint8 if depth == 8 else "<u2")
    p = raw.planes
    if kind == "planar":
        return [_plane_array(p[0], dtype, p[0].width), _plane_array(p[1], dtype, p[1].width),
                _plane_array(p[2], dtype, p[2].width)]
    if kind == "semi":
        y = _plane_array(p[0], dtype, p[0].width)
        uv = _plane_array(p[1], dtype, p[1].width, 2)
        return [y, uv[:, 0::2], uv[:, 1::2]]
    if kind == "gray":
        y = _plane_array(p[0], dtype, p[0].width)
        mid = np.full((1, 1), 1 << (depth - 1), dtype=dtype)
        grey = np.lib.stride_tricks.as_strided(mid, shape=y.shape, strides=(0, 0), writeable=False)
        return [y, grey, grey]
    if kind == "planar_gbr":
        return [_plane_array(p[k], dtype, p[k].width) for k in (2, 0, 1)]
    if kind == "packed4":
        packed = _plane_array(p[0], dtype, raw.width, 4)
        return [packed[:, c::4] for c in _PACKED4_ORDER[raw.format.name]]
    packed = _plane_array(p[0], dtype, raw.width, 3)
    order = (0, 1, 2) if kind == "packed" else (2, 1, 0)
    return [packed[:, c::3] for c in order]


def _union_regions(regions: Sequence[tuple[np.ndarray, np.ndarray] | None]) -> tuple[np.ndarray, np.ndarray] | None:
    """The display rows and columns any of ``regions`` reads (None: the whole frame)."""
    if any(region is None for region in regions):
        return None
    rows = [np.asarray(r[0]) for r in regions]
    cols = [np.asarray(r[1]) for r in regions]
    return (np.unique(np.concatenate(rows)) if rows else np.zeros(0, np.int64),
            np.unique(np.concatenate(cols)) if cols else np.zeros(0, np.int64))


def _frame_rate(stream: Any) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        try:
            value = float(rate) if rate else 0.0
        except (TypeError, ZeroDivisionError):
            value = 0.0
        if value > 0 and math.isfinite(value) and value < 1000:
            return value
    return 25.0


def _duration_seconds(stream: Any, container: Any) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000.0
    return 0.0


def _ffmpeg_reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(": '")[0] if text else type(exc).__name__


def probe(source: Any, **options: Any) -> VideoInfo:
    """`VideoInfo` of a video, read from its container and first frame (``options``: `PyAVDecoder`'s)."""
    with PyAVDecoder(source, **options) as dec:
        return dec.info
