"""Parity inputs and comparisons: does the exported graph compute what the torch model computes?

Two kinds of input feed a parity check: random normal values (what normalised pixels look like, seeded) and
real ones, sampled from a video by edgevqa's own decoder, plan and NumPy reference sampler, so the check covers
exactly what a deployment feeds the model.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np

from edgevqa.manifest import ModelManifest

# Gates on the relative error max|onnx - torch| / max(max|torch|, 1e-3), per output.
FP32_GATE = 1e-4
FP16_GATE = 5e-2


@dataclass(frozen=True)
class ParityResult:
    """One output compared on one input set."""

    inputs: str  # "random" or "video:<name>"
    output: str
    max_abs_error: float
    relative_error: float
    gate: float
    reference_range: tuple[float, float]

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.relative_error)) and self.relative_error <= self.gate

    def to_dict(self) -> dict:
        d = asdict(self)
        d["reference_range"] = list(self.reference_range)
        d["passed"] = self.passed
        return d


def random_inputs(manifest: ModelManifest, num_clips: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal float32 inputs shaped like each view (``num_clips`` overrides the manifest's)."""
    rng = np.random.default_rng(seed)
    return {view.name: rng.standard_normal(view.input_shape(num_clips), dtype=np.float32)
            for view in manifest.views}


def video_inputs(manifest: ModelManifest, video: str | os.PathLike, seed: int | None = None) -> dict[str, np.ndarray]:
    """The model inputs of ``video`` for every view of ``manifest`` (float32), made the way the runtime makes
    them: PyAV decoder, sampling plan, sampling kernels. Frames the container promises but the stream
    lacks repeat the last decoded frame."""
    from edgevqa.decode import PyAVDecoder
    from edgevqa.feed import sample_plans
    from edgevqa.sampling import make_plans

    views = manifest.with_views(dtype="float32").views
    with PyAVDecoder(video) as decoder:
        plans = make_plans(views, decoder.info, seed)
        buffers = sample_plans(decoder, plans).arrays
    return {plan.view.name: buf for plan, buf in zip(plans, buffers)}


def compare_outputs(label: str, reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray],
                    gate: float) -> list[ParityResult]:
    results = []
    for name, ref in reference.items():
        ref = np.asarray(ref, dtype=np.float64)
        got = np.asarray(candidate[name], dtype=np.float64)
        if got.shape != ref.shape:
            results.append(ParityResult(label, name, float("inf"), float("inf"), gate,
                                        (float(ref.min()), float(ref.max()))))
            continue
        err = float(np.max(np.abs(got - ref))) if ref.size else 0.0
        if not np.all(np.isfinite(got)):
            err = float("inf")
        scale = max(float(np.max(np.abs(ref))) if ref.size else 0.0, 1e-3)
        results.append(ParityResult(label, name, err, err / scale, gate, (float(ref.min()), float(ref.max()))))
    return results
