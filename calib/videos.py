"""Video sets for calibration and held-out checking: a folder, a list file, or one video.

A set is identified by the content of its files (SHA-256), so the calibration cache survives renames and a
held-out video that is a copy of a calibration video is still caught.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Sequence

from edgevqa.errors import EdgeVQAError
from edgevqa.video_files import VIDEO_EXTENSIONS, is_video_name, no_videos_error, videos_in_folder


@dataclass(frozen=True)
class VideoFile:
    """One video of a set: its path as given (made absolute) and the SHA-256 of its bytes."""

    path: str
    digest: str
    size: int


def file_digest(path: str) -> str:
    """SHA-256 of a file's bytes, hex."""
    sha = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                sha.update(block)
    except OSError as exc:
        raise EdgeVQAError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    return sha.hexdigest()


def _read_list(list_path: str, flag: str) -> list[str]:
    try:
        with open(list_path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise EdgeVQAError(f"{flag} {list_path}: cannot read the file ({exc.strerror or exc})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EdgeVQAError(f"{flag} {list_path}: neither a video (known extensions: {', '.join(VIDEO_EXTENSIONS[:6])}, "
                           f"...) nor a UTF-8 list of video paths") from exc
    base = os.path.dirname(os.path.abspath(list_path))
    paths = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = entry if os.path.isabs(entry) else os.path.join(base, entry)
        if not os.path.isfile(path):
            raise EdgeVQAError(f"{flag} {list_path}, line {number}: {entry}: no such video file")
        paths.append(path)
    return paths


def resolve_video_set(spec: str | os.PathLike, flag: str = "--calib") -> list[VideoFile]:
    """The videos ``spec`` names: every video file under a folder (recursively, by extension, sorted), the
    paths listed in a text file (one per line, ``#`` comments, relative to the list's folder), or one video.

    Raises `EdgeVQAError` naming ``flag`` and the path when nothing usable is found. Files listed twice (same
    content) count once.
    """
    spec = os.fspath(spec)
    if not os.path.exists(spec):
        raise EdgeVQAError(f"{flag} {spec}: no such file or folder")
    if os.path.isdir(spec):
        paths = videos_in_folder(spec)
        if not paths:
            raise no_videos_error(flag, spec)
    elif is_video_name(spec):
        paths = [spec]
    else:
        paths = _read_list(spec, flag)
        if not paths:
            raise EdgeVQAError(f"{flag} {spec}: the list names no videos")
    videos: list[VideoFile] = []
    seen: set[str] = set()
    for path in paths:
        path = os.path.abspath(path)
        digest = file_digest(path)
        if digest in seen:
            continue
        seen.add(digest)
        videos.append(VideoFile(path=path, digest=digest, size=os.path.getsize(path)))
    return videos


def check_disjoint(calibration: Sequence[VideoFile], holdout: Sequence[VideoFile]) -> None:
    """Raise `EdgeVQAError` when a held-out video is (byte for byte) one of the calibration videos."""
    by_digest = {v.digest: v for v in calibration}
    shared = [(h, by_digest[h.digest]) for h in holdout if h.digest in by_digest]
    if shared:
        held, calib = shared[0]
        same = held.path if held.path == calib.path else f"{held.path} = {calib.path}"
        raise EdgeVQAError(f"--holdout shares {len(shared)} video(s) with --calib (e.g. {same}); held-out videos "
                           f"must not be calibration videos")
