"""The backend interface (after Polygraphy's runners): activate / infer / deactivate, as a context manager.

A `Runner` is cheap to construct; `activate()` does the heavy work (session creation, engine load) and
imports the backend's libraries lazily, so `import edgevqa` works without any of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..errors import EdgeVQAError


@dataclass(frozen=True)
class TensorMeta:
    """Name, dtype and shape of a model input or output; ``None`` or a string marks a dynamic axis."""

    name: str
    dtype: str
    shape: tuple[Any, ...]


class Runner:
    """Base class of every inference backend. Subclasses implement the ``*_impl`` methods."""

    backend_name = "abstract"

    def __init__(self) -> None:
        self.is_active = False
        self.activation_seconds: float | None = None

    # --------------------------------------------------------------- public API (state-guarded)

    def activate(self) -> "Runner":
        if not self.is_active:
            start = time.perf_counter()
            self.activate_impl()
            self.activation_seconds = time.perf_counter() - start
            self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on ``feed`` (input name -> array); call after `activate()`."""
        if not self.is_active:
            raise EdgeVQAError(f"{self.backend_name} runner: call activate() (or use it in a 'with' block) "
                               "before infer()")
        return self.infer_impl(feed)

    def get_input_metadata(self) -> list[TensorMeta]:
        self._require_active("get_input_metadata")
        return self.get_input_metadata_impl()

    def get_output_metadata(self) -> list[TensorMeta]:
        self._require_active("get_output_metadata")
        return self.get_output_metadata_impl()

    def describe(self) -> dict[str, Any]:
        """Settings in effect (backend, providers, threads, ...), for reports."""
        return {"backend": self.backend_name}

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc: Any) -> None:
        self.deactivate()

    def _require_active(self, what: str) -> None:
        if not self.is_active:
            raise EdgeVQAError(f"{self.backend_name} runner: call activate() before {what}()")

    # --------------------------------------------------------------- for subclasses

    def activate_impl(self) -> None:
        raise NotImplementedError

    def deactivate_impl(self) -> None:
        raise NotImplementedError

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def get_input_metadata_impl(self) -> list[TensorMeta]:
        raise NotImplementedError

    def get_output_metadata_impl(self) -> list[TensorMeta]:
        raise NotImplementedError
