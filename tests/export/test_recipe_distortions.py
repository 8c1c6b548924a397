"""Synthetic distortions: each family moves a plain image statistic monotonically with severity; targets."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("scipy", reason="the recipe's filters need scipy (pip install 'edgevqa[recipe]')")

from edgevqa.export.recipe import distortions as dist  # noqa: E402

LEVELS = (0.0, 0.3, 0.6, 1.0)


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """A textured, moving clip with odd sizes: random blocks plus a smooth gradient and a moving bar."""
    rng = np.random.default_rng(11)
    t, h, w = 9, 45, 61
    blocks = np.kron(rng.uniform(30, 220, size=(t, 12, 16, 3)), np.ones((1, 4, 4, 1)))[:, :h, :w]
    gradient = np.linspace(0, 1, w)[None, None, :, None]
    frames = 0.6 * blocks + 80 * gradient + 10
    for i in range(t):
        frames[i, :, 3 * i:3 * i + 5] = 240  # motion, so temporal distortions have something to act on
    return np.clip(frames, 0, 255).astype(np.uint8)


def _apply(clip, dim, kind, s, seed=3):
    d = dist.Distortion({dim: s} if s > 0 else {}, {dim: kind} if s > 0 else {}, seed)
    return dist.apply(clip, d).astype(np.float64)


def _luma(frames):
    return frames @ np.array([0.299, 0.587, 0.114])


def _high_frequency_energy(frames):
    y = _luma(frames)
    lap = 4 * y[:, 1:-1, 1:-1] - y[:, :-2, 1:-1] - y[:, 2:, 1:-1] - y[:, 1:-1, :-2] - y[:, 1:-1, 2:]
    return float(np.mean(lap ** 2))


def _chroma_magnitude(frames):
    ycc = dist.rgb_to_ycc(frames.astype(np.float32))
    return float(np.mean(np.hypot(ycc[..., 1] - 128, ycc[..., 2] - 128)))


def _strictly_monotone(values, decreasing):
    diffs = np.diff(values)
    return bool(np.all(diffs < 0)) if decreasing else bool(np.all(diffs > 0))


def test_zero_severity_is_identity(clip):
    out = dist.apply(clip, dist.Distortion())
    assert out.dtype == np.uint8 and out.shape == clip.shape
    np.testing.assert_array_equal(out, clip)


@pytest.mark.parametrize("kind", dist.KINDS["blur"])
def test_blur_lowers_high_frequency_energy(clip, kind):
    energy = [_high_frequency_energy(_apply(clip, "blur", kind, s)) for s in LEVELS]
    assert _strictly_monotone(energy, decreasing=True), energy


@pytest.mark.parametrize("kind", dist.KINDS["noise"])
def test_noise_raises_residual_variance(clip, kind):
    reference = clip.astype(np.float64)
    variance = [float(np.var(_apply(clip, "noise", kind, s) - reference)) for s in LEVELS]
    assert variance[0] == 0.0
    assert _strictly_monotone(variance, decreasing=False), variance


def test_chroma_noise_leaves_luma_nearly_alone(clip):
    out = _apply(clip, "noise", "gaussian_chroma", 1.0)
    luma_change = np.var(_luma(out) - _luma(clip.astype(np.float64)))
    chroma_change = np.var(dist.rgb_to_ycc(out.astype(np.float32))[..., 1] -
                           dist.rgb_to_ycc(clip.astype(np.float32))[..., 1])
    assert luma_change < 0.1 * chroma_change


def test_desaturation_lowers_saturation(clip):
    sat = [_chroma_magnitude(_apply(clip, "color", "desaturate", s)) for s in LEVELS]
    assert _strictly_monotone(sat, decreasing=True), sat
    assert sat[-1] < 1.0  # s = 1 is grey (up to rounding)


def test_cast_shifts_mean_chroma(clip):
    base = dist.rgb_to_ycc(clip.astype(np.float32))[..., 1:].mean(axis=(0, 1, 2))
    shift = []
    for s in LEVELS:
        mean = dist.rgb_to_ycc(_apply(clip, "color", "cast", s).astype(np.float32))[..., 1:].mean(axis=(0, 1, 2))
        shift.append(float(np.hypot(*(mean - base))))
    assert _strictly_monotone(shift, decreasing=False), shift


def test_banding_reduces_distinct_levels(clip):
    levels = [len(np.unique(_apply(clip, "color", "banding", s)[..., 0])) for s in LEVELS]
    assert _strictly_monotone(levels, decreasing=True), levels
    assert levels[-1] <= 8


def test_jpeg_blocking_raises_error_and_block_edges(clip):
    reference = clip.astype(np.float64)
    errors = [float(np.mean((_apply(clip, "artifact", "jpeg", s) - reference) ** 2)) for s in LEVELS]
    assert _strictly_monotone(errors, decreasing=False), errors


def test_h264_settings_follow_severity():
    crfs = [dist.encode_settings(dist.Distortion({"artifact": s}, {"artifact": "h264_crf"})).crf for s in LEVELS[1:]]
    assert crfs == sorted(crfs) and crfs[0] > dist.PRISTINE_CRF and crfs[-1] == 51
    bpp = [dist.encode_settings(dist.Distortion({"artifact": s}, {"artifact": "h264_bitrate"})).bits_per_pixel
           for s in LEVELS[1:]]
    assert bpp == sorted(bpp, reverse=True)
    pristine = dist.encode_settings(dist.Distortion())
    assert pristine.crf == dist.PRISTINE_CRF and pristine.bits_per_pixel is None


@pytest.mark.parametrize("kind", ["freeze", "stutter"])
def test_freeze_and_stutter_repeat_frames(clip, kind):
    repeated = []
    for s in LEVELS:
        out = _apply(clip, "temporal", kind, s)
        repeated.append(int(np.sum(np.all(out[1:] == out[:-1], axis=(1, 2, 3)))))
    assert repeated[0] == 0
    assert repeated == sorted(repeated) and repeated[-1] > repeated[1], repeated


def test_temporal_source_indices_are_causal_and_monotone():
    rng = np.random.default_rng(0)
    for kind in ("freeze", "stutter"):
        for s in LEVELS:
            idx = dist.temporal_source_indices(40, s, kind, rng)
            assert idx.shape == (40,) and idx[0] == 0
            assert np.all(np.diff(idx) >= 0) and np.all(idx <= np.arange(40))


def test_shake_raises_frame_differences_on_a_static_scene(clip):
    static = np.repeat(clip[:1], 9, axis=0)
    motion = [float(np.mean(np.abs(np.diff(_apply(static, "temporal", "shake", s), axis=0)))) for s in LEVELS]
    assert motion[0] == 0.0 and _strictly_monotone(motion, decreasing=False), motion


def test_flicker_raises_frame_brightness_variation(clip):
    static = np.repeat(clip[:1], 9, axis=0)
    spread = [float(np.std(_luma(_apply(static, "temporal", "flicker", s)).mean(axis=(1, 2)))) for s in LEVELS]
    assert spread[0] == 0.0 and _strictly_monotone(spread, decreasing=False), spread


def test_distortions_that_change_no_pixel_are_dropped_from_the_labels(clip):
    grey = np.repeat(_luma(clip.astype(np.float64)).round().astype(np.uint8)[..., None], 3, axis=-1)
    still = np.repeat(grey[:1], 9, axis=0)
    d = dist.Distortion({"color": 0.8, "temporal": 0.6, "noise": 0.3, "artifact": 0.5},
                        {"color": "desaturate", "temporal": "freeze", "noise": "gaussian_luma",
                         "artifact": "h264_crf"}, seed=4)
    # greyscale and still: desaturating and freezing do nothing; noise changes pixels, H.264 the encode
    kept = dist.without_no_ops(still, d)
    assert dict(kept.severity) == {"noise": 0.3, "artifact": 0.5} and kept.seed == 4
    assert kept.targets()["color"] == 100.0 and kept.targets()["temporal"] == 100.0
    # the same draw on colourful moving content keeps every dimension
    assert dict(dist.without_no_ops(clip, d).severity) == dict(d.severity)
    # colour that does change greyscale content (banding) stays
    banded = dist.Distortion({"color": 0.8}, {"color": "banding"}, seed=4)
    assert dict(dist.without_no_ops(grey, banded).severity) == {"color": 0.8}
    with pytest.raises(ValueError, match="uint8"):
        dist.without_no_ops(clip.astype(np.float32), d)


def test_same_distortion_same_output(clip):
    d = dist.Distortion({"noise": 0.5, "blur": 0.4}, {"noise": "gaussian_rgb", "blur": "motion"}, seed=9)
    np.testing.assert_array_equal(dist.apply(clip, d), dist.apply(clip, d))


def test_bad_distortions_are_refused():
    with pytest.raises(ValueError, match="unknown distortion dimension"):
        dist.Distortion({"sharpness": 0.5}, {"sharpness": "x"})
    with pytest.raises(ValueError, match=r"severity of blur must be in \[0, 1\]"):
        dist.Distortion({"blur": 1.5}, {"blur": "gaussian"})
    with pytest.raises(ValueError, match="blur needs a kind"):
        dist.Distortion({"blur": 0.5}, {"blur": "box"})


# ------------------------------------------------------------------------------------------ targets


def test_dimension_targets():
    assert dist.dimension_score(0.0) == 100.0 and dist.dimension_score(1.0) == 0.0
    values = [dist.dimension_score(s) for s in np.linspace(0, 1, 11)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert dist.dimension_score(0.25) == pytest.approx(100.0 * 0.75 ** dist.GAMMA)


def test_overall_target_is_the_documented_product():
    assert dist.overall_score({}) == 100.0
    for dim, weight in dist.OVERALL_WEIGHT.items():
        assert dist.overall_score({dim: 1.0}) == pytest.approx(100.0 * (1.0 - weight))
    sev = {"blur": 0.3, "noise": 0.5, "color": 0.2}
    expect = 100.0 * (1 - 0.9 * 0.3) * (1 - 0.8 * 0.5) * (1 - 0.7 * 0.2)
    assert dist.overall_score(sev) == pytest.approx(expect)


def test_overall_falls_with_every_severity():
    rng = np.random.default_rng(5)
    for _ in range(50):
        sev = {d: float(rng.uniform(0, 0.9)) for d in dist.DIMENSIONS}
        base = dist.overall_score(sev)
        for d in dist.DIMENSIONS:
            worse = dict(sev, **{d: sev[d] + 0.1})
            assert dist.overall_score(worse) < base


def test_target_scores_cover_every_output():
    scores = dist.Distortion({"noise": 0.4}, {"noise": "poisson"}).targets()
    assert set(scores) == set(dist.OUTPUT_NAMES)
    assert scores["noise"] == pytest.approx(60.0)
    assert all(scores[d] == 100.0 for d in dist.DIMENSIONS if d != "noise")
    with pytest.raises(ValueError, match="unknown distortion dimensions"):
        dist.target_scores({"sharpness": 0.1})


def test_random_distortions_are_valid_and_reproducible():
    a = [dist.random_distortion(np.random.default_rng([4, i])) for i in range(200)]
    b = [dist.random_distortion(np.random.default_rng([4, i])) for i in range(200)]
    assert [x.to_dict() for x in a] == [x.to_dict() for x in b]
    counts = [len(x.severity) for x in a]
    assert set(counts) <= {0, 1, 2, 3} and 0 in counts and 1 in counts and 3 in counts
