"""ATHQA-style net: sizes, BatchNorm fusion, ONNX export (FP32, FP16), parity, dynamic clip axis, CLI."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgevqa.errors import ModelError  # noqa: E402
from edgevqa.export.graph import TENSORRT_SUPPORTED_OPS, op_types, tensorrt_unsupported  # noqa: E402
from edgevqa.export.models import count_parameters, create_model, get_manifest, list_models  # noqa: E402
from edgevqa.export.onnx_export import export_onnx  # noqa: E402
from edgevqa.manifest import load_manifest  # noqa: E402



def _tiny(**kwargs):
    model = create_model("athqa_tiny", **kwargs)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding is really exercised
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                module.weight.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return model


def _run_ort(path, feed):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed)))


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory, real_clip_or_none):
    model = _tiny(frames=4)
    path = tmp_path_factory.mktemp("athqa") / "tiny.onnx"
    report = export_onnx(model, path, parity_clips=2, parity_video=real_clip_or_none)
    return model, path, report


class _ToyModel(torch.nn.Module):
    """One conv and a mean: exports in a second, for tests of the export mechanics rather than a model."""

    def __init__(self):
        super().__init__()
        from edgevqa.manifest import ModelManifest, ViewSpec

        self.conv = torch.nn.Conv3d(3, 2, 1)
        self.manifest = ModelManifest(name="toy", views=(ViewSpec(name="video", clip_len=2, grid=2, patch=4,
                                                                   aligned=2, size=8),), outputs=("a", "b"))

    def forward(self, video):
        y = self.conv(video).mean(dim=(2, 3, 4))
        return {"a": y[:, :1], "b": y[:, 1:]}


def test_registry_lists_variants_with_manifests():
    names = list_models()
    assert {"athqa_tiny", "athqa_base"} <= set(names)
    manifest = get_manifest("athqa_tiny")
    view = manifest.views[0]
    assert manifest.outputs == ("overall", "color", "noise", "artifact", "blur", "temporal")
    assert (view.kind, view.clip_len, view.grid, view.patch, view.size, view.aligned) == \
        ("fragments", 8, (7, 7), (32, 32), (224, 224), 8)
    assert get_manifest("athqa_base").views[0].size == (448, 448)
    with pytest.raises(ModelError, match="unknown model"):
        create_model("athqa_huge")
    with pytest.raises(ModelError, match="no option"):
        create_model("athqa_tiny", widht=3)


def test_parameter_budgets():
    assert count_parameters(create_model("athqa_tiny")) <= 3_000_000
    assert 22_000_000 <= count_parameters(create_model("athqa_base")) <= 30_000_000


@pytest.mark.parametrize("clips,frames,grid", [(1, 8, 7), (3, 5, (3, 2))])
def test_fused_matches_unfused(clips, frames, grid):
    model = _tiny(frames=frames, grid=grid)
    x = torch.randn(clips, 3, frames, *model.manifest.views[0].size, generator=torch.Generator().manual_seed(1))
    fused = copy.deepcopy(model).fuse()
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in fused.modules())
    with torch.no_grad():
        ref, got = model(x), fused(x)
    for name in model.manifest.outputs:
        assert got[name].shape == (clips, 1)
        scale = ref[name].abs().max().item()
        assert (got[name] - ref[name]).abs().max().item() <= 1e-5 * max(scale, 1e-3), name


def test_export_has_no_batchnorm_and_only_tensorrt_ops(tiny_export):
    _, path, report = tiny_export
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    ops = op_types(graph)
    assert "BatchNormalization" not in ops
    assert set(ops) <= TENSORRT_SUPPORTED_OPS, set(ops) - TENSORRT_SUPPORTED_OPS
    assert tensorrt_unsupported(graph) == []
    assert report.tensorrt_problems == []
    assert not any(init.data_location == onnx.TensorProto.EXTERNAL for init in graph.graph.initializer)


def test_export_report_and_embedded_manifest(tiny_export):
    model, path, report = tiny_export
    assert load_manifest(path) == model.manifest
    assert report.parity_passed and {r.output for r in report.parity} == set(model.manifest.outputs)
    assert report.dynamic_clips
    assert report.parameters == count_parameters(model)
    assert report.file_bytes == path.stat().st_size
    # MACs: the per-frame backbone dominates; the count must scale with the number of frames.
    assert 0.1e9 < report.macs_per_video < 2e9
    assert any("GMACs" in line for line in report.summary_lines())


@pytest.mark.parametrize("clips", [1, 3])
def test_exported_graph_matches_torch_on_any_clip_count(tiny_export, clips):
    model, path, _ = tiny_export
    x = np.random.default_rng(clips).standard_normal((clips, 3, 4, 224, 224), dtype=np.float32)
    got = _run_ort(path, {"video": x})
    with torch.no_grad():
        ref = model(torch.from_numpy(x))
    for name in model.manifest.outputs:
        np.testing.assert_allclose(got[name], ref[name].numpy(), rtol=1e-4, atol=1e-5 * max(1.0, float(ref[name].abs().max())))


def test_refuses_to_overwrite(tiny_export, tmp_path):
    model, path, _ = tiny_export
    before = path.read_bytes()
    with pytest.raises(ModelError, match="refusing to overwrite"):
        export_onnx(model, path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("io_dtype", [pytest.param("float32", marks=pytest.mark.slow), "float16"])
def test_fp16_export(tmp_path, io_dtype):
    model = _tiny(frames=2, grid=(3, 4))
    path = tmp_path / "tiny16.onnx"
    report = export_onnx(model, path, fp16=True, io_dtype=io_dtype, parity_clips=2)
    assert report.parity_passed
    graph = onnx.load(str(path))
    elem = onnx.TensorProto.FLOAT16 if io_dtype == "float16" else onnx.TensorProto.FLOAT
    assert graph.graph.input[0].type.tensor_type.elem_type == elem
    assert graph.graph.output[0].type.tensor_type.elem_type == elem
    conv_weights = {n.input[1] for n in graph.graph.node if n.op_type == "Conv"}
    assert all(i.data_type == onnx.TensorProto.FLOAT16 for i in graph.graph.initializer if i.name in conv_weights)
    assert load_manifest(path).views[0].dtype == io_dtype
    assert set(op_types(graph)) <= TENSORRT_SUPPORTED_OPS


def test_parity_on_real_clip(tiny_export, real_clip):
    _, _, report = tiny_export
    labels = {r.inputs for r in report.parity}
    assert labels == {"random", f"video:{os.path.basename(real_clip)}"}
    assert report.parity_passed


def test_parity_gate_refuses_to_write(tmp_path):
    from edgevqa.export.onnx_export import ParityError

    path = tmp_path / "never.onnx"
    with pytest.raises(ParityError, match="not written"):
        # A gate FP16 arithmetic cannot meet: the mechanism, not the model, is under test.
        export_onnx(_ToyModel(), path, fp16=True, gate=0.0)
    assert not path.exists()
    report = export_onnx(_ToyModel(), path, fp16=True)
    assert report.parity_passed and path.exists()


def test_cli_export(tmp_path, capsys):
    from edgevqa.cli import main

    out = tmp_path / "cli.onnx"
    assert main(["export", "athqa_tiny", "--out", str(out), "--frames", "2"]) == 0
    text = capsys.readouterr().out
    assert "GMACs per video" in text and "parity random" in text
    assert load_manifest(out).views[0].clip_len == 2
    assert main(["export", "athqa_tiny", "--out", str(out), "--frames", "2"]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    # manifest facts about the training data: absent unless given, checked before anything is written
    for flag, key, value, bad in (("--sample-bit-depth", "sample_bit_depth", 8, "7"),
                                  ("--frame-rate", "frame_rate", 30.0, "0")):
        assert getattr(load_manifest(out), key) is None
        given = tmp_path / f"{key}.onnx"
        assert main(["export", "athqa_tiny", "--out", str(given), "--frames", "2", flag, str(value)]) == 0
        assert getattr(load_manifest(given), key) == value
        capsys.readouterr()
        assert main(["export", "athqa_tiny", "--out", str(tmp_path / "bad.onnx"), flag, bad]) == 1
        assert key in capsys.readouterr().err and not (tmp_path / "bad.onnx").exists()


@pytest.mark.slow
def test_base_variant_exports_small(tmp_path):
    model = create_model("athqa_base", frames=2, grid=(2, 3))
    report = export_onnx(model, tmp_path / "base.onnx")
    assert report.parity_passed and report.dynamic_clips
    assert "BatchNormalization" not in report.ops and set(report.ops) <= TENSORRT_SUPPORTED_OPS


def test_opset_outside_the_exporters_range_is_refused(tmp_path):
    with pytest.raises(ModelError, match="opset 17"):
        export_onnx("athqa_tiny", tmp_path / "old.onnx", opset=17)
    assert not (tmp_path / "old.onnx").exists()
