"""Model manifests: everything the runtime must know to feed a model and read its outputs.

A manifest travels inside the ONNX file (metadata property ``edgevqa.manifest``, JSON) and beside any other
artifact (TensorRT engine, checkpoint) as a sidecar JSON file ``<artifact>.manifest.json``. With it,
``edgevqa score --model any.onnx video.mp4`` needs no other flag.

View kinds follow ``shared/design/sampling.md``:

- ``fragments``: FAST-VQA grid mini-patch sampling (grid x patch cells, ``aligned`` frames share a position);
- ``resize_crop``: SimpleVQA's spatial view (one key frame per second, short side resized, centre crop);
- ``clips``: SimpleVQA's motion view (consecutive frames from each second, squashed to ``size``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping

from .errors import ManifestError

MANIFEST_METADATA_KEY = "edgevqa.manifest"
MANIFEST_FORMAT_VERSION = 4  # 2: sample_bit_depth; 3: scene_cuts; 4: frame_rate
SIDECAR_SUFFIX = ".manifest.json"

VIEW_KINDS = ("fragments", "resize_crop", "clips")
TEMPORAL_MODES = ("segments", "per_second", "key_frames")
LAYOUTS = ("NCTHW", "NTCHW")
DTYPES = ("float32", "float16")

# Normalisation constants on the 0..255 scale, so every view normalises uint8-range RGB the same way.
IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)
IMAGENET_STD_255 = (58.395, 57.12, 57.375)
KINETICS_MEAN_255 = (0.45 * 255, 0.45 * 255, 0.45 * 255)
KINETICS_STD_255 = (0.225 * 255, 0.225 * 255, 0.225 * 255)


def _pair(value: Any, what: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    try:
        a, b = value
        return (int(a), int(b))
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"{what} must be an int or a pair of ints, got {value!r}") from exc


@dataclass(frozen=True)
class ViewSpec:
    """How one model input is made from a video.

    Temporal sampling (``temporal``):

    - ``segments`` (FAST-VQA / DOVER): the video is cut into ``num_clips * segments_per_clip`` equal segments;
      each segment gives ``clip_len // segments_per_clip`` frames ``frame_interval`` apart; consecutive
      segments form one clip. FAST-VQA-B = 4 clips x 1 segment x 32 frames at stride 2; FasterVQA = 1 clip x
      8 segments x 4 frames at stride 2; DOVER aesthetic = 1 clip x 32 segments x 1 frame.
    - ``per_second`` (SimpleVQA motion): clip ``n`` starts at frame ``n * round(fps)`` and holds ``clip_len``
      frames ``frame_interval`` apart.
    - ``key_frames`` (SimpleVQA spatial): frame ``t`` of clip ``n`` is the first frame of second
      ``n * clip_len + t``.

    In the last two modes reads past the end repeat the last frame.

    Spatial sampling depends on ``kind``; ``size`` is the output (height, width). For fragments it must be
    ``grid * patch``.
    """

    name: str = "video"
    kind: str = "fragments"
    num_clips: int = 1
    clip_len: int = 32
    frame_interval: int = 2
    segments_per_clip: int = 1
    temporal: str = "segments"
    grid: tuple[int, int] = (7, 7)
    patch: tuple[int, int] = (32, 32)
    aligned: int = 32
    size: tuple[int, int] = (224, 224)
    short_side: int | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN_255
    std: tuple[float, float, float] = IMAGENET_STD_255
    dtype: str = "float32"
    layout: str = "NCTHW"

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", _pair(self.grid, "grid"))
        object.__setattr__(self, "patch", _pair(self.patch, "patch"))
        object.__setattr__(self, "size", _pair(self.size, "size"))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        self.validate()

    def validate(self) -> None:
        def bad(msg: str) -> ManifestError:
            return ManifestError(f"view '{self.name}': {msg}")

        if not self.name or not isinstance(self.name, str):
            raise bad("name must be a non-empty string (the model input it feeds)")
        if self.kind not in VIEW_KINDS:
            raise bad(f"kind must be one of {VIEW_KINDS}, got {self.kind!r}")
        if self.temporal not in TEMPORAL_MODES:
            raise bad(f"temporal must be one of {TEMPORAL_MODES}, got {self.temporal!r}")
        if self.layout not in LAYOUTS:
            raise bad(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.dtype not in DTYPES:
            raise bad(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        for label, value in (("num_clips", self.num_clips), ("clip_len", self.clip_len),
                             ("frame_interval", self.frame_interval),
                             ("segments_per_clip", self.segments_per_clip), ("aligned", self.aligned)):
            if not isinstance(value, int) or value < 1:
                raise bad(f"{label} must be a positive integer, got {value!r}")
        if self.clip_len % self.segments_per_clip:
            raise bad(f"clip_len {self.clip_len} is not a multiple of segments_per_clip {self.segments_per_clip}")
        if min(self.grid) < 1 or min(self.patch) < 1 or min(self.size) < 1:
            raise bad("grid, patch and size must be positive")
        if self.kind == "fragments":
            expect = (self.grid[0] * self.patch[0], self.grid[1] * self.patch[1])
            if self.size != expect:
                raise bad(f"size {self.size} must equal grid x patch = {expect} for fragments")
        if self.short_side is not None and (not isinstance(self.short_side, int) or self.short_side < 1):
            raise bad(f"short_side must be a positive integer or null, got {self.short_side!r}")
        if self.kind == "resize_crop" and self.short_side is not None and self.short_side < min(self.size):
            raise bad(f"short_side {self.short_side} is smaller than the crop {self.size}")
        if len(self.mean) != 3 or len(self.std) != 3 or any(not math.isfinite(s) or s <= 0 for s in self.std):
            raise bad("mean and std must hold 3 values each, std positive")

    @property
    def frames_per_segment(self) -> int:
        return self.clip_len // self.segments_per_clip

    def input_shape(self, num_clips: int | None = None) -> tuple[int, int, int, int, int]:
        """The model input shape for this view (NCTHW or NTCHW)."""
        n = self.num_clips if num_clips is None else num_clips
        h, w = self.size
        if self.layout == "NCTHW":
            return (n, 3, self.clip_len, h, w)
        return (n, self.clip_len, 3, h, w)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("grid", "patch", "size", "mean", "std"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ViewSpec":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ManifestError(f"view has unknown keys {sorted(unknown)}; known keys: {sorted(known)}")
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ManifestError(f"view is malformed: {exc}") from exc


@dataclass(frozen=True)
class ModelManifest:
    """What a model is, what it eats, and how its outputs become scores.

    ``outputs`` names the model's outputs (one ONNX output per quality dimension, each shaped
    ``[clips, ...]``); a dimension's score is the mean of its output over every axis, then
    ``a * mean + b`` with ``(a, b) = rescale.get(name, (1, 0))``, clamped to ``score_range`` when one is given.
    """

    name: str
    views: tuple[ViewSpec, ...]
    outputs: tuple[str, ...] = ("overall",)
    version: str = "0"
    rescale: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    score_range: tuple[float, float] | None = None
    description: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    format_version: int = MANIFEST_FORMAT_VERSION
    # The sample precision the model was trained on: video with deeper samples (10-bit, 12-bit YUV and grey) is
    # rounded to it before sampling, so the same picture scores the same at any bit depth. None: sampled at the
    # decoded precision (a model trained on frames converted to RGB from whatever depth the video had).
    sample_bit_depth: int | None = None
    # "avoid": the model's snippets of consecutive frames are moved off scene cuts (`edgevqa.scenecuts`), for a
    # model that reads a cut inside one as a temporal flaw; "keep": its frames are read as planned.
    scene_cuts: str = "keep"
    # The frame rate whose motion between frames the model learnt (frames per second). Video at about k times
    # that rate is read every k-th frame where the model reads consecutive frames (`edgevqa.sampling.frame_stride`),
    # so a 60 fps clip shows the motion of its 30 fps version, and a 24 fps film delivered at 48 or 50 fps by
    # repeating frames reads as the film, not as a stutter. None: consecutive frames at any rate.
    frame_rate: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "views", tuple(self.views))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "rescale", {k: (float(v[0]), float(v[1])) for k, v in dict(self.rescale).items()})
        if self.score_range is not None:
            object.__setattr__(self, "score_range", (float(self.score_range[0]), float(self.score_range[1])))
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ManifestError("manifest: name must be a non-empty string")
        if self.format_version > MANIFEST_FORMAT_VERSION:
            raise ManifestError(
                f"manifest of '{self.name}' has format version {self.format_version}; this edgevqa reads up to "
                f"{MANIFEST_FORMAT_VERSION}: upgrade edgevqa")
        if not self.views:
            raise ManifestError(f"manifest of '{self.name}' declares no views (model inputs)")
        depth = self.sample_bit_depth
        if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or not 8 <= depth <= 16):
            raise ManifestError(f"manifest of '{self.name}': sample_bit_depth must be null or a whole number of bits "
                                f"from 8 to 16, got {depth!r}")
        if self.scene_cuts not in ("keep", "avoid"):
            raise ManifestError(f"manifest of '{self.name}': scene_cuts must be 'keep' or 'avoid', got "
                                f"{self.scene_cuts!r}")
        rate = self.frame_rate
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))
                                 or not math.isfinite(rate) or rate <= 0):
            raise ManifestError(f"manifest of '{self.name}': frame_rate must be null or a positive number of frames "
                                f"per second, got {rate!r}")
        for view in self.views:
            if not isinstance(view, ViewSpec):
                raise ManifestError(f"manifest of '{self.name}': views must be ViewSpec objects")
        names = [v.name for v in self.views]
        if len(set(names)) != len(names):
            raise ManifestError(f"manifest of '{self.name}': duplicate view names {names}")
        if not self.outputs or len(set(self.outputs)) != len(self.outputs):
            raise ManifestError(f"manifest of '{self.name}': outputs must be distinct names, got {self.outputs}")
        unknown = set(self.rescale) - set(self.outputs)
        if unknown:
            raise ManifestError(f"manifest of '{self.name}': rescale names unknown outputs {sorted(unknown)}")

    def view(self, name: str) -> ViewSpec:
        for v in self.views:
            if v.name == name:
                return v
        raise ManifestError(f"manifest of '{self.name}' has no view '{name}'; views: {[v.name for v in self.views]}")

    def with_views(self, **changes: Any) -> "ModelManifest":
        """A copy whose every view has ``changes`` applied (e.g. ``dtype='float16'``)."""
        return replace(self, views=tuple(replace(v, **changes) for v in self.views))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "views": [v.to_dict() for v in self.views],
            "outputs": list(self.outputs),
            "rescale": {k: list(v) for k, v in self.rescale.items()},
            "score_range": list(self.score_range) if self.score_range else None,
            "metadata": dict(self.metadata),
            **({"sample_bit_depth": self.sample_bit_depth} if self.sample_bit_depth is not None else {}),
            **({"scene_cuts": self.scene_cuts} if self.scene_cuts != "keep" else {}),
            **({"frame_rate": self.frame_rate} if self.frame_rate is not None else {}),
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelManifest":
        if not isinstance(data, Mapping):
            raise ManifestError(f"manifest must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ManifestError(f"manifest has unknown keys {sorted(unknown)}")
        if "name" not in data or "views" not in data:
            raise ManifestError("manifest needs at least 'name' and 'views'")
        d = dict(data)
        views = d.pop("views")
        if not isinstance(views, list):
            raise ManifestError("manifest 'views' must be a list")
        try:
            return cls(views=tuple(ViewSpec.from_dict(v) for v in views), **d)
        except TypeError as exc:
            raise ManifestError(f"manifest is malformed: {exc}") from exc

    @classmethod
    def from_json(cls, text: str, source: str = "<string>") -> "ModelManifest":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{source}: manifest is not valid JSON: {exc}") from exc
        try:
            return cls.from_dict(data)
        except ManifestError as exc:
            raise ManifestError(f"{source}: {exc}") from exc

    def score(self, name: str, raw_mean: float) -> float:
        """A dimension's score from the mean raw output: rescaled, then clamped to ``score_range`` if set.

        Clamping keeps a score on the scale the model documents (e.g. 0..100) when a regressor overshoots on
        content unlike its training data; the raw value stays available in the per-clip outputs.
        """
        a, b = self.rescale.get(name, (1.0, 0.0))
        value = a * raw_mean + b
        if self.score_range is not None:
            value = min(max(value, self.score_range[0]), self.score_range[1])
        return value


# ---------------------------------------------------------------------------------------------- storage


def embed_in_onnx(model: Any, manifest: ModelManifest) -> Any:
    """Store ``manifest`` in an ``onnx.ModelProto``'s metadata (replacing an earlier one); returns the model."""
    props = [p for p in model.metadata_props if p.key != MANIFEST_METADATA_KEY]
    del model.metadata_props[:]
    for p in props:
        model.metadata_props.add(key=p.key, value=p.value)
    model.metadata_props.add(key=MANIFEST_METADATA_KEY, value=manifest.to_json())
    return model


def manifest_from_onnx_model(model: Any, source: str = "<model>") -> ModelManifest:
    for p in model.metadata_props:
        if p.key == MANIFEST_METADATA_KEY:
            return ModelManifest.from_json(p.value, source)
    raise ManifestError(f"{source}: the ONNX model carries no edgevqa manifest (metadata key "
                        f"'{MANIFEST_METADATA_KEY}'); export it with 'edgevqa export' or give a sidecar "
                        f"'{os.path.basename(source)}{SIDECAR_SUFFIX}'")


def sidecar_path(artifact_path: str | os.PathLike) -> str:
    return os.fspath(artifact_path) + SIDECAR_SUFFIX


def write_sidecar(artifact_path: str | os.PathLike, manifest: ModelManifest) -> str:
    path = sidecar_path(artifact_path)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(manifest.to_json(indent=2))
        fh.write("\n")
    return path


def read_sidecar(artifact_path: str | os.PathLike) -> ModelManifest:
    path = sidecar_path(artifact_path)
    try:
        with open(path, encoding="utf-8") as fh:
            return ModelManifest.from_json(fh.read(), path)
    except FileNotFoundError as exc:
        raise ManifestError(f"{artifact_path}: no manifest found (expected the sidecar file {path})") from exc


def load_manifest(path: str | os.PathLike) -> ModelManifest:
    """The manifest of a model artifact: a sidecar JSON wins, else the ONNX metadata."""
    path = os.fspath(path)
    if os.path.exists(sidecar_path(path)):
        return read_sidecar(path)
    if path.endswith(".onnx"):
        import onnx  # base dependency; imported here to keep `import edgevqa` light

        from .errors import ModelError

        try:
            model = onnx.load(path, load_external_data=False)
        except Exception as exc:  # onnx raises DecodeError, OSError, ... for broken files
            raise ModelError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
        return manifest_from_onnx_model(model, path)
    return read_sidecar(path)
