"""The exception hierarchy of edgevqa.

Every error a user can cause (a bad file, a wrong flag, a missing optional library) derives from
`EdgeVQAError`; the CLI prints such an error as one line and exits 1. Anything else is a bug in edgevqa and
keeps its traceback on purpose.
"""

from __future__ import annotations


class EdgeVQAError(Exception):
    """Root of all user-facing edgevqa errors."""


class VideoDecodeError(EdgeVQAError, ValueError):
    """A video could not be opened or decoded (missing, not a video, truncated, no frames, ...)."""


class ModelError(EdgeVQAError, ValueError):
    """A model file is unreadable, inconsistent with its manifest, or produced unusable output."""


class ManifestError(ModelError):
    """A model manifest is missing, malformed, or disagrees with the model it describes."""


class PlanError(EdgeVQAError, ValueError):
    """A sampling plan cannot be made for the requested view and video."""


class KernelError(EdgeVQAError, ValueError):
    """Arrays handed to a sampling kernel have the wrong shape, stride, dtype or memory location."""


class BackendUnavailableError(EdgeVQAError, ImportError):
    """An inference backend or decoder needs a library that is not installed (the message names the extra)."""

    def __init__(self, backend: str, missing: str, extra: str | None = None, detail: str = ""):
        hint = f"; install it with: pip install 'edgevqa[{extra}]'" if extra else ""
        msg = f"backend '{backend}' needs {missing}, which is not available{hint}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)
        self.backend = backend
        self.missing = missing
        self.extra = extra
