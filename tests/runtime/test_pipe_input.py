"""Videos that arrive as file objects whose length the container does not say (a pipe, standard input, a raw
H.264 stream): scored exactly as the same file, never planned for a guessed length."""

import json
import os
import subprocess
import sys
import threading

import pytest

from edgevqa.errors import VideoDecodeError
from edgevqa.pipeline import Pipeline
from edgevqa.samples import write_clip
from edgevqa.testing import remux_clip


@pytest.fixture(scope="module")
def streams(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipes")
    clip = write_clip(folder / "clip.mp4", width=176, height=112, num_frames=45, fps=15, seed=9)
    made = {fmt: open(remux_clip(clip, folder / f"clip.{fmt}", fmt), "rb").read() for fmt in ("mpegts", "h264")}
    return clip, made


def through_pipe(data: bytes):
    read_end, write_end = os.pipe()

    def feed():
        with os.fdopen(write_end, "wb") as sink:
            sink.write(data)

    threading.Thread(target=feed, daemon=True).start()
    return os.fdopen(read_end, "rb")


@pytest.mark.parametrize("fmt", ["mpegts", "h264"])
def test_a_pipe_scores_as_the_file(streams, probe_model, fmt):
    clip, made = streams
    with Pipeline(probe_model) as pipeline:
        expected = pipeline.score(clip)
        with through_pipe(made[fmt]) as source:
            piped = pipeline.score(source)
    assert piped.scores == expected.scores and piped.info["num_frames"] == 45
    assert piped.video.startswith("<file descriptor ")
    # until now a pipe of unknown length was planned as one frame, with a warning that said so
    assert not any("1 frame(s) in the video" in w for w in piped.warnings)


def test_a_raw_stream_file_object_scores_as_the_file(streams, probe_model, tmp_path):
    clip, made = streams
    raw = tmp_path / "clip.h264"
    raw.write_bytes(made["h264"])
    with Pipeline(probe_model) as pipeline, open(raw, "rb") as source:
        assert pipeline.score(source).scores == pipeline.score(clip).scores


def test_an_empty_pipe_is_a_clear_error(probe_model):
    with Pipeline(probe_model) as pipeline, through_pipe(b"") as source:
        with pytest.raises(VideoDecodeError, match="no data"):
            pipeline.score(source)


def test_cli_reads_standard_input(streams, probe_model):
    clip, made = streams
    proc = subprocess.run([sys.executable, "-m", "edgevqa.cli", "score", "-", "--json", "--model", probe_model],
                          input=made["mpegts"], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    row = json.loads(proc.stdout.decode().splitlines()[0])
    with Pipeline(probe_model) as pipeline:
        assert row["video"] == "<stdin>" and row["scores"] == pipeline.score(clip).scores
    proc = subprocess.run([sys.executable, "-m", "edgevqa.cli", "score", "-", "-", "--model", probe_model],
                          input=b"", capture_output=True, timeout=120)
    assert proc.returncode == 1 and b"can be given once" in proc.stderr
