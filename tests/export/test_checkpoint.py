"""Checkpoint round trips, strict loading of bare state dicts, and the export CLI on a checkpoint file."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edgevqa.errors import ModelError  # noqa: E402
from edgevqa.export.checkpoint import (CheckpointMismatchError, load_checkpoint, load_state_dict_strict,  # noqa: E402
                                       save_checkpoint)
from edgevqa.export.models import create_model  # noqa: E402
from edgevqa.manifest import load_manifest  # noqa: E402


def _perturbed_tiny(**kwargs):
    model = create_model("athqa_tiny", **kwargs)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.01)
    return model


def test_save_and_load_round_trip(tmp_path):
    model = _perturbed_tiny(frames=4, grid=3)
    path = save_checkpoint(model, tmp_path / "tiny.pt", extra={"epoch": 3})
    loaded = load_checkpoint(path)
    assert loaded.model_name == "athqa_tiny" and loaded.manifest == model.manifest
    x = torch.randn(2, 3, 4, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for name, value in model(x).items():
            torch.testing.assert_close(loaded(x)[name], value, rtol=0, atol=0)
    # Input geometry is not in the weights: a checkpoint rebuilds for another frame count.
    assert load_checkpoint(path, frames=8).manifest.views[0].clip_len == 8
    with pytest.raises(ModelError, match="refusing to overwrite"):
        save_checkpoint(model, path)


def test_fused_models_neither_save_nor_load(tmp_path):
    fused = create_model("athqa_tiny").fuse()
    with pytest.raises(ModelError, match="unfused"):
        save_checkpoint(fused, tmp_path / "fused.pt")
    with pytest.raises(ModelError, match="fused model"):
        load_state_dict_strict(fused, create_model("athqa_tiny").state_dict())


def test_bare_state_dict_needs_a_variant_and_must_fit(tmp_path):
    state = _perturbed_tiny().state_dict()
    bare = tmp_path / "bare.pth"
    torch.save({"state_dict": state, "epoch": 1}, bare)
    with pytest.raises(ModelError, match="does not say which model"):
        load_checkpoint(bare)
    assert load_checkpoint(bare, "athqa_tiny").model_name == "athqa_tiny"
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(bare, "athqa_base")
    mismatch = info.value.mismatch
    assert mismatch.misshaped and "mis-shaped" in str(info.value) and "athqa_base" in str(info.value)


def test_unreadable_files_raise_model_errors(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a readable torch checkpoint"):
        load_checkpoint(junk, "athqa_tiny")
    with pytest.raises(ModelError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pth", "athqa_tiny")
    torch.save({"epoch": 3}, tmp_path / "empty.pth")
    with pytest.raises(ModelError, match="holds no state dict"):
        load_checkpoint(tmp_path / "empty.pth", "athqa_tiny")


def test_cli_exports_a_checkpoint(tmp_path, capsys):
    from edgevqa.cli import main

    ckpt = save_checkpoint(_perturbed_tiny(frames=2), tmp_path / "trained.pt")
    out = tmp_path / "trained.onnx"
    assert main(["export", ckpt, "--out", str(out), "--fp16", "--io-dtype", "float16"]) == 0
    assert "FP16" in capsys.readouterr().out
    manifest = load_manifest(out)
    assert manifest.name == "athqa_tiny" and manifest.views[0].dtype == "float16" and manifest.views[0].clip_len == 2
    assert main(["export", "athqa_tiny", "--out", str(tmp_path / "x.onnx"), "--io-dtype", "float16"]) == 1
    assert "need an FP16 export" in capsys.readouterr().err
