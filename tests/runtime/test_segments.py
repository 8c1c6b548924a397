"""Scores over time (`edgevqa.segments`, `Pipeline(segment_seconds=...)`, `sample_plans(streamed=...)`)."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from edgevqa.errors import PlanError
from edgevqa.segments import check_segment_seconds, segment_plans, segment_ranges
from edgevqa.video import VideoInfo

av = pytest.importorskip("av")


def _info(num_frames: int, fps: float = 25.0) -> VideoInfo:
    return VideoInfo(path="v.mp4", width=320, height=180, num_frames=num_frames, fps=fps,
                     duration=num_frames / fps if fps else 0.0)


# ------------------------------------------------------------------------------------------ ranges


@pytest.mark.parametrize("num_frames, fps, seconds, want", [
    (250, 25.0, 2.0, [(0, 50), (50, 100), (100, 150), (150, 200), (200, 250)]),  # exact multiple
    (260, 25.0, 2.0, [(0, 50), (50, 100), (100, 150), (150, 200), (200, 260)]),  # a 10-frame sliver joins
    (275, 25.0, 2.0, [(0, 50), (50, 100), (100, 150), (150, 200), (200, 250), (250, 275)]),  # half: kept
    (30, 25.0, 10.0, [(0, 30)]),  # shorter than a segment: one segment
    (1, 30.0, 1.0, [(0, 1)]),
    (100, 29.97, 1.0, [(0, 30), (30, 60), (60, 100)]),  # 30 frames a segment; the last 10 join
    (7, 24.0, 0.01, [(k, k + 1) for k in range(7)]),  # shorter than a frame: one frame each
])
def test_segment_ranges_cover_every_frame_once(num_frames, fps, seconds, want):
    ranges = segment_ranges(_info(num_frames, fps), seconds)
    assert ranges == want
    assert ranges[0][0] == 0 and ranges[-1][1] == num_frames
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


@pytest.mark.parametrize("seconds", [0, -1.5, float("nan"), float("inf"), "ten", None])
def test_bad_segment_lengths_are_refused(seconds):
    with pytest.raises(PlanError, match="segment length must be"):
        check_segment_seconds(seconds)


def test_a_stream_without_frame_rate_cannot_be_cut():
    with pytest.raises(PlanError, match="v.mp4: the stream declares no frame rate"):
        segment_ranges(_info(100, 0.0), 2.0)


def test_segment_plans_are_the_plans_of_the_cut_in_source_frame_numbers():
    from edgevqa.manifest import ViewSpec
    from edgevqa.sampling import make_plans

    views = [ViewSpec(clip_len=8, segments_per_clip=2, frame_interval=1)]
    info = _info(300)
    start, end = 125, 200
    cut = make_plans(views, _info(end - start), seed=3)
    shifted = segment_plans(views, info, start, end, seed=3)
    assert len(cut) == len(shifted) == 1
    np.testing.assert_array_equal(shifted[0].frame_indices, cut[0].frame_indices + start)
    assert shifted[0].frame_indices.min() >= start and shifted[0].frame_indices.max() < end
    np.testing.assert_array_equal(shifted[0].slots, cut[0].slots)
    np.testing.assert_array_equal(shifted[0].luma_cols.index, cut[0].luma_cols.index)


# ------------------------------------------------------------------------------------------ streamed sampling


def test_streamed_plans_give_the_same_inputs_as_kept_ones(small_clip):
    """Streamed inputs (made lazily, handed on when complete) are bit for bit the inputs sample_plans keeps,
    and each is handed on before decoding passes far beyond its last frame."""
    from edgevqa.decode import PyAVDecoder
    from edgevqa.feed import sample_plans
    from edgevqa.manifest import ViewSpec

    views = [ViewSpec(clip_len=4, segments_per_clip=2, frame_interval=1, grid=(3, 3), patch=(16, 16), size=(48, 48),
                      aligned=4),
             ViewSpec(name="frames", kind="resize_crop", size=(37, 53), clip_len=3, segments_per_clip=1,
                      frame_interval=2, layout="NTCHW", dtype="float16")]
    with PyAVDecoder(small_clip) as decoder:
        info = decoder.info
    ranges = segment_ranges(info, 0.45)  # 9 frames at 20 fps
    plans = [p for start, end in ranges for p in segment_plans(views, info, start, end, seed=1)]
    with PyAVDecoder(small_clip) as decoder:
        want = sample_plans(decoder, plans).arrays
    got: dict[int, np.ndarray] = {}
    seen_frames: list[int] = []

    class Watch:
        """The decoder, noting how far decoding got when each input is handed on."""

        def __init__(self, inner):
            self.inner, self.info, self.name = inner, inner.info, inner.name

        def frames(self, indices):
            for frame in self.inner.frames(indices):
                seen_frames.append(frame.index)
                yield frame

    handed_at: dict[int, int] = {}

    def ready(k, array, repeated):
        assert k not in got and repeated == 0
        got[k] = array
        handed_at[k] = seen_frames[-1]

    with PyAVDecoder(small_clip) as decoder:
        kept = sample_plans(Watch(decoder), plans[:1], streamed=plans, on_ready=ready)
    assert sorted(got) == list(range(len(plans)))
    for k, plan in enumerate(plans):
        assert got[k].dtype == want[k].dtype and np.array_equal(got[k], want[k]), k
        assert handed_at[k] == plan.frame_indices.max()  # right after its last frame
    np.testing.assert_array_equal(kept.arrays[0], want[0])
    assert len(kept.arrays) == 1


def test_streamed_plans_past_the_end_repeat_the_last_frame_and_say_so(small_clip):
    from edgevqa.decode import PyAVDecoder
    from edgevqa.feed import sample_plans
    from edgevqa.manifest import ViewSpec
    from edgevqa.sampling import make_plan

    view = ViewSpec(clip_len=4, segments_per_clip=1, frame_interval=1, grid=(2, 2), patch=(16, 16), size=(32, 32),
                    aligned=4)
    with PyAVDecoder(small_clip) as decoder:
        info = decoder.info
    beyond = segment_plans([view], info.__class__(**{**info.to_dict(), "num_frames": 60}), 40, 60)[0]
    reports = []
    with PyAVDecoder(small_clip) as decoder:
        sampled = sample_plans(decoder, [make_plan(view, info)], streamed=[beyond],
                               on_ready=lambda k, a, r: reports.append((k, a, r)))
    assert [(k, r) for k, _, r in reports] == [(0, 4)]
    assert sampled.repeated_slots == 0  # the whole-video plan had every frame
    with pytest.raises(ValueError, match="on_ready"):
        sample_plans(decoder, [], streamed=[beyond])


# ------------------------------------------------------------------------------------------ pipeline


def _encode(path, frames_yuv, fps):
    """Encode decoded yuv420p frames losslessly (libx264 in its own format at CRF 0)."""
    from fractions import Fraction

    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames_yuv[0].width, frames_yuv[0].height, "yuv420p"
        stream.options = {"crf": "0", "preset": "veryfast"}
        stream.codec_context.time_base = Fraction(1, fps)
        for i, frame in enumerate(frames_yuv):
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return str(path)


@pytest.fixture(scope="module")
def half_noisy_clip(tmp_path_factory):
    """72 frames at 24 fps, 256x240: a clean rendered scene, with strong noise in frames 24 to 47 only."""
    from edgevqa.samples import render_scene, write_clip

    frames = render_scene(256, 240, 72, seed=4).astype(np.int16)
    noise = np.random.default_rng(0).normal(0, 30, size=frames[24:48].shape)
    frames[24:48] = np.clip(frames[24:48] + noise, 0, 255)
    folder = tmp_path_factory.mktemp("segments")
    return write_clip(folder / "half-noisy.mp4", frames=frames.astype(np.uint8), fps=24, crf=12)


def test_segments_score_as_their_lossless_cuts_and_leave_the_whole_video_alone(half_noisy_clip, tmp_path):
    from edgevqa.pipeline import Pipeline

    with Pipeline() as plain:
        whole = plain.score(half_noisy_clip)
    with Pipeline(segment_seconds=1.0) as pipeline:
        result = pipeline.score(half_noisy_clip)
        assert result.scores == whole.scores  # the whole video's score does not move
        assert result.frames_decoded <= 72  # one decode pass
        assert [(g["start_frame"], g["end_frame"]) for g in result.segments] == [(0, 24), (24, 48), (48, 72)]
        assert [(g["start_s"], g["end_s"]) for g in result.segments] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
        with av.open(half_noisy_clip) as container:
            decoded = list(container.decode(video=0))
        for g in result.segments:
            cut = _encode(tmp_path / f"cut-{g['start_frame']}.mp4", decoded[g["start_frame"]:g["end_frame"]], 24)
            alone = pipeline.score(cut)
            assert alone.info["num_frames"] == g["end_frame"] - g["start_frame"]
            assert alone.scores == g["scores"], g["start_frame"]  # exactly: the same pixels, the same plan
            assert alone.segments == [{**g, "start_frame": 0, "end_frame": alone.info["num_frames"],
                                       "start_s": 0.0, "end_s": 1.0}]
    noise = [g["scores"]["noise"] for g in result.segments]
    assert noise[1] < min(noise[0], noise[2]) - 20, noise  # the noisy second reads noisy, the others do not
    assert json.loads(json.dumps(result.to_dict()))["segments"][1]["scores"]["noise"] == noise[1]


def test_segments_of_file_objects_and_in_score_many(half_noisy_clip, small_clip):
    from edgevqa.pipeline import Pipeline

    with Pipeline(segment_seconds=1.5) as pipeline:
        by_path = pipeline.score(half_noisy_clip)
        with open(half_noisy_clip, "rb") as fh:
            by_file = pipeline.score(io.BytesIO(fh.read()))
        many = list(pipeline.score_many([half_noisy_clip, "missing.mp4", small_clip]))
    assert by_file.segments == by_path.segments and len(by_path.segments) == 2
    assert many[0].segments == by_path.segments
    assert not many[1].ok and many[1].segments == []
    assert [(g["start_frame"], g["end_frame"]) for g in many[2].segments] == [(0, 40)]  # 10 frames < 15: joined
    assert all(math.isfinite(v) for g in many[2].segments for v in g["scores"].values())
    assert "segments" in many[2].timings


def test_pipeline_refuses_a_bad_segment_length():
    from edgevqa.pipeline import Pipeline

    with pytest.raises(PlanError, match="positive number of seconds"):
        Pipeline(segment_seconds=-2)


def test_segments_of_a_damaged_stream_come_from_the_single_threaded_decode(tmp_path, probe_model):
    """A damaged stream is decoded a second time on one thread: its segments are scored from that pass only
    (not twice, not mixed with the first), so they repeat like the whole video's scores."""
    from test_decode import _damaged_ts

    from edgevqa.pipeline import Pipeline

    _, damaged = _damaged_ts(tmp_path)
    with Pipeline(probe_model, segment_seconds=0.5) as pipe:
        results = [pipe.score(damaged) for _ in range(3)]
    with Pipeline(probe_model, segment_seconds=0.5, decode_threads=1) as pipe:
        single = pipe.score(damaged)
    assert "decoded again on one thread" in " ".join(results[0].warnings)
    ranges = [(g["start_frame"], g["end_frame"]) for g in results[0].segments]
    assert len(ranges) > 1 and len(set(ranges)) == len(ranges) and ranges[-1][1] == results[0].info["num_frames"]
    assert all(r.segments == results[0].segments for r in results)
    assert single.segments == results[0].segments


# ------------------------------------------------------------------------------------------ time ranges


@pytest.mark.parametrize("num_frames, fps, time_range, want", [
    (250, 25.0, (2.0, 4.0), (50, 100)),  # frames whose time, k / fps, lies in [2, 4)
    (250, 25.0, (2.01, 4.01), (51, 101)),
    (250, 25.0, (0.0, None), (0, 250)),
    (250, 25.0, (9.0, None), (225, 250)),
    (100, 29.97, (1.0, 2.0), (30, 60)),  # frame 30 is at 1.001 s, frame 59 at 1.969 s
    (10, 25.0, (0.0, 0.04), (0, 1)),
])
def test_time_range_frames(num_frames, fps, time_range, want):
    from edgevqa.segments import time_range_frames

    frames, notes = time_range_frames(_info(num_frames, fps), time_range)
    assert frames == want and notes == []


def test_time_ranges_past_the_end_and_between_frames():
    from edgevqa.segments import check_time_range, time_range_frames

    frames, notes = time_range_frames(_info(100), (2.0, 30.0))
    assert frames == (50, 100) and "ends at 30 s, after the video's end (4.000 s); scored to its end" in notes[0]
    with pytest.raises(PlanError, match=r"starts at 4 s, after the video's end \(100 frames, 4.000 s\)"):
        time_range_frames(_info(100), (4.0, None))
    with pytest.raises(PlanError, match="no frame lies between 1.001 s and 1.002 s"):
        time_range_frames(_info(100), (1.001, 1.002))
    with pytest.raises(PlanError, match="no frame rate"):
        time_range_frames(_info(100, fps=0.0), (1.0, 2.0))
    assert check_time_range(None) is None and check_time_range((1, None)) == (1.0, None)
    for bad, message in [((-1, 2), "start at 0 s or later"), ((2, 2), "end after its start"),
                         ((3, 1), "end after its start"), ((float("nan"), 1), "start at 0 s"),
                         ("12", r"\(start, end\)"), ((1, 2, 3), r"\(start, end\)"), ((1, "x"), r"\(start, end\)")]:
        with pytest.raises(PlanError, match=message):
            check_time_range(bad)


def test_a_time_range_scores_as_its_lossless_cut(half_noisy_clip, tmp_path):
    from edgevqa.pipeline import Pipeline

    with av.open(half_noisy_clip) as container:
        decoded = list(container.decode(video=0))
    cut = _encode(tmp_path / "cut.mp4", decoded[24:48], 24)
    with Pipeline(time_range=(1.0, 2.0)) as pipeline, Pipeline() as plain:
        part = pipeline.score(half_noisy_clip)
        alone = plain.score(cut)
        whole = plain.score(half_noisy_clip)
    assert part.time_range == {"start_frame": 24, "end_frame": 48, "start_s": 1.0, "end_s": 2.0}
    assert part.scores == alone.scores  # exactly: the same pixels, the same plan
    assert part.scores != whole.scores and part.scores["noise"] < whole.scores["noise"] - 10
    assert part.frames_decoded <= 48 and whole.time_range is None
    assert json.loads(json.dumps(part.to_dict()))["time_range"]["end_frame"] == 48


def test_segments_of_a_time_range(half_noisy_clip):
    from edgevqa.pipeline import Pipeline

    with Pipeline(segment_seconds=1.0) as whole, Pipeline(segment_seconds=1.0, time_range=(1.0, None)) as part:
        all_segments = whole.score(half_noisy_clip).segments
        result = part.score(half_noisy_clip)
    assert [(g["start_frame"], g["end_frame"]) for g in result.segments] == [(24, 48), (48, 72)]
    assert result.segments == all_segments[1:]  # a segment scores the same whichever range holds it
    with pytest.raises(PlanError, match="after its start"):
        Pipeline(time_range=(2.0, 1.0))


def test_cli_time_range(half_noisy_clip, probe_model):
    from test_cli import run_cli

    from edgevqa.cli_score import parse_time

    assert [parse_time(t) for t in ("90", "90.5", "1:30.5", "0:01:30.5", "01:00:00")] == [90, 90.5, 90.5, 90.5, 3600]
    for bad in ("", "x", "1:", "-1", "1:2:3:4", "inf", "1::2"):
        with pytest.raises(ValueError):
            parse_time(bad)
    runs = {}  # the default model: the noisy second reads noisy (the probe model reads means, which noise keeps)
    for flags in (["--start", "1", "--end", "2"], ["--start", "0:01", "--duration", "1"], ["--end", "1"], []):
        proc = run_cli("score", half_noisy_clip, "--json", *flags)
        assert proc.returncode == 0, proc.stderr
        runs[" ".join(flags)] = json.loads(proc.stdout)
    first, second, head, whole = runs.values()
    assert first["time_range"] == second["time_range"] == {"start_frame": 24, "end_frame": 48, "start_s": 1.0,
                                                           "end_s": 2.0}
    assert first["scores"] == second["scores"] and first["scores"]["noise"] < whole["scores"]["noise"] - 10
    assert head["time_range"]["end_frame"] == 24 and whole["time_range"] is None
    for flags, message in [(["--start", "5"], "after the video's end"), (["--start", "2", "--end", "1"],
                                                                           "--end must come after --start"),
                           (["--duration", "0"], "--duration must be more than 0 s"),
                           (["--end", "1", "--duration", "1"], "not allowed with"),
                           (["--start", "soon"], "invalid time value")]:
        proc = run_cli("score", half_noisy_clip, "--model", probe_model, *flags)
        assert proc.returncode in (1, 2) and message in proc.stderr, (flags, proc.stderr)
    proc = run_cli("score", half_noisy_clip, "--triton", "http://localhost:1", "--start", "1")
    assert proc.returncode == 1 and "--start/--end/--duration" in proc.stderr
