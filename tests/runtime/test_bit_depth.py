"""Deeper video rounded to a model's sample precision (`ModelManifest.sample_bit_depth`, `reduce_bit_depth`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgevqa.decode import reduce_bit_depth
from edgevqa.errors import ManifestError
from edgevqa.manifest import ModelManifest

av = pytest.importorskip("av")


def reference_reduce(plane: np.ndarray, depth: int, target: int) -> np.ndarray:
    """One sample at a time: round half up, clamp to the top code."""
    shift = depth - target
    out = np.empty(plane.shape, np.uint8 if target == 8 else np.uint16)
    for index, value in np.ndenumerate(plane):
        out[index] = min((int(value) + (1 << (shift - 1))) >> shift, (1 << target) - 1)
    return out


@pytest.mark.parametrize("depth, target", [(10, 8), (12, 8), (16, 8), (12, 10), (9, 8)])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (17, 9)])
def test_matches_the_reference(depth, target, shape):
    rng = np.random.default_rng([depth, target, *shape])
    planes = [rng.integers(0, 1 << depth, shape).astype(np.uint16) for _ in range(3)]
    planes[1] = np.asfortranarray(planes[1])  # any layout
    wide = rng.integers(0, 1 << depth, (shape[0], 3 * shape[1])).astype(np.uint16)
    planes[2] = wide[:, 1::3]  # a strided view, as packed RGB's channels are
    got = reduce_bit_depth(planes, depth, target)
    for plane, reduced in zip(planes, got):
        assert reduced.dtype == (np.uint8 if target == 8 else np.uint16)
        assert np.array_equal(reduced, reference_reduce(plane, depth, target))


def test_levels_map_onto_each_other():
    codes = np.array([[0, 1, 2, 64, 940, 960, 1021, 1022, 1023]], np.uint16)
    assert reduce_bit_depth([codes] * 3, 10, 8)[0].tolist() == [[0, 0, 1, 16, 235, 240, 255, 255, 255]]


def test_grey_video_keeps_a_neutral_chroma():
    luma = np.full((4, 6), 700, np.uint16)
    mid = np.lib.stride_tricks.as_strided(np.full((1, 1), 512, np.uint16), shape=luma.shape, strides=(0, 0))
    y, u, v = reduce_bit_depth([luma, mid, mid], 10, 8, shared_chroma=True)
    assert y.dtype == np.uint8 and (y == 175).all() and u.shape == luma.shape and (u == 128).all() and (v == 128).all()


def test_manifest_field_round_trips_and_is_checked(probe_model):
    from edgevqa.manifest import load_manifest

    manifest = load_manifest(probe_model)
    assert manifest.sample_bit_depth is None and "sample_bit_depth" not in manifest.to_dict()
    eight = dataclasses.replace(manifest, sample_bit_depth=8)
    assert ModelManifest.from_dict(eight.to_dict()) == eight and eight.to_dict()["sample_bit_depth"] == 8
    for bad in (7, 17, 8.0, "8", True):
        with pytest.raises(ManifestError, match="sample_bit_depth"):
            dataclasses.replace(manifest, sample_bit_depth=bad)


def _write(path, frames: list[list[np.ndarray]], pix_fmt: str) -> str:
    """A lossless (QP 0) H.264 clip whose decoded planes are exactly ``frames`` (per frame: Y, U, V)."""
    dtype = np.uint8 if pix_fmt == "yuv420p" else np.dtype("<u2")
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.height, stream.width = frames[0][0].shape
        stream.pix_fmt = pix_fmt
        stream.options = {"qp": "0"}
        for i, planes in enumerate(frames):
            frame = av.VideoFrame(stream.width, stream.height, pix_fmt)
            for target, values in zip(frame.planes, planes):
                rows = np.frombuffer(target, dtype).reshape(target.height, -1)
                rows[:, : values.shape[1]] = values
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return str(path)


def test_a_model_at_8_bits_scores_10_bit_video_as_its_8_bit_rounding(tmp_path, probe_model):
    from edgevqa.manifest import load_manifest
    from edgevqa.pipeline import Pipeline
    from edgevqa.testing import make_probe_model

    rng = np.random.default_rng(11)
    height, width = 70, 102
    y, x = np.mgrid[0:height, 0:width]
    deep = []
    for t in range(12):  # smooth pictures with fine 10-bit steps, in limited range
        luma = 64 + 400 + 300 * np.sin(x / 9 + t / 3) * np.cos(y / 13) + rng.integers(0, 4, (height, width))
        chroma = 512 + 200 * np.sin(x[::2, ::2] / 7 - t / 4) * np.cos(y[::2, ::2] / 5)
        deep.append([luma.astype(np.uint16), chroma.astype(np.uint16), (1024 - chroma).astype(np.uint16)])
    ten = _write(tmp_path / "ten.mp4", deep, "yuv420p10le")
    eight = _write(tmp_path / "eight.mp4", [reduce_bit_depth(planes, 10, 8) for planes in deep], "yuv420p")
    at_eight = make_probe_model(tmp_path / "eight-bit.onnx",
                                dataclasses.replace(load_manifest(probe_model), sample_bit_depth=8))
    with Pipeline(at_eight) as pipeline:
        rounded, reference = pipeline.prepare(ten), pipeline.prepare(eight)
        assert rounded.info["bit_depth"] == 10  # the video's own depth is still reported
        assert all(np.array_equal(rounded.feed[k], reference.feed[k]) for k in reference.feed)
        assert pipeline.score(ten).scores == pipeline.score(eight).scores
        stream_scores = [s["scores"] for s in pipeline.score_stream(ten, 0.6)]
        assert stream_scores == [s["scores"] for s in pipeline.score_stream(eight, 0.6)]
    with Pipeline(probe_model) as full_precision:  # no sample_bit_depth: the 10-bit samples are used as they are
        assert not all(np.array_equal(full_precision.prepare(ten).feed[k], reference.feed[k]) for k in reference.feed)
