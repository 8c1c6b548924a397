"""Frame counts a container gets wrong, and the frames scored all the same.

- MP4 edit lists that hide frames: a stream-copied cut (``ffmpeg -ss T -c copy``) starts the file at the keyframe
  before T, and its edit list marks the packets before T to be decoded and dropped. The container's frame count
  includes them; the frames shown are the ones after the cut, and they are what is scored.
- Any other stream that holds fewer frames than counted (an MPEG-TS recording that starts between keyframes,
  whose first packets decode to nothing): planned again for the frames decoded, and decoded again."""

from __future__ import annotations

import io
from fractions import Fraction

import numpy as np
import pytest

from edgevqa.decode import PyAVDecoder, _count_leading_discards

av = pytest.importorskip("av")

FPS = 24


def _encode(frames, options, fmt="mp4") -> bytes:
    """Encode decoded frames (`av.VideoFrame`) or RGB arrays with libx264 into an in-memory file."""
    out = io.BytesIO()
    with av.open(out, "w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=FPS)
        first = frames[0]
        stream.height, stream.width = (first.height, first.width) if hasattr(first, "width") else first.shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = options
        stream.codec_context.time_base = Fraction(1, FPS)
        for i, frame in enumerate(frames):
            if not hasattr(frame, "width"):
                frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def _cut_by_copy(data: bytes, hidden: int) -> bytes:
    """What a stream copy cut `hidden` frames into the first group of pictures writes: every packet, with
    timestamps moved so the cut's frame is at 0; the MP4 muxer's edit list then hides the frames before it."""
    out = io.BytesIO()
    with av.open(io.BytesIO(data)) as source, av.open(out, "w", format="mp4") as target:
        stream_in = source.streams.video[0]
        stream_out = target.add_stream_from_template(stream_in)
        step = int(round(1 / (stream_in.average_rate * stream_in.time_base)))
        for packet in source.demux(stream_in):
            if packet.dts is None:
                continue
            packet.pts -= hidden * step
            packet.dts -= hidden * step
            packet.stream = stream_out
            target.mux(packet)
    return out.getvalue()


@pytest.fixture(scope="module")
def original():
    """A lossless 56-frame clip with B-frames in one group of pictures, and its decoded frames."""
    from edgevqa.samples import render_scene

    data = _encode(list(render_scene(128, 96, 56, seed=3)), {"qp": "0", "g": "250", "bf": "3"})
    with av.open(io.BytesIO(data)) as container:
        decoded = list(container.decode(video=0))
    return data, decoded


def _planes(frame) -> list[np.ndarray]:
    """Y', Cb, Cr of a decoded yuv420p frame."""
    stacked = frame.to_ndarray(format="yuv420p")
    h, w = frame.height, frame.width
    return [stacked[:h], stacked[h:h + h // 4].reshape(h // 2, w // 2), stacked[h + h // 4:].reshape(h // 2, w // 2)]


@pytest.mark.parametrize("hidden", [1, 13, 40])
def test_the_frames_an_edit_list_hides_are_not_counted(original, hidden, tmp_path):
    data, decoded = original
    cut = _cut_by_copy(data, hidden)
    with av.open(io.BytesIO(cut)) as container:
        stream = container.streams.video[0]
        assert stream.frames == 56  # the container counts every packet
        assert sum(p.is_discard for p in container.demux(stream) if p.size) == hidden
    path = tmp_path / "cut.mp4"
    path.write_bytes(cut)
    for source in (cut, str(path)):  # a file object cannot be read twice: it keeps the container's count
        with PyAVDecoder(source) as decoder:
            assert decoder.info.num_frames == 56 - hidden
            assert decoder.info.frame_count_source == "packets"
            frames = list(decoder.frames())
        assert [f.index for f in frames] == list(range(56 - hidden))
        for frame, want in zip(frames, decoded[hidden:]):
            assert all(np.array_equal(np.asarray(a), b) for a, b in zip(frame.planes, _planes(want)))


def test_a_file_without_hidden_frames_keeps_the_containers_count(original, tmp_path):
    data, _ = original
    path = tmp_path / "plain.mp4"
    path.write_bytes(data)
    with PyAVDecoder(str(path)) as decoder:
        assert (decoder.info.num_frames, decoder.info.frame_count_source) == (56, "container")
    # Matroska has no edit lists: its count is the packets' anyway.
    with PyAVDecoder(_encode(list(_decoded(data)), {"qp": "0"}, fmt="matroska")) as decoder:
        assert decoder.info.num_frames == 56


def _decoded(data: bytes):
    with av.open(io.BytesIO(data)) as container:
        yield from container.decode(video=0)


def test_a_stream_copied_cut_scores_as_its_frames_encoded_alone(original, tmp_path):
    """Before, the plan covered 56 frames, the second snippet fell past the cut's end and repeated its last
    frame: a freeze the video does not have, with a warning naming the wrong frame."""
    from edgevqa.pipeline import Pipeline

    data, decoded = original
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(_cut_by_copy(data, 13))
    alone = tmp_path / "alone.mp4"
    alone.write_bytes(_encode(decoded[13:], {"qp": "0"}))
    with Pipeline() as pipeline:
        from_cut, from_alone = pipeline.score(str(cut)), pipeline.score(str(alone))
    assert from_cut.info["num_frames"] == from_alone.info["num_frames"] == 43
    assert from_cut.scores == from_alone.scores  # the same pixels, the same plan
    assert not any("ended" in w for w in from_cut.warnings)


def test_the_scan_for_hidden_frames_stops_at_the_next_group(original, monkeypatch):
    data, _ = original
    cut = _cut_by_copy(data, 13)
    monkeypatch.setattr(PyAVDecoder, "DISCARD_SCAN_PACKETS", 5)  # a bound: less is read, fewer are found
    with PyAVDecoder(cut) as decoder:
        assert decoder.info.num_frames == 56 - 5
    # In decode order, B-frames before the cut follow its first shown frame; a later group's packets are never
    # counted, whatever they say.
    records = [(0, True, True), (3, False, False), (1, False, True), (2, False, True), (4, False, False),
               (8, True, False), (5, False, True)]
    assert _count_leading_discards(records) == 3
    assert _count_leading_discards([]) == 0
    assert _count_leading_discards([(0, True, False), (1, False, False)]) == 0


# ----------------------------------------------------------------------------- fewer frames than counted


def _starts_between_keyframes(data: bytes) -> bytes:
    """An MPEG-TS recording that starts in the middle of a group of pictures: the file from a 188-byte packet
    boundary a third of the way in."""
    start = len(data) // 3 // 188 * 188
    return data[start:]


@pytest.fixture(scope="module")
def mid_gop(original):
    """(a lossless MPEG-TS starting between keyframes, the frames it decodes to, how many packets it counts)."""
    _, decoded = original
    data = _starts_between_keyframes(_encode(decoded, {"qp": "0", "g": "40", "bf": "2"}, fmt="mpegts"))
    with av.open(io.BytesIO(data)) as container:
        packets = sum(1 for p in container.demux(container.streams.video[0]) if p.size)
    with av.open(io.BytesIO(data)) as container:
        shown = list(container.decode(video=0))
    assert 8 <= len(shown) < packets  # the packets before its first keyframe decode to nothing
    return data, shown, packets


def test_a_recording_starting_between_keyframes_is_planned_for_the_frames_it_holds(mid_gop, tmp_path):
    from edgevqa.pipeline import Pipeline

    data, shown, packets = mid_gop
    path = tmp_path / "mid-gop.ts"
    path.write_bytes(data)
    alone = tmp_path / "alone.mp4"
    alone.write_bytes(_encode(shown, {"qp": "0"}))
    with PyAVDecoder(str(path)) as decoder:
        assert decoder.info.num_frames == packets and decoder.frames_in_stream is None
        assert len(list(decoder.frames())) == len(shown) and decoder.frames_in_stream == len(shown)
    with Pipeline() as pipeline:
        for source in (str(path), data):
            result = pipeline.score(source)
            assert result.info["num_frames"] == len(shown) and result.info["frame_count_source"] == "decoded"
            replanned = (f"the container declares {packets} frames, the stream holds {len(shown)}: planned for "
                         f"{len(shown)} and decoded again")
            # the first plan's notes are not kept twice, and nothing repeats
            assert sorted(result.warnings) == sorted([replanned] + pipeline.score(str(alone)).warnings)
            assert result.scores == pipeline.score(str(alone)).scores  # the same pixels, the same plan


def test_segments_and_parts_of_a_recording_with_fewer_frames(mid_gop, tmp_path):
    from edgevqa.pipeline import Pipeline

    data, shown, _ = mid_gop
    alone = tmp_path / "alone.mp4"
    alone.write_bytes(_encode(shown, {"qp": "0"}))
    for options in ({"segment_seconds": 1 / 3}, {"time_range": (0.25, None)}):
        with Pipeline(**options) as pipeline:
            recorded, encoded = pipeline.score(data), pipeline.score(str(alone))
        assert recorded.scores == encoded.scores, options
        def parts(result):
            return [(s["start_frame"], s["end_frame"], s["scores"], s["warnings"]) for s in result.segments]

        assert parts(recorded) == parts(encoded) and len(parts(recorded)) == ("segment_seconds" in options) * 2
        assert recorded.time_range == encoded.time_range


def test_a_file_object_with_fewer_frames_repeats_the_last_one_with_a_warning(mid_gop):
    """A file object cannot be read twice: its missing frames repeat the last one, and a warning says so."""
    from edgevqa.pipeline import Pipeline

    data, shown, packets = mid_gop
    with Pipeline() as pipeline:
        result = pipeline.score(io.BytesIO(data))
    assert result.info["num_frames"] == packets
    assert any("the stream ended before the" in w for w in result.warnings)
