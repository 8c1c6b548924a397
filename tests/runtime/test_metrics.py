"""Prometheus metrics of a watched stream (`edgevqa.metrics`, `edgevqa watch --metrics-port`)."""

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from edgevqa.metrics import CONTENT_TYPE, MetricsServer, ScoreMetrics
from edgevqa.samples import write_clip
from edgevqa.testing import remux_clip


def parse(text):
    """{(name, labels): value} of the sample lines of the text format."""
    samples = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        head, value = line.rsplit(" ", 1)
        samples[head] = float(value)
    return samples


def test_render_and_serve():
    metrics = ScoreMetrics(['cam "north"\\1', "cam-2"], ["overall", "blur"])
    before = metrics.render()
    assert "# TYPE edgevqa_score gauge" in before and "edgevqa_segments_total" in before
    # nothing scored yet: the counters at zero, no scores
    assert set(parse(before).values()) == {0} and not any(k.startswith("edgevqa_score{") for k in parse(before))
    camera = 'cam "north"\\1'
    metrics.record(camera, {"scores": {"overall": 41.5, "blur": float("nan")}, "end_s": 10.0, "scored_at": 1.7e9},
                   below=True)
    metrics.record(camera, {"scores": {"overall": 42.25, "blur": 80.0}, "end_s": 20.0, "scored_at": 1.8e9})
    source = 'source="cam \\"north\\"\\\\1"'  # quote and backslash escaped
    samples = parse(metrics.render())
    assert samples[f'edgevqa_score{{{source},output="overall"}}'] == 42.25
    assert samples[f"edgevqa_segment_end_seconds{{{source}}}"] == 20.0
    assert samples[f"edgevqa_segments_total{{{source}}}"] == 2
    assert samples[f"edgevqa_segments_below_total{{{source}}}"] == 1
    assert samples['edgevqa_segments_total{source="cam-2"}'] == 0  # listed before its first segment
    server = MetricsServer(metrics, 0)
    try:
        with urllib.request.urlopen(server.url, timeout=10) as reply:
            assert reply.headers["Content-Type"] == CONTENT_TYPE and parse(reply.read().decode()) == samples
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(server.url.replace("/metrics", "/other"), timeout=10)
        assert missing.value.code == 404
    finally:
        server.close()


def test_cli_serves_the_last_segment(tmp_path, probe_model):
    clip = write_clip(tmp_path / "clip.mp4", width=96, height=64, num_frames=80, fps=10, seed=4)
    data = open(remux_clip(clip, tmp_path / "clip.ts", "mpegts"), "rb").read()
    proc = subprocess.Popen([sys.executable, "-m", "edgevqa.cli", "watch", "-", "--every", "2", "--json",
                             "--model", probe_model, "--metrics-port", "0"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: queue.Queue = queue.Queue()
    errors: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    threading.Thread(target=lambda: [errors.put(line) for line in proc.stderr], daemon=True).start()
    try:
        announced = errors.get(timeout=60).decode()
        assert announced.startswith("edgevqa: metrics at http://127.0.0.1:"), announced
        proc.stdin.write(data[: len(data) * 3 // 4])
        proc.stdin.flush()
        segment = json.loads(lines.get(timeout=60))
        with urllib.request.urlopen(announced.split(" at ")[1].strip(), timeout=10) as reply:
            samples = parse(reply.read().decode())
        scored = int(samples['edgevqa_segments_total{source="<stdin>"}'])
        assert scored >= 1
        if scored == 1:
            assert samples['edgevqa_score{source="<stdin>",output="overall"}'] == segment["scores"]["overall"]
        proc.stdin.write(data[len(data) * 3 // 4:])
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()


def test_cli_port_in_use(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "edgevqa.cli", "watch", os.fspath(tmp_path / "x.ts"), "--every",
                               "1", "--metrics-port", str(port)], capture_output=True, text=True, timeout=60)
    finally:
        taken.close()
    assert proc.returncode == 1 and f"--metrics-port {port}: cannot listen" in proc.stderr
    assert "Traceback" not in proc.stderr
