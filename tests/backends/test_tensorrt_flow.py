"""`build_engine` and `TrtRunner` end to end against stand-in TensorRT and CUDA modules (fake_gpu_libs): files,
stamps, profiles, staging through pinned buffers and the refusals, checked without TensorRT or a GPU.

What this cannot check: TensorRT's own behaviour (parsing, tactics, numerics) and real device memory; those
are the `gpu`-marked test in test_build_cli.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import fake_gpu_libs
from edgevqa import cli
from edgevqa.backends.engine_stamp import read_engine_sidecar
from edgevqa.backends.onnxrt import OrtRunner
from edgevqa.backends.tensorrt import BuildOptions, TrtRunner, build_engine
from edgevqa.errors import ModelError
from edgevqa.manifest import load_manifest
from edgevqa.pipeline import Pipeline


@pytest.fixture
def fakes(monkeypatch):
    return fake_gpu_libs.install(monkeypatch)


def test_build_writes_engine_sidecar_and_timing_cache(fakes, probe_model, tmp_path, capsys):
    trt, _ = fakes
    engine, cache = tmp_path / "probe.plan", tmp_path / "timing.cache"
    cache.write_bytes(b"earlier")
    code = cli.main(["build", probe_model, "--save-engine", str(engine), "--timing-cache", str(cache),
                     "--workspace", "64", "--max-clips", "5"])
    out = capsys.readouterr().out
    assert code == 0 and f"built {engine}" in out and "profile 'video': min [1," in out
    flags, config = trt.built[-1]
    assert flags == 1 << 1  # STRONGLY_TYPED on TensorRT 10
    assert config.pools == {"workspace": 64 << 20}
    assert config.flags == set() and config.default_device_type == "gpu"
    assert cache.read_bytes() == b"earlier+timed"
    manifest, stamp = read_engine_sidecar(engine)
    assert manifest.views == load_manifest(probe_model).views
    assert (stamp.gpu_name, stamp.compute_capability, stamp.tensorrt_version) == ("Fake GPU", "9.0", "10.13.3.9")
    assert stamp.profiles[0].max[0] == 5


def test_tensorrt_11_gets_no_creation_flag(monkeypatch, probe_model, tmp_path):
    trt, _ = fake_gpu_libs.install(monkeypatch, trt=fake_gpu_libs.make_fake_tensorrt("11.0.0.4"))
    build_engine(probe_model, tmp_path / "m.plan")
    assert trt.built[-1][0] == 0


def test_dla_core_on_a_gpu_without_dla_is_refused(fakes, probe_model, tmp_path):
    with pytest.raises(ModelError, match="has no DLA"):
        build_engine(probe_model, tmp_path / "m.plan", BuildOptions(dla_core=0))
    fakes[0].Builder.num_DLA_cores = 2
    build_engine(probe_model, tmp_path / "m.plan", BuildOptions(dla_core=1))
    config = fakes[0].built[-1][1]
    assert (config.default_device_type, config.DLA_core, config.flags) == ("dla", 1, {"gpu_fallback"})
    with pytest.raises(ModelError, match="2 DLA core"):
        build_engine(probe_model, tmp_path / "n.plan", BuildOptions(dla_core=2))


def test_runner_matches_onnxruntime_and_frees_its_buffers(fakes, probe_model, tmp_path):
    _, cudart = fakes
    engine = tmp_path / "probe.plan"
    build_engine(probe_model, engine, BuildOptions(max_clips=4))
    shape = load_manifest(probe_model).views[0].input_shape()
    rng = np.random.default_rng(2)
    with TrtRunner(engine, device="cuda:0") as runner, OrtRunner(probe_model) as reference:
        for clips in (3, 1, 4):
            feed = {"video": rng.normal(0, 40, size=(clips,) + shape[1:]).astype(np.float32)}
            got, want = runner.infer(feed), reference.infer(feed)
            for name in want:
                np.testing.assert_allclose(got[name], want[name], rtol=1e-6)
        metas = runner.get_input_metadata()
        assert metas[0].shape[0] is None and metas[0].dtype == "float32"
        with pytest.raises(ModelError, match="outside the engine's profile"):
            runner.infer({"video": np.zeros((5,) + shape[1:], np.float32)})
        with pytest.raises(ModelError, match="missing from the feed"):
            runner.infer({})
    assert cudart.allocations == {}


def test_pipeline_scores_with_the_trt_backend_like_ort(fakes, probe_model, small_clip, tmp_path):
    engine = tmp_path / "probe.plan"
    build_engine(probe_model, engine)
    with Pipeline(str(engine), backend="trt", device="cuda:0") as trt_pipe, Pipeline(probe_model) as ort_pipe:
        got, want = trt_pipe.score(small_clip), ort_pipe.score(small_clip)
    assert got.backend == "trt"
    for name, value in want.scores.items():
        assert got.scores[name] == pytest.approx(value, rel=1e-6)


def test_engine_from_another_gpu_is_refused_before_deserialising(monkeypatch, probe_model, tmp_path):
    fake_gpu_libs.install(monkeypatch)
    engine = tmp_path / "probe.plan"
    build_engine(probe_model, engine)
    fake_gpu_libs.install(monkeypatch, cudart=fake_gpu_libs.make_fake_cudart(b"Jetson Orin", (8, 7)))
    with pytest.raises(ModelError, match=r"compute capability 9.0 \(Fake GPU\), this GPU is Jetson Orin"):
        TrtRunner(engine).activate()
