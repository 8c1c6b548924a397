"""The ONNX Runtime GPU runner's I/O-binding code, run here through the CPU provider; the real CUDA / TensorRT
providers on the GPU machine only (they need onnxruntime-gpu)."""

from __future__ import annotations

import numpy as np
import pytest

from edgevqa.backends import ort_gpu
from edgevqa.backends.onnxrt import OrtRunner
from edgevqa.errors import BackendUnavailableError, ModelError
from edgevqa.manifest import load_manifest


class HostArrayAsDevice:
    """A host array dressed as a device array (``__cuda_array_interface__``), to drive the zero-copy branch."""

    def __init__(self, array: np.ndarray):
        self.array = np.ascontiguousarray(array)
        self.__cuda_array_interface__ = {"shape": self.array.shape, "typestr": self.array.dtype.str,
                                         "data": (self.array.ctypes.data, False), "version": 3, "strides": None}


@pytest.fixture
def cpu_bound_runner(monkeypatch, probe_model):
    monkeypatch.setitem(ort_gpu.PROVIDER_OF_BACKEND, "ort-cuda", "CPUExecutionProvider")
    monkeypatch.setattr(ort_gpu, "require_provider", lambda backend, ort=None: None)
    runner = ort_gpu.OrtGpuRunner(probe_model, backend="ort-cuda", device="cuda:0")
    runner.providers = ["CPUExecutionProvider"]
    runner.io_device = "cpu"
    return runner


def _feed(probe_model, clips=3, seed=0):
    shape = load_manifest(probe_model).views[0].input_shape(clips)
    return {"video": np.random.default_rng(seed).normal(0, 50, size=shape).astype(np.float32)}


def test_io_binding_matches_plain_session_run(cpu_bound_runner, probe_model):
    feed = _feed(probe_model)
    with cpu_bound_runner as runner, OrtRunner(probe_model) as reference:
        got = runner.infer(feed)
        again = runner.infer(_feed(probe_model, clips=2, seed=1))  # rebinding with another clip count
        want = reference.infer(feed)
        want_again = reference.infer(_feed(probe_model, clips=2, seed=1))
        described = runner.describe()
    assert described["io_binding"] is True and described["backend"] == "ort-cuda"
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6)
        np.testing.assert_allclose(again[name], want_again[name], rtol=1e-6)


def test_device_arrays_are_bound_in_place(cpu_bound_runner, probe_model):
    feed = _feed(probe_model, seed=4)
    with cpu_bound_runner as runner, OrtRunner(probe_model) as reference:
        got = runner.infer({"video": HostArrayAsDevice(feed["video"])})
        want = reference.infer(feed)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6)


def test_missing_inputs_and_bad_dtypes(cpu_bound_runner, probe_model):
    with cpu_bound_runner as runner:
        with pytest.raises(ModelError, match="missing from the feed"):
            runner.infer({})
        bad = HostArrayAsDevice(_feed(probe_model)["video"].astype(np.float64))
        with pytest.raises(ModelError, match="unsupported dtype float64"):
            runner.infer({"video": bad})


def test_silent_cpu_fallback_is_refused(monkeypatch, probe_model):
    # ONNX Runtime drops to the CPU when the CUDA libraries fail to load; the runner must not carry on.
    monkeypatch.setattr(ort_gpu, "require_provider", lambda backend, ort=None: None)
    runner = ort_gpu.OrtGpuRunner(probe_model, backend="ort-cuda", device="cuda:0")
    runner.providers = ["CPUExecutionProvider"]
    with pytest.raises(BackendUnavailableError, match="fell back to CPUExecutionProvider"):
        runner.activate()


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["ort-cuda", "ort-trt"])
def test_real_gpu_providers_match_the_cpu(probe_model, backend, tmp_path):
    import onnxruntime

    if ort_gpu.PROVIDER_OF_BACKEND[backend] not in onnxruntime.get_available_providers():
        pytest.skip(f"{ort_gpu.PROVIDER_OF_BACKEND[backend]} is not in this onnxruntime (needs onnxruntime-gpu)")
    feed = _feed(probe_model)
    with ort_gpu.OrtGpuRunner(probe_model, backend=backend, cache_root=str(tmp_path)) as runner, \
            OrtRunner(probe_model) as reference:
        got, want = runner.infer(feed), reference.infer(feed)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-3, atol=1e-4)
