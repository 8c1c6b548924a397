"""The INT8 accuracy gate: do the INT8 and FP32 models rank held-out videos the same way?

Both models score every held-out video through the full `edgevqa.pipeline.Pipeline` (same decoder, plan and
sampler); per quality dimension the gate reports Spearman's rank correlation (SRCC) between the two sets of
scores and the largest absolute score difference. It passes when every dimension's SRCC reaches the minimum.
SRCC over fewer than three videos says nothing, so the gate needs at least three.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from edgevqa.errors import EdgeVQAError, VideoDecodeError

from .stats import spearman_srcc

MIN_HOLDOUT_VIDEOS = 3


@dataclass
class GateResult:
    videos: list[str]
    min_srcc: float
    fp32_scores: dict[str, list[float]]
    int8_scores: dict[str, list[float]]
    srcc: dict[str, float]
    max_abs_diff: dict[str, float]
    mean_abs_diff: dict[str, float]
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        def clean(v: float) -> float | None:
            return None if isinstance(v, float) and math.isnan(v) else v

        return {"passed": self.passed, "min_srcc": self.min_srcc, "videos": list(self.videos),
                "srcc": {k: clean(v) for k, v in self.srcc.items()}, "max_abs_diff": dict(self.max_abs_diff),
                "mean_abs_diff": dict(self.mean_abs_diff), "fp32_scores": self.fp32_scores,
                "int8_scores": self.int8_scores, "failures": list(self.failures)}


def _score_all(model_path: str, videos: Sequence[str], threads: int | None, plan_mode: str) -> dict[str, list[float]]:
    from edgevqa.pipeline import Pipeline

    scores: dict[str, list[float]] = {}
    with Pipeline(model_path, threads=threads, plan_mode=plan_mode) as pipeline:
        for result in pipeline.score_many(videos):
            if not result.ok:
                raise VideoDecodeError(f"--holdout {result.video}: {result.error}")
            for name, value in result.scores.items():
                scores.setdefault(name, []).append(value)
    return scores


def run_gate(fp32_model: str, int8_model: str, videos: Sequence[str], min_srcc: float,
             threads: int | None = None, plan_mode: str = "default") -> GateResult:
    """Score ``videos`` with both models and compare. Raises `EdgeVQAError` when a video cannot be scored."""
    if len(videos) < MIN_HOLDOUT_VIDEOS:
        raise EdgeVQAError(f"--holdout: the accuracy gate needs at least {MIN_HOLDOUT_VIDEOS} held-out videos "
                           f"(rank correlation over fewer says nothing), got {len(videos)}")
    fp32 = _score_all(fp32_model, videos, threads, plan_mode)
    int8 = _score_all(int8_model, videos, threads, plan_mode)
    result = GateResult(videos=list(videos), min_srcc=float(min_srcc), fp32_scores=fp32, int8_scores=int8,
                        srcc={}, max_abs_diff={}, mean_abs_diff={})
    for name, reference in fp32.items():
        candidate = int8[name]
        diffs = [abs(a - b) for a, b in zip(reference, candidate)]
        result.max_abs_diff[name] = max(diffs)
        result.mean_abs_diff[name] = sum(diffs) / len(diffs)
        srcc = spearman_srcc(reference, candidate)
        result.srcc[name] = srcc
        if math.isnan(srcc):
            result.failures.append(f"{name}: SRCC undefined (the FP32 or INT8 scores are all equal)")
        elif srcc < min_srcc:
            result.failures.append(f"{name}: SRCC {srcc:.4f} < {min_srcc:g}")
    return result
