"""Settings given by name ("auto", "never", ...): one check for all of them, so each says the same thing."""

from __future__ import annotations

from typing import Sequence

from .errors import EdgeVQAError


def checked_mode(value: bool | str, modes: Sequence[str], setting: str) -> str:
    """``value`` as one of ``modes``: True is "auto" and False "never" (a setting switched on or off);
    EdgeVQAError naming ``setting`` and the modes otherwise."""
    if value is True or value is False:
        return "auto" if value else "never"
    if value not in modes:
        raise EdgeVQAError(f"{setting} must be one of {', '.join(modes)}, got {value!r}")
    return value
