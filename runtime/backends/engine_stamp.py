"""What a TensorRT engine file was built for, stored beside it and checked before it is deserialised.

A serialised TensorRT engine runs only with the TensorRT version that built it and on GPUs of the same compute
capability (TensorRT developer guide, "Engine compatibility"); loading it elsewhere fails deep inside TensorRT
or, worse, crashes. So `edgevqa build` records a stamp (TensorRT version, GPU name, compute capability, DLA
core, shape profiles, the engine's SHA-256) in the engine's sidecar manifest (``<engine>.manifest.json``,
under ``metadata["tensorrt_engine"]``), and the runner checks it against the machine before TensorRT sees the
file, failing with one clear `ModelError`.

Security: deserialising an engine executes code it carries (plugins, kernels). Load only engine files you
built or that come from a source you trust; the stamp's checksum detects accidents (a replaced or truncated
file), not attacks, since whoever can replace the engine can rewrite its sidecar too.

Pure Python on purpose: tested on machines without TensorRT or a GPU.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from ..errors import ManifestError, ModelError
from ..manifest import ModelManifest, read_sidecar, sidecar_path, write_sidecar
from .shape_profiles import InputProfile

STAMP_KEY = "tensorrt_engine"
STAMP_FORMAT = "edgevqa-trt-engine-1"
TRUST_NOTE = ("TensorRT engines execute code when loaded: load only engine files you built or that come "
              "from a source you trust")


@dataclass(frozen=True)
class EngineStamp:
    """The build facts of one engine file."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "major.minor", e.g. "9.0"
    engine_sha256: str
    profiles: tuple[InputProfile, ...] = ()
    dla_core: int | None = None
    source_onnx: str = ""
    source_sha256: str = ""
    built_at: str = ""
    edgevqa_version: str = ""
    format: str = STAMP_FORMAT
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "tensorrt_version": self.tensorrt_version, "gpu_name": self.gpu_name,
                "compute_capability": self.compute_capability, "engine_sha256": self.engine_sha256,
                "profiles": [p.to_dict() for p in self.profiles], "dla_core": self.dla_core,
                "source_onnx": self.source_onnx, "source_sha256": self.source_sha256, "built_at": self.built_at,
                "edgevqa_version": self.edgevqa_version, "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str) -> "EngineStamp":
        if not isinstance(data, Mapping):
            raise ManifestError(f"{source}: the engine stamp is not a JSON object")
        if data.get("format") != STAMP_FORMAT:
            raise ManifestError(f"{source}: engine stamp format {data.get('format')!r} is not {STAMP_FORMAT!r}; "
                                "rebuild the engine with this edgevqa")
        try:
            return cls(tensorrt_version=str(data["tensorrt_version"]), gpu_name=str(data["gpu_name"]),
                       compute_capability=str(data["compute_capability"]),
                       engine_sha256=str(data["engine_sha256"]),
                       profiles=tuple(InputProfile.from_dict(p) for p in data.get("profiles") or ()),
                       dla_core=None if data.get("dla_core") is None else int(data["dla_core"]),
                       source_onnx=str(data.get("source_onnx", "")), source_sha256=str(data.get("source_sha256", "")),
                       built_at=str(data.get("built_at", "")), edgevqa_version=str(data.get("edgevqa_version", "")),
                       extra=dict(data.get("extra") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{source}: the engine stamp is malformed ({type(exc).__name__}: {exc})") from exc


@dataclass(frozen=True)
class DeviceFacts:
    """The machine an engine is about to be loaded on."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def make_stamp(engine_path: str, facts: DeviceFacts, profiles: Sequence[InputProfile], dla_core: int | None,
               source_onnx: str = "") -> EngineStamp:
    from .. import __version__

    return EngineStamp(tensorrt_version=facts.tensorrt_version, gpu_name=facts.gpu_name,
                       compute_capability=facts.compute_capability, engine_sha256=file_sha256(engine_path),
                       profiles=tuple(profiles), dla_core=dla_core,
                       source_onnx=os.path.basename(source_onnx) if source_onnx else "",
                       source_sha256=file_sha256(source_onnx) if source_onnx and os.path.isfile(source_onnx) else "",
                       built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), edgevqa_version=__version__)


def write_engine_sidecar(engine_path: str | os.PathLike, manifest: ModelManifest, stamp: EngineStamp) -> str:
    """Write ``<engine>.manifest.json``: the model's manifest with the stamp under ``metadata['tensorrt_engine']``."""
    metadata = dict(manifest.metadata)
    metadata[STAMP_KEY] = stamp.to_dict()
    return write_sidecar(engine_path, replace(manifest, metadata=metadata))


def read_engine_sidecar(engine_path: str | os.PathLike) -> tuple[ModelManifest, EngineStamp]:
    """The manifest and stamp of an engine file; `ManifestError` when either is missing or malformed."""
    engine_path = os.fspath(engine_path)
    manifest = read_sidecar(engine_path)
    data = manifest.metadata.get(STAMP_KEY)
    if data is None:
        raise ManifestError(f"{engine_path}: its sidecar {sidecar_path(engine_path)} has no TensorRT stamp "
                            f"(metadata '{STAMP_KEY}'); build the engine with 'edgevqa build'")
    return manifest, EngineStamp.from_dict(data, sidecar_path(engine_path))


def check_stamp(engine_path: str, stamp: EngineStamp, facts: DeviceFacts, verify_checksum: bool = True) -> list[str]:
    """Raise `ModelError` when the engine cannot run here; returns warnings for harmless differences.

    TensorRT refuses engines from another version, and an engine built for another compute capability has no
    kernels for this GPU: both are errors that say how to rebuild. Another GPU model of the same compute
    capability runs, possibly slower (its tactics were timed elsewhere): a warning.
    """
    rebuild = f"rebuild it here with: edgevqa build MODEL.onnx --save-engine {engine_path}"
    if stamp.tensorrt_version != facts.tensorrt_version:
        raise ModelError(f"{engine_path}: built with TensorRT {stamp.tensorrt_version}, this machine has TensorRT "
                         f"{facts.tensorrt_version} (engines only load in the version that built them); {rebuild}")
    if stamp.compute_capability != facts.compute_capability:
        raise ModelError(f"{engine_path}: built for compute capability {stamp.compute_capability} "
                         f"({stamp.gpu_name}), this GPU is {facts.gpu_name} with compute capability "
                         f"{facts.compute_capability}; {rebuild}")
    if verify_checksum:
        actual = file_sha256(engine_path)
        if actual != stamp.engine_sha256:
            raise ModelError(f"{engine_path}: the file's SHA-256 does not match its sidecar's stamp (replaced or "
                             f"damaged since it was built?); {rebuild}")
    warnings = []
    if stamp.gpu_name != facts.gpu_name:
        warnings.append(f"{engine_path}: built on {stamp.gpu_name}, running on {facts.gpu_name} (same compute "
                        f"capability {facts.compute_capability}; tactics were timed on the other GPU)")
    return warnings
