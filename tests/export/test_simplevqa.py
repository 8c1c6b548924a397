"""SimpleVQA and its backbones: torchvision / pytorchvideo parameter layouts, official checkpoint loading,
feature order, ONNX export parity (FP32, FP16 with FP32 pooling), RegNetY variant.

Backbones run at small sizes (64 x 64 crops, 8-frame motion clips, 2 seconds) so the tests stay quick; the
layouts and parameter names do not depend on the input size.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgevqa.errors import ModelError  # noqa: E402
from edgevqa.export.checkpoint import CheckpointMismatchError, load_checkpoint  # noqa: E402
from edgevqa.export.graph import TENSORRT_SUPPORTED_OPS, op_types  # noqa: E402
from edgevqa.export.models import count_parameters, create_model, get_manifest  # noqa: E402
from edgevqa.export.models.layers import mean_std_pool  # noqa: E402
from edgevqa.export.models.regnet import regnet_y_8gf  # noqa: E402
from edgevqa.export.models.resnet import resnet50  # noqa: E402
from edgevqa.export.models.slowfast import SlowFastR50  # noqa: E402
from edgevqa.export.onnx_export import export_onnx  # noqa: E402
from edgevqa.manifest import KINETICS_MEAN_255, load_manifest  # noqa: E402

HERE = Path(__file__).resolve().parent
SMALL = dict(frames=2, crop=64, short_side=72, motion_size=64, motion_frames=8)


def _randomized(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                module.weight.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.1)
            elif isinstance(module, torch.nn.Linear):
                module.weight.normal_(0, 0.02, generator=gen)
                module.bias.normal_(0, 0.1, generator=gen)
    return model


def _inputs(manifest, clips=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*v.input_shape(clips), generator=gen) for v in manifest.views]


def _ort(path, feed):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feed)


# ------------------------------------------------------------------------------------------ layouts


def test_resnet50_has_torchvision_layout():
    model = resnet50()
    state = model.state_dict()
    assert count_parameters(model) == 25_557_032  # torchvision's documented ResNet50_Weights num_params
    assert len(state) == 320
    expect = {"conv1.weight": (64, 3, 7, 7), "bn1.running_var": (64,), "layer1.0.downsample.0.weight": (256, 64, 1, 1),
              "layer1.0.downsample.1.num_batches_tracked": (), "layer2.0.conv2.weight": (128, 128, 3, 3),
              "layer3.5.bn3.weight": (1024,), "layer4.2.conv3.weight": (2048, 512, 1, 1), "fc.weight": (1000, 2048)}
    for key, shape in expect.items():
        assert tuple(state[key].shape) == shape, key
    # v1.5: the stride sits on the 3x3 conv.
    assert model.layer2[0].conv2.stride == (2, 2) and model.layer2[0].conv1.stride == (1, 1)


def test_regnety8gf_has_torchvision_layout():
    model = regnet_y_8gf()
    assert count_parameters(model) == 39_381_472  # torchvision's documented RegNet_Y_8GF_Weights num_params
    state = model.state_dict()
    assert tuple(state["stem.0.weight"].shape) == (32, 3, 3, 3)
    assert tuple(state["trunk_output.block4.block4-0.f.se.fc1.weight"].shape) == (224, 2016, 1, 1)
    assert tuple(state["trunk_output.block3.block3-9.f.b.0.weight"].shape) == (896, 56, 3, 3)
    assert tuple(state["trunk_output.block1.block1-0.proj.0.weight"].shape) == (224, 32, 1, 1)


def test_slowfast_keys_match_recorded_pytorchvideo_list():
    recorded = json.loads((HERE / "data" / "slowfast_r50_keys.json").read_text())
    ours = [[k, list(v.shape)] for k, v in SlowFastR50().state_dict().items()]
    assert ours == recorded["keys"]


def test_slowfast_matches_pytorchvideo(tmp_path):
    out = tmp_path / "reference.pt"
    proc = subprocess.run([sys.executable, str(HERE / "pytorchvideo_reference.py"), str(out)],
                          capture_output=True, text=True, timeout=240)
    if proc.returncode == 3:
        pytest.skip(f"pytorchvideo is not importable ({proc.stderr.strip()[-200:]}); the recorded key list "
                    "test still checks the names")
    assert proc.returncode == 0, proc.stderr[-2000:]
    reference = torch.load(out, weights_only=True)
    model = SlowFastR50().eval()
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == \
        [(k, tuple(s)) for k, s in reference["keys"]]
    model.load_state_dict(reference["state_dict"], strict=True)
    with torch.no_grad():
        features = model.features(reference["clip"])
    assert features.shape == (2, 2304)
    torch.testing.assert_close(features, reference["features"], rtol=1e-4, atol=1e-5)


def test_slow_pathway_frames():
    assert SlowFastR50.slow_frame_indices(32) == [0, 4, 8, 13, 17, 22, 26, 31]
    assert SlowFastR50.slow_frame_indices(32) == torch.linspace(0, 31, 8).long().tolist()
    assert SlowFastR50.slow_frame_indices(8) == torch.linspace(0, 7, 2).long().tolist()


# ------------------------------------------------------------------------------------------ model


def test_manifest_is_the_papers():
    manifest = get_manifest("simplevqa")
    spatial, motion = manifest.views
    assert (spatial.name, spatial.kind, spatial.temporal, spatial.num_clips, spatial.clip_len) == \
        ("spatial", "resize_crop", "key_frames", 8, 1)
    assert (spatial.short_side, spatial.size) == (520, (448, 448))
    assert spatial.mean == pytest.approx((0.485 * 255, 0.456 * 255, 0.406 * 255))
    assert spatial.std == pytest.approx((0.229 * 255, 0.224 * 255, 0.225 * 255))
    assert (motion.name, motion.kind, motion.temporal, motion.num_clips, motion.clip_len, motion.size) == \
        ("motion", "clips", "per_second", 8, 32, (224, 224))
    assert motion.mean == KINETICS_MEAN_255 and motion.std == pytest.approx((0.225 * 255,) * 3)
    assert [v.name for v in get_manifest("simplevqa_spatial").views] == ["spatial"]
    head = create_model("simplevqa").quality
    assert (head[0].in_features, head[0].out_features, head[1].out_features) == (9472, 128, 1)
    assert create_model("simplevqa_spatial").quality[0].in_features == 7168
    assert create_model("simplevqa_regnety8g").quality[0].in_features == 2 * (448 + 896 + 2016) + 2304


def test_mean_std_pool_is_unbiased_and_fp16_safe():
    x = torch.randn(3, 5, 7, 9, generator=torch.Generator().manual_seed(0)) * 40 + 300
    mean, std = mean_std_pool(x)
    torch.testing.assert_close(mean, x.mean(dim=(2, 3)))
    torch.testing.assert_close(std, x.flatten(2).std(dim=2, unbiased=True))
    mean16, std16 = mean_std_pool(x.half())  # sum of squares of ~300 over 63 values overflows FP16
    assert mean16.dtype == torch.float16 and torch.isfinite(std16).all()
    torch.testing.assert_close(std16.float(), x.half().float().flatten(2).std(dim=2), rtol=2e-3, atol=1e-2)


def test_forward_follows_the_original_feature_order():
    model = _randomized(create_model("simplevqa", **SMALL))
    spatial, motion = _inputs(model.manifest)
    frames = spatial[:, :, 0]
    with torch.no_grad():
        stages = model.spatial.forward_stages(frames)
        parts = []
        for s in stages[1:]:
            parts += [s.mean(dim=(2, 3)), s.flatten(2).std(dim=2)]
        slow = motion[:, :, torch.linspace(0, 7, 2).long()]
        x = (slow, motion)
        for block in model.motion.blocks[:5]:
            x = block(x)
        parts += [x[0].mean(dim=(2, 3, 4)), x[1].mean(dim=(2, 3, 4))]
        expected = model.quality[1](model.quality[0](torch.cat(parts, dim=1)))
        got = model(spatial, motion)["overall"]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------ checkpoints


def _official_files(tmp_path, model):
    """An official-layout checkpoint (DataParallel keys, torchvision names, quality.*) and a pytorchvideo
    Kinetics-style file (keys under 'model_state') fabricated from ``model``'s weights."""
    official = {f"module.{k}": v.clone() for k, v in model.spatial.state_dict().items()}
    official.update({f"module.quality.{k}": v.clone() for k, v in model.quality.state_dict().items()})
    assert len(official) == 322
    assert tuple(official["module.quality.0.weight"].shape) == (128, 9472)
    assert tuple(official["module.quality.1.weight"].shape) == (1, 128)
    ckpt, motion = tmp_path / "UGC_BVQA_model.pth", tmp_path / "SLOWFAST_8x8_R50.pyth"
    torch.save(official, ckpt)
    torch.save({"model_state": model.motion.state_dict(), "epoch": 196}, motion)
    return ckpt, motion


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("official")
    source = _randomized(create_model("simplevqa", **SMALL), seed=3)
    ckpt, motion = _official_files(tmp, source)
    return source, ckpt, motion, tmp


def test_official_checkpoint_loads_strictly(official):
    source, ckpt, motion, _ = official
    loaded = load_checkpoint(ckpt, motion_weights=motion, **SMALL)
    inputs = _inputs(source.manifest, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(loaded(*inputs)["overall"], source(*inputs)["overall"], rtol=0, atol=0)
    with pytest.raises(ModelError, match="no SlowFast weights"):
        load_checkpoint(ckpt, **SMALL)


def test_checkpoint_mismatch_names_every_problem(official, tmp_path):
    source, ckpt, motion, _ = official
    state = torch.load(ckpt, weights_only=True)
    del state["module.layer3.1.bn2.running_var"]
    state["module.fc.weight"] = torch.zeros(1000, 2048)
    state["module.quality.0.weight"] = torch.zeros(128, 7168)
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(broken, motion_weights=motion, **SMALL)
    message = str(info.value)
    assert str(broken) in message and "\n" not in message
    assert "1 missing key(s): spatial.layer3.1.bn2.running_var" in message
    assert "1 unexpected key(s): spatial.fc.weight" in message
    assert "quality.0.weight (checkpoint [128, 7168], model [128, 9472])" in message
    assert info.value.mismatch.missing == ["spatial.layer3.1.bn2.running_var"]


def test_official_checkpoint_exports_and_reproduces_torch(official, real_clip_or_none):
    source, ckpt, motion, tmp = official
    loaded = load_checkpoint(ckpt, motion_weights=motion, **SMALL)
    path = tmp / "simplevqa.onnx"
    report = export_onnx(loaded, path, parity_video=real_clip_or_none)
    assert report.parity_passed and report.dynamic_clips
    graph = onnx.load(str(path))
    ops = set(op_types(graph))
    assert "BatchNormalization" not in ops and ops <= TENSORRT_SUPPORTED_OPS, ops - TENSORRT_SUPPORTED_OPS
    assert load_manifest(path) == source.manifest
    for clips in (1, 3):
        inputs = _inputs(source.manifest, clips, seed=clips)
        with torch.no_grad():
            expected = source(*inputs)["overall"].numpy()
        (got,) = _ort(path, {v.name: t.numpy() for v, t in zip(source.manifest.views, inputs)})
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(expected).max())))


# ------------------------------------------------------------------------------------------ other variants


@pytest.mark.slow
def test_spatial_only_variant_exports(tmp_path):
    model = _randomized(create_model("simplevqa_spatial", **SMALL))
    report = export_onnx(model, tmp_path / "spatial.onnx")
    assert report.parity_passed and [v.name for v in report.manifest.views] == ["spatial"]
    assert 0 < report.macs_per_video


@pytest.mark.slow
def test_fp16_keeps_pooling_in_fp32(official):
    source, _, _, tmp = official
    path = tmp / "simplevqa16.onnx"
    report = export_onnx(source, path, fp16=True)
    assert report.parity_passed
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    types = {vi.name: vi.type.tensor_type.elem_type for vi in graph.graph.value_info}
    sqrt_inputs = [n.input[0] for n in graph.graph.node if n.op_type == "Sqrt"]
    assert len(sqrt_inputs) == 3  # std of layer2, layer3, layer4
    assert all(types.get(name) == onnx.TensorProto.FLOAT for name in sqrt_inputs)
    conv_weights = {n.input[1] for n in graph.graph.node if n.op_type == "Conv"}
    assert all(i.data_type == onnx.TensorProto.FLOAT16 for i in graph.graph.initializer if i.name in conv_weights)


@pytest.mark.slow
def test_regnety8g_variant_exports(tmp_path):
    model = _randomized(create_model("simplevqa_regnety8g", **SMALL))
    report = export_onnx(model, tmp_path / "regnet.onnx")
    assert report.parity_passed
    assert set(report.ops) <= TENSORRT_SUPPORTED_OPS
