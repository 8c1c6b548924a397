"""The latest scores of a watched stream as Prometheus metrics (`edgevqa watch --metrics-port`).

A monitoring system scrapes ``http://HOST:PORT/metrics`` and reads, in Prometheus' text format (version 0.0.4):

- ``edgevqa_score{source, output}``: the last scored segment's score of each model output (gauge);
- ``edgevqa_segment_end_seconds{source}``: where that segment ends, in stream time (gauge);
- ``edgevqa_segment_scored_timestamp_seconds{source}``: when it was scored, Unix time (gauge);
- ``edgevqa_segments_total{source}`` and ``edgevqa_segments_below_total{source}``: segments scored, and those
  with a score under a ``--fail-below`` threshold (counters).

Standard library only: one HTTP server thread answering GET /metrics.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _number(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _label(value: str) -> str:
    """A label value as the text format writes it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _SourceState:
    def __init__(self) -> None:
        self.scores: dict[str, float] = {}
        self.end_s: float | None = None
        self.scored_at: float | None = None
        self.segments = 0
        self.below = 0


class ScoreMetrics:
    """What the metrics say, per source; `record` is called with each scored segment, `render` by each scrape.
    Every source given at construction is listed (its counters at zero) before its first segment."""

    def __init__(self, sources: list[str], outputs: list[str]):
        self.outputs = list(outputs)
        self._lock = threading.Lock()
        self._state = {source: _SourceState() for source in sources}

    def record(self, source: str, segment: dict[str, Any], below: bool = False) -> None:
        with self._lock:
            state = self._state.setdefault(source, _SourceState())
            state.scores = {name: float(segment["scores"][name]) for name in self.outputs}
            state.end_s, state.scored_at = float(segment["end_s"]), float(segment["scored_at"])
            state.segments += 1
            state.below += bool(below)

    def render(self) -> str:
        families = (
            ("edgevqa_segment_end_seconds", "gauge", "Where the last scored segment ends, in stream time.",
             lambda st: st.end_s),
            ("edgevqa_segment_scored_timestamp_seconds", "gauge", "When the last segment was scored.",
             lambda st: st.scored_at),
            ("edgevqa_segments_total", "counter", "Segments scored.", lambda st: st.segments),
            ("edgevqa_segments_below_total", "counter", "Segments with a score under a --fail-below threshold.",
             lambda st: st.below))
        with self._lock:
            states = [(_label(source), state) for source, state in self._state.items()]
            lines = ["# HELP edgevqa_score The last scored segment's score of each model output.",
                     "# TYPE edgevqa_score gauge"]
            lines += [f'edgevqa_score{{source="{source}",output="{_label(name)}"}} {_number(value)}'
                      for source, state in states for name, value in state.scores.items()]
            for name, kind, text, value_of in families:
                lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
                lines += [f'{name}{{source="{source}"}} {_number(value_of(state))}'
                          for source, state in states if value_of(state) is not None]
        return "\n".join(lines) + "\n"


class MetricsServer:
    """Serves `ScoreMetrics.render` at /metrics on a daemon thread; ``port`` 0 takes a free port (see ``port``)."""

    def __init__(self, metrics: ScoreMetrics, port: int, host: str = "127.0.0.1"):
        render = metrics.render

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics is served")
                    return
                body = render().encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # scrapes are not news on stderr
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.host, self.port = host, self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="edgevqa-metrics", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
