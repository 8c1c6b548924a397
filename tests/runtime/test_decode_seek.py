"""Seeking across long gaps (`PyAVDecoder.SEEK_MIN_GAP`): the same frames as decoding straight through, fewer
frames through the codec, and a fall-back to decoding from the start when the frames do not line up."""

from fractions import Fraction

import av
import numpy as np
import pytest

from edgevqa.decode import PyAVDecoder


def _long_clip(path, frames=600, codec="libx264", options=None, fmt=None, variable_rate=False):
    rng = np.random.default_rng(7)
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = options or {}
        if variable_rate:
            stream.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i in range(frames):
            img = np.zeros((48, 64, 3), np.uint8)
            img[..., 0] = (np.arange(64)[None, :] + 3 * i) % 256
            img[..., 1] = (np.arange(48)[:, None] + i) % 256
            img[..., 2] = rng.integers(0, 256, (48, 64))
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if variable_rate:
                t += int(rng.choice([20, 33, 50]))
                frame.pts, frame.time_base = t, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


def _decode(source, wanted, min_gap, monkeypatch, table=None):
    monkeypatch.setattr(PyAVDecoder, "SEEK_MIN_GAP", min_gap)
    if table is not None:
        monkeypatch.setattr(PyAVDecoder, "_seek_table", table)
    with PyAVDecoder(source) as decoder:
        frames = {f.index: [np.array(p) for p in f.planes] for f in decoder.frames(wanted)}
        return frames, decoder.seeks, decoder.frames_through_decoder


def _same(a, b):
    return a.keys() == b.keys() and all(all(np.array_equal(x, y) for x, y in zip(a[k], b[k])) for k in a)


CLIPS = {
    "mp4, B-frames": dict(options={"g": "48", "bf": "3"}),
    "mp4, open GOP": dict(options={"g": "72", "bf": "3", "open-gop": "1"}),
    "mp4, variable frame rate": dict(options={"g": "40", "bf": "2"}, variable_rate=True),
    "mkv": dict(options={"g": "60", "bf": "2"}, suffix=".mkv"),
    "webm, VP9": dict(codec="libvpx-vp9", options={"g": "50", "deadline": "realtime", "cpu-used": "8"},
                      suffix=".webm"),
}


@pytest.mark.parametrize("name", list(CLIPS))
def test_seeking_gives_the_frames_decoding_through_gives(tmp_path, monkeypatch, name):
    spec = dict(CLIPS[name])
    path = _long_clip(tmp_path / f"long{spec.pop('suffix', '.mp4')}", **spec)
    rng = np.random.default_rng(3)
    for wanted in ([0, 1, 2, 3, 400, 401, 402, 403], [300, 599], sorted(set(rng.integers(0, 600, 7).tolist())),
                   [5, 255, 256, 598, 599, 650]):
        through, seeks, decoded = _decode(path, wanted, 10**9, monkeypatch)
        assert seeks == 0
        seeking, seeks, fewer = _decode(path, wanted, 100, monkeypatch)
        assert _same(through, seeking), (name, wanted)
        assert sorted(seeking) == [w for w in wanted if w < 600]
        if wanted == [0, 1, 2, 3, 400, 401, 402, 403]:
            assert seeks == 1 and fewer < decoded - 250


def test_short_gaps_ts_and_file_objects_are_decoded_through(tmp_path, monkeypatch):
    ts = _long_clip(tmp_path / "long.ts", options={"g": "48"}, fmt="mpegts")  # no keyframe index to trust
    mp4 = _long_clip(tmp_path / "long.mp4", options={"g": "48", "bf": "3"})
    assert _decode(ts, [10, 500], 100, monkeypatch)[1] == 0
    assert _decode(mp4, [10, 100, 190, 280, 370], 100, monkeypatch)[1] == 0  # every gap under SEEK_MIN_GAP
    with open(mp4, "rb") as fh:  # a file object cannot be opened a second time for the packet table
        assert _decode(fh, [10, 500], 100, monkeypatch)[1] == 0
    data = open(mp4, "rb").read()
    through, _, _ = _decode(mp4, [10, 500], 10**9, monkeypatch)
    from_bytes, seeks, _ = _decode(data, [10, 500], 100, monkeypatch)
    assert seeks == 1 and _same(through, from_bytes)


def test_frames_that_do_not_line_up_fall_back_to_decoding_from_the_start(tmp_path, monkeypatch):
    path = _long_clip(tmp_path / "long.mp4", options={"g": "48", "bf": "3"})
    real = PyAVDecoder._seek_table

    def shifted(self, wanted):  # a table that is wrong past frame 300, as a damaged index would be
        pts, index_of, keys = real(self, wanted)
        return pts, {p: (i if i < 300 else i + 1) for p, i in index_of.items()}, keys

    wanted = [100, 101, 500, 501]
    through, _, _ = _decode(path, wanted, 10**9, monkeypatch)
    for source in (path, open(path, "rb").read()):
        fallen_back, seeks, decoded = _decode(source, wanted, 100, monkeypatch, table=shifted)
        assert seeks == 1 and _same(through, fallen_back)
        assert decoded > 500  # the second pass decoded from the start


def test_a_stream_copied_cut_seeks_past_its_dropped_frames(tmp_path, monkeypatch):
    """``ffmpeg -ss T -c copy`` starts the file at the keyframe before T and marks the packets before T for
    discarding (an MP4 edit list): they are decoded and dropped, so they are not frames."""
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None:
        pytest.skip("needs the ffmpeg command line to make a stream-copied cut (Debian: ffmpeg)")
    for name, options in (("closed", {"g": "48", "bf": "3"}), ("open", {"g": "72", "bf": "3", "open-gop": "1"})):
        source = _long_clip(tmp_path / f"{name}.mp4", frames=700, options=options)
        cut = str(tmp_path / f"{name}-cut.mp4")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", "1.7", "-i", source, "-c", "copy", cut], check=True)
        with av.open(cut) as container:
            assert any(p.is_discard for p in container.demux(container.streams.video[0]) if p.size)
        for wanted in ([0, 1, 400, 401], [300, 301, 302, 303, 640]):
            through, _, _ = _decode(cut, wanted, 10**9, monkeypatch)
            seeking, seeks, _ = _decode(cut, wanted, 100, monkeypatch)
            assert seeks >= 1 and _same(through, seeking), (name, wanted)
