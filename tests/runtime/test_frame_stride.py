"""Video faster than the model's frame rate read at a stride (`edgevqa.sampling.frame_stride`,
`ModelManifest.frame_rate`, `Pipeline(frame_stride=)`)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from edgevqa.errors import ManifestError, PlanError
from edgevqa.manifest import ModelManifest, ViewSpec
from edgevqa.sampling import check_frame_stride, frame_stride, views_at_stride

av = pytest.importorskip("av")

FPS = 24


def test_the_stride_is_the_nearest_whole_ratio():
    at_25 = {23.976: 1, 24: 1, 25: 1, 29.97: 1, 30: 1, 37.4: 1, 37.5: 2, 48: 2, 50: 2, 59.94: 2, 60: 2, 90: 4,
             100: 4, 119.88: 5, 120: 5, 240: 10}
    assert {fps: frame_stride(fps, 25.0) for fps in at_25} == at_25
    assert frame_stride(10, 25.0) == 1  # slower video is read frame by frame: no frame can be made up
    # a model without a frame rate, or a video without one, reads every frame
    assert frame_stride(60, None) == 1 and frame_stride(0, 25.0) == 1 and frame_stride(float("nan"), 25.0) == 1
    assert check_frame_stride(None) == check_frame_stride("model") == "model"
    assert check_frame_stride(3) == check_frame_stride("3") == 3
    for bad in (0, -1, "0", "fast", 1.5, True):
        with pytest.raises(PlanError, match="frame stride"):
            check_frame_stride(bad)


def test_only_runs_of_frames_take_the_stride():
    runs = ViewSpec(name="motion", kind="clips", temporal="per_second", clip_len=8, frame_interval=1, size=(64, 64))
    snippets = ViewSpec(name="fragments", clip_len=8, segments_per_clip=2, frame_interval=2, aligned=8)
    keys = ViewSpec(name="spatial", kind="resize_crop", temporal="key_frames", clip_len=8, frame_interval=1,
                    size=(64, 64))
    strided = views_at_stride((runs, snippets, keys), 3)
    assert [v.frame_interval for v in strided] == [3, 6, 1]
    assert strided[2] is keys and views_at_stride((runs,), 1) == (runs,)


def test_the_manifest_carries_the_frame_rate():
    manifest = ModelManifest(name="m", views=(ViewSpec(),), frame_rate=25)
    assert ModelManifest.from_json(manifest.to_json()).frame_rate == 25
    assert "frame_rate" not in ModelManifest(name="m", views=(ViewSpec(),)).to_dict()  # every frame, as before
    for bad in (0, -24, float("inf"), "25", True):
        with pytest.raises(ManifestError, match="frame_rate"):
            ModelManifest(name="m", views=(ViewSpec(),), frame_rate=bad)
    from edgevqa.pipeline import Pipeline

    assert Pipeline().manifest.frame_rate == 25.0  # the shipped model learnt 24 and 25 fps motion


# ------------------------------------------------------------------------------------------ clips


def _write(path, frames, fps):
    from edgevqa.samples import write_clip

    return write_clip(path, frames=frames, fps=fps, qp=0, threads=1)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A 24 fps clip (lossless, 72 frames: three whole 1 s segments) and the same frames each shown twice at 48 fps, as a film is delivered
    at twice its rate."""
    from edgevqa.samples import render_scene

    folder = tmp_path_factory.mktemp("stride")
    frames = render_scene(256, 240, 72, seed=3)
    return (_write(folder / "film.mp4", frames, FPS), _write(folder / "doubled.mp4", np.repeat(frames, 2, axis=0),
                                                            2 * FPS))


def _score(video, **options):
    from edgevqa.pipeline import Pipeline

    with Pipeline(keep_inputs=True, **options) as pipeline:
        return pipeline.score(video)


def test_frames_shown_twice_score_as_the_film(clips):
    film, doubled = clips
    at_film, at_double = _score(film), _score(doubled)
    assert (at_film.frame_stride, at_double.frame_stride) == (1, 2)
    # every other frame of the doubled clip is the film's next frame: the model reads exactly the film's frames
    assert np.array_equal(at_double.inputs["video"], at_film.inputs["video"])
    assert at_double.scores == at_film.scores
    # read frame by frame, each picture twice in a row is a stutter the film does not have
    every = _score(doubled, frame_stride=1)
    assert every.frame_stride == 1
    assert every.scores["temporal"] < at_film.scores["temporal"] - 5
    # a stride asked for is used whatever the rate: the film read every other frame moves twice as fast
    assert _score(film, frame_stride=2).frame_stride == 2
    assert json.loads(json.dumps(at_double.to_dict()))["frame_stride"] == 2


def test_segments_parts_and_streams_take_the_stride(clips):
    from edgevqa.pipeline import Pipeline

    film, doubled = clips
    with Pipeline(segment_seconds=1.0) as pipeline:
        film_segments = pipeline.score(film).segments
        doubled_segments = pipeline.score(doubled).segments
        streamed = list(pipeline.score_stream(doubled, seconds=1.0))
    assert len(film_segments) == 3
    assert [s["scores"] for s in doubled_segments] == [s["scores"] for s in film_segments]
    assert [(s["start_s"], s["end_s"]) for s in doubled_segments] == [(s["start_s"], s["end_s"])
                                                                        for s in film_segments]
    assert [s["scores"] for s in streamed] == [s["scores"] for s in doubled_segments]
    part_of_film = _score(film, time_range=(0.5, 2.0))
    part_of_doubled = _score(doubled, time_range=(0.5, 2.0))
    assert part_of_doubled.frame_stride == 2
    assert np.array_equal(part_of_doubled.inputs["video"], part_of_film.inputs["video"])


def test_a_model_without_a_frame_rate_reads_every_frame(clips):
    from edgevqa.pipeline import Pipeline

    with Pipeline(keep_inputs=True) as pipeline:
        pipeline.manifest = dataclasses.replace(pipeline.manifest, frame_rate=None)  # as zoo and exported models
        result = pipeline.score(clips[1])
    assert result.frame_stride == 1
    assert np.array_equal(result.inputs["video"], _score(clips[1], frame_stride=1).inputs["video"])


def test_the_command_line(clips, capsys):
    from edgevqa.cli import main

    doubled = clips[1]
    for flag, stride in ((), 2), (("--frame-stride", "model"), 2), (("--frame-stride", "1"), 1):
        assert main(["score", doubled, "--json", "--quiet", *flag]) == 0
        assert json.loads(capsys.readouterr().out)["frame_stride"] == stride
    with pytest.raises(SystemExit) as stop:
        main(["score", doubled, "--frame-stride", "0"])
    assert stop.value.code == 2
    assert "frame stride must be 'model' or a whole number" in capsys.readouterr().err
