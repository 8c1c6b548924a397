"""The live bench (`bench/live_speed.py`) end to end on a short small clip: it scores the stream, its segments
equal the whole file's, and it reports the real-time factor."""

from __future__ import annotations

import re

from edgevqa.bench import live_speed


def test_live_bench_reports_real_time_factor(tmp_path, capsys):
    assert live_speed.main(["--seconds", "3", "--size", "192x112", "--fps", "10", "--every", "1", "--repeats", "1",
                            "--work", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "segments of 1 s: 3" in out
    assert re.search(r"real-time factor\s+[0-9.]+ x", out)
    assert re.search(r"scoring a complete segment\s+[0-9.]+ ms median", out)
    assert "segments equal the whole file's --every segments: True" in out
