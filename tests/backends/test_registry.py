"""Backend selection: every GPU backend reached through `make_runner`, and one clear error for each missing piece.

These run on the CPU-only machines: they check the errors that a user without the libraries or the GPU sees.
"""

from __future__ import annotations

import importlib.util

import pytest

from edgevqa import cli
from edgevqa.backends import registry
from edgevqa.errors import BackendUnavailableError, EdgeVQAError, ModelError
from edgevqa.pipeline import make_runner as pipeline_make_runner


def _ort_providers() -> list[str]:
    import onnxruntime

    return onnxruntime.get_available_providers()


def _has_tensorrt() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.parametrize("backend, provider", [("ort-cuda", "CUDAExecutionProvider"),
                                               ("ort-trt", "TensorrtExecutionProvider")])
def test_ort_gpu_backends_without_their_provider_name_the_gpu_extra(probe_model, backend, provider):
    if provider in _ort_providers():
        pytest.skip(f"this onnxruntime has {provider}")
    with pytest.raises(BackendUnavailableError) as err:
        pipeline_make_runner(probe_model, backend, device="cuda:0")
    assert err.value.extra == "gpu"
    assert provider in str(err.value)
    assert "pip install 'edgevqa[gpu]'" in str(err.value)
    assert "\n" not in str(err.value)


def test_trt_without_tensorrt_names_the_tensorrt_extra(tmp_path):
    if _has_tensorrt():
        pytest.skip("tensorrt is installed here")
    engine = tmp_path / "model.plan"
    engine.write_bytes(b"not an engine")
    with pytest.raises(BackendUnavailableError) as err:
        pipeline_make_runner(str(engine), "trt", device="cuda:0")
    assert err.value.extra == "tensorrt"
    assert "TensorRT" in str(err.value)


def test_trt_given_an_onnx_file_says_how_to_build_an_engine(probe_model):
    with pytest.raises(ModelError, match="edgevqa build .*--save-engine"):
        registry.make_runner(probe_model, "trt", device="cuda:0")


@pytest.mark.parametrize("backend", ["ort-cuda", "ort-trt", "trt"])
def test_gpu_only_backends_need_a_cuda_device(probe_model, backend):
    with pytest.raises(EdgeVQAError, match="--device cuda:N"):
        registry.make_runner(probe_model, backend, device="cpu")


@pytest.mark.parametrize("device", ["gpu0", "cuda:x", "cuda:-1", "rocm:0"])
def test_malformed_devices_are_rejected(probe_model, device):
    with pytest.raises(EdgeVQAError, match="cuda"):
        registry.make_runner(probe_model, "ort-cuda", device=device)


def test_unknown_backend_is_a_model_error(probe_model):
    with pytest.raises(ModelError, match="unknown backend"):
        registry.make_runner(probe_model, "vulkan", device="cuda:0")


def test_torch_on_cuda_without_a_gpu_is_unavailable(tmp_path):
    pytest.importorskip("torch")
    if _torch_cuda():
        pytest.skip("torch sees a CUDA device here")
    with pytest.raises(BackendUnavailableError, match="sees no CUDA GPU"):
        registry.make_runner(str(tmp_path / "model.pt"), "torch", device="cuda:0")


def test_score_cli_reports_a_missing_gpu_provider_in_one_line(probe_model, small_clip, capsys):
    if "CUDAExecutionProvider" in _ort_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    code = cli.main(["score", "--model", probe_model, "--backend", "ort-cuda", "--device", "cuda:0", small_clip])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.count("\n") == 0
    assert err.startswith("edgevqa: error: backend 'ort-cuda' needs")
    assert "edgevqa[gpu]" in err


def test_score_cli_trt_without_tensorrt(tmp_path, small_clip, capsys):
    if _has_tensorrt():
        pytest.skip("tensorrt is installed here")
    engine = tmp_path / "m.plan"
    engine.write_bytes(b"x")
    from edgevqa.testing import default_probe_manifest
    from edgevqa.manifest import write_sidecar

    write_sidecar(engine, default_probe_manifest())
    code = cli.main(["score", "--model", str(engine), "--backend", "trt", "--device", "cuda:0", small_clip])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0
    assert "edgevqa[tensorrt]" in err
