"""The torch runner: FP32 eager on the CPU against ONNX Runtime on the same exported model; FP16 + CUDA graphs on
the GPU machine against FP32 eager."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch backend needs torch (the 'export' extra)")

from edgevqa import cli  # noqa: E402
from edgevqa.backends.onnxrt import OrtRunner  # noqa: E402
from edgevqa.backends.torch_backend import TorchRunner  # noqa: E402
from edgevqa.errors import EdgeVQAError, ModelError  # noqa: E402
from edgevqa.manifest import write_sidecar  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small ATHQA-style checkpoint (with its sidecar manifest) and its ONNX export."""
    from edgevqa.export.checkpoint import save_checkpoint
    from edgevqa.export.models import create_model
    from edgevqa.export.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("torch_backend")
    torch.manual_seed(7)
    model = create_model("athqa_tiny", frames=2, grid=2)
    checkpoint = save_checkpoint(model, folder / "tiny.pt")
    write_sidecar(checkpoint, model.manifest)
    onnx_path = str(folder / "tiny.onnx")
    export_onnx(checkpoint, onnx_path)
    return checkpoint, onnx_path, model.manifest


@pytest.mark.slow
def test_cpu_fp32_matches_onnxruntime(exported):
    checkpoint, onnx_path, manifest = exported
    shape = manifest.views[0].input_shape(3)
    feed = {"video": np.random.default_rng(11).normal(0, 1, size=shape).astype(np.float32)}
    with TorchRunner(checkpoint, device="cpu") as runner, OrtRunner(onnx_path) as reference:
        got, want = runner.infer(feed), reference.infer(feed)
        described = runner.describe()
    assert set(got) == set(manifest.outputs)
    for name in manifest.outputs:
        assert got[name].shape == want[name].shape
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5)
    assert described["precision"] == "fp32" and described["cuda_graphs"] is False


@pytest.mark.slow
def test_pipeline_and_cli_reach_the_torch_runner(exported, small_clip, capsys):
    from edgevqa.pipeline import Pipeline

    checkpoint, onnx_path, manifest = exported
    with Pipeline(checkpoint, backend="torch", device="cpu") as torch_pipe, Pipeline(onnx_path) as ort_pipe:
        got, want = torch_pipe.score(small_clip), ort_pipe.score(small_clip)
    assert got.backend == "torch"
    for name in manifest.outputs:
        assert got.scores[name] == pytest.approx(want.scores[name], rel=1e-4, abs=1e-5)
    code = cli.main(["score", "--model", checkpoint, "--backend", "torch", "--device", "cpu", "--json", small_clip])
    assert code == 0 and '"backend": "torch"' in capsys.readouterr().out


def test_torch_runner_refuses_onnx_files_and_cpu_fp16(probe_model):
    with pytest.raises(ModelError, match="not ONNX graphs"):
        TorchRunner(probe_model, device="cpu").activate()
    with pytest.raises(EdgeVQAError, match="FP16 needs a CUDA device"):
        TorchRunner("athqa_tiny", device="cpu", precision="fp16").activate()
    with pytest.raises(ModelError, match="neither a checkpoint file nor a zoo model"):
        TorchRunner("no_such_model", device="cpu").activate()


# ------------------------------------------------------------------------------------------------ GPU


@pytest.mark.gpu
def test_cuda_fp16_graph_matches_fp32_eager():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device visible to torch")
    from edgevqa.export.models import create_model

    torch.manual_seed(5)
    model = create_model("athqa_tiny", frames=4, grid=3)
    shape = model.manifest.views[0].input_shape(2)
    feed = {"video": np.random.default_rng(1).normal(0, 1, size=shape).astype(np.float32)}
    with TorchRunner(model, device="cuda:0", precision="fp32", cuda_graphs=False) as fp32, \
            TorchRunner(model, device="cuda:0") as fp16:
        want = fp32.infer(feed)
        first = fp16.infer(feed)
        device_feed = {"video": torch.from_numpy(feed["video"]).cuda()}
        again = fp16.infer(device_feed)  # replay of the captured graph, input already on the device
        described = fp16.describe()
    assert described["precision"] == "fp16"
    assert described["cuda_graphs"] is True and described["graphs_captured"] == 1, described
    for name in want:
        np.testing.assert_array_equal(first[name], again[name])
        scale = max(float(np.abs(want[name]).max()), 1e-3)
        assert float(np.abs(first[name] - want[name]).max()) / scale < 5e-2


def test_channels_last_conversion_keeps_the_outputs():
    from edgevqa.backends.torch_backend import to_channels_last
    from edgevqa.export.models import create_model

    torch.manual_seed(2)
    model = create_model("athqa_tiny", frames=2, grid=2)
    x = torch.randn(model.manifest.views[0].input_shape(2))
    with torch.inference_mode():
        want = model(x)
        to_channels_last(model)
        got = model(x)
    conv_weights = [p for p in model.parameters() if p.dim() == 4]
    assert conv_weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in conv_weights)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-5)
