"""Black bars (letterbox, pillarbox) found and cropped so that the picture alone is scored (`edgevqa.bars`)."""

from __future__ import annotations

import numpy as np
import pytest

from edgevqa.bars import Bars, crop_bars_mode, find_bars
from edgevqa.errors import EdgeVQAError

av = pytest.importorskip("av")


def _yuv420(picture_y, bars=(0, 0, 0, 0), black=16, depth=8, rng=None):
    """Y'CbCr 4:2:0 planes of a frame: ``picture_y`` (random content when an int pair) inside black bars."""
    rng = rng or np.random.default_rng(0)
    scale = 1 << (depth - 8)
    if isinstance(picture_y, tuple):
        picture_y = rng.integers(40 * scale, 220 * scale, picture_y)
    top, bottom, left, right = bars
    h, w = picture_y.shape[0] + top + bottom, picture_y.shape[1] + left + right
    dtype = np.uint8 if depth == 8 else np.uint16
    y = np.full((h, w), black * scale, dtype)
    y[top:h - bottom, left:w - right] = picture_y
    chroma = [np.full(((h + 1) // 2, (w + 1) // 2), 128 * scale, dtype) for _ in range(2)]
    # coloured only where a chroma sample covers picture lines alone
    rows, cols = slice(-(-top // 2), (h - bottom) // 2), slice(-(-left // 2), (w - right) // 2)
    chroma[0][rows, cols] = rng.integers(60 * scale, 200 * scale, chroma[0][rows, cols].shape)
    return y, chroma[0], chroma[1]


@pytest.mark.parametrize("bars", [(92, 92, 0, 0), (0, 0, 160, 160), (40, 44, 100, 96), (0, 0, 0, 0)])
def test_letterbox_pillarbox_and_both(bars):
    top, bottom, left, right = bars
    planes = _yuv420((720 - top - bottom, 1280 - left - right), bars)
    assert find_bars(planes, (1, 1)) == Bars(*bars)


def test_what_is_not_a_bar():
    rng = np.random.default_rng(1)
    assert find_bars(_yuv420((0, 1280), (360, 360, 0, 0)), (1, 1)) is None  # all black: tells nothing
    dark_sky = _yuv420((620, 1280), (100, 0, 0, 0))  # a dark band on one side only
    assert find_bars(dark_sky, (1, 1)) == Bars()
    uneven = _yuv420((600, 1280), (100, 20, 0, 0))  # one bar five times the other: not a centred letterbox
    assert find_bars(uneven, (1, 1)) == Bars()
    thin = _yuv420((716, 1280), (2, 2, 0, 0))  # an encoder's edge lines, not bars
    assert find_bars(thin, (1, 1)) == Bars()
    blue = _yuv420((536, 1280), (92, 92, 0, 0))
    blue[1][:46] = 170  # dark blue bands: coloured, so picture
    blue[1][-46:] = 170
    assert find_bars(blue, (1, 1)).top == 0
    grey = _yuv420((536, 1280), (92, 92, 0, 0), black=60)  # mid-grey bands are not black
    assert find_bars(grey, (1, 1)) == Bars()
    narrow = _yuv420((720, 200), (0, 0, 540, 540))  # what is left would be under a quarter of the width
    assert find_bars(narrow, (1, 1)) is None  # tells nothing: a later frame is looked at
    title = _yuv420((720, 1280), (0, 0, 0, 0))  # white lines of text on black: a title card
    title[0][:] = 16
    title[0][200:520:40, 300:980] = 235
    title[1][:] = 128
    assert find_bars(title, (1, 1)) is None
    noisy = _yuv420((536, 1280), (92, 92, 0, 0), rng=rng)
    noisy[0][:92] += rng.integers(0, 6, (92, 1280)).astype(np.uint8)  # noise in the bars, within 10 levels
    noisy[0][10, :2] = 200  # and a stray bright pixel
    assert find_bars(noisy, (1, 1)) == Bars(92, 92, 0, 0)


def test_edges_move_inward_to_whole_chroma_samples():
    planes = _yuv420((537, 1280), (91, 92, 0, 0))  # the picture starts on an odd line
    bars = find_bars(planes, (1, 1))
    assert bars == Bars(92, 92, 0, 0)
    luma, cb, cr = bars.crop(planes, (1, 1))
    assert luma.shape == (536, 1280) and cb.shape == cr.shape == (268, 640)
    assert np.shares_memory(luma, planes[0])  # views, nothing copied
    odd = _yuv420((361, 641), (0, 0, 0, 0))
    assert find_bars(odd, (1, 1)) == Bars()


def test_depths_ranges_rgb_and_grey():
    ten = _yuv420((536, 1280), (92, 92, 0, 0), depth=10)
    assert find_bars(ten, (1, 1), depth=10) == Bars(92, 92, 0, 0)
    full = _yuv420((536, 1280), (92, 92, 0, 0), black=0)
    assert find_bars(full, (1, 1), full_range=True) == Bars(92, 92, 0, 0)
    assert find_bars(full, (1, 1)) == Bars(92, 92, 0, 0)  # full-range black is darker still
    limited_black_in_full = _yuv420((536, 1280), (92, 92, 0, 0), black=16)
    assert find_bars(limited_black_in_full, (1, 1), full_range=True).top == 0  # 16 is not black there
    rgb = [np.zeros((720, 960), np.uint8) for _ in range(3)]
    for plane in rgb:
        plane[:, 120:840] = np.random.default_rng(2).integers(30, 250, (720, 720))
    assert find_bars(rgb, (0, 0), is_rgb=True) == Bars(0, 0, 120, 120)
    y = _yuv420((536, 1280), (92, 92, 0, 0))[0]
    mid = np.full((1, 1), 128, np.uint8)
    grey = np.lib.stride_tricks.as_strided(mid, shape=y.shape, strides=(0, 0))
    bars = find_bars((y, grey, grey), (0, 0))
    assert bars == Bars(92, 92, 0, 0) and [p.shape for p in bars.crop((y, grey, grey), (0, 0))] == [(536, 1280)] * 3


def test_modes():
    assert crop_bars_mode(True) == "auto" and crop_bars_mode(False) == "never" and crop_bars_mode("never") == "never"
    with pytest.raises(EdgeVQAError, match="crop_bars"):
        crop_bars_mode("sometimes")


# ------------------------------------------------------------------------------------------ videos


def _picture(frames=24, size=(240, 320), seed=0):
    from edgevqa.samples import render_scene

    return render_scene(size[1], size[0], frames, seed=seed)


def _boxed(picture, bars):
    top, bottom, left, right = bars
    t, h, w, _ = picture.shape
    out = np.zeros((t, h + top + bottom, w + left + right, 3), np.uint8)
    out[:, top:top + h, left:left + w] = picture
    return out


def _write(path, frames, **options):
    """Losslessly in 4:4:4, so the picture inside the bars is exactly the picture alone (in 4:2:0 the
    colour conversion of a black edge bleeds into the picture's first chroma samples)."""
    from edgevqa.samples import write_clip

    return write_clip(path, frames=frames, fps=24, qp=0, pix_fmt="yuv444p", threads=1, **options)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bars")
    picture = _picture()
    return {"alone": _write(folder / "alone.mp4", picture),
            "letterbox": _write(folder / "letterbox.mp4", _boxed(picture, (40, 40, 0, 0))),
            "pillarbox": _write(folder / "pillarbox.mp4", _boxed(picture, (0, 0, 64, 64)))}


def _frames(path, **options):
    from edgevqa.decode import PyAVDecoder

    with PyAVDecoder(path, **options) as decoder:
        return decoder.info, [[np.array(p) for p in f.planes] for f in decoder.frames()]


def test_the_decoder_crops_to_the_picture(clips):
    info, alone = _frames(clips["alone"], crop_bars="auto")
    assert info.bars is None and (info.width, info.height) == (320, 240)
    for name, bars in (("letterbox", (40, 40, 0, 0)), ("pillarbox", (0, 0, 64, 64))):
        info, frames = _frames(clips[name], crop_bars="auto")
        assert info.bars == bars and (info.width, info.height) == (320, 240)
        assert "cropped: the 320x240 picture inside the" in info.picture_notes()[0]
        assert all(np.array_equal(a, b) for f, g in zip(frames, alone) for a, b in zip(f, g))
        whole, _ = _frames(clips[name])  # PyAVDecoder keeps whole frames by default
        assert whole.bars is None and whole.height + whole.width == 240 + 320 + sum(bars)


def test_the_pipeline_scores_the_picture_alone(clips):
    from edgevqa.pipeline import Pipeline

    with Pipeline() as pipeline, Pipeline(crop_bars="never") as whole, Pipeline(plan_mode="reference") as ref:
        alone = pipeline.score(clips["alone"])
        for name in ("letterbox", "pillarbox"):
            cropped = pipeline.score(clips[name])
            assert cropped.scores == alone.scores  # the same pixels, the same plan
            assert any("black bars" in w for w in cropped.warnings)
            assert cropped.info["bars"] is not None
            assert whole.score(clips[name]).scores != alone.scores
            assert ref.score(clips[name]).info["bars"] is None  # the original sampling is reproduced
        assert [s["scores"] for s in pipeline.score_stream(clips["letterbox"], seconds=0.5)] == \
            [s["scores"] for s in Pipeline(segment_seconds=0.5).score(clips["alone"]).segments]


def test_bars_are_found_after_a_fade_in(tmp_path):
    picture = _picture()
    picture[:5] = 0  # five black frames first
    boxed = _write(tmp_path / "fade.mp4", _boxed(picture, (40, 40, 0, 0)))
    info, _ = _frames(boxed, crop_bars="auto")
    assert info.bars == (40, 40, 0, 0)
    with open(boxed, "rb") as once:  # a file object is not read twice: the first frame alone tells nothing
        from edgevqa.decode import PyAVDecoder

        with PyAVDecoder(once, crop_bars="auto") as decoder:
            assert decoder.info.bars is None


@pytest.mark.parametrize("rotation", [90, 270])
def test_bars_of_a_rotated_video_are_found_as_it_is_shown(tmp_path, rotation):
    """A portrait phone video padded to landscape, coded sideways: pillarbox bars as shown are coded as
    top and bottom lines."""
    picture = _picture(size=(320, 240))  # portrait as shown
    shown = _boxed(picture, (0, 0, 120, 120))  # 320 x 480, landscape as shown
    coded = np.rot90(shown, k=-1 if rotation == 90 else 1, axes=(1, 2)).copy()
    boxed = _write(tmp_path / "rotated.mp4", coded, rotation=rotation)
    alone = _write(tmp_path / "alone.mp4", np.rot90(picture, k=-1 if rotation == 90 else 1, axes=(1, 2)).copy(),
                   rotation=rotation)
    info, frames = _frames(boxed, crop_bars="auto")
    assert info.rotation == rotation and info.bars == (0, 0, 120, 120) and (info.width, info.height) == (240, 320)
    _, want = _frames(alone)
    assert all(np.array_equal(a, b) for f, g in zip(frames, want) for a, b in zip(f, g))


def test_hdr_regions_inside_the_bars_equal_whole_frames(tmp_path):
    """An HDR frame is tone-mapped only where the plans read: inside the bars, offset by them."""
    from edgevqa.decode import PyAVDecoder
    from edgevqa.pipeline import Pipeline
    from edgevqa.samples import write_hdr_clip

    frames = _boxed(_picture(frames=8, size=(256, 320)), (48, 48, 0, 0))
    path = write_hdr_clip(tmp_path / "pq.mkv", frames, "pq")
    with Pipeline(keep_inputs=True) as pipeline:
        sparse = pipeline.score(path)
    assert sparse.info["bars"] == (48, 48, 0, 0)
    real = PyAVDecoder.regions
    try:
        PyAVDecoder.regions = property(lambda self: None, lambda self, value: None)
        with Pipeline(keep_inputs=True) as pipeline:
            whole = pipeline.score(path)
    finally:
        PyAVDecoder.regions = real
    assert np.array_equal(sparse.inputs["video"], whole.inputs["video"])


def test_the_command_line(clips, capsys):
    import json

    from edgevqa.cli import main

    for flags, cropped in (((), True), (("--no-crop-bars",), False), (("--crop-bars", "never"), False)):
        assert main(["score", clips["letterbox"], "--json", "--quiet", *flags]) == 0
        assert (json.loads(capsys.readouterr().out)["info"]["bars"] is not None) == cropped
    assert main(["info", clips["pillarbox"]]) == 0
    assert "bars: [0, 0, 64, 64]" in capsys.readouterr().out.replace("(", "[").replace(")", "]")
