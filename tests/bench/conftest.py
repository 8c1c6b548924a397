"""Shared fixtures for the bench tests: a probe model and small generated clips (made once per session)."""

from __future__ import annotations

import pytest

from edgevqa.manifest import ViewSpec
from edgevqa.testing import default_probe_manifest, make_probe_model


@pytest.fixture(scope="session")
def bench_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="session")
def probe_model(bench_dir):
    """Six outputs on a small fragments view; its input's clip axis is dynamic ('clips')."""
    view = ViewSpec(name="video", kind="fragments", num_clips=1, clip_len=4, frame_interval=2, grid=(2, 2),
                    patch=(16, 16), size=(32, 32), aligned=4)
    return make_probe_model(bench_dir / "probe.onnx", default_probe_manifest(view=view))


@pytest.fixture(scope="session")
def clips(bench_dir):
    from edgevqa.samples import write_clip

    return [write_clip(bench_dir / "a.mp4", width=96, height=64, num_frames=24, fps=12, seed=1),
            write_clip(bench_dir / "b.mp4", width=80, height=48, num_frames=30, fps=15, seed=2)]


@pytest.fixture
def cli(capsys):
    """Run the edgevqa CLI in-process: ``cli(args...)`` -> (exit code, stdout, stderr)."""
    from edgevqa.cli import main

    def run(*argv):
        code = main([str(a) for a in argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def one_line_error():
    """``one_line_error(code, stderr, *fragments)`` asserts exit 1 and one 'edgevqa: error:' line holding them."""

    def check(code, err, *fragments):
        assert code == 1, err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("edgevqa: error: "), err
        for fragment in fragments:
            assert fragment in lines[0], lines[0]

    return check
