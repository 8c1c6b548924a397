"""Deinterlacing (`edgevqa.deinterlace`) against a plain per-pixel loop, and through the decoder and pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from edgevqa import deinterlace as deinterlace_module
from edgevqa.deinterlace import COMB_THRESHOLD, deinterlace_plane, deinterlace_plane_reference, first_field
from edgevqa.errors import EdgeVQAError, KernelError

compiled = deinterlace_module._compiled
IMPLEMENTATIONS = [deinterlace_plane_reference, deinterlace_plane]
needs_c = pytest.mark.skipif(compiled is None, reason="edgevqa.kernels._deinterlace was not built (no C compiler)")


def reference_deinterlace(plane: np.ndarray, field: int, bit_depth: int) -> np.ndarray:
    """The specification, one sample at a time."""
    height, width = plane.shape
    kept_rows = list(range(field, height, 2))
    other_rows = list(range(1 - field, height, 2))
    threshold = COMB_THRESHOLD << (bit_depth - 8)
    out = plane.copy()
    if not kept_rows:  # one line, of the other field: nothing to deinterlace it against
        return out

    def kept(k: int, x: int) -> int:
        return int(plane[kept_rows[min(max(k, 0), len(kept_rows) - 1)], x])

    for n, row in enumerate(other_rows):
        below = (row - field + 1) // 2  # the kept line under this one (in kept-line numbering)
        up_row, down_row = other_rows[max(n - 1, 0)], other_rows[min(n + 1, len(other_rows) - 1)]
        for x in range(width):
            a, b, o = kept(below - 1, x), kept(below, x), int(plane[row, x])
            beyond = (o - a > threshold and o - b > threshold) or (a - o > threshold and b - o > threshold)
            along = abs(2 * o - int(plane[up_row, x]) - int(plane[down_row, x]))
            if beyond and along < min(abs(o - a), abs(o - b)):
                cubic = (9 * (a + b) - kept(below - 2, x) - kept(below + 1, x) + 8) >> 4
                out[row, x] = min(max(cubic, 0), (1 << bit_depth) - 1)
    return out


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS, ids=["numpy", "default"])
@pytest.mark.parametrize("shape", [(1, 5), (2, 3), (3, 7), (9, 4), (17, 13), (30, 11)])
@pytest.mark.parametrize("field", [0, 1])
@pytest.mark.parametrize("bit_depth", [8, 10, 16])
def test_matches_the_reference_on_random_planes(implementation, shape, field, bit_depth):
    rng = np.random.default_rng([shape[0], shape[1], field, bit_depth])
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    plane = rng.integers(0, 1 << bit_depth, shape).astype(dtype)
    # Combing of two random pictures and smooth stretches both: alternate lines from two images
    plane[::2] = np.clip(plane[::2] // 4 + (1 << (bit_depth - 2)), 0, (1 << bit_depth) - 1)
    got = implementation(plane, field, bit_depth)
    assert got.dtype == plane.dtype and got.shape == plane.shape
    assert np.array_equal(got, reference_deinterlace(plane, field, bit_depth))
    assert np.array_equal(got[field::2], plane[field::2])  # the kept field is untouched


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS, ids=["numpy", "default"])
def test_non_contiguous_planes_and_the_input_is_not_changed(implementation):
    rng = np.random.default_rng(3)
    packed = rng.integers(0, 256, (15, 9 * 3), dtype=np.uint8)
    before = packed.copy()
    for view in (packed[:, 1::3], packed[::-1, 2::3], packed.T[:9]):  # a channel of packed RGB, flipped, transposed
        got = implementation(view, 0)
        assert np.array_equal(got, reference_deinterlace(np.ascontiguousarray(view), 0, 8))
    assert np.array_equal(packed, before)


@needs_c
def test_c_equals_numpy_on_full_hd_frames_of_every_kind():
    rng = np.random.default_rng(8)
    for bit_depth, dtype in ((8, np.uint8), (10, np.uint16), (12, np.uint16)):
        noise = rng.integers(0, 1 << bit_depth, (1081, 1919)).astype(dtype)
        smooth = (np.add.outer(np.arange(1081), np.arange(1919)) % (1 << bit_depth)).astype(dtype)
        smooth[1::2, 500:900] = noise[1::2, 500:900]  # a combed patch in a smooth picture
        for plane in (noise, smooth):
            for field in (0, 1):
                assert np.array_equal(deinterlace_plane(plane, field, bit_depth),
                                      deinterlace_plane_reference(plane, field, bit_depth))


@needs_c
def test_c_binding_checks_its_arguments():
    plane = np.zeros((6, 8), np.uint8)
    out = np.empty_like(plane)
    cases = [
        ((plane[0], out[0], 0, 8, 6), "2-D"),
        ((plane, out.astype(np.uint16), 0, 8, 6), "uint8 or both uint16"),
        ((plane.astype(np.int16), out.astype(np.int16), 0, 8, 6), "uint8 or both uint16"),
        ((plane, out[:5], 0, 8, 6), "the output is 5x8"),
        ((plane, out, 2, 8, 6), "field must be 0"),
        ((plane, out, 0, 10, 6), "10-bit samples do not fit uint8"),
        ((plane.astype(np.uint16), out.astype(np.uint16), 0, 17, 6), "17-bit"),
        ((plane, out, 0, 8, -1), "threshold"),
        ((plane, plane, 0, 8, 6), "overlaps"),
        ((plane[:3], plane[3:], 0, 8, 6), None),  # neighbouring rows of one array do not overlap: fine
    ]
    for args, message in cases:
        if message is None:
            compiled.deinterlace_plane(*args)
            continue
        with pytest.raises(KernelError, match=message):
            compiled.deinterlace_plane(*args)
    read_only = np.empty_like(plane)
    read_only.flags.writeable = False
    with pytest.raises((BufferError, ValueError, TypeError)):
        compiled.deinterlace_plane(plane, read_only, 0, 8, 6)
    odd = np.zeros(2 * 6 * 8 + 1, np.uint8)[1:].view(np.uint16).reshape(6, 8)  # misaligned by a byte
    if odd.ctypes.data % 2:
        with pytest.raises(KernelError, match="aligned"):
            compiled.deinterlace_plane(odd, np.empty((6, 8), np.uint16), 0, 10, 24)
        assert np.array_equal(deinterlace_plane(odd, 0, 10), reference_deinterlace(odd, 0, 10))  # the fallback


@needs_c
def test_c_binding_fuzzed():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(rows=st.integers(0, 12), cols=st.integers(0, 9), field=st.integers(0, 1),
           bit_depth=st.sampled_from([8, 10, 16]), step=st.integers(1, 3), flip=st.booleans(),
           seed=st.integers(0, 2**32 - 1))
    def check(rows, cols, field, bit_depth, step, flip, seed):
        dtype = np.uint8 if bit_depth == 8 else np.uint16
        base = np.random.default_rng(seed).integers(0, 1 << bit_depth, (rows, cols * step)).astype(dtype)
        plane = base[:, ::step]
        plane = plane[::-1] if flip else plane
        got = deinterlace_plane(plane, field, bit_depth)
        assert np.array_equal(got, deinterlace_plane_reference(plane, field, bit_depth))

    assert hypothesis
    check()


def smooth_picture(height: int, width: int, phase: float) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return (128 + 90 * np.sin(x / 7.0 + phase) * np.cos(y / 11.0)).astype(np.uint8)


def test_a_still_picture_is_left_as_it_is():
    picture = smooth_picture(48, 64, 0.0)
    assert np.array_equal(deinterlace_plane(picture, 0), picture)
    assert np.array_equal(deinterlace_plane(picture, 1), picture)


def test_combing_is_replaced_by_the_kept_field():
    first, second = smooth_picture(48, 64, 0.0), smooth_picture(48, 64, 2.5)  # the scene moved between fields
    woven = first.copy()
    woven[1::2] = second[1::2]
    fixed = deinterlace_plane(woven, 0)
    error_woven = np.abs(woven.astype(int) - first).mean()
    error_fixed = np.abs(fixed.astype(int) - first).mean()
    assert error_fixed < error_woven / 4


def test_first_field_of_each_field_order():
    assert [first_field(order) for order in (None, 0, 1, 2, 3, 4, 5)] == [0, 0, 0, 0, 1, 1, 0]


def write_interlaced(path, frames: np.ndarray, interlaced: bool = True) -> None:
    """MPEG-2 of grey ``[T, H, W]`` frames, coded interlaced (field DCT and motion estimation) or not."""
    from edgevqa.samples import write_clip

    options = {"qscale": "1", "qmin": "1", **({"flags": "+ilme+ildct"} if interlaced else {})}
    write_clip(path, frames=np.repeat(frames[..., None], 3, axis=3), fps=10, codec="mpeg2video", crf=None,
               options=options)


def combed_frames(count: int = 6, height: int = 64, width: int = 96) -> np.ndarray:
    frames = []
    for i in range(count):
        first, second = smooth_picture(height, width, 1.5 * i), smooth_picture(height, width, 1.5 * i + 0.75)
        woven = first.copy()
        woven[1::2] = second[1::2]
        frames.append(woven)
    return np.stack(frames)


def test_decoder_deinterlaces_interlaced_frames(tmp_path):
    pytest.importorskip("av")
    from edgevqa.decode import PyAVDecoder

    path = tmp_path / "combed.mpg"
    write_interlaced(path, combed_frames())
    with PyAVDecoder(path) as decoder:
        fixed = [f.planes[0].copy() for f in decoder.frames(range(6))]
        assert decoder.info.interlaced and decoder.deinterlaced_frames == 6
        # FFmpeg's MPEG-2 encoder marks frames bottom field first unless told otherwise: that field is kept
        field = decoder.kept_field
    with PyAVDecoder(path, deinterlace=False) as decoder:
        woven = [f.planes[0].copy() for f in decoder.frames(range(6))]
        assert decoder.deinterlaced_frames == 0
    for a, b in zip(fixed, woven):
        assert np.array_equal(a, deinterlace_plane(b, field))  # the decoder's frames, deinterlaced as specified
        assert np.array_equal(a[field::2], b[field::2]) and not np.array_equal(a, b)


def test_progressive_video_is_not_touched(tmp_path):
    pytest.importorskip("av")
    from edgevqa.decode import PyAVDecoder

    path = tmp_path / "progressive.mpg"
    write_interlaced(path, combed_frames(), interlaced=False)
    with PyAVDecoder(path) as decoder:
        assert not decoder.info.interlaced
        list(decoder.frames(range(6)))
        assert decoder.deinterlaced_frames == 0


def test_pipeline_and_stream_deinterlace_and_say_so(tmp_path, probe_model):
    pytest.importorskip("av")
    from edgevqa.pipeline import Pipeline

    path = tmp_path / "combed.mpg"
    write_interlaced(path, combed_frames())
    with Pipeline(probe_model) as pipeline, Pipeline(probe_model, deinterlace=False) as woven:
        fixed_result, woven_result = pipeline.score(path), woven.score(path)
        stream = pipeline.score_stream(path, 0.3)
        assert len(list(stream)) == 2
    assert fixed_result.scores != woven_result.scores
    assert [w for w in fixed_result.warnings if w.startswith("interlaced video")] == [
        fixed_result.warnings[0]] and "deinterlaced" in fixed_result.warnings[0]
    assert any(w.startswith("interlaced video, not deinterlaced") for w in woven_result.warnings)
    assert sum(n.startswith("interlaced video") for n in stream.notes) == 1


def test_frames_converted_from_another_format_are_deinterlaced_too(tmp_path):
    """DV (4:1:1, always interlaced) reaches the sampler through FFmpeg's conversion to 4:4:4; its frames are
    deinterlaced all the same."""
    pytest.importorskip("av")
    from fractions import Fraction

    from edgevqa.decode import PyAVDecoder
    from edgevqa.samples import write_clip

    path = tmp_path / "clip.dv"
    grey = combed_frames(4, 480, 720)
    write_clip(path, frames=np.repeat(grey[..., None], 3, axis=3), fps=Fraction(30000, 1001), codec="dvvideo",
               pix_fmt="yuv411p", crf=None)
    with PyAVDecoder(path) as decoder:
        assert decoder.info.pix_fmt == "yuv411p" and decoder.info.interlaced
        frames = list(decoder.frames(range(4)))
        assert len(frames) == 4 and decoder.deinterlaced_frames == 4


def test_deinterlace_modes():
    from edgevqa.deinterlace import deinterlace_mode

    assert [deinterlace_mode(v) for v in (True, False, "auto", "always", "never")] == [
        "auto", "never", "auto", "always", "never"]
    for bad in ("yes", None, 1, "Always"):
        with pytest.raises(EdgeVQAError, match="auto, always, never"):
            deinterlace_mode(bad)


def test_always_deinterlaces_raw_frames_that_carry_no_flag(tmp_path, probe_model):
    """Raw frames from a capture pipeline (here: combed grey frames as raw yuv420p) carry no interlaced flag:
    ``always`` deinterlaces them all the same, and says so."""
    pytest.importorskip("av")
    from edgevqa.decode import PyAVDecoder
    from edgevqa.pipeline import Pipeline

    height, width = 64, 96
    frames = combed_frames(8, height, width)
    raw = tmp_path / "frames.yuv"
    with open(raw, "wb") as fh:
        for grey in frames:
            fh.write(grey.tobytes() + bytes([128]) * (2 * (height // 2) * (width // 2)))
    options = {"video_size": f"{width}x{height}", "pixel_format": "yuv420p", "framerate": "10"}
    with PyAVDecoder(raw, input_format="rawvideo", input_options=options) as decoder:
        assert not decoder.info.interlaced
        assert [f.planes[0].tolist() for f in decoder.frames(range(8))] == [f.tolist() for f in frames]
        assert decoder.deinterlaced_frames == 0
    with PyAVDecoder(raw, input_format="rawvideo", input_options=options, deinterlace="always") as decoder:
        got = [f.planes[0].copy() for f in decoder.frames(range(8))]
        assert decoder.deinterlaced_frames == 8
    assert all(np.array_equal(g, deinterlace_plane(f, 0)) for g, f in zip(got, frames))
    scores, notes = {}, {}
    for mode in ("always", "auto"):
        with Pipeline(probe_model, deinterlace=mode) as pipeline:
            stream = pipeline.score_stream(str(raw), 0.4, input_format="rawvideo", input_options=options)
            scores[mode] = [s["scores"] for s in stream]
            notes[mode] = stream.notes
    assert scores["always"] != scores["auto"]
    assert any("as asked (deinterlace 'always')" in n for n in notes["always"])
    assert not any("interlace" in n for n in notes["auto"])


def test_cli_deinterlace_option(small_clip, probe_model):
    from test_cli import run_cli

    proc = run_cli("score", small_clip, "--model", probe_model, "--deinterlace", "always", "--json")
    assert proc.returncode == 0 and "deinterlace 'always'" in proc.stdout
    proc = run_cli("score", small_clip, "--model", probe_model, "--deinterlace", "sometimes")
    assert proc.returncode == 2 and "--deinterlace" in proc.stderr and "always" in proc.stderr
