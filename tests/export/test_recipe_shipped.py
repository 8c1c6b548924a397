"""The shipped default model: present, small, a valid manifest, TensorRT-parsable, scores a clip in 0..100."""

from __future__ import annotations

import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgevqa.manifest import load_manifest  # noqa: E402

SHIPPED = os.path.join(os.path.dirname(__file__), "..", "..", "runtime", "data", "default.onnx")
OUTPUTS = ("overall", "color", "noise", "artifact", "blur", "temporal")


@pytest.fixture(scope="module")
def shipped() -> str:
    path = os.path.abspath(SHIPPED)
    assert os.path.isfile(path), f"{path}: the default model is missing (python -m edgevqa.export.recipe.train)"
    return path


def test_shipped_model_is_small_and_carries_its_manifest(shipped):
    assert os.path.getsize(shipped) <= 10 * 1024 * 1024
    manifest = load_manifest(shipped)
    assert manifest.name == "edgevqa-default" and manifest.version
    assert tuple(manifest.outputs) == OUTPUTS
    assert manifest.score_range == (0.0, 100.0)
    assert set(manifest.rescale) == set(OUTPUTS)
    meta = dict(manifest.metadata)
    assert len(meta["recipe_hash"]) == 16 and meta["recipe"] == "edgevqa.export.recipe"
    assert isinstance(meta["seed"], int)
    view = manifest.views[0]
    assert view.kind == "fragments" and view.size == (224, 224)
    assert manifest.sample_bit_depth == 8  # trained on 8-bit video only: deeper video is rounded to 8 bits
    assert manifest.frame_rate == 25.0  # trained on 24 fps clips of 24 and 25 fps content
    assert manifest.scene_cuts == "avoid"


def test_shipped_graph_is_fused_and_tensorrt_parsable(shipped):
    model = onnx.load(shipped)
    onnx.checker.check_model(model)
    assert not [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    try:
        from edgevqa.export.graph import tensorrt_unsupported
    except ImportError:
        pytest.skip("edgevqa.export.graph is not available")
    assert tensorrt_unsupported(model) == []


def test_shipped_model_runs_on_onnx_runtime(shipped):
    manifest = load_manifest(shipped)
    view = manifest.views[0]
    session = ort.InferenceSession(shipped, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal(view.input_shape(2), dtype=np.float32)
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {view.name: x})))
    assert set(OUTPUTS) <= set(outputs)
    for name in OUTPUTS:
        assert outputs[name].shape[0] == 2 and np.all(np.isfinite(outputs[name]))
        # the graph bounds its scores itself (`lowlevel.bounded_score`), even on input unlike any video
        a, b = manifest.rescale[name]
        assert np.all((a * outputs[name] + b >= 0.0) & (a * outputs[name] + b <= 100.0))


def test_default_model_is_what_the_pipeline_uses(shipped, tmp_path):
    from edgevqa.pipeline import Pipeline, default_model_path
    from edgevqa.samples import write_clip

    installed = default_model_path()
    assert installed is not None and os.path.samefile(installed, shipped)
    clip = write_clip(tmp_path / "clip.mp4", width=256, height=240, num_frames=24, fps=24, crf=12)
    with Pipeline() as pipeline:
        first = pipeline.score(clip)
        second = pipeline.score(clip)
    assert first.model == "edgevqa-default"
    assert set(first.scores) == set(OUTPUTS)
    assert first.scores == second.scores  # deterministic plan: identical scores
    assert all(-20.0 < v < 120.0 for v in first.scores.values())  # the rescale maps to about 0..100
