"""What the model saw as pictures (`edgevqa.input_images`) and `edgevqa score --save-inputs`."""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib

import numpy as np
import pytest

from edgevqa.input_images import GAP, GAP_VALUE, clip_pictures, png_bytes
from edgevqa.manifest import ViewSpec
from test_cli import run_cli  # noqa: E402  (tests/runtime is on the path, as for test_decode's helpers)


def read_png(data: bytes) -> np.ndarray:
    """An 8-bit RGB PNG written with filter 0 on every row (as `png_bytes` writes), read back independently."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, chunks = 8, {}
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        assert struct.unpack(">I", data[at + 8 + length:at + 12 + length])[0] == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        at += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 2) and b"IEND" in chunks
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, 1 + 3 * width)
    assert not rows[:, 0].any()
    return rows[:, 1:].reshape(height, width, 3)


@pytest.mark.parametrize("layout", ["NCTHW", "NTCHW"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_pictures_undo_the_normalisation(layout, dtype):
    view = ViewSpec(name="v", num_clips=2, clip_len=3, size=(9, 7), grid=(1, 1), patch=(9, 7), aligned=1,
                    layout=layout, dtype=dtype)
    rng = np.random.default_rng(4)
    frames = rng.integers(0, 256, (2, 3, 3, 9, 7)).astype(np.uint8)  # clip, channel, time, row, column
    mean = np.asarray(view.mean)[:, None, None, None]
    std = np.asarray(view.std)[:, None, None, None]
    array = ((frames - mean) / std).astype(dtype)
    if layout == "NTCHW":
        array = array.transpose(0, 2, 1, 3, 4)
    pictures = clip_pictures(array, view)
    assert len(pictures) == 2
    for clip, picture in zip(frames, pictures):
        assert picture.shape == (9, 3 * 7 + 2 * GAP, 3) and picture.dtype == np.uint8
        for t in range(3):
            left = t * (7 + GAP)
            assert np.array_equal(picture[:, left:left + 7], clip[:, t].transpose(1, 2, 0))
        assert (picture[:, 7:7 + GAP] == GAP_VALUE).all()
        assert np.array_equal(read_png(png_bytes(picture)), picture)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="5-D"):
        clip_pictures(np.zeros((3, 4, 5), np.float32), ViewSpec())
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(np.zeros((4, 5, 3), np.float32))


def test_score_saves_what_the_model_saw(tmp_path, small_clip, probe_model):
    from edgevqa.manifest import load_manifest
    from edgevqa.pipeline import Pipeline

    view = load_manifest(probe_model).views[0]
    folder = tmp_path / "seen"
    proc = run_cli("score", small_clip, small_clip, "--model", probe_model, "--save-inputs", folder, "--json")
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(f"{stem}.{view.name}.clip{k}.png" for stem in ("small", "small-2")
                           for k in range(view.num_clips))
    with Pipeline(probe_model, keep_inputs=True) as pipeline:
        result = pipeline.score(small_clip)
    assert result.inputs is not None and "inputs" not in result.to_dict()
    assert json.dumps(result.to_dict())  # still serialisable
    expected = clip_pictures(result.inputs[view.name], view)
    assert np.array_equal(read_png((folder / f"small.{view.name}.clip0.png").read_bytes()), expected[0])
    # nothing is replaced without --force, and that is said before any scoring
    proc = run_cli("score", small_clip, "--model", probe_model, "--save-inputs", folder)
    assert proc.returncode == 1 and "already exists" in proc.stderr and "--force" in proc.stderr
    assert run_cli("score", small_clip, "--model", probe_model, "--save-inputs", folder, "--force").returncode == 0
    afile = tmp_path / "file"
    afile.write_text("x")
    proc = run_cli("score", small_clip, "--model", probe_model, "--save-inputs", afile)
    assert proc.returncode == 1 and "not a directory" in proc.stderr


def test_pipeline_keeps_no_inputs_by_default(small_clip, probe_model):
    from edgevqa.pipeline import Pipeline

    with Pipeline(probe_model) as pipeline:
        assert pipeline.score(small_clip).inputs is None
    with Pipeline(probe_model, keep_inputs=True) as keeping:
        kept = keeping.score(small_clip)
    assert kept.inputs is not None and kept == dataclasses.replace(kept, inputs=None)  # equality ignores them
