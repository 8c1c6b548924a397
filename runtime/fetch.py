"""Downloading a video over HTTP(S) to a temporary file, where reading it in place fails or costs twice.

FFmpeg reads an HTTP video by range requests: an MP4 whose index (the moov box) follows its media, as FFmpeg
and most cameras write it, is read from its end first. A server without range requests (Python's http.server,
some application servers and proxies) gives FFmpeg no way back, and opening fails with a bare I/O error. And
a container that does not declare its frame count (MKV, MPEG-TS) is read whole to count its packets, then
again to decode. In both cases the pipeline downloads the file once (streamed to disk, not into memory) and
scores the copy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .errors import VideoDecodeError

TIMEOUT_S = 60.0  # per network read, not for the whole download


def is_http_url(source: Any) -> bool:
    return isinstance(source, str) and urllib.parse.urlsplit(source).scheme.lower() in ("http", "https")


def download(url: str, directory: str | None = None) -> str:
    """The path of a new temporary file holding ``url``'s body; the caller removes it. `VideoDecodeError` naming
    the URL when the server refuses or the connection fails (nothing is left behind)."""
    suffix = os.path.splitext(urllib.parse.urlsplit(url).path)[1][:16]
    handle, path = tempfile.mkstemp(prefix="edgevqa-", suffix=suffix, dir=directory)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        os.remove(path)
        reason = getattr(exc, "reason", None) or exc
        raise VideoDecodeError(f"{url}: cannot download it ({reason})") from exc
    except BaseException:
        os.remove(path)
        raise
    return path
