"""edgevqa quantize on a small torch-exported conv net and generated clips."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgevqa.cli import main
from edgevqa.manifest import MANIFEST_METADATA_KEY, load_manifest

# Per-channel weights need 7-bit range on x86 CPUs without VNNI (see the --reduce-range help).
ACCURATE = ["--per-channel", "--reduce-range"]


def run_cli(capsys, *args):
    code = main(["quantize", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def zero_points(model):
    initializers = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            yield node, initializers[node.input[2]]


@pytest.fixture(scope="module")
def quantized(small_net, calib_clips, holdout_clips, tmp_path_factory):
    folder = tmp_path_factory.mktemp("quantized")
    before = sha256(small_net)
    out = folder / "net.int8.onnx"
    report_path = folder / "report.json"
    code = main(["quantize", small_net, "--calib", calib_clips, "--holdout", holdout_clips, "--out", str(out),
                 "--samples", "8", *ACCURATE, "--cache-dir", str(folder / "cache"), "--json", str(report_path)])
    return {"code": code, "out": str(out), "report": json.loads(report_path.read_text()), "before": before}


def test_quantized_model_is_symmetric_int8_qdq(quantized, small_net):
    assert quantized["code"] == 0
    model = onnx.load(quantized["out"])
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > 0
    seen = set()
    for node, zp in zero_points(model):
        assert np.all(zp == 0), node.name
        seen.add(zp.dtype.name)
    assert seen <= {"int8", "int32"} and "int8" in seen  # int32 only for biases
    initializers = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    for conv in (n for n in model.graph.node if n.op_type in ("Conv", "Gemm")):
        weight_dq = producers[conv.input[1]]
        assert weight_dq.op_type == "DequantizeLinear"
        assert initializers[weight_dq.input[0]].data_type == onnx.TensorProto.INT8
        assert producers[conv.input[0]].op_type == "DequantizeLinear"
    assert sha256(small_net) == quantized["before"]  # the input model is untouched


def test_manifest_is_carried_over(quantized, small_net):
    source, int8 = load_manifest(small_net), load_manifest(quantized["out"])
    assert (int8.name, int8.version, int8.views, int8.outputs, int8.rescale) == (
        source.name, source.version, source.views, source.outputs, source.rescale)
    record = int8.metadata["quantization"]
    assert record["per_channel"] and record["symmetric"] and record["samples"] == 8
    assert record["gate"]["passed"] is True
    keys = [p.key for p in onnx.load(quantized["out"]).metadata_props]
    assert keys.count(MANIFEST_METADATA_KEY) == 1


def test_gate_passes_and_int8_scores_close_to_fp32(quantized, small_net, holdout_clips):
    from edgevqa.pipeline import Pipeline

    gate = quantized["report"]["gate"]
    assert gate["passed"] and all(v >= 0.99 for v in gate["srcc"].values())
    videos = sorted(os.path.join(holdout_clips, f) for f in os.listdir(holdout_clips))
    with Pipeline(small_net) as fp32, Pipeline(quantized["out"]) as int8:
        reference = [fp32.score(v).scores for v in videos]
        candidate = [int8.score(v).scores for v in videos]
    for name in reference[0]:
        a = np.array([r[name] for r in reference])
        b = np.array([r[name] for r in candidate])
        # Close relative to how far apart the videos are: a fifth of the FP32 spread at most.
        assert np.abs(a - b).max() < 0.2 * (a.max() - a.min()), name
        assert not np.array_equal(a, b)  # it really ran quantized
        assert np.abs(a - b).max() == pytest.approx(gate["max_abs_diff"][name])


def test_gate_failure_exits_nonzero_and_keeps_out_clean(small_net, calib_clips, holdout_clips, tmp_path, capsys):
    out = tmp_path / "net.int8.onnx"
    code, stdout, stderr = run_cli(capsys, small_net, "--calib", calib_clips, "--holdout", holdout_clips, "--out",
                                   out, "--samples", "4", "--min-srcc", "1.01", "--cache-dir", tmp_path / "cache",
                                   "--sensitivity-samples", "2")
    assert code == 3
    assert not out.exists()
    failed = tmp_path / "net.int8.gate-failed.onnx"
    assert failed.exists()
    assert "failed the accuracy gate" in stderr and str(failed) in stderr
    assert "gate: FAILED" in stdout and "sensitivity:" in stdout  # the listing comes with a failed gate
    assert load_manifest(failed).metadata["quantization"]["gate"]["passed"] is False


def test_cache_is_hit_on_second_run(small_net, calib_clips, tmp_path, capsys):
    cache = tmp_path / "cache"

    def report(method, *extra):
        path = tmp_path / f"r{len(list(tmp_path.glob('r*.json')))}.json"
        code, _, _ = run_cli(capsys, small_net, "--calib", calib_clips, "--out", tmp_path / "m.onnx", "--force",
                             "--samples", "3", "--method", method, "--cache-dir", cache, "--json", path, *extra)
        assert code == 0
        return json.loads(path.read_text())["calibration"]

    first = report("minmax")
    assert not first["inputs_cache_hit"] and not first["ranges_cache_hit"]
    other_method = report("entropy")
    assert other_method["inputs_cache_hit"] and not other_method["ranges_cache_hit"]
    again = report("entropy", "--exclude", "Gemm", "--per-channel")
    assert again["inputs_cache_hit"] and again["ranges_cache_hit"]
    no_cache = report("minmax", "--no-cache")
    assert not no_cache["inputs_cache_hit"] and not no_cache["ranges_cache_hit"]
    # Three seeds over the four calibration clips: one sample per clip for the first three.
    assert first["samples"] == 3 and [s["seed"] for s in first["sources"]] == [None, None, None]


def test_samples_beyond_videos_use_several_plan_seeds(small_net, calib_clips, tmp_path):
    from edgevqa.calib import QuantizeOptions, quantize_model

    report = quantize_model(small_net, calib_clips, tmp_path / "m.onnx",
                            QuantizeOptions(samples=10, cache_dir=str(tmp_path / "cache")))
    sources = report.calibration["sources"]
    assert len(sources) == 10
    per_video = {}
    for s in sources:
        per_video.setdefault(s["video"], []).append(s["seed"])
    assert all(seeds[0] is None and len(set(seeds)) == len(seeds) for seeds in per_video.values())
    assert max(len(s) for s in per_video.values()) == 3


def test_exclude_keeps_nodes_in_float(small_net, calib_clips, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    code, stdout, _ = run_cli(capsys, small_net, "--calib", calib_clips, "--out", out, "--samples", "2",
                              "--exclude", "Gemm", "/stem/stem.0/Conv", "--no-cache")
    assert code == 0 and "kept in float (--exclude): 2 node(s)" in stdout
    model = onnx.load(out)
    producers = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.op_type == "Gemm" or node.name == "/stem/stem.0/Conv":
            assert all(producers.get(i) is None or producers[i].op_type != "DequantizeLinear" for i in node.input)


def test_single_node_models_span_float_to_int8(small_net, calib_clips, tmp_path):
    """`only_quantized` with no node kept is the float model, with every node kept the INT8 model."""
    import onnxruntime as ort

    from edgevqa.calib import QuantizeOptions, quantize_model
    from edgevqa.calib.quantize import qdq_summary
    from edgevqa.calib.sensitivity import only_quantized

    out = tmp_path / "m.onnx"
    quantize_model(small_net, calib_clips, out, QuantizeOptions(samples=2, cpu_layout=False, use_cache=False))
    int8 = onnx.load(out)
    float_model = onnx.load(small_net)
    feed = {"video": np.random.default_rng().normal(0, 1, (1, 3, 4, 64, 64)).astype(np.float32)}

    def run(model):
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return session.run(None, feed)

    names = [n for n, _ in qdq_summary(int8)["quantized"]]
    for a, b in zip(run(only_quantized(int8, float_model, [])), run(float_model)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(run(only_quantized(int8, float_model, names)), run(int8)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", ["no_videos", "unreadable_video", "no_manifest", "out_exists", "overlap",
                                  "too_few_holdout", "unknown_exclude", "out_is_input"])
def test_bad_input_is_one_line_error(case, small_net, calib_clips, holdout_clips, tmp_path, capsys):
    model, calib, holdout, out = small_net, calib_clips, None, tmp_path / "out.onnx"
    extra: list[str] = []
    if case == "no_videos":
        calib = tmp_path / "empty"
        calib.mkdir()
    elif case == "unreadable_video":
        calib = tmp_path / "bad"
        calib.mkdir()
        (calib / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    elif case == "no_manifest":
        bare = onnx.load(small_net)
        del bare.metadata_props[:]
        model = tmp_path / "bare.onnx"
        onnx.save(bare, model)
    elif case == "out_exists":
        out.write_bytes(b"keep me")
    elif case == "overlap":
        holdout = tmp_path / "held"
        shutil.copytree(holdout_clips, holdout)
        shutil.copy(os.path.join(calib_clips, sorted(os.listdir(calib_clips))[0]), holdout / "copy.mp4")
    elif case == "too_few_holdout":
        holdout = os.path.join(holdout_clips, sorted(os.listdir(holdout_clips))[0])
    elif case == "unknown_exclude":
        extra = ["--exclude", "NoSuchNode"]
    elif case == "out_is_input":
        out = small_net
    args = [model, "--calib", calib, "--out", out, "--samples", "2", "--no-cache", *extra]
    if holdout is not None:
        args += ["--holdout", holdout]
    code, stdout, stderr = run_cli(capsys, *args)
    assert code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgevqa: error: "), stderr
    expected_name = {"no_videos": calib, "unreadable_video": "broken.mp4", "no_manifest": model, "out_exists": out,
                     "overlap": "--holdout", "too_few_holdout": "--holdout", "unknown_exclude": "NoSuchNode",
                     "out_is_input": "input model"}[case]
    assert str(expected_name) in lines[0]
    if case == "out_exists":
        assert out.read_bytes() == b"keep me"
