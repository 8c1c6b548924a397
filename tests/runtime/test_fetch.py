"""Scoring a video over HTTP from a server without range requests (`edgevqa.fetch`)."""

from __future__ import annotations

import functools
import http.server
import shutil
import tempfile
import threading

import pytest

from edgevqa.errors import VideoDecodeError
from edgevqa.testing import remux_clip

av = pytest.importorskip("av")


@pytest.fixture
def served(tmp_path):
    """(base URL, folder) of a local HTTP server without range requests (Python's own)."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def larger_clip(tmp_path_factory) -> str:
    """An MP4 with its index at the end (as FFmpeg writes it by default) and more media before it than FFmpeg
    reads ahead over HTTP (about 190 kB): opening it needs a request from an offset."""
    from edgevqa.samples import write_clip

    return write_clip(tmp_path_factory.mktemp("media") / "clip.mp4", width=320, height=192, num_frames=40, fps=20,
                      crf=10)


def test_an_mp4_indexed_at_its_end_is_downloaded_and_scores_as_the_file(served, larger_clip, probe_model, tmp_path,
                                                                        monkeypatch):
    from edgevqa.pipeline import Pipeline

    base, folder = served
    shutil.copy(larger_clip, folder / "clip.mp4")
    small_clip = larger_clip
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(downloads))
    with Pipeline(probe_model) as pipeline:
        local = pipeline.score(small_clip)
        remote = pipeline.score(f"{base}/clip.mp4")
        assert remote.ok and remote.scores == local.scores and remote.video == f"{base}/clip.mp4"
        assert any("downloaded whole first" in w for w in remote.warnings)
        assert list(downloads.iterdir()) == []  # the copy is removed
        with pytest.raises(VideoDecodeError, match="missing.mp4: cannot download it"):
            pipeline.score(f"{base}/missing.mp4")
    assert list(downloads.iterdir()) == []


def test_an_mp4_indexed_first_is_read_in_place(served, small_clip, probe_model, tmp_path, monkeypatch):
    from edgevqa.pipeline import Pipeline

    base, folder = served
    remux_clip(small_clip, folder / "fast.mp4", "mp4", {"movflags": "faststart"})
    called, opened = [], []
    monkeypatch.setattr("edgevqa.pipeline.download", lambda url: called.append(url))
    real_open = Pipeline.open_decoder
    monkeypatch.setattr(Pipeline, "open_decoder", lambda self, *a, **k: opened.append(a[0]) or real_open(self, *a, **k))
    with Pipeline(probe_model) as pipeline:
        remote = pipeline.score(f"{base}/fast.mp4")
    assert remote.ok and called == [] and not any("downloaded" in w for w in remote.warnings)
    assert opened == [f"{base}/fast.mp4"]  # opened once: the look at its container is the decoder used
    assert remote.scores == Pipeline(probe_model).score(str(folder / "fast.mp4")).scores


def test_a_container_without_a_frame_count_is_downloaded_once(served, larger_clip, probe_model, monkeypatch):
    """Counting an MKV's frames reads all of it; decoding reads it again: over HTTP it is downloaded once instead."""
    from edgevqa import pipeline as pipeline_module
    from edgevqa.pipeline import Pipeline

    base, folder = served
    remux_clip(larger_clip, folder / "clip.mkv", "matroska")
    fetched = []
    real_download = pipeline_module.download
    monkeypatch.setattr(pipeline_module, "download", lambda url: fetched.append(url) or real_download(url))
    with Pipeline(probe_model) as pipeline:
        remote = pipeline.score(f"{base}/clip.mkv")
        local = pipeline.score(str(folder / "clip.mkv"))
    assert fetched == [f"{base}/clip.mkv"] and remote.video == f"{base}/clip.mkv"
    assert remote.scores == local.scores and remote.warnings == local.warnings  # no download warning
    assert remote.info["frame_count_source"] == "packets"
