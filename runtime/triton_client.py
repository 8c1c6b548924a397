"""Scoring videos on a Triton Inference Server that serves an edgevqa repository (`edgevqa.triton_repo`), with
the standard library only: ``edgevqa score --triton URL``.

Speaks the KServe v2 HTTP protocol with Triton's binary tensor extension: the request is a JSON header followed
by the video's bytes (a BYTES element: its length as 4 little-endian bytes, then the bytes), and asks for the
``RESULT`` output as JSON, which is the served pipeline's `Result` whole. The server names a video it received
as bytes ``<N bytes>``; the client puts the local name back.
"""

from __future__ import annotations

import json
import os
import struct
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Iterable, Iterator

from .decode import describe_source
from .errors import EdgeVQAError, VideoDecodeError
from .pipeline import Result
from .triton_model import RESULT_OUTPUT, VIDEO_INPUT

TIMEOUT_S = 600.0  # one video's round trip: upload, decode, inference


class TritonScorer:
    """The videos' scores from ``url`` (``http://host:8000``), model ``model`` of an edgevqa repository."""

    def __init__(self, url: str, model: str = "edgevqa", timeout: float = TIMEOUT_S):
        if "://" not in url:
            url = "http://" + url
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise EdgeVQAError(f"--triton {url}: give the server's HTTP address, e.g. http://localhost:8000")
        self.url, self.model, self.timeout = url.rstrip("/"), model, timeout
        try:
            metadata = self._request(f"/v2/models/{urllib.parse.quote(model)}", None, {})
        except _ServerRefused as exc:
            raise EdgeVQAError(f"{self.url}: {exc}") from None
        inputs = [t.get("name") for t in metadata.get("inputs", [])]
        outputs = [t.get("name") for t in metadata.get("outputs", [])]
        if VIDEO_INPUT not in inputs or RESULT_OUTPUT not in outputs:
            raise EdgeVQAError(f"{self.url}: model {model!r} is not an edgevqa repository model (inputs {inputs}, "
                               f"outputs {outputs}); write one with `edgevqa triton`")
        self.outputs = [name for name in outputs if name != RESULT_OUTPUT]

    def _request(self, path: str, body: bytes | None, headers: dict[str, str]) -> dict[str, Any]:
        request = urllib.request.Request(self.url + path, data=body, headers=headers,
                                         method="POST" if body is not None else "GET")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                reason = json.loads(exc.read()).get("error") or exc.reason
            except ValueError:
                reason = exc.reason
            raise _ServerRefused(str(reason)) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise EdgeVQAError(f"{self.url}: cannot reach the Triton server ({getattr(exc, 'reason', exc)})") from exc

    def score(self, video: Any) -> Result:
        """One video (a path, bytes or a binary file object) scored on the server; a video the server cannot score
        is a `Result` with ``error`` set, as `Pipeline.score_many` gives it."""
        try:
            name, data = _read(video)
        except VideoDecodeError as exc:
            return Result(video=describe_source(video), model=self.model, error=str(exc))
        header = json.dumps({
            "inputs": [{"name": VIDEO_INPUT, "shape": [1], "datatype": "BYTES",
                        "parameters": {"binary_data_size": 4 + len(data)}}],
            "outputs": [{"name": RESULT_OUTPUT, "parameters": {"binary_data": False}}],
        }).encode()
        served_name = f"<{len(data)} bytes>"
        try:
            answer = self._request(f"/v2/models/{urllib.parse.quote(self.model)}/infer",
                                   header + struct.pack("<I", len(data)) + data,
                                   {"Content-Type": "application/octet-stream",
                                    "Inference-Header-Content-Length": str(len(header))})
        except _ServerRefused as exc:
            return Result(video=name, model=self.model, error=str(exc).replace(served_name, name))
        text = next(o["data"][0] for o in answer["outputs"] if o["name"] == RESULT_OUTPUT)
        row = json.loads(text.replace(json.dumps(served_name)[1:-1], json.dumps(name)[1:-1]))
        return Result(**row)

    def score_many(self, videos: Iterable[Any]) -> Iterator[Result]:
        for video in videos:
            yield self.score(video)


class _ServerRefused(Exception):
    """The server answered the request with an error (its message)."""


def _read(video: Any) -> tuple[str, bytes]:
    if isinstance(video, (bytes, bytearray, memoryview)):
        return f"<{len(video)} bytes>", bytes(video)
    if hasattr(video, "read"):
        return describe_source(video), video.read()
    path = os.fspath(video)
    try:
        with open(path, "rb") as fh:
            return path, fh.read()
    except OSError as exc:
        raise VideoDecodeError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
