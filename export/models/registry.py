"""The registry of named model variants (after timm's): each name knows its builder and its manifest.

``create_model(name, **kwargs)`` builds a randomly initialised model (constructors never download anything)
whose ``manifest`` attribute describes its inputs for the given kwargs; ``get_manifest(name, **kwargs)`` gives
the same manifest without building the model.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from edgevqa.errors import ModelError
from edgevqa.manifest import ModelManifest


@dataclass(frozen=True)
class ModelEntry:
    """One registered variant. ``build(**kwargs)`` returns an ``nn.Module``; ``manifest(**kwargs)`` its manifest."""

    name: str
    family: str
    description: str
    build: Callable[..., Any]
    manifest: Callable[..., ModelManifest]
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def merged_kwargs(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        accepted = set(inspect.signature(self.build).parameters)
        unknown = sorted(set(kwargs) - accepted)
        if unknown:
            raise ModelError(f"model '{self.name}' has no option(s) {unknown}; options: {sorted(accepted)}")
        return {**self.defaults, **kwargs}


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"model name '{entry.name}' registered twice")
    _REGISTRY[entry.name] = entry
    return entry


def list_models() -> list[str]:
    """Names of every registered variant, sorted."""
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown model '{name}'; available: {', '.join(list_models())}") from None


def create_model(name: str, **kwargs: Any):
    """Build variant ``name`` (random weights, eval mode). The module carries ``manifest``, ``model_name`` and
    ``model_kwargs`` (what ``save_checkpoint`` records so the checkpoint can be rebuilt)."""
    entry = model_entry(name)
    merged = entry.merged_kwargs(kwargs)
    model = entry.build(**merged)
    model.manifest = entry.manifest(**merged)
    model.model_name = name
    model.model_kwargs = dict(kwargs)
    return model.eval()


def get_manifest(name: str, **kwargs: Any) -> ModelManifest:
    """The manifest ``create_model(name, **kwargs)`` would carry, without building the model."""
    entry = model_entry(name)
    return entry.manifest(**entry.merged_kwargs(kwargs))
