"""The low-level-feature net (`lowlevel_mlp`): its measurements against plain NumPy, their responses to known
distortions, ONNX parity, and head training."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgevqa.export.models import create_model  # noqa: E402
from edgevqa.export.models.lowlevel import FEATURE_NAMES, LowLevelQualityNet, _cells  # noqa: E402
from edgevqa.manifest import IMAGENET_MEAN_255, IMAGENET_STD_255  # noqa: E402

MEAN = np.asarray(IMAGENET_MEAN_255, np.float32).reshape(1, 3, 1, 1, 1)
STD = np.asarray(IMAGENET_STD_255, np.float32).reshape(1, 3, 1, 1, 1)


def _normalised(rgb_u8: np.ndarray) -> np.ndarray:
    """uint8 ``[N, 3, T, H, W]`` -> the model input (the runtime's normalisation)."""
    return ((rgb_u8.astype(np.float32) - MEAN) / STD).astype(np.float32)


def _features(net: LowLevelQualityNet, rgb_u8: np.ndarray) -> dict[str, np.ndarray]:
    with torch.no_grad():
        values = net.features(torch.from_numpy(_normalised(rgb_u8))).numpy()
    return {name: values[:, k] for k, name in enumerate(FEATURE_NAMES)}


def _texture(rng, height: int, width: int, smooth: float = 1.5) -> np.ndarray:
    """Smooth random grey texture (0..255 float), so shifts and blur behave like real content."""
    from scipy.ndimage import gaussian_filter

    return np.clip(128 + 60 * gaussian_filter(rng.standard_normal((height, width)), smooth) / 0.2, 0, 255)


def _clip_from_luma(frames: list[np.ndarray]) -> np.ndarray:
    grey = np.stack(frames).astype(np.float32)  # [T, H, W]
    return np.clip(np.rint(np.stack([grey] * 3)[None]), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def net() -> LowLevelQualityNet:
    return create_model("lowlevel_mlp")


# ------------------------------------------------------------------------------------------ NumPy references


def _luma_and_chroma(rgb: np.ndarray):
    r, g, b = (rgb[:, c].astype(np.float64) for c in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    return y, cb, cr


def _np_cells(plane: np.ndarray, patch: int) -> np.ndarray:
    n, t, h, w = plane.shape
    gh, gw = h // patch, w // patch
    return plane.reshape(n, t, gh, patch, gw, patch).transpose(0, 1, 2, 4, 3, 5).reshape(n, t, gh * gw, patch, patch)


def _np_noise(y_still: np.ndarray) -> np.ndarray:
    """Immerkaer's sigma per cell, soft minimum over the cells of each frame, mean over frames."""
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
    cells = _np_cells(y_still, 32)
    h, w = cells.shape[-2:]
    response = sum(kernel[i, j] * cells[..., i:h - 2 + i, j:w - 2 + j] for i in range(3) for j in range(3))
    sigma = np.abs(response).mean(axis=(-1, -2)) * math.sqrt(math.pi / 2) / 6
    log_sigma = np.log(sigma + 0.05)
    weights = np.exp(-4 * log_sigma - np.max(-4 * log_sigma, axis=2, keepdims=True))
    weights /= weights.sum(axis=2, keepdims=True)
    return (weights * log_sigma).sum(axis=2).mean(axis=1)


def _np_blockiness(cells: np.ndarray, period: int) -> np.ndarray:
    ratios = []
    for oriented in (cells, np.swapaxes(cells, -1, -2)):
        diff = np.abs(np.diff(oriented, axis=-1))
        usable = (diff.shape[-1] // period) * period
        per_column = diff[..., :usable].mean(axis=(1, 3))
        phases = per_column.reshape(*per_column.shape[:2], usable // period, period).mean(axis=2)
        ratios.append((np.log(phases.max(axis=2) + 0.5) - np.log(phases.mean(axis=2) + 0.5)).mean(axis=1))
    return 0.5 * (ratios[0] + ratios[1])


def _np_lattice(still: np.ndarray, k: int) -> np.ndarray:
    """|mean exp(2 pi i v / k)| - |mean exp(2 pi i 1.125 v / k)| per channel, averaged over the channels."""
    values = still.reshape(*still.shape[:2], -1).astype(np.float64)
    on, off = (np.abs(np.exp(2j * np.pi * values * cycles / k).mean(axis=2)).mean(axis=1) for cycles in (1.0, 1.125))
    return on - off


def _np_step_difference(a: np.ndarray, di: int, dj: int) -> np.ndarray:
    """|a[i + di, j + dj] - a[i, j]| over the pixels where both exist (di >= 0, dj in -1, 0, 1)."""
    h, w = a.shape[-2:]
    ahead = a[..., di:, max(dj, 0):w + min(dj, 0)]
    here = a[..., :h - di, max(-dj, 0):w - max(dj, 0)]
    return np.abs(ahead - here)


def _np_directional_reblur(cells: np.ndarray) -> np.ndarray:
    """Crete's re-blur ratio per direction (horizontal, vertical, both diagonals) with a box along it (9 taps,
    7 on the diagonals), ``[N, 4]``: sum of the gradient lost over sum of the gradient, over cells and frames."""
    p = cells.shape[-1]
    ratios = []
    for di, dj in ((0, 1), (1, 0), (1, 1), (1, -1)):
        h = 3 if di and dj else 4  # half the taps
        rows = np.arange(h * di, p - h * di)
        cols = np.arange(h, p - h) if dj else np.arange(p)
        blurred = np.mean([cells[..., rows[:, None] + k * di, cols[None, :] + k * dj] for k in range(-h, h + 1)],
                          axis=0)
        d_original = _np_step_difference(cells[..., rows[:, None], cols[None, :]], di, dj)
        d_blurred = _np_step_difference(blurred, di, dj)
        lost = np.maximum(d_original - d_blurred, 0).sum(axis=(1, 2, 3, 4))
        ratios.append(lost / (d_original.sum(axis=(1, 2, 3, 4)) + 1.0))
    return np.stack(ratios, axis=1)


@pytest.mark.parametrize("grid", [(2, 3), (3, 1)])
def test_measurements_match_numpy(net, grid):
    rng = np.random.default_rng(sum(grid))
    t, gh, gw = 8, *grid
    rgb = rng.integers(0, 256, size=(2, 3, t, 32 * gh, 32 * gw), dtype=np.uint8)
    rgb[1] = np.clip(rgb[1] // 3 + 80, 0, 255)  # a second, flatter clip
    got = _features(net, rgb)
    y, cb, cr = _luma_and_chroma(rgb)
    y_still = y[:, ::4]
    np.testing.assert_allclose(got["noise_y"], _np_noise(y_still), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got["block_y"], _np_blockiness(_np_cells(y_still, 32), 8), rtol=1e-4, atol=1e-4)
    directional = _np_directional_reblur(_np_cells(y_still, 32))
    np.testing.assert_allclose(got["blur_reblur_max"], directional.max(axis=1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["blur_reblur_min"], directional.min(axis=1), rtol=1e-4, atol=1e-5)
    snippets = y.reshape(2, 2, 4, *y.shape[2:])
    motion = np.abs(np.diff(snippets, axis=2)).mean(axis=(-1, -2))
    np.testing.assert_allclose(got["motion"], np.log(motion.mean(axis=(1, 2)) + 0.1), rtol=1e-4, atol=1e-4)
    cell_brightness = _np_cells(y, 32).mean(axis=(-1, -2)).reshape(2, 2, 4, -1)
    change = np.diff(np.log(cell_brightness + 8), axis=2)
    gain = change.mean(axis=3)
    unshared = np.abs(change - gain[..., None]).mean(axis=3)
    shared = np.abs(gain)
    coherent = (shared ** 2 / (shared + unshared + 0.005)).mean(axis=(1, 2))
    np.testing.assert_allclose(got["flicker"], np.log(coherent + 0.002), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(got["flicker_coherence"], (np.abs(gain) / (unshared + 0.005)).mean(axis=(1, 2)),
                               rtol=1e-3, atol=1e-3)
    still = rgb[:, :, ::4].astype(np.float64)
    rg = still[:, 0] - still[:, 1]
    yb = 0.5 * (still[:, 0] + still[:, 1]) - still[:, 2]
    colourfulness = (np.sqrt(rg.var(axis=(2, 3), ddof=1) + yb.var(axis=(2, 3), ddof=1))
                     + 0.3 * np.sqrt(rg.mean(axis=(2, 3)) ** 2 + yb.mean(axis=(2, 3)) ** 2)).mean(axis=1)
    np.testing.assert_allclose(got["colourfulness"], np.log(colourfulness + 1), rtol=1e-4, atol=1e-4)
    cb_still, cr_still = cb[:, ::4], cr[:, ::4]
    chroma = np.sqrt(cb_still ** 2 + cr_still ** 2)
    np.testing.assert_allclose(got["neutral_share"], np.exp(-chroma / 6).mean(axis=(1, 2, 3)), rtol=1e-4, atol=1e-5)
    for name, weight in (("shadow_cast", np.exp(-y_still / 24)), ("highlight_cast", np.exp(-(255 - y_still) / 24))):
        total = weight.sum(axis=(1, 2, 3)) + 1
        mean_chroma = np.hypot((weight * cb_still).sum(axis=(1, 2, 3)), (weight * cr_still).sum(axis=(1, 2, 3)))
        np.testing.assert_allclose(got[name], np.log(mean_chroma / total + 1), rtol=1e-4, atol=1e-4)
    for k in (8, 16, 32):
        np.testing.assert_allclose(got[f"lattice_{k}"], _np_lattice(still, k), rtol=1e-4, atol=2e-5)
    assert all(np.all(np.isfinite(v)) for v in got.values())


# ------------------------------------------------------------------------------------------ responses


def test_noise_raises_the_noise_measurement(net):
    rng = np.random.default_rng(0)
    base = [_texture(rng, 96, 96, 3.0)] * 8
    clean = _clip_from_luma(base)
    noisy = _clip_from_luma([f + rng.normal(0, 6, f.shape) for f in base])
    assert _features(net, noisy)["noise_y"][0] > _features(net, clean)["noise_y"][0] + 1.0


def test_blur_raises_the_reblur_share_kept(net):
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(1)
    sharp = [_texture(rng, 96, 128, 0.7)] * 8
    blurred = [gaussian_filter(f, 2.0) for f in sharp]
    a, b = _features(net, _clip_from_luma(sharp)), _features(net, _clip_from_luma(blurred))
    assert b["blur_reblur"][0] < a["blur_reblur"][0] - 0.1  # blurred: little gradient left to lose
    assert b["blur_band_1_2"][0] < a["blur_band_1_2"][0]


def test_motion_blur_shows_in_one_direction(net):
    """Blur along one direction lowers the smallest directional re-blur ratio far below the largest one;
    isotropic blur keeps them close."""
    from scipy.ndimage import gaussian_filter, uniform_filter1d

    rng = np.random.default_rng(5)
    sharp = _texture(rng, 96, 128, 0.7)
    for axis in (0, 1):
        moved = _features(net, _clip_from_luma([uniform_filter1d(sharp, 9, axis=axis)] * 8))
        assert moved["blur_reblur_min"][0] < moved["blur_reblur_max"][0] - 0.2
    round_blur = _features(net, _clip_from_luma([gaussian_filter(sharp, 2.0)] * 8))
    assert round_blur["blur_reblur_max"][0] - round_blur["blur_reblur_min"][0] < 0.1


def test_block_edges_raise_blockiness(net):
    rng = np.random.default_rng(2)
    smooth = _texture(rng, 96, 96, 4.0)
    # Replace each 8x8 block (offset 3, as an unknown fragment offset would put it) by its mean.
    blocky = smooth.copy()
    for r in range(3, 96 - 8, 8):
        for c in range(3, 96 - 8, 8):
            blocky[r:r + 8, c:c + 8] = smooth[r:r + 8, c:c + 8].mean()
    a = _features(net, _clip_from_luma([smooth] * 8))["block_y"][0]
    b = _features(net, _clip_from_luma([blocky] * 8))["block_y"][0]
    assert b > a + 0.3


def test_temporal_measurements_see_freezes_flicker_and_shake(net):
    rng = np.random.default_rng(3)
    big = _texture(rng, 160, 200, 2.0)
    smooth_pan = [big[16:112, 16 + 2 * i:112 + 2 * i] for i in range(8)]  # 2 px per frame to the right
    frozen = [smooth_pan[0]] * 8
    flicker = [f * (1 + 0.3 * (-1) ** i) for i, f in enumerate(smooth_pan)]
    jumps = rng.integers(-6, 7, size=(8, 2))
    shake = [big[24 + dy:120 + dy, 24 + 2 * i + dx:120 + 2 * i + dx] for i, (dy, dx) in enumerate(jumps)]
    pan, still, flick, shaken = (_features(net, _clip_from_luma(c)) for c in (smooth_pan, frozen, flicker, shake))
    assert still["freeze_share"][0] > 0.99 and pan["freeze_share"][0] < 0.05
    assert flick["flicker"][0] > pan["flicker"][0] + 2.0
    assert flick["flicker_coherence"][0] > 5 * pan["flicker_coherence"][0]
    # Lucas-Kanade at half resolution: a 2 px pan is about 1 half-resolution pixel per frame, steady; on
    # mean-removed cells, so the flickering pan reads as the same pan.
    speed = math.exp(pan["flow_speed"][0]) - 0.01
    assert 0.6 < speed < 1.3, speed
    assert abs(flick["flow_speed"][0] - pan["flow_speed"][0]) < 0.3
    assert shaken["flow_jerk"][0] > pan["flow_jerk"][0] + 1.0
    # Integral projections: the pan is a steady 2 px (speed 2, jerk 0), the shake jumps.
    assert math.exp(pan["shift_speed"][0]) - 0.5 == pytest.approx(2.0, abs=0.01)
    assert math.exp(pan["shift_jerk"][0]) - 0.5 == pytest.approx(0.0, abs=0.01)
    assert math.exp(flick["shift_speed"][0]) - 0.5 == pytest.approx(2.0, abs=0.01)  # flicker is not motion
    assert math.exp(shaken["shift_jerk"][0]) - 0.5 > 4.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_global_shift_finds_the_camera_translation(net, seed):
    """Frames cut from a larger texture at known offsets: every frame pair's shift is the displacement of the
    content, in whole pixels, in x and y (steps of up to 5 px, and jumps in x of 6 px up to the range)."""
    from edgevqa.export.models.lowlevel import SHIFT_RANGE

    rng = np.random.default_rng(seed)
    pad = 100
    big = _texture(rng, 96 + 2 * pad, 160 + 2 * pad, 1.2)
    moves = rng.integers(-5, 6, size=(8, 2))
    moves[1::2, 1] = rng.integers(6, SHIFT_RANGE + 1, size=4) * rng.choice([-1, 1], size=4)  # jumps in x too
    offsets = np.cumsum(moves, axis=0)
    offsets -= np.rint(offsets.mean(axis=0)).astype(int)
    frames = [big[pad - oy:pad - oy + 96, pad - ox:pad - ox + 160] for oy, ox in offsets]
    luma = torch.from_numpy(np.stack(frames)[None].astype(np.float32))  # [1, T, H, W]
    got = net._global_shift(_cells(luma, net.patch)).numpy()  # [1, snippets, pairs, (x, y)]
    moved = np.diff(offsets.reshape(2, 4, 2), axis=1)[..., ::-1]  # content displacement per pair, as (x, y)
    assert np.abs(moved).max() >= 6
    np.testing.assert_array_equal(got[0], moved)


def test_colour_measurements_see_desaturation_and_cast(net):
    rng = np.random.default_rng(4)
    rgb = np.stack([_texture(rng, 64, 64, 2.0) for _ in range(3)])  # independent channels: colourful
    clip = np.clip(np.rint(np.repeat(rgb[:, None], 8, axis=1)[None]), 0, 255).astype(np.uint8)
    grey = np.repeat(clip.astype(np.float32).mean(axis=1, keepdims=True), 3, axis=1)
    washed = np.clip(np.rint(0.3 * clip + 0.7 * grey), 0, 255).astype(np.uint8)
    cast = clip.astype(np.int16)
    cast[:, 2] += 40
    cast = np.clip(cast, 0, 255).astype(np.uint8)
    a, b, c = (_features(net, x) for x in (clip, washed, cast))
    assert b["colourfulness"][0] < a["colourfulness"][0] - 0.5
    assert b["chroma_magnitude"][0] < a["chroma_magnitude"][0] - 0.5
    assert c["cast"][0] > a["cast"][0] + 1.0
    # The spread around the mean chroma: desaturation shrinks it, a cast leaves it (up to clipping at 255),
    # so only the cast raises the cast over the spread.
    assert b["chroma_spread"][0] < a["chroma_spread"][0] - 1.0
    assert abs(c["chroma_spread"][0] - a["chroma_spread"][0]) < 0.05
    assert c["cast_over_spread"][0] > a["cast_over_spread"][0] + 0.25
    assert abs(b["cast_over_spread"][0] - a["cast_over_spread"][0]) < 0.05


def test_banding_puts_values_on_a_lattice(net):
    # A colourful texture, then each channel quantised to steps of 8, 16 and 32 levels (the recipe's banding
    # at severities 0.6, 0.8 and 1.0) with a level of noise on top, as a mild re-encode leaves it.
    rng = np.random.default_rng(8)
    rgb = np.stack([_texture(rng, 64, 96, 3.0) for _ in range(3)])
    clip = np.repeat(rgb[:, None], 8, axis=1)[None]

    def banded(step):
        quantised = (np.floor(clip / step) + 0.5) * step if step > 1 else clip
        return np.clip(np.rint(quantised + rng.normal(0, 0.7, clip.shape)), 0, 255).astype(np.uint8)

    plain = _features(net, banded(1))
    assert all(abs(plain[f"lattice_{k}"][0]) < 0.05 for k in (8, 16, 32))
    for step in (8, 16, 32):
        got = _features(net, banded(step))
        assert got[f"lattice_{step}"][0] > 0.2, step
        for k in (8, 16, 32):  # a lattice of step s also has its coefficient at 1 / k for every k dividing s
            if step % k == 0:
                assert got[f"lattice_{k}"][0] > 0.2, (step, k)


def test_cast_moves_neutral_shadows_and_highlights_off_grey(net):
    # A grey scene with dark and bright regions: neutral everywhere until a Cb / Cr shift tints it all.
    rng = np.random.default_rng(11)
    grey = _clip_from_luma([np.clip(_texture(rng, 64, 96, 3.0) * 1.6 - 76, 0, 255) for _ in range(8)])
    ycc = grey.astype(np.float32)
    tinted = ycc.copy()
    tinted[:, 0] += 1.402 * 20  # Cr + 20 (JFIF): R up, G down a little
    tinted[:, 1] -= 0.714136 * 20
    tinted = np.clip(np.rint(tinted), 0, 255).astype(np.uint8)
    a, b = _features(net, grey), _features(net, tinted)
    assert a["neutral_share"][0] > 0.99 and b["neutral_share"][0] < 0.1
    assert a["shadow_cast"][0] < 0.01 and a["highlight_cast"][0] < 0.01
    assert b["shadow_cast"][0] > 1.5 and b["highlight_cast"][0] > 1.0


# ------------------------------------------------------------------------------------------ export and head


def test_onnx_export_matches_torch(net, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = create_model("lowlevel_mlp")
    x = _normalised(np.random.default_rng(5).integers(0, 256, size=(2, 3, 8, 224, 224), dtype=np.uint8))
    with torch.no_grad():
        model.set_feature_statistics(model.features(torch.from_numpy(x)).repeat(2, 1)
                                     + torch.linspace(0, 1, 4)[:, None])
        reference = {k: v.numpy() for k, v in model(torch.from_numpy(x)).items()}
    path = str(tmp_path / "lowlevel.onnx")
    torch.onnx.export(_Tuple(model), (torch.from_numpy(x),), path, input_names=["video"],
                      output_names=list(model.outputs), opset_version=17, dynamo=False,
                      dynamic_axes={"video": {0: "clips"}})
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = dict(zip(model.outputs, session.run(None, {"video": x})))
    for name in model.outputs:
        np.testing.assert_allclose(got[name], reference[name], rtol=1e-3, atol=1e-3)


class _Tuple(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, video):
        out = self.net(video)
        return tuple(out[n] for n in self.net.outputs)


def test_head_ensemble_is_the_mean_of_its_members(net):
    features = torch.randn(7, len(FEATURE_NAMES))
    with torch.no_grad():
        mean = net.head_outputs(features)
        members = []
        for m in range(net.head_members):
            net.active_member = m
            members.append(net.head_outputs(features))
        net.active_member = None
    for name in net.dimensions:
        torch.testing.assert_close(mean[name], torch.stack([o[name] for o in members]).mean(dim=0))
    assert not torch.allclose(members[0]["color"], members[1]["color"])  # independent initialisations


def test_head_training_learns_from_measurements():
    from dataclasses import replace

    from edgevqa.export.recipe import train as recipe

    model, manifest = recipe.build_model(replace(recipe.RecipeConfig(), model="lowlevel_mlp"), seed=0)
    rng = np.random.default_rng(6)
    # 12 clips of 4 versions: noise of a known strength on smooth content; the noise target falls with it.
    xs, targets, groups = [], [], []
    for g in range(12):
        base = _texture(rng, 64, 64, 3.0)
        for level in range(4):
            frames = [base + rng.normal(0, 3 * level, base.shape) for _ in range(8)]
            xs.append(_clip_from_luma(frames)[:, None])
            noise_score = 100 - 30 * level
            overall = 100 * (1 - 0.8 * (1 - noise_score / 100))  # the net's own combination (OVERALL_WEIGHT)
            targets.append([overall, 100, noise_score, 100, 100, 100])
            groups.append(g)
    data = {"x": np.concatenate(xs), "targets": np.asarray(targets, np.float32), "group": np.asarray(groups)}
    config = replace(recipe.RecipeConfig(), head_steps=300, head_batch_size=16, threads=1)
    losses = recipe.train_head(model, manifest, data, config, seed=0)
    members = model.head_members
    assert members == 5 and len(losses) == 300 * members  # every member of the heads' ensemble trains alone
    for m in range(members):
        run = losses[300 * m:300 * (m + 1)]
        assert np.mean(run[-20:]) < 0.5 * np.mean(run[:20])
    assert model.active_member is None  # scoring uses the ensemble's mean again
    from scipy.stats import spearmanr

    with torch.no_grad():
        x = torch.from_numpy(_normalised(data["x"][:, 0]))
        noise = model(x)["noise"].numpy().ravel()
    assert spearmanr(noise, data["targets"][:, 2]).statistic > 0.9
    from edgevqa.export.models.lowlevel import OVERALL_WEIGHT

    with torch.no_grad():
        out = {k: v.numpy().ravel() * 25 + 50 for k, v in model(x).items()}
    expected = 100 * np.prod([1 - w * (1 - np.clip(out[d], 0, 100) / 100) for d, w in OVERALL_WEIGHT.items()], axis=0)
    np.testing.assert_allclose(out["overall"], expected, rtol=1e-4, atol=1e-3)


# ------------------------------------------------------------------------------------------ score bounds

def _np_bounded_score(score: np.ndarray, knee: float) -> np.ndarray:
    """`bounded_score` written out piece by piece in float64."""
    out = score.astype(np.float64).copy()
    high = score > 100 - knee
    low = score < knee
    out[high] = 100 - knee / (1 + (score[high] - (100 - knee)) / knee)
    out[low] = knee / (1 + (knee - score[low]) / knee)
    return out


@pytest.mark.parametrize("knee", [0.5, 2.0, 7.0])
def test_bounded_score_keeps_order_inside_0_100(knee):
    from edgevqa.export.models.lowlevel import bounded_score

    rng = np.random.default_rng(int(knee * 10))
    raw = np.concatenate([rng.normal(50, 80, 4001), rng.uniform(-3000, 3000, 999), [knee, 100 - knee, 0, 100]])
    raw = np.sort(raw.astype(np.float32))
    got = bounded_score(torch.from_numpy(raw), knee).numpy().astype(np.float64)
    np.testing.assert_allclose(got, _np_bounded_score(raw, knee), rtol=0, atol=2e-5)
    assert np.all(got > 0) and np.all(got < 100)
    assert np.all(np.diff(got) >= 0)
    # Strictly increasing: exactly in float64; in float32 down to its resolution near the bounds, so head
    # outputs within 150 points of the range that differ by a point or more never tie.
    exact = bounded_score(torch.from_numpy(raw.astype(np.float64)), knee).numpy()
    distinct = np.diff(raw) > 0
    assert np.all(np.diff(exact)[distinct] > 0)
    coarse = np.arange(-150.0, 250.0, 1.0, dtype=np.float32)
    assert np.all(np.diff(bounded_score(torch.from_numpy(coarse), knee).numpy()) > 0)
    middle = (raw >= knee) & (raw <= 100 - knee)
    np.testing.assert_array_equal(got[middle], raw[middle])  # the identity between the knees
    # slope 1 on both sides of each join (no kink a head output could sit on)
    for join in (knee, 100 - knee):
        x = torch.tensor([join - 1e-5, join, join + 1e-5], dtype=torch.float64)
        y = bounded_score(x, knee).numpy()
        np.testing.assert_allclose(np.diff(y) / 1e-5, [1.0, 1.0], rtol=1e-3)


def test_exported_scores_keep_the_order_a_clamp_would_tie():
    """Head outputs past 100 tie under the training clamp; the exported net (`forward`) keeps their order, in
    the dimension scores and in the overall score computed from them."""
    model = create_model("lowlevel_mlp")
    x = torch.from_numpy(_normalised(np.random.default_rng(8).integers(0, 256, size=(1, 3, 8, 64, 64),
                                                                          dtype=np.uint8)))
    with torch.no_grad():
        features = model.features(x)
        model.set_feature_statistics(torch.cat([features, features + 1.0]))
        outputs = []
        for bias in (3.0, 4.0, 6.0):  # raw 125, 150 and 200 points on the noise head's scale
            for member in model.heads["noise"].members:
                member[-1].weight.zero_()
                member[-1].bias.fill_(bias)
            outputs.append((model.head_outputs(features), model(x)))
    trained = [o[0] for o in outputs]
    exported = [o[1] for o in outputs]
    assert all(float(t["overall"]) == float(trained[0]["overall"]) for t in trained)  # the clamp ties them
    noise = [float(e["noise"]) * 25 + 50 for e in exported]
    overall = [float(e["overall"]) * 25 + 50 for e in exported]
    assert noise[0] < noise[1] < noise[2] < 100.0
    assert overall[0] < overall[1] < overall[2]
    for name in model.dimensions:  # the other heads are untouched and inside the knees: the same either way
        if name != "noise" and 2.0 <= float(trained[0][name]) * 25 + 50 <= 98.0:
            assert float(exported[0][name]) == pytest.approx(float(trained[0][name]), abs=1e-6)
