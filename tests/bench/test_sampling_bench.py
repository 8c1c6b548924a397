"""The sampling bench (`edgevqa.bench.sampling_speed`) end to end on a few synthetic 1080p frames: it runs, its
C output equals the reference bit for bit, and it reports every line the issue's targets are read from."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("av")
native = pytest.importorskip("edgevqa.kernels.native")

from edgevqa.bench import sampling_speed  # noqa: E402


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_host_bench_reports_its_ratios_and_the_floor(dtype, capsys):
    assert sampling_speed.main(["--frames", "6", "--repeat", "1", "--dtype", dtype]) == 0
    out = capsys.readouterr().out
    assert f"view: fragments 7x7x32 {dtype}" in out
    assert "C == reference bit for bit: True" in out
    for label in ("decode (PyAV, 6 frames)", "C from YUV", "NumPy reference", "RGB convert (swscale) + slice",
                  "decode CPU time (all its threads)", "C on stored frames during decode",
                  "output bytes alone (warm copy)"):
        assert re.search(re.escape(label) + r"\s+[0-9.]+ ms/frame", out), label
    for label in ("C vs RGB convert + slice", "C vs NumPy reference"):
        assert re.search(re.escape(label) + r"\s+[0-9.]+ x faster", out), label
    for label in ("C sampling / decode", "C CPU time / decode CPU time"):
        assert re.search(re.escape(label) + r"\s+[0-9.]+ %", out), label
