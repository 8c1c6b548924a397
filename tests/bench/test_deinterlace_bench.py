"""The deinterlacing bench (`bench/deinterlace_speed.py`) end to end on a small generated interlaced clip."""

from __future__ import annotations

import re

import pytest

from edgevqa import deinterlace
from edgevqa.bench import deinterlace_speed


@pytest.mark.skipif(deinterlace._compiled is None, reason="the C deinterlacer is not built")
def test_deinterlace_bench_compares_c_with_numpy(tmp_path, capsys):
    assert deinterlace_speed.main(["--size", "160x96", "--frames", "4", "--repeats", "1", "--work", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "coded interlaced: True" in out and "C == NumPy bit for bit: True" in out
    assert re.search(r"C deinterlace\s+[0-9.]+ ms/frame", out) and re.search(r"C is [0-9.]+x faster", out)
