"""`edgevqa bench` model mode: trtexec's loop and flags, the report, --exportTimes, and bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgevqa.bench.model_bench import (detect_precision, parse_shapes, run_loop, split_warmup)
from edgevqa.errors import EdgeVQAError

TRTEXEC_TIME_KEYS = ("startEnqMs", "endEnqMs", "startH2dMs", "endH2dMs", "startComputeMs", "endComputeMs",
                     "startD2hMs", "endD2hMs", "h2dMs", "computeMs", "d2hMs", "latencyMs")
SHORT = ["--warmUp=20", "--duration=0.15", "--iterations=5"]


def fake_clock_query(step_s):
    """A clock and a query on it: every query takes ``step_s`` seconds, a tenth of it before the backend."""
    now = [0.0]

    def clock():
        return now[0]

    def query(stream):
        start = now[0]
        now[0] += step_s
        return start, start + step_s / 10, now[0], now[0]

    return clock, query


def test_loop_runs_until_iterations_and_duration_and_drops_warmup():
    clock, query = fake_clock_query(0.010)
    traces = run_loop(query, 1, warmup_ms=25.0, duration_s=0.05, iterations=3, clock=clock)
    # Queries end at 10, 20 (both inside the 25 ms warm-up: not counted), 30, ... The loop stops once
    # 3 + 2 iterations ran AND 25 + 50 ms passed: after the query ending at 80 ms.
    assert len(traces) == 8
    warmups, timed = split_warmup(traces, 25.0)
    assert warmups == 3  # dropped by start time: the query starting at 20 ms straddles the warm-up
    assert [round(t.compute_start, 6) for t in timed] == [31.0, 41.0, 51.0, 61.0, 71.0]
    assert all(t.h2d == 0 and t.d2h == 0 for t in timed)
    assert timed[0].enqueue == pytest.approx(1.0)
    assert timed[0].latency == pytest.approx(9.0)


def test_loop_is_iteration_bound_when_duration_is_short():
    clock, query = fake_clock_query(0.001)
    traces = run_loop(query, 1, warmup_ms=0.0, duration_s=0.0, iterations=50, clock=clock)
    assert len(traces) == 50
    assert split_warmup(traces, 0.0)[0] == 0


def test_parse_shapes():
    assert parse_shapes("video:1x3x8x32x32,aux:2x5") == {"video": (1, 3, 8, 32, 32), "aux": (2, 5)}
    assert parse_shapes("a.b:c:4") == {"a.b:c": (4,)}
    for bad in ("video", "video:1xAx3", ":1x2", "video:1x2,video:1x2", "v:-1x2", ""):
        with pytest.raises(EdgeVQAError):
            parse_shapes(bad)


def _tiny_model(path, dtype="float32", quantized=False):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    elem = TensorProto.FLOAT16 if dtype == "float16" else TensorProto.FLOAT
    x = helper.make_tensor_value_info("x", elem, ["n", 5])
    y = helper.make_tensor_value_info("y", elem, ["n", 5])
    w = numpy_helper.from_array(np.linspace(-1, 1, 25).reshape(5, 5).astype(dtype), "w")
    inits, nodes = [w], []
    src = "x"
    if quantized:
        inits += [numpy_helper.from_array(np.array(0.05, np.float32), "s"),
                  numpy_helper.from_array(np.array(0, np.int8), "z")]
        nodes += [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
                  helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"])]
        src = "xd"
    nodes.append(helper.make_node("MatMul", [src, "w"], ["y"]))
    model = helper.make_model(helper.make_graph(nodes, "tiny", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def test_detect_precision(tmp_path):
    assert detect_precision(_tiny_model(tmp_path / "a.onnx"))["precision"] == "fp32"
    assert detect_precision(_tiny_model(tmp_path / "b.onnx", "float16"))["precision"] == "fp16"
    q = detect_precision(_tiny_model(tmp_path / "c.onnx", quantized=True))
    assert q["precision"] == "int8" and q["detail"]["quantization_ops"] == 2
    assert detect_precision(str(tmp_path / "engine.plan"))["precision"] == "unknown"


def test_cli_text_report_in_trtexec_shape(probe_model, cli, one_line_error):
    code, out, err = cli(*["bench", f"--onnx={probe_model}", *SHORT, "--avgRuns=2"])
    assert code == 0, err
    for line in ("=== Performance summary ===", "Throughput: ", "Latency: min = ", "Enqueue Time: min = ",
                 "H2D Latency: min = 0 ms", "Compute Time: min = ", "D2H Latency: min = 0 ms",
                 "Total Host Walltime: ", "Total Compute Time: ", "Warmup completed ", "Timing trace has ",
                 "Average on 2 runs - ", "Session creation: ", "First inference: ", "Peak RSS: ",
                 "Runtime overhead: median = ", "Data transfers: none", "Precision (read from the model): fp32",
                 "percentile(90%) = ", "percentile(99%) = "):
        assert line in out, line
    # the clip axis is dynamic: its size comes from the manifest's view
    assert "Input 'video': float32 1x3x4x32x32" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("&&&& PASSED edgevqa.bench [edgevqa v")
    assert last.endswith(f"# edgevqa bench --onnx={probe_model} --warmUp=20 --duration=0.15 --iterations=5 "
                         "--avgRuns=2")


def test_cli_json_report_and_export_times(probe_model, tmp_path, cli, one_line_error):
    times = tmp_path / "times.json"
    profile = tmp_path / "profile.json"
    # both spellings: --flag=value and --flag value
    code, out, err = cli(*["bench", "--onnx", probe_model, "--warmUp", "10", "--duration", "0.1",
                              "--iterations=7", "--percentile=50,99", "--shapes", "video:2x3x4x32x32", "--threads=1",
                              "--exportTimes", times, f"--exportProfile={profile}", "--json"])
    assert code == 0, err
    report = json.loads(out)
    assert (report["schema"], report["schema_version"]) == ("edgevqa.bench.model", 1)
    assert report["passed"] is True
    assert report["model"]["inputs"][0]["shape"] == [2, 3, 4, 32, 32]
    assert report["settings"]["backend"] == "ort-cpu" and report["settings"]["threads"] == 1
    assert report["settings"]["providers"] == ["CPUExecutionProvider"]
    assert report["timing"]["h2d"] is None and report["timing"]["d2h"] is None
    assert report["timing"]["queries"] >= 6
    assert set(report["timing"]["latency"]["percentiles"]) == {"50", "99"}
    assert report["cold"]["session_creation_ms"] > 0 and report["cold"]["first_inference_ms"] > 0
    assert report["memory"]["peak_rss_mib"] > 0
    assert report["overhead"]["measured"] is True and report["overhead"]["median_ms"] >= 0
    assert report["environment"]["libraries"]["onnxruntime"]
    trace = json.loads(times.read_text())
    assert len(trace) == report["timing"]["queries"]
    for q in trace:
        assert set(TRTEXEC_TIME_KEYS) <= set(q)
        assert q["latencyMs"] == pytest.approx(q["h2dMs"] + q["computeMs"] + q["d2hMs"])
        assert q["startEnqMs"] <= q["endEnqMs"] <= q["startComputeMs"] <= q["endComputeMs"] <= q["endCallMs"]
        assert q["startComputeMs"] >= 10.0  # warm-up queries are not in the trace
    layers = json.loads(profile.read_text())
    assert layers[0]["count"] >= 1
    assert {"name", "timeMs", "averageMs", "medianMs", "percentage"} <= set(layers[1])
    assert sum(r["percentage"] for r in layers[1:]) == pytest.approx(100.0)


def test_cli_load_inputs_and_streams(probe_model, tmp_path, cli, one_line_error):
    data = np.random.default_rng().uniform(0, 1, size=(1, 3, 4, 32, 32)).astype(np.float32)
    (tmp_path / "in.bin").write_bytes(data.tobytes())
    code, out, err = cli(*["bench", f"--onnx={probe_model}", *SHORT, f"--loadInputs=video:{tmp_path / 'in.bin'}",
                              "--infStreams=2", "--useCudaGraph"])
    assert code == 0, err
    assert f"(file {tmp_path / 'in.bin'})" in out
    assert "Multiple inference streams are used" in out
    assert "--useCudaGraph has no effect on the host backend" in out


def test_output_files_are_not_overwritten_unasked(probe_model, tmp_path, cli, one_line_error):
    times = tmp_path / "times.json"
    times.write_text("keep")
    code, _, err = cli(*["bench", f"--onnx={probe_model}", *SHORT, f"--exportTimes={times}"])
    one_line_error(code, err, "already exists", "--force")
    assert times.read_text() == "keep"


@pytest.mark.parametrize("args, fragments", [
    (["--shapes=video:1x3x4"], ("rank 5",)),
    (["--shapes=video:1x3x5x32x32"], ("fixed at ?x3x4x32x32",)),
    (["--shapes=other:1x2"], ("no input named 'other'",)),
    (["--shapes=video:1xtwo"], ("not an integer",)),
    (["--iterations=0"], ("--iterations must be at least 1",)),
    (["--percentile=90,x"], ("--percentile",)),
    (["--backend=ort-cuda"], ("ort-cuda",)),
    (["--fp16"], ("precision comes from the model",)),
    (["--loadInputs=video:/nonexistent/in.bin"], ("cannot read",)),
])
def test_bad_inputs_give_one_line_errors(probe_model, args, fragments, cli, one_line_error):
    code, out, err = cli(*["bench", f"--onnx={probe_model}", *SHORT, *args])
    one_line_error(code, err, *fragments)


def test_missing_model_and_wrong_input_file_size(tmp_path, probe_model, cli, one_line_error):
    code, out, err = cli(*["bench", f"--onnx={tmp_path / 'missing.onnx'}", *SHORT])
    one_line_error(code, err, "missing.onnx", "no such model file")
    assert out.strip().splitlines()[-1].startswith("&&&& FAILED edgevqa.bench")
    (tmp_path / "small.bin").write_bytes(b"\0" * 12)
    code, _, err = cli(*["bench", f"--onnx={probe_model}", *SHORT, f"--loadInputs=video:{tmp_path / 'small.bin'}"])
    one_line_error(code, err, "small.bin holds 12 bytes")
    code, _, err = cli(*["bench", *SHORT])
    one_line_error(code, err, "--onnx=")


def test_dynamic_input_without_manifest_asks_for_shapes(tmp_path, cli, one_line_error):
    model = _tiny_model(tmp_path / "tiny.onnx")
    code, _, err = cli(*["bench", f"--onnx={model}", *SHORT])
    one_line_error(code, err, "dynamic shape", "--shapes=x:1x5")
    code, out, err = cli(*["bench", f"--onnx={model}", *SHORT, "--shapes=x:3x5"])
    assert code == 0, err
    assert "Input 'x': float32 3x5" in out


class _FakeSession:
    """Stands in for an ONNX Runtime session with I/O binding (what OrtGpuRunner calls)."""

    def run_with_iobinding(self, binding):
        binding["y"] = binding["x"].sum(axis=1, keepdims=True)

    def run(self, names, feed):
        return [feed["x"].sum(axis=1, keepdims=True)]


def _fake_runner(backend, with_session):
    from edgevqa.backends.base import Runner, TensorMeta

    class FakeGpuRunner(Runner):
        backend_name = backend

        def activate_impl(self):
            self.session = _FakeSession() if with_session else None

        def deactivate_impl(self):
            self.session = None

        def infer_impl(self, feed):
            binding = {"x": np.array(feed["x"], copy=True)}  # "H2D"
            if self.session is not None:
                self.session.run_with_iobinding(binding)
            else:
                binding["y"] = binding["x"].sum(axis=1, keepdims=True)
            return {"y": binding["y"].copy()}  # "D2H"

        def get_input_metadata_impl(self):
            return [TensorMeta("x", "float32", (2, 5))]

        def get_output_metadata_impl(self):
            return [TensorMeta("y", "float32", (2, 1))]

        def describe(self):
            return {"backend": backend, "device": "cuda:0", "precision": "fp16", "cuda_graphs": True}

    return FakeGpuRunner()


@pytest.mark.parametrize("backend, with_session, mode", [("ort-cuda", True, "device"), ("torch", False, "opaque")])
def test_gpu_backends_report_only_the_phases_they_measure(monkeypatch, tmp_path, backend, with_session, mode, cli):
    import edgevqa.pipeline

    monkeypatch.setattr(edgevqa.pipeline, "make_runner", lambda *a, **k: _fake_runner(backend, with_session))
    model = "athqa_tiny" if backend == "torch" else _tiny_model(tmp_path / "m.onnx")
    code, out, err = cli("bench", f"--onnx={model}", f"--backend={backend}", "--device=cuda:0", *SHORT, "--json")
    assert code == 0, err
    report = json.loads(out)
    timing = report["timing"]
    assert report["settings"]["phase_timing"] == mode
    assert report["settings"]["cuda_graphs"] is True
    assert timing["enqueue"] is None and report["overhead"]["measured"] is False
    if mode == "device":
        assert timing["h2d"]["median"] > 0 and timing["d2h"]["median"] > 0
        assert report["model"]["precision"] == "fp32"  # read from the ONNX file
    else:
        assert timing["h2d"] is None and timing["d2h"] is None
        assert report["model"]["precision"] == "fp16"  # no file to read: the runner's word
    code, out, err = cli("bench", f"--onnx={model}", f"--backend={backend}", "--device=cuda:0", *SHORT)
    assert code == 0, err
    assert "Enqueue Time: not measured separately" in out
    assert ("H2D Latency: not measured separately" in out) == (mode == "opaque")
    assert "GPU Compute Time: min = " in out
