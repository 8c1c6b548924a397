"""The default-model quality bench's re-encode (`transcode`) and summary, on small generated clips."""

from __future__ import annotations

import numpy as np
import pytest

av = pytest.importorskip("av")

from edgevqa.bench.default_model_quality import distortion_seed, encode_lossless, summarise, transcode  # noqa: E402


def test_transcode_keeps_the_frames_in_yuv(clips, tmp_path):
    src = clips[1]  # 80x48, 30 frames at 15 fps, yuv420p
    lossless = transcode(str(src), str(tmp_path / "crf0.mp4"), 0)  # CRF 0: lossless in the encoder's own format
    with av.open(str(src)) as a, av.open(lossless) as b:
        sa, sb = a.streams.video[0], b.streams.video[0]
        assert (sb.codec_context.width, sb.codec_context.height, sb.codec_context.pix_fmt) == \
            (sa.codec_context.width, sa.codec_context.height, sa.codec_context.pix_fmt)
        assert float(sb.average_rate) == pytest.approx(float(sa.average_rate))
        fa, fb = list(a.decode(sa)), list(b.decode(sb))
    assert len(fa) == len(fb) == 30
    # No colour conversion on the way: every plane comes back bit for bit.
    for x, y in zip(fa, fb):
        assert np.array_equal(x.to_ndarray(), y.to_ndarray())


def test_lossless_clips_hold_the_same_picture_at_8_and_10_bits(tmp_path):
    rng = np.random.default_rng(5)
    # Smooth colour waves, which 4:2:0 chroma barely changes, so the precision of the samples shows.
    y, x = np.mgrid[0:38, 0:54]
    picture = np.stack([128 + 100 * np.sin(a * x / 20 + b * y / 20 + c) for a, b, c in rng.uniform(-1.5, 1.5, (3, 3))],
                       axis=-1)
    frames = np.stack([picture + t for t in range(3)]).clip(0, 255).astype(np.uint8)
    got = {}
    for bits, pix_fmt in ((8, "yuv420p"), (10, "yuv420p10le")):
        path = encode_lossless(frames, str(tmp_path / f"{bits}.mp4"), 24, pix_fmt)
        with av.open(path) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.pix_fmt == pix_fmt
            got[bits] = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(stream)]
    assert len(got[8]) == len(got[10]) == 3
    # Both give the frames back up to the rounding of the YUV samples, the 10-bit clip more closely.
    error = {bits: np.mean([np.abs(g - f).mean() for g, f in zip(got[bits], frames)]) for bits in got}
    assert error[10] < error[8] < 3


def test_summary_names_the_worst_source_of_the_re_encode():
    dims = ("color", "noise", "artifact", "blur", "temporal")
    rows, stability, round_trip = [], [], []
    for s, source in enumerate(("a", "b")):
        base = {"overall": 90.0, **{d: 90.0 for d in dims}}
        rows.append({"source": source, "dim": None, "kind": None, "level": 0.0, "scores": base})
        for d in dims:
            for level in (0.5, 1.0):
                rows.append({"source": source, "dim": d, "kind": "k", "level": level,
                             "scores": {**base, d: 90.0 - 80 * level, "overall": 90.0 - 60 * level}})
        stability.append({k: (3.0 if source == "b" and k == "blur" else 0.5) for k in base})
        round_trip.append({k: 4.0 for k in base})
    bit_depth = [{k: (5.0 if source == "a" and k == "noise" else 1.0) for k in stability[0]}
                 for source in ("a", "b")]
    doubled = {"stride": [{k: 0.5 for k in stability[0]}, {k: (2.0 if k == "temporal" else 0.5) for k in stability[0]}],
               "every_frame": [{k: 19.0 for k in stability[0]}, {k: 1.0 for k in stability[0]}]}
    summary = summarise(rows, stability, True, round_trip, bit_depth, doubled=doubled)
    assert summary["bit_depth_max_change"] == 5.0 and summary["bit_depth_worst_source"] == "a"
    assert "hdr_max_change" not in summary  # not measured
    assert summary["doubled_stride_max_change"] == 2.0 and summary["doubled_stride_worst_source"] == "b"
    assert summary["doubled_stride_max_by_output"]["temporal"] == 2.0
    assert summary["doubled_every_frame_max_change"] == 19.0 and summary["doubled_every_frame_worst_source"] == "a"
    assert summary["bit_depth_max_by_output"] == {k: (5.0 if k == "noise" else 1.0) for k in stability[0]}
    assert summary["lossless_reencode_max_change"] == 3.0
    assert summary["lossless_reencode_worst_source"] == "b"
    assert summary["lossless_reencode_by_source"]["b"]["blur"] == 3.0
    assert summary["lossless_reencode_by_source"]["a"] == {k: 0.5 for k in stability[0]}
    assert summary["rgb_round_trip_reencode_max_change"] == 4.0
    assert summary["pristine_wins"] == 1.0 and summary["overall_monotone_sweeps"] == 1.0
    assert all(v["srcc"] == pytest.approx(1.0) for v in summary["per_dimension"].values())


def test_unchanged_clips_are_severity_zero_and_not_pairs():
    dims = ("color", "noise", "artifact", "blur", "temporal")
    base = {"overall": 80.0, **{d: 80.0 for d in dims}}
    rows = [{"source": "grey", "dim": None, "kind": None, "level": 0.0, "scores": base}]
    for d in dims:
        for level in (0.5, 1.0):
            unchanged = d == "color"  # desaturating greyscale content: the same pixels, the same scores
            scores = base if unchanged else {**base, d: 80.0 - 60 * level, "overall": 80.0 - 50 * level}
            rows.append({"source": "grey", "dim": d, "kind": "desaturate" if unchanged else "k", "level": level,
                         "unchanged": unchanged, "scores": scores})
    stability = [{k: 0.0 for k in base}]
    summary = summarise(rows, stability, True, stability)
    assert summary["unchanged_clips"] == 2
    assert summary["pairs"] == 8 and summary["pristine_wins"] == 1.0  # the two unchanged clips are not pairs
    assert summary["overall_monotone_sweeps"] == 1.0  # and make no sweep
    assert np.isnan(summary["per_dimension"]["color"]["srcc"])  # all severity 0 now: nothing to correlate
    assert summary["per_dimension"]["noise"]["srcc"] == pytest.approx(1.0)


def test_within_source_srcc_ignores_each_source_s_baseline():
    """Two sources ranked perfectly inside each, one reading 40 points lower throughout (an already
    compressed real clip): the pooled SRCC drops, the within-source mean stays 1; a blind source counts 0."""
    dims = ("color", "noise", "artifact", "blur", "temporal")
    rows, stability = [], []
    for source, offset in (("clean", 0.0), ("compressed", -40.0)):
        base = {"overall": 90.0 + offset, **{d: 90.0 + offset for d in dims}}
        rows.append({"source": source, "dim": None, "kind": None, "level": 0.0, "scores": base})
        for d in dims:
            for level in (0.2, 0.6, 1.0):
                rows.append({"source": source, "dim": d, "kind": "k", "level": level,
                             "scores": {**base, d: base[d] - 20 * level, "overall": base["overall"] - 20 * level}})
        stability.append({k: 0.0 for k in base})
    summary = summarise(rows, stability, True, stability)
    artifact = summary["per_dimension"]["artifact"]
    assert artifact["srcc"] < 0.9
    assert artifact["within_source_srcc"] == pytest.approx(1.0)

    blind = [dict(r, scores={**r["scores"], "blur": 90.0}) if r["source"] == "clean" else r for r in rows]
    assert summarise(blind, stability, True, stability)["per_dimension"]["blur"]["within_source_srcc"] == \
        pytest.approx(0.5)


def test_lost_pairs_and_falling_sweeps_are_broken_down_by_kind_and_dimension():
    """One source; the noise sweep's first step raises the overall score (noise hiding compression), the blur
    sweep falls throughout: one pair lost to noise/poisson, one of two sweeps strictly falling."""
    dims = ("color", "noise", "artifact", "blur", "temporal")
    base = {"overall": 50.0, **{d: 80.0 for d in dims}}
    rows = [{"source": "s", "dim": None, "kind": None, "level": 0.0, "scores": base}]
    for dim, kind, overall in (("noise", "poisson", (60.0, 40.0, 20.0)), ("blur", "motion", (45.0, 30.0, 10.0))):
        for level, value in zip((0.2, 0.6, 1.0), overall):
            rows.append({"source": "s", "dim": dim, "kind": kind, "level": level,
                         "scores": {**base, dim: 80.0 - 60 * level, "overall": value}})
    stability = [{k: 0.0 for k in base}]
    summary = summarise(rows, stability, True, stability)
    assert summary["pairs_lost_by_kind"] == {"noise/poisson": 1}
    assert summary["monotone_sweeps_by_dimension"] == {"noise": (0, 1), "blur": (1, 1)}
    assert summary["pairs"] == 6 and summary["pristine_wins"] == pytest.approx(5 / 6)


def test_sweep_seeds_per_sweep_by_default_or_per_level():
    levels = (0.2, 0.4, 0.6, 0.8, 1.0)
    per_level = [distortion_seed(3, 2, level, "per-level") for level in levels]
    assert len(set(per_level)) == len(levels) and per_level[0] == 3000 + 20 + 20  # the seeds of sessions 1-7
    per_sweep = {distortion_seed(3, 2, level) for level in levels}
    assert per_sweep == {3020} == {distortion_seed(3, 2, level, "per-sweep") for level in levels}
    assert distortion_seed(4, 2, 0.2, "per-sweep") != distortion_seed(3, 2, 0.2, "per-sweep")
    with pytest.raises(ValueError, match="per-sweep"):
        distortion_seed(0, 0, 0.2, "random")


def test_scene_cut_figure_reads_and_avoids_cuts_between_held_out_sources(tmp_path):
    """Held-out rendered scenes cut over to the next inside the first snippet: the shipped model's snippets move
    off the cut, and the temporal score read across it is the lower."""
    from edgevqa.bench.default_model_quality import scene_cuts

    figure = scene_cuts(None, seed=123, num_frames=48, max_sources=3, workdir=str(tmp_path))
    assert figure["clips"] == 3 and figure["moved"] >= 2
    moved = [(r, a) for r, a in zip(figure["read"], figure["avoided"]) if r != a]
    assert len(moved) == figure["moved"] and all(a["temporal"] > r["temporal"] for r, a in moved)
    assert list(tmp_path.iterdir()) == []  # the clips are removed


def test_scene_cut_detection_bench_runs(capsys):
    from edgevqa.bench.scene_cut_detection import main

    assert main(["--sources", "2", "--frames", "8", "--joins", "3"]) == 0
    out = capsys.readouterr().out
    assert "pairs of consecutive frames, pristine and temporally distorted: 126; flagged as cuts:" in out
    assert "joins of two sources: 3; flagged as cuts:" in out
