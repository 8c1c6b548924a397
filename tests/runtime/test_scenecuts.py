"""Snippets of consecutive frames moved off scene cuts (`edgevqa.scenecuts`, `ModelManifest.scene_cuts`)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from edgevqa.manifest import ModelManifest, ViewSpec
from edgevqa.scenecuts import CutSignature, cut_signature, find_snippets, is_scene_cut

av = pytest.importorskip("av")

FPS = 24


def _signature(layout, luma_shift=0.0, chroma=(0.0, 0.0)) -> CutSignature:
    """A signature of a picture whose cells have mean brightness ``layout``, with a histogram as if the picture
    held those values (plus ``luma_shift``)."""
    layout = np.asarray(layout, float)
    luma, _ = np.histogram(layout + luma_shift, bins=32, range=(0, 256))
    cb, _ = np.histogram(np.full(layout.size, 128 + chroma[0]), bins=16, range=(0, 256))
    cr, _ = np.histogram(np.full(layout.size, 128 + chroma[1]), bins=16, range=(0, 256))
    return CutSignature(layout=layout, luma=luma / layout.size, chroma=np.stack([cb, cr]) / layout.size)


def test_what_is_a_cut():
    rng = np.random.default_rng(0)
    shot = rng.uniform(30, 220, (7, 7))
    other = rng.uniform(30, 220, (7, 7))
    assert is_scene_cut(_signature(shot), _signature(other, chroma=(40, -30)))
    # the same shot brighter (flicker): the layout correlates, whatever the histograms do
    assert not is_scene_cut(_signature(shot), _signature(shot * 1.3, luma_shift=20))
    # the same shot moved by a cell (a pan, shake, the jump after a held frame): histograms hardly change
    assert not is_scene_cut(_signature(shot), _signature(np.roll(shot, 1, axis=1)))
    # a flat picture (a fade through black) has no layout to tell
    assert not is_scene_cut(_signature(np.full((7, 7), 16.0)), _signature(other, chroma=(40, -30)))


def test_a_signature_reads_the_normalised_picture():
    view = ViewSpec(grid=(2, 2), patch=(4, 4), size=(8, 8), clip_len=1, aligned=1)
    rgb = np.zeros((3, 8, 8))
    rgb[:, :4, :4] = 200  # one bright cell
    normalised = (rgb - np.asarray(view.mean)[:, None, None]) / np.asarray(view.std)[:, None, None]
    signature = cut_signature(normalised.astype(np.float32), view, (2, 2))
    assert np.allclose(signature.layout, [[200, 0], [0, 0]], atol=1e-3)
    assert signature.luma.sum() == pytest.approx(1) and signature.luma[0] == pytest.approx(0.75)
    assert signature.chroma.shape == (2, 16) and signature.chroma[:, 7:9].sum() == pytest.approx(2)  # neutral


# ------------------------------------------------------------------------------------------ snippets


def _default_view():
    from edgevqa.pipeline import Pipeline

    return Pipeline().manifest.views[0]


def _plan(num_frames, view=None, start=0, end=None):
    from edgevqa.segments import segment_plans
    from edgevqa.video import VideoInfo

    info = VideoInfo(path="x", width=320, height=256, num_frames=num_frames, fps=FPS, duration=num_frames / FPS,
                     pix_fmt="yuv420p", codec="h264")
    return segment_plans([view or _default_view()], info, start, num_frames if end is None else end)[0]


def test_snippets_and_where_they_may_move():
    plan = _plan(96)  # the default view: two snippets of four consecutive frames
    snippets = find_snippets([plan])
    assert [(s.first, s.length, s.step) for s in snippets] == [(22, 4, 1), (70, 4, 1)]
    assert snippets[0].candidates == tuple(range(19, 29)) and snippets[1].candidates == tuple(range(67, 77))
    # within the frames a segment's plan covers, and short of the snippet beside it
    near = find_snippets([_plan(110, start=100, end=110)])
    assert all(100 <= f < 110 for s in near for f in s.candidates)
    assert near[0].candidates[-1] < near[1].first and near[1].candidates[0] > near[0].first + 3
    # a video shorter than a clip shows frames twice: such snippets stay where they are
    assert find_snippets([_plan(5)]) == []
    spaced = _plan(96, view=dataclasses.replace(_default_view(), frame_interval=2))
    assert [s.step for s in find_snippets([spaced])] == [2, 2]
    assert all((f - s.first) % 2 == 0 for s in find_snippets([spaced]) for f in s.candidates)


# ------------------------------------------------------------------------------------------ videos


def _shots(lengths, seed=0):
    """Frames of consecutive shots (the recipe's rendered scenes, each its own), ``lengths`` frames each."""
    from edgevqa.export.recipe.content import RenderedScene

    return np.concatenate([RenderedScene(name=f"shot-{k}", seed=seed + k).clip(np.random.default_rng(k), n)
                           for k, n in enumerate(lengths)])


def _write(path, frames):
    from edgevqa.samples import write_clip

    return write_clip(path, frames=frames, fps=FPS, qp=0, threads=1)


@pytest.fixture(scope="module")
def cut_clip(tmp_path_factory):
    """96 frames with cuts between frames 23 and 24 and between 59 and 60: the default plan's first snippet reads
    22-25, and in 2-second segments the second segment's first snippet reads 58-61."""
    return _write(tmp_path_factory.mktemp("cuts") / "cut.mp4", _shots([24, 36, 36]))


def _inputs(video, **options):
    from edgevqa.pipeline import Pipeline

    with Pipeline(keep_inputs=True, **options) as pipeline:
        return pipeline.score(video)


def test_a_snippet_across_a_cut_reads_the_nearest_window_without_it(cut_clip, tmp_path):
    avoided = _inputs(cut_clip)  # the shipped model avoids cuts
    kept = _inputs(cut_clip, scene_cuts="keep")
    # 20-23 and 24-27 are as near: the earlier is read
    assert avoided.moved_snippets == [{"view": "video", "planned": [22, 25], "read": [20, 23]}]
    assert kept.moved_snippets == []
    # what was read: frames 20-23 in the first snippet's positions, exactly as a plan reading them would
    from edgevqa.decode import PyAVDecoder
    from edgevqa.feed import sample_plans

    with PyAVDecoder(cut_clip) as decoder:
        plan = _plan(96)
        moved = dataclasses.replace(plan, frame_indices=np.where(plan.frame_indices < 30, plan.frame_indices - 2,
                                                                 plan.frame_indices))
        want = sample_plans(decoder, [moved]).arrays[0]
    assert np.array_equal(avoided.inputs["video"], want)
    assert not np.array_equal(kept.inputs["video"], want)
    # the default model read the cut as a temporal flaw
    assert kept.scores["temporal"] < avoided.scores["temporal"] - 20
    assert json.loads(json.dumps(avoided.to_dict()))["moved_snippets"] == avoided.moved_snippets


def test_without_cuts_nothing_moves(tmp_path):
    clip = _write(tmp_path / "one-shot.mp4", _shots([60]))
    avoided, kept = _inputs(clip), _inputs(clip, scene_cuts="keep")
    assert avoided.moved_snippets == [] and np.array_equal(avoided.inputs["video"], kept.inputs["video"])
    assert avoided.scores == kept.scores


def test_cuts_everywhere_leave_the_plan_alone(tmp_path):
    clip = _write(tmp_path / "flashes.mp4", _shots([1] * 40))  # a new shot every frame
    result = _inputs(clip)
    assert result.moved_snippets == []
    assert np.array_equal(result.inputs["video"], _inputs(clip, scene_cuts="keep").inputs["video"])


def test_segments_time_ranges_and_streams_move_snippets_as_their_cuts_would(cut_clip, tmp_path):
    """A segment, a part and a live stream's segment read what the same frames encoded alone read."""
    from edgevqa.pipeline import Pipeline

    from fractions import Fraction

    part = str(tmp_path / "part.mp4")  # frames 12-59, losslessly: the cut at 11|12 of it
    with av.open(cut_clip) as source, av.open(part, "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 320, 256, "yuv420p"
        stream.options = {"qp": "0", "threads": "1"}
        for i, frame in enumerate(list(source.decode(video=0))[12:60]):
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with Pipeline(segment_seconds=2.0) as pipeline:
        segments = pipeline.score(cut_clip).segments
    with Pipeline(time_range=(0.5, 2.5)) as pipeline:
        ranged = pipeline.score(cut_clip)
    with Pipeline() as pipeline:
        alone = pipeline.score(part)
        streamed = list(pipeline.score_stream(cut_clip, seconds=2.0))
    assert alone.moved_snippets, "the part's own plan must straddle its cut for this test to say anything"
    assert ranged.scores == alone.scores and ranged.moved_snippets == [
        {**m, "planned": [f + 12 for f in m["planned"]], "read": [f + 12 for f in m["read"]]}
        for m in alone.moved_snippets]
    assert [s["scores"] for s in streamed] == [s["scores"] for s in segments]
    with Pipeline(segment_seconds=2.0, scene_cuts="keep") as pipeline:
        kept = pipeline.score(cut_clip).segments
    assert kept[0]["scores"] == segments[0]["scores"]  # no cut in its snippets
    assert kept[1]["scores"]["temporal"] < segments[1]["scores"]["temporal"] - 20  # its first snippet moved


def test_the_manifest_and_the_command_line_choose(cut_clip, tmp_path, capsys):
    from edgevqa.cli import main
    from edgevqa.errors import ManifestError

    manifest = ModelManifest(name="m", views=(ViewSpec(),), scene_cuts="avoid")
    assert ModelManifest.from_json(manifest.to_json()).scene_cuts == "avoid"
    assert "scene_cuts" not in ModelManifest(name="m", views=(ViewSpec(),)).to_dict()  # "keep", as before
    with pytest.raises(ManifestError, match="scene_cuts"):
        ModelManifest(name="m", views=(ViewSpec(),), scene_cuts="sometimes")
    with pytest.raises(ValueError, match="scene_cuts"):
        _inputs(cut_clip, scene_cuts="skip")
    for flag, moved in ((), True), (("--scene-cuts", "keep"), False), (("--scene-cuts", "avoid"), True):
        assert main(["score", cut_clip, "--json", "--quiet", *flag]) == 0
        assert bool(json.loads(capsys.readouterr().out)["moved_snippets"]) == moved
