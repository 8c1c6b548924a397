"""Checkpoints: strict loading with readable mismatch reports, foreign key maps, and our own save format.

Loading is always strict: a checkpoint that does not fit the model raises `ModelError` naming the missing,
unexpected and mis-shaped keys, instead of silently leaving layers at their random initialisation.
Foreign checkpoints (official SimpleVQA, torchvision, pytorchvideo) load through key maps that rename their
keys to ours; the maps live with the model family (``export/models/simplevqa.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from edgevqa.errors import ModelError

CHECKPOINT_FORMAT = "edgevqa-checkpoint-1"
# Keys under which training scripts commonly nest the state dict.
_NESTED_KEYS = ("state_dict", "model_state", "model", "model_state_dict", "net", "weights")
_LIST_LIMIT = 8


def _short_list(items: list[str]) -> str:
    shown = ", ".join(items[:_LIST_LIMIT])
    return shown + (f", ... ({len(items) - _LIST_LIMIT} more)" if len(items) > _LIST_LIMIT else "")


@dataclass
class StateDictMismatch:
    """What differs between a checkpoint and a model; empty when they fit."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    misshaped: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)  # key, ckpt, model

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.misshaped)

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing key(s): {_short_list(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected key(s): {_short_list(self.unexpected)}")
        if self.misshaped:
            shapes = [f"{k} (checkpoint {list(a)}, model {list(b)})" for k, a, b in self.misshaped]
            parts.append(f"{len(self.misshaped)} mis-shaped key(s): {_short_list(shapes)}")
        return "; ".join(parts)


class CheckpointMismatchError(ModelError):
    """A checkpoint's keys or shapes do not fit the model; ``mismatch`` holds the full lists."""

    def __init__(self, message: str, mismatch: StateDictMismatch):
        super().__init__(message)
        self.mismatch = mismatch


def compare_state_dict(model: Any, state_dict: Mapping[str, Any]) -> StateDictMismatch:
    own = model.state_dict()
    mismatch = StateDictMismatch()
    mismatch.missing = [k for k in own if k not in state_dict]
    mismatch.unexpected = [k for k in state_dict if k not in own]
    for key, value in state_dict.items():
        if key in own and tuple(getattr(value, "shape", ())) != tuple(own[key].shape):
            mismatch.misshaped.append((key, tuple(getattr(value, "shape", ())), tuple(own[key].shape)))
    return mismatch


def load_state_dict_strict(model: Any, state_dict: Mapping[str, Any], source: str = "<state_dict>") -> Any:
    """Load ``state_dict`` into ``model``; any difference raises `CheckpointMismatchError`. Returns ``model``."""
    if getattr(model, "is_fused", False):
        raise ModelError(f"{source}: cannot load a checkpoint into a fused model; load first, then fuse")
    mismatch = compare_state_dict(model, state_dict)
    if mismatch:
        name = getattr(model, "model_name", type(model).__name__)
        raise CheckpointMismatchError(f"{source}: checkpoint does not fit model '{name}': {mismatch.describe()}",
                                      mismatch)
    model.load_state_dict(dict(state_dict), strict=True)
    return model


def read_checkpoint(path: str | os.PathLike) -> Any:
    """The object stored in a torch checkpoint file (tensors only: ``weights_only`` loading, never pickled code)."""
    import torch

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for bad files
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a readable torch checkpoint ({reason})") from exc


def extract_state_dict(obj: Any, source: str = "<checkpoint>") -> dict[str, Any]:
    """The state dict held by a checkpoint object: the object itself, or one nested under a usual key."""
    import torch

    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in _NESTED_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return dict(inner)
    raise ModelError(f"{source}: holds no state dict (expected a dict of tensors, or one under "
                     f"{', '.join(repr(k) for k in _NESTED_KEYS)})")


def save_checkpoint(model: Any, path: str | os.PathLike, extra: Mapping[str, Any] | None = None,
                    overwrite: bool = False) -> str:
    """Save ``model`` (built by ``create_model``) so that ``load_checkpoint(path)`` rebuilds it.

    The file holds the registry name, the build kwargs, the manifest JSON and the state dict; ``extra``
    (JSON-like values: epoch, metrics) is stored under ``"extra"``.
    """
    import torch

    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise ModelError(f"{path}: exists; refusing to overwrite (pass overwrite=True)")
    name = getattr(model, "model_name", None)
    if name is None:
        raise ModelError("save_checkpoint needs a model built by create_model (it records the variant name)")
    if getattr(model, "is_fused", False):
        raise ModelError("save the unfused model: a fused model's keys do not load into a fresh one")
    payload = {"format": CHECKPOINT_FORMAT, "model_name": name, "model_kwargs": dict(model.model_kwargs),
               "manifest": model.manifest.to_json(), "state_dict": model.state_dict(), "extra": dict(extra or {})}
    torch.save(payload, path)
    return path


# name of a foreign checkpoint layout -> (detector(state_dict) -> bool, default model name, key map)
ForeignFormat = tuple[Callable[[Mapping[str, Any]], bool], str, Callable[[Mapping[str, Any]], dict[str, Any]]]
FOREIGN_FORMATS: dict[str, ForeignFormat] = {}


def register_foreign_format(name: str, detect, default_model: str, key_map) -> None:
    FOREIGN_FORMATS[name] = (detect, default_model, key_map)


def load_checkpoint(path: str | os.PathLike, model_name: str | None = None,
                    motion_weights: str | os.PathLike | None = None, **model_kwargs: Any) -> Any:
    """Build a model and load a checkpoint file into it, strictly.

    Our own checkpoints (``save_checkpoint``) name their variant and kwargs; ``model_kwargs`` given here
    override the recorded ones (e.g. ``frames``). Foreign layouts (official SimpleVQA) are recognised by their
    keys and renamed; ``model_name`` picks the variant when the file does not say. ``motion_weights`` is a
    second checkpoint for a motion branch the main one lacks (pytorchvideo's SlowFast for official SimpleVQA).
    """
    from .models import create_model

    path = os.fspath(path)
    obj = read_checkpoint(path)
    motion = None
    if motion_weights is not None:
        motion = extract_state_dict(read_checkpoint(motion_weights), os.fspath(motion_weights))
    if isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT:
        name = model_name or obj["model_name"]
        kwargs = {**dict(obj.get("model_kwargs") or {}), **model_kwargs}
        model = create_model(name, **kwargs)
        load_state_dict_strict(model, obj["state_dict"], path)
    else:
        state_dict = extract_state_dict(obj, path)
        for fmt_name, (detect, default_model, key_map) in FOREIGN_FORMATS.items():
            if detect(state_dict):
                model = create_model(model_name or default_model, **model_kwargs)
                load_foreign = getattr(model, "load_foreign_state_dict", None)
                if load_foreign is not None:
                    load_foreign(fmt_name, state_dict, path, motion_state_dict=motion)
                    return model.eval()
                load_state_dict_strict(model, key_map(state_dict), path)
                break
        else:
            if model_name is None:
                raise ModelError(f"{path}: a bare state dict does not say which model it is for; name the variant "
                                 f"(--arch NAME / model_name=...)")
            model = create_model(model_name, **model_kwargs)
            load_state_dict_strict(model, state_dict, path)
    if motion is not None:
        raise ModelError(f"{motion_weights}: motion weights are only used with official SimpleVQA checkpoints; "
                         f"{path} already holds every weight of its model")
    return model.eval()
