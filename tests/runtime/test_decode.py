"""The PyAV decoder on every pixel format and geometry it promises, and on bad input."""

import os

import av
import numpy as np
import pytest

from edgevqa.decode import PyAVDecoder, probe
from edgevqa.errors import VideoDecodeError
from edgevqa.samples import render_scene, write_clip


@pytest.mark.parametrize("codec,pix_fmt,ext,depth,shift", [
    ("libx264", "yuv420p", "mp4", 8, (1, 1)),
    ("mjpeg", "yuvj422p", "avi", 8, (0, 1)),
    ("libx264", "yuv444p", "mp4", 8, (0, 0)),
    ("libx264", "yuv420p10le", "mp4", 10, (1, 1)),
    ("rawvideo", "nv12", "nut", 8, (1, 1)),
    ("ffv1", "gray", "mkv", 8, (0, 0)),
    ("rawvideo", "rgb24", "nut", 8, (0, 0)),
    ("libvpx-vp9", "yuv420p", "webm", 8, (1, 1)),
])
def test_formats_give_plane_views_matching_ffmpeg(tmp_path, codec, pix_fmt, ext, depth, shift):
    path = write_clip(tmp_path / f"clip.{ext}", width=66, height=38, num_frames=5, codec=codec, pix_fmt=pix_fmt,
                      crf=None)
    with PyAVDecoder(path) as dec:
        info = dec.info
        assert (info.width, info.height, info.num_frames) == (66, 38, 5)
        assert info.bit_depth == depth and info.chroma_shift == shift and info.pix_fmt == pix_fmt
        frames = list(dec.frames())
    assert [f.index for f in frames] == list(range(5))
    f = frames[2]
    raw = f.owner
    if pix_fmt == "rgb24":
        assert f.is_rgb
        assert np.array_equal(np.stack(f.planes, -1), raw.to_ndarray())
    elif pix_fmt == "nv12":
        ref = raw.to_ndarray()  # [h*3/2, w] with interleaved UV below Y
        assert np.array_equal(f.planes[0], ref[:38])
        assert np.array_equal(f.planes[1], ref[38:, 0::2]) and np.array_equal(f.planes[2], ref[38:, 1::2])
    elif pix_fmt == "gray":
        assert np.array_equal(f.planes[0], raw.to_ndarray()) and int(f.planes[1][5, 7]) == 128
    else:
        dtype = np.uint8 if depth == 8 else np.dtype("<u2")
        for k in range(3):
            plane = raw.planes[k]
            rows = np.frombuffer(bytes(plane), dtype).reshape(plane.height, -1)
            assert np.array_equal(f.planes[k], rows[:, :plane.width])
        assert f.planes[0].shape == (38, 66)
        assert f.planes[1].shape == (-(-38 >> shift[0]), -(-66 >> shift[1]))


@pytest.mark.parametrize("codec,pix_fmt,ext,depth,is_rgb", [
    ("rawvideo", "rgba", "nut", 8, True),
    ("rawvideo", "argb", "nut", 8, True),
    ("rawvideo", "bgr0", "nut", 8, True),
    ("ffv1", "gbrp10le", "mkv", 10, True),
    ("rawvideo", "gbrap", "nut", 8, True),
    ("ffv1", "yuva420p", "mkv", 8, False),
    ("ffv1", "yuva444p10le", "mkv", 10, False),
    ("ffv1", "yuv444p12le", "mkv", 12, False),
    ("ffv1", "yuv422p12le", "mkv", 12, False),
    ("ffv1", "gray12le", "mkv", 12, False),
])
def test_more_formats_are_read_in_place(tmp_path, codec, pix_fmt, ext, depth, is_rgb):
    """Alpha, planar RGB (green, blue, red), packed RGB with a fourth byte and 12-bit Y'CbCr are read as the
    decoder gives them, at their own depth: no conversion, no rounding to 8 bits."""
    path = write_clip(tmp_path / f"clip.{ext}", width=66, height=38, num_frames=3, codec=codec, pix_fmt=pix_fmt,
                      crf=None)
    with PyAVDecoder(path) as dec:
        info = dec.info
        frame = list(dec.frames())[1]
    assert (info.pix_fmt, info.bit_depth, info.is_rgb) == (pix_fmt, depth, is_rgb)
    assert (frame.bit_depth, frame.is_rgb) == (depth, is_rgb) and frame.owner.format.name == pix_fmt
    raw = frame.owner
    if is_rgb and depth == 8:
        assert np.array_equal(np.stack(frame.planes, -1), raw.to_ndarray(format="rgb24"))
    elif is_rgb:
        assert np.array_equal(np.stack(frame.planes, -1) << (16 - depth), raw.to_ndarray(format="rgb48le") &
                              ~np.uint16((1 << (16 - depth)) - 1))
    else:
        dtype = np.uint8 if depth == 8 else np.dtype("<u2")
        for k in range(1 if pix_fmt.startswith("gray") else 3):
            rows = np.frombuffer(bytes(raw.planes[k]), dtype).reshape(raw.planes[k].height, -1)
            assert np.array_equal(frame.planes[k], rows[:, :raw.planes[k].width])


@pytest.mark.parametrize("pix_fmt,fallback,depth,is_rgb", [
    ("yuv420p10be", "yuv444p16le", 10, False),  # deeper samples keep their precision
    ("rgb48be", "gbrp16le", 16, True),
    ("yuv410p", "yuv444p", 8, False),
    ("rgb565le", "gbrp", 6, True),  # RGB stays RGB: no colour matrix in between
    ("pal8", "gbrp", 8, True),  # palette pictures (GIF)
])
def test_other_formats_are_converted_keeping_depth_and_rgb(tmp_path, pix_fmt, fallback, depth, is_rgb):
    path = str(tmp_path / "clip.nut")
    if pix_fmt == "pal8":  # libswscale does not make palettes: indices and a palette written directly
        with av.open(path, "w") as out:
            stream = out.add_stream("rawvideo", rate=10)
            stream.width, stream.height, stream.pix_fmt = 66, 38, "pal8"
            rng = np.random.default_rng(2)
            for i in range(3):
                frame = av.VideoFrame(66, 38, "pal8")
                indices = np.frombuffer(frame.planes[0], np.uint8).reshape(38, -1)
                indices[:, :66] = rng.integers(0, 256, (38, 66))
                np.frombuffer(frame.planes[1], np.uint8)[:] = rng.integers(0, 256, 1024)
                frame.pts = i
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    else:
        write_clip(path, width=66, height=38, num_frames=3, codec="rawvideo", pix_fmt=pix_fmt, crf=None)
    with PyAVDecoder(path) as dec:
        info = dec.info
        frame = list(dec.frames())[1]
    assert (info.pix_fmt, info.bit_depth, info.is_rgb) == (pix_fmt, depth, is_rgb)
    assert frame.owner.format.name == fallback and frame.is_rgb == is_rgb
    if is_rgb:
        want = frame.owner.to_ndarray(format="rgb48le" if fallback.endswith("16le") else "rgb24")
        assert np.array_equal(np.stack(frame.planes, -1), want)


def test_decodes_only_what_is_asked(small_clip):
    with PyAVDecoder(small_clip) as dec:
        got = [f.index for f in dec.frames([3, 7, 11])]
    assert got == [3, 7, 11]
    with PyAVDecoder(small_clip) as dec:
        assert [f.index for f in dec.frames([0, 39, 500])] == [0, 39]


def test_rotation_metadata_gives_display_orientation(tmp_path):
    frames = render_scene(64, 48, 3)
    plain = write_clip(tmp_path / "plain.mp4", frames=frames, crf=0)
    rotated = write_clip(tmp_path / "rot.mp4", frames=frames, crf=0, rotation=90)
    with PyAVDecoder(plain) as a, PyAVDecoder(rotated) as b:
        assert (b.info.width, b.info.height, b.info.rotation) == (48, 64, 90)
        fa, fb = next(iter(a.frames([0]))), next(iter(b.frames([0])))
        assert np.array_equal(np.rot90(fa.planes[0], 1), fb.planes[0])
        assert fb.planes[1].shape == (32, 24)


def test_variable_frame_rate(tmp_path):
    times = np.cumsum([0] + [0.02, 0.06] * 10)[:20]
    path = write_clip(tmp_path / "vfr.mkv", width=64, height=48, num_frames=20, frame_times=times)
    info = probe(path)
    assert info.num_frames == 20 and info.fps > 0
    with PyAVDecoder(path) as dec:
        pts = [f.pts for f in dec.frames()]
    assert len(pts) == 20 and np.all(np.diff(pts) > 0)


@pytest.mark.parametrize("size", [(16, 16), (641, 359), (1, 1)])
def test_odd_and_tiny_sizes(tmp_path, size):
    w, h = size
    if (w, h) == (1, 1):
        path = write_clip(tmp_path / "one.nut", width=1, height=1, num_frames=2, codec="rawvideo",
                          pix_fmt="yuv444p", crf=None)
    else:
        path = write_clip(tmp_path / "odd.mkv", width=w, height=h, num_frames=3, codec="ffv1", crf=None)
    with PyAVDecoder(path) as dec:
        assert (dec.info.width, dec.info.height) == (w, h)
        frame = next(iter(dec.frames([0])))
        assert frame.planes[0].shape == (h, w)


# ------------------------------------------------------------------------------------------- bad input

@pytest.mark.timeout(60)
def test_missing_directory_empty(tmp_path):
    with pytest.raises(VideoDecodeError, match="no such file"):
        PyAVDecoder(tmp_path / "nope.mp4")
    with pytest.raises(VideoDecodeError, match="is a directory"):
        PyAVDecoder(tmp_path)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="empty.mp4: file is empty"):
        PyAVDecoder(empty)


@pytest.mark.timeout(60)
def test_text_png_audio_and_damaged_files(tmp_path, small_clip):
    text = tmp_path / "notes.mp4"
    text.write_text("hello\n" * 50)
    with pytest.raises(VideoDecodeError, match="notes.mp4: not a readable video"):
        PyAVDecoder(text)

    png = tmp_path / "picture.mp4"
    with av.open(os.fspath(tmp_path / "pic.png"), "w", format="image2") as c:
        s = c.add_stream("png", rate=1)
        s.width, s.height, s.pix_fmt = 32, 24, "rgb24"
        for p in s.encode(av.VideoFrame.from_ndarray(np.zeros((24, 32, 3), np.uint8), format="rgb24")):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    png.write_bytes((tmp_path / "pic.png").read_bytes())
    with pytest.raises(VideoDecodeError, match="picture.mp4: is a still image"):
        PyAVDecoder(png)

    # An animated WebP is a video FFmpeg's decoder cannot read (up to libavcodec 62 at least): said so.
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is not None:
        pictures = [Image.fromarray(np.full((24, 32, 3), 40 * k, np.uint8)) for k in range(3)]
        animated = tmp_path / "moving.webp"
        pictures[0].save(animated, save_all=True, append_images=pictures[1:], duration=100, lossless=True)
        try:
            with av.open(os.fspath(animated)) as c:
                decodable = len(list(c.decode(video=0))) == 3
        except av.FFmpegError:
            decodable = False
        if decodable:  # a later FFmpeg
            with PyAVDecoder(animated) as decoder:
                assert len(list(decoder.frames())) == 3
        else:
            for source in (animated, animated.read_bytes()):
                with pytest.raises(VideoDecodeError, match="is an animated WebP, which this FFmpeg"):
                    PyAVDecoder(source)
        pictures[0].save(tmp_path / "still.webp", lossless=True)
        with pytest.raises(VideoDecodeError, match="still.webp: is a still image"):
            PyAVDecoder(tmp_path / "still.webp")

    audio = tmp_path / "speech.mp4"
    with av.open(os.fspath(audio), "w", format="mp4") as c:
        s = c.add_stream("aac", rate=16000)
        for i in range(5):
            fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            fr.sample_rate, fr.pts = 16000, i * 1024
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with pytest.raises(VideoDecodeError, match="speech.mp4: has no video stream .*audio"):
        PyAVDecoder(audio)

    data = bytearray(open(small_clip, "rb").read())
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(VideoDecodeError, match="truncated.mp4"):
        PyAVDecoder(truncated)

    start, end = data.find(b"mdat"), data.find(b"moov")
    data[start + 4:end - 4] = bytes(end - start - 8)
    zero = tmp_path / "zeroed.mp4"
    zero.write_bytes(bytes(data))
    with pytest.raises(VideoDecodeError, match="zeroed.mp4: .*no decodable frames"):
        PyAVDecoder(zero)


def test_bytes_and_file_objects(small_clip):
    blob = open(small_clip, "rb").read()
    info = probe(blob)
    assert info.num_frames == 40
    with open(small_clip, "rb") as fh:
        assert probe(fh).width == 160
    with pytest.raises(VideoDecodeError, match="no data"):
        probe(b"")


def _damaged_ts(folder) -> tuple[str, str]:
    """A clean MPEG-TS clip and a copy with 40 bytes flipped in its last three quarters (seeded)."""
    from edgevqa.samples import write_clip

    clean = write_clip(folder / "clean.ts", width=160, height=96, num_frames=40, fps=20)
    data = bytearray(open(clean, "rb").read())
    for pos in np.random.default_rng(5).integers(len(data) // 4, len(data), 40):
        data[pos] ^= 0xFF
    damaged = folder / "damaged.ts"
    damaged.write_bytes(bytes(data))
    return clean, os.fspath(damaged)


def test_damage_is_counted_and_reported(tmp_path):
    clean, damaged = _damaged_ts(tmp_path)
    with PyAVDecoder(clean) as decoder:
        assert sum(1 for _ in decoder.frames()) == 40
        assert not decoder.damaged and decoder.damage_report() == "" and decoder.reopenable
    with PyAVDecoder(damaged) as decoder:
        frames = sum(1 for _ in decoder.frames())
        assert frames > 0 and decoder.damaged
        report = decoder.damage_report()
        assert report.startswith(f"{damaged}: damaged stream: ") and "error concealment" in report
    with open(damaged, "rb") as fh, PyAVDecoder(fh) as decoder:
        assert not decoder.reopenable


@pytest.mark.parametrize("trc, transfer", [(16, "pq"), (18, "hlg"), (1, "sdr"), (0, "sdr")])
def test_hdr_transfer_is_read_and_said(tmp_path, probe_model, trc, transfer):
    """HDR video is recognised by its transfer, and the result says what was done with it (tone-mapped: see
    test_tonemap.py). (AVColorTransferCharacteristic 16 is PQ, 18 HLG, 1 BT.709, 0 unspecified.)"""
    import av

    from edgevqa.pipeline import Pipeline

    path = tmp_path / f"trc{trc}.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.color_trc = trc
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 30 * i, np.uint8), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with PyAVDecoder(path) as decoder:
        assert decoder.info.transfer == transfer
    with Pipeline(probe_model) as pipeline:
        result = pipeline.score(path)
        stream = pipeline.score_stream(path, 0.3)
        assert len(list(stream)) == 2
    assert any(n.startswith("HDR video") for n in stream.notes) == (transfer != "sdr")  # and as a stream
    said = [w for w in result.warnings if w.startswith("HDR video")]
    assert (len(said) == 1) == (transfer != "sdr") and result.info["transfer"] == transfer
    if said:
        assert {"pq": "PQ (HDR10)", "hlg": "HLG"}[transfer] in said[0]


def test_pixel_format_change_mid_stream_is_converted_and_said(tmp_path):
    """Plans and the colour conversion are made for the first frame's format. A stream that switches format
    (two clips concatenated) has its other frames converted to it: before, 4:4:4 frames in a 4:2:0 stream were
    read with the 4:2:0 layout (in a check by hand, the default model's colour score of such a second fell from 96
    to 62)."""
    from edgevqa.pipeline import Pipeline
    from edgevqa.testing import remux_clip

    parts = []
    for pix_fmt in ("yuv420p", "yuv444p"):
        clip = write_clip(tmp_path / f"{pix_fmt}.mp4", width=320, height=180, num_frames=60, fps=20, pix_fmt=pix_fmt,
                          seed=3)
        parts.append(open(remux_clip(clip, tmp_path / f"{pix_fmt}.ts", "mpegts"), "rb").read())
    mixed = tmp_path / "mixed.ts"
    mixed.write_bytes(parts[0] + parts[1])
    with PyAVDecoder(mixed) as decoder:
        frames = [(f.index, f.planes[1].shape, f.chroma_shift) for f in decoder.frames()]
        assert decoder.format_changes == ((60, "yuv444p"),) and decoder.reformatted_frames == 60
    assert len(frames) == 120 and {shape for _, shape, _ in frames} == {(90, 160)}
    assert "changed at sampled frame(s) 60 (yuv444p)): 60 sampled frame(s) were converted" in decoder.format_report()
    with Pipeline() as pipeline:
        alone = [s["scores"]["color"] for s in pipeline.score_stream(tmp_path / "yuv444p.ts", 1.0)]
        stream = pipeline.score_stream(mixed, 1.0)
        together = [s["scores"]["color"] for s in stream][3:]
        result = pipeline.score(mixed)
    # the 4:4:4 seconds read as the 4:4:4 clip does, up to its chroma brought to 4:2:0
    assert max(abs(a - b) for a, b in zip(alone, together)) < 3, (alone, together)
    assert any("from frame 60 the pixel format is yuv444p" in n for n in stream.notes)
    assert any(w.startswith("the pixel format changed mid-stream") for w in result.warnings)


def test_cover_art_is_not_the_video(tmp_path, small_clip):
    """An attached picture (an audio file's album cover, a video's thumbnail) is a one-picture "video" stream:
    an audio file with a cover is an error, not a score of its cover, and of several video tracks the one the
    file marks as default is scored (the first otherwise)."""
    import shutil
    import subprocess

    from edgevqa.pipeline import Pipeline

    if shutil.which("ffmpeg") is None:
        pytest.skip("needs the ffmpeg command line to mux cover art (Debian: ffmpeg)")

    def ffmpeg(*args):
        subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)

    cover = tmp_path / "cover.png"
    ffmpeg("-i", small_clip, "-frames:v", "1", cover)
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-i", cover, "-map", "0", "-map", "1", "-c:a",
           "aac", "-c:v", "mjpeg", "-disposition:v", "attached_pic", tmp_path / "song.m4a")
    with pytest.raises(VideoDecodeError, match="only cover art"):
        PyAVDecoder(tmp_path / "song.m4a")
    # a still first track, then the clip marked default (Matroska keeps the dispositions of video tracks)
    ffmpeg("-i", cover, "-i", small_clip, "-map", "0", "-map", "1:v", "-c:v:0", "mjpeg", "-c:v:1", "copy",
           "-disposition:v:0", "0", "-disposition:v:1", "default", tmp_path / "two.mkv")
    with av.open(str(tmp_path / "two.mkv")) as container:
        assert [s.codec_context.name for s in container.streams.video] == ["mjpeg", "h264"]
    with Pipeline() as pipeline:
        assert pipeline.score(tmp_path / "two.mkv").scores == pipeline.score(small_clip).scores


def test_frame_size_change_mid_stream_is_scaled_and_said(tmp_path):
    """An adaptive stream that switches to a lower resolution (or two clips concatenated) has its other frames
    scaled to the first frame's size, as a player shows them, instead of ending in an error: the lower
    resolution then reads as blur."""
    from edgevqa.pipeline import Pipeline
    from edgevqa.testing import remux_clip

    parts = []
    for width, height in ((320, 180), (160, 90)):
        clip = write_clip(tmp_path / f"{width}.mp4", width=width, height=height, num_frames=60, fps=20, seed=3)
        parts.append(open(remux_clip(clip, tmp_path / f"{width}.ts", "mpegts"), "rb").read())
    mixed = tmp_path / "switching.ts"
    mixed.write_bytes(parts[0] + parts[1] + parts[0])
    with PyAVDecoder(mixed) as decoder:
        sizes = {f.planes[0].shape for f in decoder.frames()}
        assert sizes == {(180, 320)} and decoder.rescaled_frames == 60
        assert decoder.size_changes == ((60, "160x90"), (120, "320x180"))
    with Pipeline() as pipeline:
        stream = pipeline.score_stream(mixed, 1.0)
        blur = [s["scores"]["blur"] for s in stream]
        halves = tmp_path / "halves.ts"  # the whole video's plan reads both halves of this one
        halves.write_bytes(parts[0] + parts[1])
        result = pipeline.score(halves)
    assert len(blur) == 9 and max(blur[3:6]) < min(blur[:3] + blur[6:])  # the 160x90 seconds read blurrier
    assert any("the coded frame size is 160x90" in n for n in stream.notes)
    assert any("the frame size changed mid-stream" in w for w in result.warnings), result.warnings

