"""HDR -> SDR tone mapping (`edgevqa.tonemap`): the C and NumPy forms against a plain per-pixel loop, the integer
form against the float64 formulas, round trips from SDR, and HDR video through the decoder, pipeline and CLI."""

from __future__ import annotations

import numpy as np
import pytest

from edgevqa import tonemap as tonemap_module
from edgevqa.errors import EdgeVQAError, KernelError
from edgevqa.kernels.colour import MATRIX_KR_KB
from edgevqa.tonemap import (DEFAULT_PEAK_NITS, ENCODE_COARSE_SHIFT, ENCODE_FINE_BITS, GAIN_SHIFT, GAMUT_SHIFT,
                             LINEAR_SHIFT, OUT_SHIFT, SDR_WHITE_NITS, bt2390_eetf, nits_to_pq, pq_to_nits,
                             sdr_to_hdr_planes, tone_map_for, tone_map_mode, tone_map_planes,
                             tone_map_planes_float, tone_map_planes_reference)

compiled = tonemap_module._compiled
IMPLEMENTATIONS = [tone_map_planes_reference, tone_map_planes]
needs_c = pytest.mark.skipif(compiled is None, reason="edgevqa.kernels._tonemap was not built (no C compiler)")


def loop_tone_map(planes, chroma_shift, mapping):
    """The specification, one pixel at a time, in Python integers."""
    y_plane, u_plane, v_plane = (np.asarray(p) for p in planes)
    sy, sx = chroma_shift
    height, width = y_plane.shape
    y_offset, c_mid, cy, crv, cgu, cgv, cbu = (int(v) for v in mapping.to_rgb)
    m = [int(v) for v in mapping.gamut]
    k = [int(v) for v in mapping.to_yuv]
    out_y = np.zeros((height, width), np.uint8)
    sums = {}

    def clamp(v, lo, hi):
        return min(max(v, lo), hi)

    for r in range(height):
        for x in range(width):
            yy = cy * (int(y_plane[r, x]) - y_offset)
            u, v = int(u_plane[r >> sy, x >> sx]) - c_mid, int(v_plane[r >> sy, x >> sx]) - c_mid
            codes = [clamp((yy + crv * v + 32768) >> 16, 0, 16383),
                     clamp((yy - cgu * u - cgv * v + 32768) >> 16, 0, 16383),
                     clamp((yy + cbu * u + 32768) >> 16, 0, 16383)]
            gain = int(mapping.gain[max(codes)])
            linear = [(int(mapping.linear[c]) * gain + (1 << (GAIN_SHIFT - 1))) >> GAIN_SHIFT for c in codes]
            rgb = []
            for row in range(3):
                mixed = (sum(m[3 * row + j] * linear[j] for j in range(3)) + (1 << (GAMUT_SHIFT - 1))) >> GAMUT_SHIFT
                mixed = clamp(mixed, 0, 1 << LINEAR_SHIFT)
                fine = mixed < (1 << ENCODE_FINE_BITS)
                index = mixed if fine else (1 << ENCODE_FINE_BITS) + (mixed >> ENCODE_COARSE_SHIFT)
                rgb.append(int(mapping.encode[index]))
            luma = (sum(k[j] * rgb[j] for j in range(3)) + (16 << OUT_SHIFT) + (1 << (OUT_SHIFT - 1))) >> OUT_SHIFT
            out_y[r, x] = clamp(luma, 0, 255)
            block = sums.setdefault((r >> sy, x >> sx), [0, 0, 0, 0])
            for j in range(3):
                block[j] += rgb[j]
            block[3] += 1
    out_u, out_v = np.zeros(u_plane.shape, np.uint8), np.zeros(u_plane.shape, np.uint8)
    for (cr, cx), (r_sum, g_sum, b_sum, count) in sums.items():
        for out, row in ((out_u, 1), (out_v, 2)):
            numerator = max(k[3 * row] * r_sum + k[3 * row + 1] * g_sum + k[3 * row + 2] * b_sum
                            + count * (128 << OUT_SHIFT), 0)
            out[cr, cx] = clamp((numerator + (count << OUT_SHIFT) // 2) // (count << OUT_SHIFT), 0, 255)
    return [out_y, out_u, out_v]


def random_planes(rng, height, width, shift, bit_depth, spread=None):
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    top = 1 << bit_depth
    chroma = (-(-height >> shift[0]), -(-width >> shift[1]))
    luma = rng.integers(0, top, (height, width))
    if spread is None:  # every code, chroma included
        cb, cr = rng.integers(0, top, chroma), rng.integers(0, top, chroma)
    else:  # chroma near neutral, as in pictures
        cb, cr = (np.clip(rng.normal(top / 2, top * spread, chroma), 0, top - 1) for _ in range(2))
    return [luma.astype(dtype), cb.astype(dtype), cr.astype(dtype)]


MAPPINGS = [("pq", "bt2020", "limited", 10, None), ("pq", "bt2020", "full", 12, 4000.0),
            ("hlg", "bt2020", "limited", 10, None), ("pq", "bt709", "limited", 8, 600.0),
            ("hlg", "bt601", "full", 16, None), ("pq", "bt2020", "limited", 10, 150.0)]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS, ids=["numpy", "default"])
@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (5, 7), (9, 4), (6, 13)])
@pytest.mark.parametrize("shift", [(1, 1), (0, 1), (0, 0), (2, 2), (1, 0), (0, 2)])
@pytest.mark.parametrize("mapping_args", MAPPINGS, ids=lambda m: f"{m[0]}-{m[1]}-{m[2]}-{m[3]}-{m[4]}")
def test_matches_the_per_pixel_loop(implementation, shape, shift, mapping_args):
    rng = np.random.default_rng([shape[0], shape[1], shift[0], shift[1], mapping_args[3]])
    mapping = tone_map_for(*mapping_args)
    planes = random_planes(rng, *shape, shift, mapping.bit_depth)
    got = implementation(planes, shift, mapping)
    want = loop_tone_map(planes, shift, mapping)
    assert [g.dtype for g in got] == [np.uint8] * 3
    for g, w in zip(got, want):
        assert np.array_equal(g, w)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS, ids=["numpy", "default"])
def test_non_contiguous_planes_and_the_input_is_not_changed(implementation):
    rng = np.random.default_rng(5)
    mapping = tone_map_for("pq", "bt2020", "limited", 10)
    big = [p.copy() for p in random_planes(rng, 14, 22, (0, 0), 10, spread=0.1)]
    before = [p.copy() for p in big]
    views = [
        [big[0][::2, ::2], big[1][::4, ::4], big[2][::4, ::4]],  # strided, 4:2:0 of a 7x11 picture
        [big[0][::-1, ::-1], big[1][::-2, ::-2], big[2][::-2, ::-2]],  # flipped
        [big[0].T, big[1][::2].T, big[2][::2].T],  # transposed: 22x14 luma, 4:2:2 along rows
    ]
    shifts = [(1, 1), (1, 1), (0, 1)]
    for planes, shift in zip(views, shifts):
        got = implementation(planes, shift, mapping)
        for g, w in zip(got, loop_tone_map([np.ascontiguousarray(p) for p in planes], shift, mapping)):
            assert np.array_equal(g, w)
    assert all(np.array_equal(a, b) for a, b in zip(big, before))


@needs_c
def test_c_equals_numpy_on_full_hd_frames():
    rng = np.random.default_rng(9)
    for args in MAPPINGS[:3]:
        mapping = tone_map_for(*args)
        planes = random_planes(rng, 1081, 1919, (1, 1), mapping.bit_depth, spread=0.15)
        want = tone_map_planes_reference(planes, (1, 1), mapping)
        for got, wanted in zip(tone_map_planes(planes, (1, 1), mapping), want):
            assert np.array_equal(got, wanted)


@pytest.mark.parametrize("mapping_args", MAPPINGS, ids=lambda m: f"{m[0]}-{m[1]}-{m[2]}-{m[3]}-{m[4]}")
def test_integer_form_follows_the_float_formulas(mapping_args):
    """Tables and fixed point cost at most a level and a half against the float64 formulas (8-bit output
    levels; the rounding to whole levels alone costs half a level)."""
    rng = np.random.default_rng(11)
    mapping = tone_map_for(*mapping_args)
    for spread in (None, 0.1):
        planes = random_planes(rng, 64, 96, (1, 1), mapping.bit_depth, spread=spread)
        ideal = tone_map_planes_float(planes, (1, 1), mapping)
        for got, want in zip(tone_map_planes(planes, (1, 1), mapping), ideal):
            difference = np.abs(got - np.clip(want, 0, 255))
            assert difference.max() <= 1.5 and difference.mean() <= 0.35


def sdr_planes_709(rgb: np.ndarray) -> list[np.ndarray]:
    """8-bit limited BT.709 4:2:0 planes of an SDR picture, chroma by 2x2 means (as the tone mapper's output)."""
    x = rgb.astype(np.float64) / 255.0
    kr, kb = MATRIX_KR_KB["bt709"]
    kg = 1 - kr - kb
    y = kr * x[..., 0] + kg * x[..., 1] + kb * x[..., 2]
    cb, cr = (x[..., 2] - y) / (2 * (1 - kb)), (x[..., 0] - y) / (2 * (1 - kr))
    count = tonemap_module._block_sums(np.ones(y.shape), 1, 1)
    return [np.round(16 + 219 * y), np.round(128 + 224 * tonemap_module._block_sums(cb, 1, 1) / count),
            np.round(128 + 224 * tonemap_module._block_sums(cr, 1, 1) / count)]


def smooth_rgb(height, width, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    phase = rng.uniform(0, 6, 3)
    channels = [128 + 120 * np.sin(xx / (9.0 + 3 * c) + yy / 13.0 + phase[c]) for c in range(3)]
    return np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8)


def test_sdr_content_with_an_sdr_peak_comes_back():
    """PQ holding SDR content (white at 203 nits, peak 203): the mapping is the identity up to rounding. One
    colour per 2x2 block: chroma averaged on the PQ curve and on the SDR curve differ at saturated edges. No
    channel near black beside a bright one: 10-bit BT.2020 holds such a channel to about 0.1 % of the bright
    one's light, which the SDR curve near black turns into several levels."""
    rgb = (smooth_rgb(24, 33) * 5 // 8 + 48).repeat(2, axis=0).repeat(2, axis=1)
    planes = sdr_to_hdr_planes(rgb, "pq")
    got = tone_map_planes(planes, (1, 1), tone_map_for("pq", "bt2020", "limited", 10, SDR_WHITE_NITS))
    for g, w in zip(got, sdr_planes_709(rgb)):
        assert np.abs(g - w).max() <= 1 and np.abs(g - w).mean() < 0.3


@pytest.mark.parametrize("transfer", ["pq", "hlg"])
def test_highlights_roll_off_and_the_rest_comes_back(transfer):
    """With a 1000-nit peak, SDR content below the knee comes back within a level or two; brighter content is
    compressed, its order kept; the declared peak becomes SDR white."""
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2).repeat(2, axis=0)  # grey 0..255
    mapping = tone_map_for(transfer, "bt2020", "limited", 10)
    luma = tone_map_planes(sdr_to_hdr_planes(ramp, transfer), (1, 1), mapping)[0][0].astype(int)
    want = np.round(16 + 219 * np.arange(256) / 255.0)
    assert np.all(np.diff(luma) >= 0)  # monotonic
    dark = np.arange(256) <= 150  # under about 60 nits: below the knee
    assert np.abs(luma[dark] - want[dark]).max() <= 2
    assert luma[255] < want[255] - 10  # SDR white (203 nits) lies on the roll-off of a 1000-nit range
    peak = nits_to_pq(DEFAULT_PEAK_NITS) if transfer == "pq" else 1.0
    code = int(round((64 + 876 * peak)))
    white = tone_map_planes([np.full((2, 2), code, np.uint16), np.full((1, 1), 512, np.uint16),
                             np.full((1, 1), 512, np.uint16)], (1, 1), mapping)
    assert white[0].min() >= 234 and white[1][0, 0] == 128 and white[2][0, 0] == 128


def test_eetf_and_curves():
    nits = np.array([0.0, 1.0, 50.0, 100.0, 203.0, 500.0, 1000.0, 4000.0])
    assert np.allclose(pq_to_nits(nits_to_pq(nits)), nits, rtol=1e-9, atol=1e-9)
    mapped = bt2390_eetf(nits, 1000.0)
    assert np.all(np.diff(mapped) >= 0) and mapped[-2] == pytest.approx(SDR_WHITE_NITS, rel=1e-6)
    assert mapped[-1] == pytest.approx(SDR_WHITE_NITS, rel=1e-6)  # beyond the declared peak: the target
    assert np.allclose(mapped[:3], nits[:3])  # the identity below the knee
    assert np.array_equal(bt2390_eetf(nits, 150.0), np.minimum(nits, SDR_WHITE_NITS))  # nothing to compress


def test_peaks_and_modes():
    assert tone_map_for("pq", "bt2020", "limited", 10, None).peak_nits == DEFAULT_PEAK_NITS
    assert tone_map_for("pq", "bt2020", "limited", 10, 0.0).peak_nits == DEFAULT_PEAK_NITS
    assert tone_map_for("pq", "bt2020", "limited", 10, 50000.0).peak_nits == 10000.0
    assert tone_map_for("hlg", "bt2020", "limited", 10, 4000.0).peak_nits == DEFAULT_PEAK_NITS  # HLG ignores it
    # A brighter peak leaves less room: 1000 nits shows dimmer under a 4000-nit peak than under its own
    at_1000_nits = int(round(nits_to_pq(1000.0) * 16383))
    shown = {peak: tone_map_for("pq", "bt2020", "limited", 10, peak).gain[at_1000_nits] / 65536 * 1000
             for peak in (1000.0, 4000.0)}
    assert shown[1000.0] == pytest.approx(SDR_WHITE_NITS, rel=2e-3) and shown[4000.0] < SDR_WHITE_NITS - 5
    with pytest.raises(EdgeVQAError, match="sdr"):
        tone_map_for("sdr", "bt709", "limited", 8)
    with pytest.raises(KernelError, match="colour matrix"):
        tone_map_for("pq", "xyz", "limited", 10)
    assert [tone_map_mode(v) for v in (True, False, "auto", "never")] == ["auto", "never", "auto", "never"]
    for bad in ("always", None, "Auto"):
        with pytest.raises(EdgeVQAError, match="auto, never"):
            tone_map_mode(bad)


def test_python_checks_planes():
    mapping = tone_map_for("pq", "bt2020", "limited", 10)
    good = random_planes(np.random.default_rng(0), 4, 6, (1, 1), 10)
    for planes, shift, message in [
        (good[:2], (1, 1), "three 2-D planes"),
        (good, (3, 1), "shifts must be 0..2"),
        ([good[0], good[1][:1], good[2]], (1, 1), "chroma planes"),
        ([p.astype(np.uint8) for p in good], (1, 1), "10-bit planes must be uint16"),
    ]:
        for implementation in IMPLEMENTATIONS:
            with pytest.raises(EdgeVQAError, match=message):
                implementation(planes, shift, mapping)


@needs_c
def test_c_binding_checks_its_arguments():
    mapping = tone_map_for("pq", "bt2020", "limited", 10)
    planes = random_planes(np.random.default_rng(1), 4, 6, (1, 1), 10)
    outs = [np.empty((4, 6), np.uint8), np.empty((2, 3), np.uint8), np.empty((2, 3), np.uint8)]
    tables = [mapping.to_rgb, mapping.linear, mapping.gain, mapping.gamut, mapping.encode, mapping.to_yuv]

    def call(p=planes, o=outs, shift=(1, 1), depth=10, t=tables):
        compiled.tone_map(*p, *o, *shift, depth, *t)

    call()
    bad_gain = mapping.gain.copy()
    bad_gain[7] = (1 << GAIN_SHIFT) + 1
    bad_encode = mapping.encode.copy()
    bad_encode[3] = 4096
    cases = [
        (dict(p=[planes[0][0], planes[1], planes[2]]), "2-D"),
        (dict(shift=(3, 1)), "shifts must be 0..2"),
        (dict(depth=17), "bit depth"),
        (dict(depth=8), "8-bit samples must be uint8"),
        (dict(p=[p.astype(np.int16) for p in planes]), "uint16 planes"),
        (dict(p=[planes[0], planes[1][:1], planes[2]]), "chroma"),
        (dict(o=[outs[0][:3], outs[1], outs[2]]), "luma output"),
        (dict(o=[outs[0], outs[1][:, :2], outs[2]]), "chroma outputs"),
        (dict(o=[o.astype(np.uint16) for o in outs]), "outputs must be uint8"),
        (dict(o=[outs[0], outs[1], outs[1]]), "overlaps"),
        (dict(o=[outs[0], outs[1], outs[0][:2, :3]]), "overlaps"),
        (dict(t=[tables[0], tables[1][:100]] + tables[2:]), "linear table"),
        (dict(t=tables[:2] + [mapping.gain.astype(np.int64)] + tables[3:]), "gain table"),
        (dict(t=tables[:4] + [mapping.encode.astype(np.int32)] + tables[5:]), "encode table"),
        (dict(t=tables[:2] + [bad_gain] + tables[3:]), "gains"),
        (dict(t=tables[:4] + [bad_encode] + tables[5:]), "encoded values"),
    ]
    for arguments, message in cases:
        with pytest.raises(KernelError, match=message):
            call(**arguments)
    read_only = np.empty((4, 6), np.uint8)
    read_only.flags.writeable = False
    with pytest.raises((BufferError, ValueError, TypeError)):
        call(o=[read_only, outs[1], outs[2]])
    odd = np.zeros(2 * 4 * 6 + 1, np.uint8)[1:].view(np.uint16).reshape(4, 6)  # misaligned by a byte
    if odd.ctypes.data % 2:
        odd[...] = planes[0]
        with pytest.raises(KernelError, match="aligned"):
            call(p=[odd, planes[1], planes[2]])
        for got, want in zip(tone_map_planes([odd, planes[1], planes[2]], (1, 1), mapping),
                             loop_tone_map(planes, (1, 1), mapping)):
            assert np.array_equal(got, want)  # the fallback
    empty = [np.zeros((0, 5), np.uint16), np.zeros((0, 3), np.uint16), np.zeros((0, 3), np.uint16)]
    compiled.tone_map(*empty, np.zeros((0, 5), np.uint8), np.zeros((0, 3), np.uint8), np.zeros((0, 3), np.uint8),
                      1, 1, 10, *tables)


@needs_c
def test_c_binding_fuzzed():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(rows=st.integers(1, 9), cols=st.integers(1, 9), shift_rows=st.integers(0, 2), shift_cols=st.integers(0, 2),
           mapping_index=st.integers(0, len(MAPPINGS) - 1), step=st.integers(1, 3), flip=st.booleans(),
           seed=st.integers(0, 2**32 - 1))
    def check(rows, cols, shift_rows, shift_cols, mapping_index, step, flip, seed):
        mapping = tone_map_for(*MAPPINGS[mapping_index])
        rng = np.random.default_rng(seed)
        wide = random_planes(rng, rows, cols * step, (shift_rows, 0), mapping.bit_depth)
        luma = wide[0][:, ::step]
        chroma_cols = -(-cols >> shift_cols)
        planes = [luma] + [p[:, :chroma_cols] for p in wide[1:]]
        if flip:
            planes = [p[::-1] for p in planes]
        shift = (shift_rows, shift_cols)
        want = tone_map_planes_reference(planes, shift, mapping)
        for got, wanted in zip(tone_map_planes(planes, shift, mapping), want):
            assert np.array_equal(got, wanted)

    assert hypothesis
    check()


# ------------------------------------------------------------------------------------------ decoder, pipeline


@pytest.fixture(scope="module")
def sdr_frames():
    return np.stack([np.roll(smooth_rgb(64, 96, seed=3), 3 * t, axis=1) for t in range(10)])


def test_decoder_tone_maps_hdr_frames(tmp_path, sdr_frames):
    pytest.importorskip("av")
    from edgevqa.decode import PyAVDecoder
    from edgevqa.samples import write_hdr_clip

    path = write_hdr_clip(tmp_path / "pq.mkv", sdr_frames, "pq")
    with PyAVDecoder(path, tone_map="never") as decoder:
        coded = [[p.copy() for p in f.planes] for f in decoder.frames(range(4))]
        assert decoder.info.transfer == "pq" and decoder.info.bit_depth == 10 and decoder.tone_mapped_frames == 0
        assert decoder.info.hdr_peak_nits is None
    mapping = tone_map_for("pq", "bt2020", "limited", 10, None)
    with PyAVDecoder(path) as decoder:
        frames = list(decoder.frames(range(4)))
        assert decoder.tone_mapped_frames == 4
    for frame, planes in zip(frames, coded):
        assert (frame.bit_depth, frame.color_matrix, frame.color_range) == (8, "bt709", "limited")
        for got, want in zip(frame.planes, tone_map_planes_reference(planes, (1, 1), mapping)):
            assert np.array_equal(got, want)
    # a model trained on 8 bits: the tone-mapped frames are 8-bit already, not rounded again
    with PyAVDecoder(path, max_bit_depth=8) as decoder:
        assert all(np.array_equal(a, b) for a, b in zip(next(iter(decoder.frames([0]))).planes, frames[0].planes))


def test_declared_peak_is_read_and_used(tmp_path, sdr_frames):
    pytest.importorskip("av")
    from edgevqa.decode import PyAVDecoder
    from edgevqa.samples import write_hdr_clip

    path = write_hdr_clip(tmp_path / "pq.mp4", sdr_frames[:3], "pq", codec="libx265", max_cll=1500)
    with PyAVDecoder(path) as decoder:
        assert decoder.info.hdr_peak_nits == 1500.0
        assert "declared peak of 1500 nits" in decoder.info.hdr_note()
        first = next(iter(decoder.frames([0])))
    with PyAVDecoder(path, tone_map=False) as decoder:
        coded = next(iter(decoder.frames([0]))).planes
    for got, want in zip(first.planes, tone_map_planes_reference(coded, (1, 1), tone_map_for("pq", "bt2020", "limited",
                                                                                             10, 1500.0))):
        assert np.array_equal(got, want)


def test_pipeline_scores_hdr_as_its_sdr_source(tmp_path, sdr_frames, probe_model):
    """The probe model reads channel means: PQ and HLG versions of an SDR clip score as the SDR clip (within
    the mapping's rounding and its highlight roll-off) once tone-mapped, and far from it read as coded."""
    pytest.importorskip("av")
    from edgevqa.pipeline import Pipeline
    from edgevqa.samples import write_hdr_clip

    frames = (sdr_frames.astype(np.int32) * 3 // 5).astype(np.uint8)  # under the knee: the mapping gives it back
    sdr = tmp_path / "sdr.mkv"
    with __import__("av").open(str(sdr), "w") as container:  # the same 2x2-mean chroma as the mapping's output
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.codec_context.colorspace, stream.codec_context.color_range = 1, 1
        for t, rgb in enumerate(frames):
            frame = __import__("av").VideoFrame(96, 64, "yuv420p")
            for plane, data in zip(frame.planes, sdr_planes_709(rgb)):
                rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
                rows[:, : data.shape[1]] = np.clip(data, 0, 255).astype(np.uint8)
            frame.pts = t
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with Pipeline(probe_model) as pipeline, Pipeline(probe_model, tone_map="never") as as_coded:
        want = pipeline.score(sdr).scores
        for transfer in ("pq", "hlg"):
            path = write_hdr_clip(tmp_path / f"{transfer}.mkv", frames, transfer)
            result, coded = pipeline.score(path), as_coded.score(path)
            mapped_off = max(abs(result.scores[n] - want[n]) for n in want)
            coded_off = max(abs(coded.scores[n] - want[n]) for n in want)  # PQ 2.7 points, HLG 0.6 (2026-12-07)
            assert mapped_off <= 0.15 and coded_off > 3 * mapped_off
            assert any(w.startswith(f"HDR video ({'PQ (HDR10)' if transfer == 'pq' else 'HLG'} transfer;")
                       and "tone-mapped to SDR" in w for w in result.warnings)
            assert any("not tone-mapped, as asked" in w for w in coded.warnings)
        stream = pipeline.score_stream(str(tmp_path / "pq.mkv"), 0.2)
        assert len(list(stream)) == 2 and sum("tone-mapped to SDR" in n for n in stream.notes) == 1


def test_cli_tone_map_options(tmp_path, sdr_frames, probe_model):
    pytest.importorskip("av")
    import json

    from edgevqa.samples import write_hdr_clip
    from test_cli import run_cli

    path = str(write_hdr_clip(tmp_path / "hlg.mkv", sdr_frames, "hlg"))
    outputs = {}
    for flags in ([], ["--tone-map", "never"], ["--no-tone-map"]):
        proc = run_cli("score", path, "--model", probe_model, "--json", *flags)
        assert proc.returncode == 0, proc.stderr
        outputs[tuple(flags)] = json.loads(proc.stdout)
    tone_mapped, never, no = (outputs[k] for k in outputs)
    assert never["scores"] == no["scores"] and tone_mapped["scores"] != never["scores"]
    assert any("tone-mapped to SDR" in w for w in tone_mapped["warnings"])
    assert any("not tone-mapped, as asked" in w for w in never["warnings"])
    proc = run_cli("score", path, "--model", probe_model, "--tone-map", "sometimes")
    assert proc.returncode == 2 and "--tone-map" in proc.stderr
    proc = run_cli("info", path)
    assert proc.returncode == 0 and "tone-mapped to SDR" in proc.stdout and "a 1000-nit display" in proc.stdout


# ------------------------------------------------------------------------------------------ regions


def test_a_region_equals_the_whole_frame_there():
    """Only the rows and columns a plan reads are mapped (`tone_map_region`): there the samples equal the whole
    frame's, at every chroma layout, with partial blocks at the edges and indices in any order."""
    from edgevqa.tonemap import tone_map_region

    rng = np.random.default_rng(21)
    mapping = tone_map_for("pq", "bt2020", "limited", 10)
    for _ in range(200):
        shift = tuple(int(v) for v in rng.integers(0, 3, 2))
        height, width = (int(v) for v in rng.integers(1, 30, 2))
        planes = random_planes(rng, height, width, shift, 10, spread=0.2)
        whole = tone_map_planes(planes, shift, mapping)
        rows = rng.integers(0, height, rng.integers(1, height + 1))
        cols = rng.integers(0, width, rng.integers(1, width + 1))
        part = tone_map_region(planes, shift, mapping, rows, cols)
        assert np.array_equal(part[0][np.ix_(rows, cols)], whole[0][np.ix_(rows, cols)])
        chroma = np.ix_(np.unique(rows >> shift[0]), np.unique(cols >> shift[1]))
        for got, want in zip(part[1:], whole[1:]):
            assert np.array_equal(got[chroma], want[chroma])
        assert [p.shape for p in part] == [p.shape for p in whole]
    with pytest.raises(EdgeVQAError, match="outside the 4x6 frame"):
        tone_map_region(random_planes(rng, 4, 6, (1, 1), 10), (1, 1), mapping, [0, 4], [0])


def test_coded_region_follows_rotation():
    from edgevqa.decode import _coded_region, _rotate_planes

    rng = np.random.default_rng(4)
    height, width = 7, 11
    coded_rows = np.repeat(np.arange(height)[:, None], width, 1)
    coded_cols = np.repeat(np.arange(width)[None, :], height, 0)
    for rotation in (0, 90, 180, 270):
        rows_shown, cols_shown = _rotate_planes([coded_rows, coded_cols], rotation)
        display_rows = rng.integers(0, rows_shown.shape[0], 4)
        display_cols = rng.integers(0, rows_shown.shape[1], 5)
        rows, cols = _coded_region((display_rows, display_cols), rotation, (height, width))
        picked = np.ix_(display_rows, display_cols)
        assert set(rows.tolist()) == set(rows_shown[picked].ravel().tolist())
        assert set(cols.tolist()) == set(cols_shown[picked].ravel().tolist())


def _inputs(path, model, **options):
    from edgevqa.pipeline import Pipeline

    with Pipeline(model, keep_inputs=True, **options) as pipeline:
        result = pipeline.score(path)
    return result.inputs, result.segments


def _whole_frames(monkeypatch):
    """Every HDR frame tone-mapped whole: the decoder ignores the regions `sample_plans` gives it."""
    from edgevqa.decode import PyAVDecoder

    monkeypatch.setattr(PyAVDecoder, "regions", property(lambda self: None, lambda self, value: None))


@pytest.mark.parametrize("rotation", [0, 90, 270])
def test_pipeline_inputs_from_regions_equal_whole_frames(tmp_path, sdr_frames, probe_model, monkeypatch, rotation):
    """A plan's region of each frame is all the pipeline maps; the model's inputs are those of whole frames,
    rotated or not, for fragments, resize-crop and clip views, segments and a time range."""
    pytest.importorskip("av")
    import onnx

    from edgevqa.manifest import ViewSpec
    from edgevqa.samples import write_hdr_clip
    from edgevqa.testing import default_probe_manifest, probe_model_proto

    path = write_hdr_clip(tmp_path / "pq.mp4", np.concatenate([sdr_frames] * 3), "pq", codec="libx265",
                          rotation=rotation)
    views = (ViewSpec(name="spatial", kind="resize_crop", temporal="key_frames", num_clips=2, clip_len=1, size=40,
                      short_side=48),
             ViewSpec(name="motion", kind="clips", temporal="per_second", num_clips=2, clip_len=4, frame_interval=1,
                      size=24))
    two = default_probe_manifest(outputs=("overall",), view=views[0])
    two_views = tmp_path / "two.onnx"
    onnx.save(probe_model_proto(type(two)(name="two", views=views, outputs=("overall",))), two_views)
    runs = [(probe_model, {}), (probe_model, {"segment_seconds": 0.4}), (probe_model, {"time_range": (0.3, 0.9)}),
            (str(two_views), {})]
    sparse = [_inputs(path, model, **options) for model, options in runs]
    with monkeypatch.context() as patch:
        _whole_frames(patch)
        whole = [_inputs(path, model, **options) for model, options in runs]
    for (got, got_segments), (want, want_segments) in zip(sparse, whole):
        assert got.keys() == want.keys()
        for name in got:
            assert np.array_equal(got[name], want[name]), name
        assert got_segments == want_segments


def test_a_stream_shorter_than_declared_repeats_a_whole_last_frame(tmp_path, sdr_frames, probe_model, monkeypatch):
    """Positions past the stream's end repeat its last frame, which other plans' regions read too: that frame is
    made whole first."""
    pytest.importorskip("av")
    from edgevqa import decode
    from edgevqa.samples import write_hdr_clip

    from edgevqa.manifest import ViewSpec
    from edgevqa.testing import default_probe_manifest, make_probe_model

    frames = np.stack([np.roll(smooth_rgb(256, 320, seed=5), 4 * t, axis=1) for t in range(8)])
    path = write_hdr_clip(tmp_path / "pq.mkv", frames, "pq")  # larger than the fragments: they pick parts
    # Two clips of 8 frames at their own drawn offsets: the stream ends with the first clip's frames, and the
    # second clip's positions repeat its last frame, read at the second clip's offsets.
    two_clips = ViewSpec(name="video", kind="fragments", num_clips=2, clip_len=8, frame_interval=2, aligned=8)
    probe_model = make_probe_model(tmp_path / "two-clips.onnx", default_probe_manifest(view=two_clips))
    real = decode.PyAVDecoder._make_info
    monkeypatch.setattr(decode.PyAVDecoder, "_make_info",
                        lambda self, stream, first: __import__("dataclasses").replace(real(self, stream, first),
                                                                                      num_frames=16))
    from edgevqa.pipeline import Pipeline

    with Pipeline(probe_model, seed=3) as pipeline:
        # A path is planned again for the frames there are (test_frame_counts.py); a file object, which cannot
        # be read twice, repeats the last frame.
        assert "the container declares 16 frames, the stream holds 8" in " ".join(pipeline.score(path).warnings)
        with open(path, "rb") as once:
            warnings = pipeline.score(once).warnings
        assert any("8 sampled frame(s) past its end repeat the last one sampled" in w for w in warnings)

    def inputs_read_once():
        with open(path, "rb") as once:
            return _inputs(once, probe_model, seed=3)[0]

    sparse = inputs_read_once()
    with monkeypatch.context() as patch:
        _whole_frames(patch)
        whole = inputs_read_once()
    assert all(np.array_equal(sparse[name], whole[name]) for name in sparse)


def test_a_live_stream_maps_only_what_its_segments_read(tmp_path, probe_model, monkeypatch):
    """`watch` decodes every frame of a stream: only the pixels its segments' plans read are mapped (none of most
    frames), and the segments score as with whole frames, the last one's repeated frame included."""
    pytest.importorskip("av")
    from edgevqa.pipeline import Pipeline
    from edgevqa.samples import write_hdr_clip

    frames = np.stack([np.roll(smooth_rgb(256, 320, seed=6), 5 * t, axis=1) for t in range(15)])
    path = str(write_hdr_clip(tmp_path / "pq.mkv", frames, "pq"))
    mapped_pixels = []
    real = tonemap_module.tone_map_planes

    def counted(planes, *args):
        mapped_pixels.append(np.size(planes[0]))
        return real(planes, *args)

    monkeypatch.setattr(tonemap_module, "tone_map_planes", counted)  # regions map through it
    monkeypatch.setattr("edgevqa.decode.tone_map_planes", counted)  # whole frames

    def segments(pipeline):
        return [(s["start_frame"], s["end_frame"], s["scores"]) for s in pipeline.score_stream(path, 0.4)]

    with Pipeline(probe_model) as pipeline:
        sparse = segments(pipeline)
    sparse_pixels, mapped_pixels[:] = sum(mapped_pixels), []
    with monkeypatch.context() as patch:
        _whole_frames(patch)
        with Pipeline(probe_model) as pipeline:
            whole = segments(pipeline)
    assert sparse == whole and len(sparse) == 2  # 10 frames and a last 5 (repeated to fill its positions)
    # every frame whole, and the first once more where the decoder looks for black bars (`edgevqa.bars`)
    assert sum(mapped_pixels) == 16 * 256 * 320 and sparse_pixels < 0.7 * sum(mapped_pixels)
