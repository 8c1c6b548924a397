"""The long-video bench (`edgevqa.bench.long_video_speed`) end to end on a short generated clip, with scores
over time: it runs, seeking and straight decoding agree, and segments leave the whole video's scores alone."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("av")

from edgevqa.bench import long_video_speed  # noqa: E402


def test_long_video_bench_with_segments(tmp_path, capsys):
    clip = tmp_path / "long.mp4"
    assert long_video_speed.main(["--seconds", "12", "--clip", str(clip), "--repeats", "1", "--every", "3"]) == 0
    out = capsys.readouterr().out
    assert "scores identical: True" in out
    assert re.search(r"every 3 s\s+[0-9.]+ s\s+\d+ frames decoded, 4 segments \([0-9.]+ s scoring them\), "
                     r"peak\s+[0-9.]+ MiB allocated", out)
    assert "whole-video scores unchanged with segments: True" in out
