import json

import onnx
import pytest

from edgevqa.errors import ManifestError, ModelError
from edgevqa.manifest import (ModelManifest, ViewSpec, embed_in_onnx, load_manifest,
                              read_sidecar, write_sidecar)
from edgevqa.testing import default_probe_manifest, probe_model_proto


def test_round_trip_through_json_and_onnx(tmp_path):
    m = default_probe_manifest()
    again = ModelManifest.from_json(m.to_json())
    assert again == m
    path = tmp_path / "m.onnx"
    onnx.save(probe_model_proto(m), path)
    assert load_manifest(path) == m
    # embedding twice keeps one manifest entry
    model = onnx.load(path)
    embed_in_onnx(model, m.with_views(dtype="float32"))
    assert sum(p.key == "edgevqa.manifest" for p in model.metadata_props) == 1


def test_sidecar_wins_and_missing_manifest_is_clear(tmp_path):
    m = default_probe_manifest()
    bare = tmp_path / "bare.onnx"
    onnx.save(probe_model_proto(m, embed_manifest=False), bare)
    with pytest.raises(ManifestError, match="carries no edgevqa manifest"):
        load_manifest(bare)
    write_sidecar(bare, m)
    assert load_manifest(bare) == m
    assert read_sidecar(bare) == m
    with pytest.raises(ManifestError, match="no manifest found"):
        read_sidecar(tmp_path / "engine.plan")


@pytest.mark.parametrize("bad, match", [
    (dict(kind="nope"), "kind must be"),
    (dict(clip_len=0), "clip_len must be a positive"),
    (dict(kind="fragments", grid=7, patch=32, size=(200, 224)), "must equal grid x patch"),
    (dict(clip_len=10, segments_per_clip=4), "not a multiple"),
    (dict(std=(1.0, 0.0, 1.0)), "std positive"),
    (dict(layout="NHWC"), "layout must be"),
])
def test_view_validation(bad, match):
    with pytest.raises(ManifestError, match=match):
        ViewSpec(**bad)


def test_manifest_validation_messages():
    v = ViewSpec()
    with pytest.raises(ManifestError, match="no views"):
        ModelManifest(name="x", views=())
    with pytest.raises(ManifestError, match="rescale names unknown"):
        ModelManifest(name="x", views=(v,), outputs=("overall",), rescale={"blur": (1, 0)})
    with pytest.raises(ManifestError, match="unknown keys"):
        ModelManifest.from_dict({"name": "x", "views": [v.to_dict()], "colour": 1})
    with pytest.raises(ManifestError, match="not valid JSON"):
        ModelManifest.from_json("{", "file.json")
    with pytest.raises(ManifestError, match="format version 99"):
        ModelManifest.from_dict({"name": "x", "views": [v.to_dict()], "format_version": 99})


def test_corrupt_onnx_is_model_error(tmp_path):
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(ModelError, match="corrupt.onnx"):
        load_manifest(bad)


def test_input_shapes_per_layout():
    v = ViewSpec(num_clips=4, clip_len=16, layout="NTCHW")
    assert v.input_shape() == (4, 16, 3, 224, 224)
    assert ViewSpec(num_clips=2).input_shape(5) == (5, 3, 32, 224, 224)
    assert json.loads(default_probe_manifest().to_json())["views"][0]["kind"] == "fragments"


def test_scores_are_rescaled_and_clamped_to_the_documented_range():
    m = ModelManifest(name="x", views=(ViewSpec(),), outputs=("overall", "blur"), rescale={"overall": (25, 50)},
                      score_range=(0, 100))
    assert m.score("overall", 1.0) == 75.0
    assert m.score("overall", 3.0) == 100.0 and m.score("overall", -3.0) == 0.0
    assert m.score("blur", 0.5) == 0.5
    assert ModelManifest(name="y", views=(ViewSpec(),)).score("overall", 250.0) == 250.0
