"""Optimisation profiles (min / opt / max input shapes) from a model's manifest and its ONNX inputs.

TensorRT builds an engine for ranges of input shapes ("optimization profiles", see the TensorRT developer
guide, "Working with Dynamic Shapes"); ONNX Runtime's TensorRT execution provider takes the same ranges as
``trt_profile_{min,opt,max}_shapes`` strings. Our models have one dynamic axis, the clip axis (axis 0 of every
input); every other axis is fixed by the manifest's view. The profile is therefore: clips from ``min_clips``
(default 1) to ``max_clips``, tuned for the manifest's own ``num_clips``.

Pure Python on purpose: it is tested on machines without TensorRT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..errors import ModelError
from ..manifest import ModelManifest

DEFAULT_MAX_CLIPS_FACTOR = 4


@dataclass(frozen=True)
class InputProfile:
    """Shape range of one input: ``min <= opt <= max`` on every axis."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "InputProfile":
        return cls(str(data["name"]), tuple(int(v) for v in data["min"]), tuple(int(v) for v in data["opt"]),
                   tuple(int(v) for v in data["max"]))

    def admits(self, shape: Sequence[int]) -> bool:
        """Whether an input of ``shape`` lies inside this profile."""
        return len(shape) == len(self.min) and all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max))


def onnx_input_shapes(model_path: str) -> dict[str, tuple[Any, ...]]:
    """Graph inputs (initialisers excluded) -> shape, with an int for a fixed axis and a str/None for a free one."""
    import onnx

    try:
        model = onnx.load(model_path, load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ... for broken files
        raise ModelError(f"{model_path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    initialisers = {t.name for t in model.graph.initializer}
    shapes: dict[str, tuple[Any, ...]] = {}
    for value in model.graph.input:
        if value.name in initialisers:
            continue
        dims = []
        for d in value.type.tensor_type.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            else:
                dims.append(d.dim_param or None)
        shapes[value.name] = tuple(dims)
    return shapes


def clip_profiles(manifest: ModelManifest, input_shapes: Mapping[str, Sequence[Any]], source: str,
                  max_clips: int | None = None, min_clips: int = 1) -> list[InputProfile]:
    """One `InputProfile` per model input: the clip axis ranges over ``[min_clips, max_clips]``, opt = the
    manifest's ``num_clips``; a model with a fixed clip axis gets min = opt = max = that value.

    ``max_clips`` defaults to ``DEFAULT_MAX_CLIPS_FACTOR * num_clips``. Raises `ModelError` (naming ``source``)
    when the model's inputs and the manifest's views disagree, or the range is empty.
    """
    if min_clips < 1:
        raise ModelError(f"{source}: the smallest clip count must be at least 1, got {min_clips}")
    views = {v.name: v for v in manifest.views}
    unknown = sorted(set(input_shapes) - set(views))
    if unknown:
        raise ModelError(f"{source}: model inputs {unknown} have no view in the manifest (views: {sorted(views)})")
    profiles = []
    for view in manifest.views:
        if view.name not in input_shapes:
            raise ModelError(f"{source}: the manifest's view '{view.name}' is not a model input "
                             f"(inputs: {sorted(input_shapes)})")
        have = tuple(input_shapes[view.name])
        want = view.input_shape()
        if len(have) != len(want):
            raise ModelError(f"{source}: input '{view.name}' has {len(have)} axes, its view makes {len(want)} "
                             f"({list(want)})")
        for axis, (h, w) in enumerate(zip(have[1:], want[1:]), start=1):
            if isinstance(h, int) and h != w:
                raise ModelError(f"{source}: input '{view.name}' axis {axis} is {h}, its view makes {w}")
        opt_clips = want[0]
        if isinstance(have[0], int):
            # A static clip axis: the engine takes exactly that many clips, whatever was asked.
            if have[0] != opt_clips:
                raise ModelError(f"{source}: input '{view.name}' takes exactly {have[0]} clips, its view makes "
                                 f"{opt_clips}")
            lo = hi = opt_clips
        else:
            lo = min_clips
            hi = max_clips if max_clips is not None else DEFAULT_MAX_CLIPS_FACTOR * opt_clips
            if hi < opt_clips:
                raise ModelError(f"{source}: max clips {hi} is below the manifest's {opt_clips} clips per video "
                                 f"for input '{view.name}'")
            if lo > opt_clips:
                raise ModelError(f"{source}: min clips {lo} is above the manifest's {opt_clips} clips per video")
        rest = tuple(int(v) for v in want[1:])
        profiles.append(InputProfile(view.name, (lo,) + rest, (opt_clips,) + rest, (hi,) + rest))
    return profiles


def ort_trt_profile_options(profiles: Sequence[InputProfile]) -> dict[str, str]:
    """ONNX Runtime TensorRT-EP options ``trt_profile_{min,opt,max}_shapes`` ("name:1x3x8x224x224,...")."""
    def spec(which: str) -> str:
        return ",".join(f"{p.name}:{'x'.join(str(d) for d in getattr(p, which))}" for p in profiles)

    return {"trt_profile_min_shapes": spec("min"), "trt_profile_opt_shapes": spec("opt"),
            "trt_profile_max_shapes": spec("max")}
