"""Quantizing the zoo's models: a small SimpleVQA export (two inputs, ResNet-50 + SlowFast) and the shipped
default model. Slow: the SimpleVQA export alone takes about a minute on two cores."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgevqa.manifest import load_manifest

from calib_media import write_graded_clip

pytestmark = pytest.mark.slow


def _all_zero_points_zero(path: str) -> bool:
    model = onnx.load(path)
    initializers = {i.name: i for i in model.graph.initializer}
    return all(not np.any(numpy_helper.to_array(initializers[n.input[2]]))
               for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear"))


def _clips(folder, gradings, seed0):
    os.makedirs(folder, exist_ok=True)
    for i, (gain, offset) in enumerate(gradings):
        write_graded_clip(folder / f"clip{i}.mp4", gain, offset, seed=seed0 + i, width=96, height=80, frames=14)
    return str(folder)


def test_simplevqa_export_quantizes_and_runs(tmp_path):
    pytest.importorskip("torch", reason="exporting SimpleVQA needs the 'export' extra (torch)")
    from edgevqa.export import export_onnx, list_models

    if "simplevqa" not in list_models():
        pytest.skip("the model zoo has no 'simplevqa'")
    from edgevqa.calib import QuantizeOptions, quantize_model
    from edgevqa.pipeline import Pipeline

    fp32 = tmp_path / "simplevqa.onnx"
    # Two one-second clips per video, 64-pixel views, 8-frame motion clips: the full networks at a small size.
    export_onnx("simplevqa", fp32, model_kwargs=dict(frames=2, crop=64, short_side=72, motion_size=64,
                                                     motion_frames=8))
    calib = _clips(tmp_path / "calib", [(1.0, 0.0), (0.4, -50.0), (1.8, 40.0)], 0)
    holdout = _clips(tmp_path / "holdout", [(0.7, 50.0), (1.0, 0.0), (2.0, -50.0)], 200)
    out = tmp_path / "simplevqa.int8.onnx"
    report = quantize_model(fp32, calib, out, QuantizeOptions(
        samples=3, per_channel=True, reduce_range=True, holdout=holdout, min_srcc=-1.0, use_cache=False,
        sensitivity=0))
    assert report.written == str(out) and _all_zero_points_zero(str(out))
    assert [v.name for v in load_manifest(out).views] == ["spatial", "motion"]
    assert report.qdq["quantized_nodes"] > 100
    videos = report.gate.videos
    with Pipeline(out) as pipeline:
        scores = [pipeline.score(v).scores["overall"] for v in videos]
    assert np.all(np.isfinite(scores))
    np.testing.assert_allclose(scores, report.gate.int8_scores["overall"], rtol=1e-6)
    fp32_scores = np.array(report.gate.fp32_scores["overall"])
    assert np.abs(np.array(scores) - fp32_scores).max() == pytest.approx(report.gate.max_abs_diff["overall"])


def test_default_model_quantizes_and_runs(tmp_path):
    from edgevqa.pipeline import Pipeline, default_model_path

    model = default_model_path()
    if model is None:
        pytest.skip("this installation ships no default model (runtime/data/default.onnx)")
    from edgevqa.calib import QuantizeOptions, quantize_model

    calib = _clips(tmp_path / "calib", [(1.0, 0.0), (0.4, -50.0), (1.8, 40.0)], 0)
    out = tmp_path / "default.int8.onnx"
    report = quantize_model(model, calib, out, QuantizeOptions(samples=4, per_channel=True, reduce_range=True,
                                                               use_cache=False))
    assert _all_zero_points_zero(str(out))
    assert load_manifest(out).views == load_manifest(model).views
    video = os.path.join(calib, "clip0.mp4")
    with Pipeline(model) as fp32, Pipeline(out) as int8:
        a, b = fp32.score(video).scores, int8.score(video).scores
    assert a.keys() == b.keys() and all(np.isfinite(list(b.values())))
    assert report.qdq["quantized_nodes"] > 0
