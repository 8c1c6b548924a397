"""``edgevqa build``: argument and file checks run everywhere; building needs TensorRT and a GPU."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from edgevqa import cli
from edgevqa.backends.tensorrt import BuildOptions, network_creation_flags, plan_build
from edgevqa.errors import EdgeVQAError, ModelError

needs_no_tensorrt = pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                                       reason="tensorrt is installed here")


def _run(capsys, *argv):
    code = cli.main(["build", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


@needs_no_tensorrt
def test_build_without_tensorrt_is_one_line_naming_the_extra(probe_model, tmp_path, capsys):
    engine = tmp_path / "probe.plan"
    code, out, err = _run(capsys, probe_model, "--save-engine", str(engine), "--timing-cache",
                          str(tmp_path / "t.cache"), "--workspace", "256")
    assert code == 1 and out == ""
    assert err.count("\n") == 0
    assert err.startswith("edgevqa: error: backend 'trt' needs TensorRT")
    assert "pip install 'edgevqa[tensorrt]'" in err
    assert not engine.exists()


def test_build_refuses_to_overwrite(probe_model, tmp_path, capsys):
    engine = tmp_path / "probe.plan"
    engine.write_bytes(b"keep me")
    code, _, err = _run(capsys, probe_model, "--save-engine", str(engine))
    assert code == 1 and "exists; refusing to overwrite it (add --force)" in err
    assert engine.read_bytes() == b"keep me"


@pytest.mark.parametrize("argv, message", [
    (["--workspace", "0"], "--workspace must be a positive"),
    (["--dla-core", "-1"], "--dla-core must be >= 0"),
    (["--max-clips", "0"], "--max-clips must be >= 1"),
])
def test_build_option_errors(probe_model, tmp_path, capsys, argv, message):
    code, _, err = _run(capsys, probe_model, "--save-engine", str(tmp_path / "m.plan"), *argv)
    assert code == 1 and message in err and err.count("\n") == 0


def test_build_input_errors(probe_model, tmp_path, capsys):
    code, _, err = _run(capsys, str(tmp_path / "missing.onnx"), "--save-engine", str(tmp_path / "m.plan"))
    assert code == 1 and "missing.onnx: no such ONNX file" in err
    code, _, err = _run(capsys, probe_model, "--save-engine", str(tmp_path / "nowhere" / "m.plan"))
    assert code == 1 and "does not exist" in err
    code, _, err = _run(capsys, probe_model, "--save-engine", probe_model, "--force")
    assert code == 1 and "is the input ONNX file" in err
    bare = tmp_path / "bare.onnx"
    from edgevqa.testing import default_probe_manifest, probe_model_proto
    import onnx

    onnx.save(probe_model_proto(default_probe_manifest(), embed_manifest=False), str(bare))
    code, _, err = _run(capsys, str(bare), "--save-engine", str(tmp_path / "m.plan"))
    assert code == 1 and "carries no edgevqa manifest" in err


def test_plan_build_computes_the_profile(probe_model, tmp_path):
    manifest, profiles = plan_build(probe_model, str(tmp_path / "m.plan"), BuildOptions(max_clips=3))
    assert [p.name for p in profiles] == [v.name for v in manifest.views]
    assert profiles[0].max[0] == 3 and profiles[0].opt == manifest.views[0].input_shape()
    with pytest.raises(EdgeVQAError):
        plan_build(probe_model, str(tmp_path / "m.plan"), BuildOptions(workspace_mb=-5))


class _FakeFlags:
    STRONGLY_TYPED = 1


class _FakeTrt:
    NetworkDefinitionCreationFlag = _FakeFlags

    def __init__(self, version):
        self.__version__ = version


def test_strongly_typed_flag_only_on_tensorrt_10():
    assert network_creation_flags(_FakeTrt("10.13.3.9")) == 1 << 1
    assert network_creation_flags(_FakeTrt("11.0.0.1")) == 0


# ------------------------------------------------------------------------------------------------ GPU


@pytest.mark.gpu
def test_engine_builds_runs_and_matches_onnxruntime(probe_model, tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (it cannot be in this workplace)")
    pytest.importorskip("cuda", reason="cuda-python is not installed")
    from edgevqa.backends.onnxrt import OrtRunner
    from edgevqa.backends.tensorrt import TrtRunner, build_engine

    engine = tmp_path / "probe.plan"
    cache = tmp_path / "timing.cache"
    report = build_engine(probe_model, engine, BuildOptions(timing_cache=str(cache), workspace_mb=256, max_clips=3))
    assert engine.exists() and cache.exists() and report.stamp.profiles[0].max[0] == 3
    shape = report.stamp.profiles[0].opt
    feed = {"video": np.random.default_rng(3).normal(size=(3,) + shape[1:]).astype(np.float32)}
    with TrtRunner(engine) as trt_runner, OrtRunner(probe_model) as ort_runner:
        got, want = trt_runner.infer(feed), ort_runner.infer(feed)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-3, atol=1e-4)
    with pytest.raises(ModelError, match="exists"):
        build_engine(probe_model, engine)
