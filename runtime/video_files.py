"""Which files are videos, and the videos under a folder: one list of extensions for every command that takes
folders (`edgevqa score`, `quantize --calib/--holdout`, `eval --videos`)."""

from __future__ import annotations

import os

from .errors import EdgeVQAError

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg",
                    ".flv", ".wmv", ".3gp", ".ogv", ".y4m", ".ivf", ".h264", ".264", ".hevc", ".h265")


def is_video_name(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def videos_in_folder(folder: str, recursive: bool = True) -> list[str]:
    """The video files (by extension) in ``folder``, and in its sub-folders when ``recursive``; hidden files and
    folders are skipped; sorted by path."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        found.extend(os.path.join(root, f) for f in files
                     if not f.startswith(".") and is_video_name(f) and os.path.isfile(os.path.join(root, f)))
    return sorted(found)


def no_videos_error(flag: str, folder: str) -> EdgeVQAError:
    label = f"{flag} {folder}" if flag else folder
    return EdgeVQAError(f"{label}: the folder holds no video files (looked for "
                        f"{', '.join(VIDEO_EXTENSIONS[:6])}, ...)")
