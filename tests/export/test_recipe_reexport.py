"""Re-exporting trained default-model weights with the current graph (`edgevqa.export.recipe.reexport`)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgevqa.errors import ModelError  # noqa: E402
from edgevqa.export.recipe import reexport, train  # noqa: E402
from edgevqa.manifest import load_manifest  # noqa: E402


def _run(path: str, x: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"video": x})))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[str, np.ndarray]:
    """An exported default model with weights no construction gives (random heads, a set standardisation)."""
    model, manifest = train.build_model(train.RecipeConfig(), seed=3)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(manifest.views[0].input_shape(3), dtype=np.float32)
    with torch.no_grad():
        features = model.features(torch.from_numpy(x))
        model.set_feature_statistics(torch.cat([features, features * 1.5 + 0.1]))
        for name, parameter in model.named_parameters():
            parameter.add_(torch.from_numpy(rng.normal(0, 0.3, tuple(parameter.shape)).astype(np.float32)))
    from dataclasses import replace

    manifest = replace(manifest, metadata={**dict(manifest.metadata), "seed": 3, "steps": 7, "recipe_hash": "0" * 16})
    path = str(tmp_path_factory.mktemp("trained") / "trained.onnx")
    train.export_default(model, manifest, path)
    return path, x


def test_reexport_reproduces_the_source_model(trained, tmp_path):
    source, x = trained
    out = reexport.reexport(source, str(tmp_path / "again.onnx"))
    before, after = _run(source, x), _run(out, x)
    assert set(before) == set(after)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])
    manifest = load_manifest(out)
    meta = dict(manifest.metadata)
    assert manifest.version == train.MODEL_VERSION
    assert meta["seed"] == 3 and meta["steps"] == 7
    assert meta["weights_from"].endswith(f"(recipe hash {'0' * 16})")
    assert len(meta["recipe_hash"]) == 16 and meta["recipe_hash"] != "0" * 16
    # the weights really came from the file: a fresh net scores otherwise
    fresh = str(tmp_path / "fresh.onnx")
    model, manifest = train.build_model(train.RecipeConfig(), seed=3)
    train.export_default(model, manifest, fresh)
    assert not np.allclose(_run(fresh, x)["noise"], after["noise"])


def test_reexport_refuses_what_it_cannot_use(trained, tmp_path):
    source, _ = trained
    with pytest.raises(ValueError, match="also --weights"):
        reexport.reexport(source, source, overwrite=True)
    existing = tmp_path / "kept.onnx"
    existing.write_bytes(b"the user's file")
    with pytest.raises(FileExistsError):
        reexport.reexport(source, str(existing))
    assert existing.read_bytes() == b"the user's file"
    # an ONNX model of another net: no trained head tensors to take
    other = tmp_path / "other.onnx"
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["video"], ["overall"])], "g",
                                   [onnx.helper.make_tensor_value_info("video", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info("overall", onnx.TensorProto.FLOAT, [1])])
    proto = onnx.helper.make_model(graph)
    from edgevqa.manifest import embed_in_onnx

    embed_in_onnx(proto, load_manifest(source))
    onnx.save(proto, str(other))
    with pytest.raises(ModelError, match="not an export of this net"):
        reexport.reexport(str(other), str(tmp_path / "x.onnx"))
    assert reexport.main(["--weights", str(other), "--out", str(tmp_path / "y.onnx")]) == 1
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "y.onnx").exists()
