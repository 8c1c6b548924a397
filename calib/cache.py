"""The on-disk calibration cache.

Two kinds of entries, each named by a SHA-256 key of everything that determines it:

- ``inputs-<key>/``: the calibration model inputs (one ``.npz`` per sample) and ``meta.json``; the key covers
  the manifest's views and plan mode, the videos' contents and the sample settings, not the weights, so
  re-exporting a model with the same views reuses the decoded samples;
- ``ranges-<key>.json``: the tensor ranges one calibration method found (ONNX Runtime's calibration cache
  format); the key covers the model's bytes, the inputs key, the method and its settings.

Entries are written to a temporary name and renamed when complete, so an interrupted run leaves no half entry.
The folder is ``--cache-dir``, else ``$EDGEVQA_CACHE_DIR/calib``, else ``$XDG_CACHE_HOME/edgevqa/calib``, else
``~/.cache/edgevqa/calib``.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from edgevqa.errors import EdgeVQAError

CACHE_FORMAT = 1


def default_cache_dir() -> str:
    root = os.environ.get("EDGEVQA_CACHE_DIR")
    if root:
        return os.path.join(root, "calib")
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "edgevqa", "calib")


def cache_key(kind: str, fields: dict[str, Any]) -> str:
    """A stable key for ``fields`` (JSON-serialisable) of entry type ``kind``."""
    text = json.dumps({"kind": kind, "format": CACHE_FORMAT, **fields}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def ensure_cache_dir(path: str) -> str:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise EdgeVQAError(f"--cache-dir {path}: cannot create the calibration cache folder "
                           f"({exc.strerror or exc})") from exc
    if not os.access(path, os.W_OK):
        raise EdgeVQAError(f"--cache-dir {path}: the calibration cache folder is not writable")
    return path
