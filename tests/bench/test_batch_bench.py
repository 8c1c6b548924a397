"""The batch bench (`bench/batch_speed.py`) end to end on three small clips: both ways score every clip, the
scores are identical, and it reports both throughputs."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("ray.data")

from edgevqa.bench import batch_speed  # noqa: E402


def test_batch_bench_scores_both_ways_identically(tmp_path, capsys):
    assert batch_speed.main(["--videos", "3", "--seconds", "1", "--size", "320x180", "--actors", "2",
                             "--work", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "3 clips of 1 s at 320x180" in out
    assert re.search(r"score_many \(one process, default threads\)\s+[0-9.]+ s\s+[0-9.]+ videos/s", out)
    assert re.search(r"Ray Data, 2 actor\(s\) x 1 CPU\s+[0-9.]+ s\s+[0-9.]+ videos/s", out)
    assert "scores identical: True" in out
    assert len(list(tmp_path.glob("clip*_320x180.mp4"))) == 3
