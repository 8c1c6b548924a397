"""Frames missing from a stream held over the gaps in its timestamps, as a player shows them (`edgevqa.timeline`)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from edgevqa.timeline import MAX_HELD_SECONDS, display_timeline

av = pytest.importorskip("av")

FPS = 24
# 96 frames at 24 fps of which 36 (48 to 83) were lost: frame 47 is shown for 1.5 s
LOST = range(48, 84)
KEPT = [i for i in range(96) if i not in LOST]
AS_SHOWN = [47 if i in LOST else i for i in range(96)]


def test_even_and_jittering_timestamps_need_no_grid():
    rng = np.random.default_rng(0)
    even = np.arange(50) / FPS
    assert display_timeline(even) is None
    assert display_timeline(even + rng.uniform(-0.3, 0.3, even.size) / FPS) is None  # jitter within a period
    assert display_timeline(np.round(even, 3)) is None  # whole milliseconds
    assert display_timeline(np.cumsum([0] + [0.02, 0.06] * 10)) is None  # a rate of its own, not frames lost
    assert display_timeline(np.array([0.0, 0.04, 0.04, 0.2, 0.24])) is None  # two frames at one time
    assert display_timeline(np.array([0.0, 0.04, 0.5])) is None  # too few to tell a rate


def test_a_gap_holds_the_frame_before_it():
    times = np.asarray(KEPT, float) / FPS
    shuffled = np.random.default_rng(1).permutation(times)  # packets come in decoding order (B-frames)
    for given in (times, shuffled, np.round(times, 3)):
        timeline = display_timeline(given)
        assert timeline.ticks == 96 and timeline.fps == pytest.approx(FPS, rel=1e-3)
        # tick k shows the coded frame that holds original frame AS_SHOWN[k]
        assert [KEPT[c] for c in timeline.shown] == AS_SHOWN
        assert len(timeline.gaps) == 1
        start, length = timeline.gaps[0]
        assert start == pytest.approx(47 / FPS, abs=1e-3) and length == pytest.approx(37 / FPS, abs=1e-3)
    assert timeline.ticks_before(48) == 84 and timeline.ticks_before(60) == 96 and timeline.ticks_before(0) == 0


def test_a_jump_in_the_timestamps_is_no_stall():
    times = np.arange(60) / FPS
    times[30:] += 3600  # an hour later: a concatenated recording, a clock reset
    assert display_timeline(times) is None
    times[45:] += 0.5  # and frames lost after the jump: held, the jump closed up to one period
    timeline = display_timeline(times)
    assert timeline.ticks == 60 + 12 and len(timeline.gaps) == 1
    assert timeline.gaps[0][1] < MAX_HELD_SECONDS
    assert list(timeline.shown[:45]) == list(range(45)) and list(timeline.shown[44:57]) == [44] * 13


# ------------------------------------------------------------------------------------------ videos


def _lossless_frames():
    from edgevqa.samples import render_scene

    return render_scene(256, 240, 96, seed=5)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Lossless: the recording that lost frames (its timestamps keep the gap), and the same as a player shows
    it (frame 47 repeated at a constant rate)."""
    from edgevqa.samples import write_clip

    folder = tmp_path_factory.mktemp("timeline")
    frames = _lossless_frames()
    lost = write_clip(folder / "lost.mp4", frames=frames[KEPT], frame_times=np.asarray(KEPT) / FPS, qp=0,
                      threads=1)
    lost_mkv = write_clip(folder / "lost.mkv", frames=frames[KEPT], frame_times=np.asarray(KEPT) / FPS, qp=0,
                          threads=1)
    shown = write_clip(folder / "shown.mp4", frames=frames[AS_SHOWN], fps=FPS, qp=0, threads=1)
    return lost, lost_mkv, shown


def test_the_decoder_yields_the_frames_a_player_shows(clips):
    from edgevqa.decode import PyAVDecoder

    lost, lost_mkv, shown = clips
    with PyAVDecoder(shown) as decoder:
        want = [f.planes[0].copy() for f in decoder.frames()]
        assert decoder.timeline is None and decoder._packets is None  # a constant-rate MP4 is not read ahead
    for video in (lost, lost_mkv):
        with PyAVDecoder(video) as decoder:
            info = decoder.info
            assert info.num_frames == 96 and info.fps == pytest.approx(FPS, rel=1e-3)
            assert len(info.timestamp_gaps) == 1 and "frames are missing from the stream" in info.gaps_note()
            got = list(decoder.frames())
            assert [f.index for f in got] == list(range(96)) and decoder.frames_in_stream == 96
            assert all(np.array_equal(f.planes[0], w) for f, w in zip(got, want))
        with PyAVDecoder(video) as decoder:  # some ticks only: a held frame once per tick asked for
            got = list(decoder.frames([10, 50, 51, 83, 84, 95, 200]))
            assert [f.index for f in got] == [10, 50, 51, 83, 84, 95]
            assert all(np.array_equal(f.planes[0], want[f.index]) for f in got)


def test_scores_equal_the_recording_as_shown(clips):
    from edgevqa.pipeline import Pipeline

    lost, lost_mkv, shown = clips
    with Pipeline(keep_inputs=True, segment_seconds=1.0) as pipeline:
        as_shown = pipeline.score(shown)
        for video in (lost, lost_mkv):
            result = pipeline.score(video)
            assert np.array_equal(result.inputs["video"], as_shown.inputs["video"])
            assert result.scores == as_shown.scores
            assert [s["scores"] for s in result.segments] == [s["scores"] for s in as_shown.segments]
            assert any("frames are missing" in w for w in result.warnings)
            assert json.loads(json.dumps(result.to_dict()))["info"]["timestamp_gaps"] == [
                list(g) for g in result.info["timestamp_gaps"]]
        with open(lost, "rb") as fh:  # bytes are read ahead like a path
            assert pipeline.score(fh.read()).scores == as_shown.scores
    # the stall is what the default model reads: as coded, frame 47 jumps to 84 and nothing freezes
    from edgevqa.decode import PyAVDecoder

    with PyAVDecoder(lost) as decoder:
        assert decoder.timeline is not None
    with open(lost, "rb") as fh, PyAVDecoder(io.BytesIO(fh.read())) as decoder:
        assert decoder.timeline is None and decoder.info.num_frames == len(KEPT)  # a file object is not read ahead


def test_a_live_stream_holds_its_gaps_as_the_file_does(clips, tmp_path):
    from edgevqa.pipeline import Pipeline

    from edgevqa.samples import write_clip

    lost_ts = write_clip(tmp_path / "lost.ts", frames=_lossless_frames()[KEPT], frame_times=np.asarray(KEPT) / FPS,
                         qp=0, threads=1)
    with Pipeline(segment_seconds=1.0) as pipeline:
        as_file = pipeline.score(lost_ts).segments
        assert as_file == pipeline.score(clips[0]).segments
        stream = pipeline.score_stream(lost_ts, seconds=1.0)  # an MPEG-TS recording played as a live stream
        streamed = list(stream)
    assert len(streamed) == len(as_file) == 4
    assert [s["scores"] for s in streamed] == [s["scores"] for s in as_file]
    assert [s["end_s"] for s in streamed] == pytest.approx([s["end_s"] for s in as_file], abs=0.01)
    assert any("frames are missing from the stream: 1.54 s after 1.96 s" in n for n in stream.notes)


def _frames_at(times):
    from edgevqa.video import Frame

    plane = np.zeros((2, 2), np.uint8)
    return iter([Frame(index=k, pts=t, planes=(plane, plane, plane)) for k, t in enumerate(times)])


def test_a_live_stream_holds_gaps_only_at_a_rate_its_frames_confirm(clips):
    from edgevqa.decode import PyAVDecoder

    with PyAVDecoder(clips[2], live=True) as decoder:  # a 24 fps stream
        times = list(np.arange(30) / FPS) + list(30 / FPS + 0.5 + np.arange(10) / FPS)  # 0.5 s lost after 30
        held = list(decoder._held_over_gaps(_frames_at(times)))
        assert [f.index for f in held] == list(range(40 + 12))
        assert [f.pts for f in held[29:43]] == [times[29]] * 13 + [times[30]]
        assert decoder.live_gaps == [(round(29 / FPS, 3), round(0.5 + 1 / FPS, 3))]
        early = [0.0, 0.3] + list(0.3 + np.arange(1, 40) / FPS)  # before the rate is confirmed: read as coded
        assert len(list(decoder._held_over_gaps(_frames_at(early)))) == 41
        slower = np.arange(40) / 15  # every spacing a gap at the declared 24 fps: the rate is not confirmed
        assert len(list(decoder._held_over_gaps(_frames_at(slower)))) == 40 and decoder.live_gaps == []
        # gaps after every third frame once the rate is confirmed: no more held beyond a quarter of the frames
        bursty = list(np.arange(30) / FPS) + [30 / FPS + 0.2 * k + np.array([0, 1, 2]) / FPS for k in range(30)]
        bursty = np.concatenate([np.asarray(bursty[:30])] + bursty[30:])
        list(decoder._held_over_gaps(_frames_at(bursty)))
        assert 0 < len(decoder.live_gaps) <= 0.25 * bursty.size
