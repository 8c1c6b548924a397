"""Scoring a stream as it plays (`edgevqa.live`, `edgevqa watch`): each segment scores exactly as the same
segment of the whole file does, from a file or a pipe, and is out before the stream ends."""

import json
import os
import queue
import subprocess
import sys
import threading

import pytest

from edgevqa.errors import PlanError, VideoDecodeError
from edgevqa.pipeline import Pipeline
from edgevqa.samples import write_clip
from edgevqa.testing import remux_clip


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("live")
    made = {n: write_clip(folder / f"c{n}.mp4", width=176, height=112, num_frames=n, fps=20, seed=n)
            for n in (60, 65, 72)}
    return folder, made


def to_mpegts(clip, folder):
    return remux_clip(clip, os.path.join(folder, os.path.basename(clip) + ".ts"), "mpegts")


@pytest.mark.parametrize("seed", [None, 3])
def test_segments_equal_those_of_the_whole_file(clips, probe_model, seed):
    _, made = clips
    with Pipeline(probe_model, seed=seed) as pipeline:
        stream = pipeline.score_stream(made[60], 1.0)
        live = list(stream)
    with Pipeline(probe_model, seed=seed, segment_seconds=1.0) as pipeline:
        reference = pipeline.score(made[60]).segments
    assert [(s["start_frame"], s["end_frame"]) for s in live] == [(0, 20), (20, 40), (40, 60)]
    for got, want in zip(live, reference):
        assert {k: got[k] for k in want} == want  # frames, times, scores (exactly) and warnings
    assert stream.frames_decoded == 60 and stream.unscored_frames == 0
    assert any("upscaled" in n for n in stream.notes)  # said once for the stream, not per segment


def test_the_streams_end(clips, probe_model):
    _, made = clips
    with Pipeline(probe_model) as pipeline:
        stream = pipeline.score_stream(made[65], 1.0)
        live = list(stream)
        assert len(live) == 3 and stream.unscored_frames == 5
        assert any("ended 5 frame(s) into a segment of 20" in n for n in stream.notes)
        stream = pipeline.score_stream(made[72], 1.0)
        live = list(stream)
    # 12 frames of 20: scored, the positions past the end repeating the last frame, and said so
    assert [(s["start_frame"], s["end_frame"]) for s in live][-1] == (60, 72) and live[-1]["end_s"] == 3.6
    assert "repeat the last decoded one" in " ".join(live[-1]["warnings"])
    assert not any("repeat" in w for s in live[:-1] for w in s["warnings"])


def test_max_segments_stops_decoding(clips, probe_model):
    _, made = clips
    with Pipeline(probe_model) as pipeline:
        stream = pipeline.score_stream(made[72], 1.0, max_segments=2)
        assert len(list(stream)) == 2 and stream.frames_decoded <= 40
        with pytest.raises(PlanError, match="max_segments"):
            pipeline.score_stream(made[72], 1.0, max_segments=0)
        with pytest.raises(PlanError, match="positive number of seconds"):
            pipeline.score_stream(made[72], 0)


def test_a_pipe_scores_as_the_file(clips, probe_model):
    folder, made = clips
    data = open(to_mpegts(made[60], folder), "rb").read()
    read_end, write_end = os.pipe()

    def feed():
        with os.fdopen(write_end, "wb") as sink:
            sink.write(data)

    threading.Thread(target=feed, daemon=True).start()
    with Pipeline(probe_model) as pipeline, os.fdopen(read_end, "rb") as source:
        piped = list(pipeline.score_stream(source, 1.0))
        from_file = list(pipeline.score_stream(made[60], 1.0))
    assert [s["scores"] for s in piped] == [s["scores"] for s in from_file] and len(piped) == 3


def run_cli(*args, stdin=None, timeout=120):
    proc = subprocess.run([sys.executable, "-m", "edgevqa.cli", *map(os.fspath, args)], capture_output=True,
                          timeout=timeout, input=stdin)
    stderr = proc.stderr.decode()
    assert "Traceback" not in stderr, stderr
    return proc.returncode, proc.stdout.decode(), stderr


def test_cli_prints_each_segment_before_the_stream_ends(tmp_path, probe_model):
    # 8 s at 10 fps; the first 6 s go in, and a segment must come out before the rest is sent
    clip = write_clip(tmp_path / "long.mp4", width=96, height=64, num_frames=80, fps=10, seed=4)
    data = open(to_mpegts(clip, tmp_path), "rb").read()
    proc = subprocess.Popen([sys.executable, "-m", "edgevqa.cli", "watch", "-", "--every", "2", "--json",
                             "--model", probe_model], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        proc.stdin.write(data[: len(data) * 3 // 4])
        proc.stdin.flush()
        first = json.loads(lines.get(timeout=60))  # out while a quarter of the stream is still to come
        assert first["start_s"] == 0.0 and first["end_s"] == 2.0 and first["video"] == "<stdin>"
        proc.stdin.write(data[len(data) * 3 // 4:])
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
    finally:
        proc.kill()
    rest = []
    while not lines.empty():
        rest.append(json.loads(lines.get()))
    assert [s["start_s"] for s in rest] == [2.0, 4.0, 6.0]
    with Pipeline(probe_model, segment_seconds=2) as pipeline:
        assert [s["scores"] for s in [first] + rest] == [s["scores"] for s in pipeline.score(clip).segments]


def test_cli_table_csv_and_errors(clips, tmp_path, probe_model):
    folder, made = clips
    out = tmp_path / "live.csv"
    code, stdout, stderr = run_cli("watch", made[65], "--every", "1", "--model", probe_model, "--csv", out)
    assert code == 0, stderr
    assert stdout.splitlines()[2].split() == ["segment", "overall", "color", "noise", "artifact", "blur", "temporal"]
    assert [line.split()[0] for line in stdout.splitlines()[3:]] == ["0.00-1.00", "1.00-2.00", "2.00-3.00"]
    assert "too short to score" in stderr
    rows = out.read_text().splitlines()
    assert rows[0] == "video,start_s,end_s,overall,color,noise,artifact,blur,temporal,warnings" and len(rows) == 4
    code, _, stderr = run_cli("watch", made[65], "--every", "1", "--model", probe_model, "--csv", out)
    assert code == 1 and "already exists" in stderr and len(out.read_text().splitlines()) == 4
    code, _, stderr = run_cli("watch", "-", "--every", "1", "--model", probe_model, stdin=open(made[60], "rb").read())
    assert code == 1 and "MPEG-TS" in stderr
    code, _, stderr = run_cli("watch", made[60], "--every", "0")
    assert code == 1 and "--every must be" in stderr
    code, _, stderr = run_cli("watch", made[60], "--every", "1", "--segments", "0")
    assert code == 1 and "--segments must be" in stderr
    code, _, stderr = run_cli("watch", tmp_path / "none.ts", "--every", "1", "--csv", tmp_path / "x.csv")
    assert code == 1 and "no such file" in stderr and not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("pixel_format", ["yuv420p", "nv12"])
def test_raw_frames_on_standard_input(clips, probe_model, pixel_format):
    """A camera pipeline's raw frames (what a GStreamer fdsink or a V4L2 reader writes) score exactly as the
    file they were decoded from."""
    import av

    _, made = clips
    with av.open(made[60]) as container:
        raw = b"".join(f.to_ndarray(format=pixel_format).tobytes() for f in container.decode(video=0))
    code, stdout, stderr = run_cli("watch", "-", "--every", "1", "--json", "--model", probe_model,
                                   "--input-format", "rawvideo", "--input-option", "video_size=176x112",
                                   "--input-option", f"pixel_format={pixel_format}", "--input-option", "framerate=20",
                                   stdin=raw)
    assert code == 0, stderr
    with Pipeline(probe_model, segment_seconds=1.0) as pipeline:
        reference = pipeline.score(made[60]).segments
    assert [json.loads(line)["scores"] for line in stdout.splitlines()] == [s["scores"] for s in reference]
    code, _, stderr = run_cli("watch", "-", "--every", "1", "--input-option", "video_size")
    assert code == 1 and "KEY=VALUE" in stderr


def test_cli_quality_gate_per_segment(clips, probe_model):
    _, made = clips
    with Pipeline(probe_model) as pipeline:
        overall = [s["scores"]["overall"] for s in pipeline.score_stream(made[60], 1.0)]
    limit = sorted(overall)[1]  # the lowest segment falls below it, the others do not
    code, stdout, stderr = run_cli("watch", made[60], "--every", "1", "--json", "--model", probe_model,
                                   "--fail-below", f"overall={limit}")
    assert code == 3, stderr
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert [bool(r["below"]) for r in rows] == [o < limit for o in overall] and sum(o < limit for o in overall) == 1
    assert stderr.count("below threshold") == 1
    code, _, _ = run_cli("watch", made[60], "--every", "1", "--model", probe_model, "--fail-below", "overall=-1")
    assert code == 0


def test_reconnect_goes_on_where_the_stream_stopped(clips, probe_model, tmp_path):
    _, made = clips
    camera = tmp_path / "camera.mp4"  # a source that drops, fails once when opened again, then plays
    good = open(made[65], "rb").read()
    camera.write_bytes(good)
    events = []

    def on_note(note):
        events.append(note)
        if "opening it again" in note and not any("not a readable video" in e for e in events):
            camera.write_bytes(b"\x00" * 4096)  # the next open fails
        elif "not a readable video" in note:
            camera.write_bytes(good)  # and the one after works again

    with Pipeline(probe_model) as pipeline:
        once = list(pipeline.score_stream(made[65], 1.0))
        stream = pipeline.score_stream(camera, 1.0, max_segments=7, reconnect=0, on_note=on_note)
        segments = list(stream)
    # 65 frames at 20 fps: three segments and 5 frames a connection; each connection starts a segment
    assert [(s["start_s"], s["end_s"]) for s in segments] == [
        (0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.25, 4.25), (4.25, 5.25), (5.25, 6.25), (6.5, 7.5)]
    assert [s["start_frame"] for s in segments] == [0, 20, 40, 65, 85, 105, 130]
    assert [s["scores"] for s in segments] == [s["scores"] for s in once] * 2 + [once[0]["scores"]]
    assert stream.connections == 3 and stream.unscored_frames == 10
    assert any("not a readable video" in e for e in events) and sum("opening it again" in e for e in events) == 2
    assert sum("upscaled" in e for e in events) == 1  # said once, not per connection


def test_reconnect_never_hides_a_source_that_never_opened(probe_model, tmp_path):
    with Pipeline(probe_model) as pipeline:
        with pytest.raises(VideoDecodeError, match="no such file"):
            list(pipeline.score_stream(tmp_path / "none.ts", 1.0, reconnect=0))
    code, _, stderr = run_cli("watch", "-", "--every", "1", "--reconnect", "1")
    assert code == 1 and "cannot open standard input again" in stderr
    code, _, stderr = run_cli("watch", tmp_path / "x.ts", "--every", "1", "--reconnect", "-1")
    assert code == 1 and "--reconnect must be" in stderr


def test_cli_watches_several_streams(clips, probe_model, tmp_path):
    _, made = clips
    code, stdout, stderr = run_cli("watch", made[60], made[72], tmp_path / "none.ts", "--every", "1", "--json",
                                   "--model", probe_model)
    assert code == 1 and "none.ts: no such file" in stderr  # one failed; the others were watched to their end
    rows = [json.loads(line) for line in stdout.splitlines()]
    with Pipeline(probe_model) as pipeline:
        for clip in (made[60], made[72]):
            mine = [{k: v for k, v in r.items() if k not in ("video", "scored_at")} for r in rows
                    if r["video"] == clip]
            alone = [{k: v for k, v in s.items() if k != "scored_at"} for s in pipeline.score_stream(clip, 1.0)]
            assert mine == alone and len(mine) in (3, 4)
    code, stdout, _ = run_cli("watch", made[60], made[65], "--every", "1", "--model", probe_model)
    assert code == 0
    header, *table = stdout.splitlines()[1:]
    assert header.split()[:2] == ["source", "segment"] and len(table) == 6
    assert sorted(line.split()[0] for line in table) == sorted([made[60]] * 3 + [made[65]] * 3)
    code, _, stderr = run_cli("watch", "-", "-", "--every", "1")
    assert code == 1 and "can be given once" in stderr
