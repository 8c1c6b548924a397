"""Accuracy of quality predictions: against MOS labels, and of an optimised model against its FP32 reference.

The metrics are the ones VQA papers and challenges report (VQEG's methodology, used by FAST-VQA, DOVER and
the NTIRE/AIS challenges): SRCC and KRCC on the raw predictions; PLCC and RMSE after a monotonic 4-parameter
logistic map from predictions to MOS, ``f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``; PLCC of the raw
predictions too; main score = (SRCC + PLCC) / 2. The statistics come from scipy (the ``bench`` extra).

Label files come as a CSV with a header (a path column and a ``mos`` column), or as the headerless
``path, duration, fps, mos`` lines of the public VQA sets' label lists. Videos are matched by normalised path,
then by the longest shared path suffix, then by file name, then by name without extension; a prediction that
matches several labels is an error that names both.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from edgevqa.errors import BackendUnavailableError, EdgeVQAError

PATH_COLUMNS = ("video", "path", "file", "filename", "name", "video_name")
MOS_COLUMNS = ("mos", "label")
NON_SCORE_COLUMNS = {"video", "mos", "time_s", "error", "warnings", "model", "backend", "seed", "path", "file",
                     "filename", "name", "video_name", "label", "dmos", "duration", "fps", "width", "height"}
MIN_VIDEOS = 3


def import_scipy():
    try:
        import scipy.optimize
        import scipy.stats
    except ImportError as exc:
        raise BackendUnavailableError("eval", "scipy", "bench", str(exc)) from exc
    return scipy


# ----------------------------------------------------------------------------------------------- reading

@dataclass
class ScoreTable:
    """Scores read from a CSV: video path -> {dimension: value}, plus MOS when the file carries it."""

    source: str
    dimensions: list[str]
    scores: dict[str, dict[str, float]]
    mos: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _read_rows(path: str, what: str) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [row for row in csv.reader(fh) if row and any(c.strip() for c in row)]
    except FileNotFoundError:
        raise EdgeVQAError(f"{path}: no such {what} file") from None
    except IsADirectoryError:
        raise EdgeVQAError(f"{path}: is a directory, not a {what} CSV") from None
    except UnicodeDecodeError:
        raise EdgeVQAError(f"{path}: not a text CSV file (not UTF-8)") from None
    except (OSError, csv.Error) as exc:
        raise EdgeVQAError(f"{path}: cannot read the {what} CSV ({exc})") from None
    if not rows:
        raise EdgeVQAError(f"{path}: the {what} file is empty")
    return [[c.strip() for c in row] for row in rows]


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _column(header: list[str], choices: Sequence[str]) -> int | None:
    lowered = [h.lower() for h in header]
    for c in choices:
        if c.lower() in lowered:
            return lowered.index(c.lower())
    return None


def read_predictions(path: str) -> ScoreTable:
    """A predictions CSV: header with ``video`` and ``pred`` (or one column per dimension, as ``edgevqa score
    --csv`` writes), optionally ``mos``. Rows whose ``error`` column is set are skipped and listed."""
    rows = _read_rows(path, "predictions")
    header = rows[0]
    vcol = _column(header, PATH_COLUMNS)
    if vcol is None:
        raise EdgeVQAError(f"{path}: the predictions CSV needs a header with a 'video' column (found: "
                           f"{', '.join(header)})")
    mcol = _column(header, MOS_COLUMNS)
    ecol = _column(header, ("error",))
    if "pred" in header:
        dims = ["pred"]
    else:
        dims = [h for i, h in enumerate(header) if i not in (vcol, mcol, ecol) and h.lower() not in NON_SCORE_COLUMNS]
    if not dims:
        raise EdgeVQAError(f"{path}: no score column; add a 'pred' column (or one column per quality dimension)")
    index = {d: header.index(d) for d in dims}
    table = ScoreTable(source=path, dimensions=dims, scores={})
    for lineno, row in enumerate(rows[1:], start=2):
        row = row + [""] * (len(header) - len(row))
        video = row[vcol]
        if not video:
            raise EdgeVQAError(f"{path}:{lineno}: the video column is empty")
        if ecol is not None and row[ecol]:
            table.skipped.append(video)
            continue
        values = {}
        for d in dims:
            value = _number(row[index[d]])
            if value is None:
                raise EdgeVQAError(f"{path}:{lineno}: column '{d}' holds {row[index[d]]!r}, not a finite number")
            values[d] = value
        if video in table.scores:
            raise EdgeVQAError(f"{path}:{lineno}: video {video} appears twice")
        table.scores[video] = values
        if mcol is not None and row[mcol]:
            mos = _number(row[mcol])
            if mos is None:
                raise EdgeVQAError(f"{path}:{lineno}: mos {row[mcol]!r} is not a finite number")
            table.mos[video] = mos
    if not table.scores:
        raise EdgeVQAError(f"{path}: no scored videos in the predictions file")
    return table


def read_labels(path: str) -> dict[str, float]:
    """MOS labels: a CSV with a header holding a path column and ``mos``, or headerless ``path, duration,
    fps, mos`` lines (the last field is the MOS)."""
    rows = _read_rows(path, "labels")
    first = rows[0]
    has_header = _column(first, PATH_COLUMNS) is not None or _number(first[-1]) is None
    labels: dict[str, float] = {}
    if has_header:
        vcol, mcol = _column(first, PATH_COLUMNS), _column(first, MOS_COLUMNS)
        if vcol is None or mcol is None:
            raise EdgeVQAError(f"{path}: a labels CSV with a header needs a 'video' (or 'path') column and a 'mos' "
                               f"column (found: {', '.join(first)}); headerless lines are 'path, duration, fps, mos'")
        body = [(r[vcol] if len(r) > vcol else "", r[mcol] if len(r) > mcol else "") for r in rows[1:]]
        start = 2
    else:
        if len(first) < 2:
            raise EdgeVQAError(f"{path}:1: expected 'path, duration, fps, mos', got {','.join(first)!r}")
        body = [(r[0], r[-1]) for r in rows]
        start = 1
    for lineno, (video, mos_text) in enumerate(body, start=start):
        mos = _number(mos_text)
        if not video or mos is None:
            raise EdgeVQAError(f"{path}:{lineno}: expected a path and a numeric MOS, got {video!r}, {mos_text!r}")
        if video in labels:
            raise EdgeVQAError(f"{path}:{lineno}: video {video} appears twice")
        labels[video] = mos
    if not labels:
        raise EdgeVQAError(f"{path}: no labels found")
    return labels


# ----------------------------------------------------------------------------------------------- matching

def normalise_path(path: str) -> str:
    p = path.strip().replace("\\", "/")
    p = os.path.normpath(p).replace("\\", "/")
    return p[2:] if p.startswith("./") else p


def _parts(path: str) -> list[str]:
    return [x for x in normalise_path(path).split("/") if x not in ("", ".")]


def match_videos(predicted: Iterable[str], labelled: Iterable[str], pred_source: str = "predictions",
                 label_source: str = "labels") -> dict[str, str]:
    """Map each predicted video to its labelled one (see the module docstring for the order of rules).
    Predictions without a label are left out; two predictions may not claim one label."""
    labelled = list(labelled)
    exact = {normalise_path(x): x for x in labelled}
    by_name: dict[str, list[str]] = {}
    by_stem: dict[str, list[str]] = {}
    for x in labelled:
        name = _parts(x)[-1] if _parts(x) else x
        by_name.setdefault(name, []).append(x)
        by_stem.setdefault(os.path.splitext(name)[0], []).append(x)
    out: dict[str, str] = {}
    claimed: dict[str, str] = {}
    for video in predicted:
        key = normalise_path(video)
        hit = exact.get(key)
        if hit is None:
            parts = _parts(video)
            name = parts[-1] if parts else video
            candidates = by_name.get(name) or by_stem.get(os.path.splitext(name)[0]) or []
            if len(candidates) > 1:
                # The longest shared path suffix decides between labels of the same file name.
                depth = [_shared_suffix(parts, _parts(c)) for c in candidates]
                best = max(depth)
                candidates = [c for c, d in zip(candidates, depth) if d == best]
            if len(candidates) > 1:
                raise EdgeVQAError(f"{pred_source}: video {video} matches several entries of {label_source} "
                                   f"({', '.join(candidates[:3])}); give full paths in one of the files")
            hit = candidates[0] if candidates else None
        if hit is None:
            continue
        if hit in claimed:
            raise EdgeVQAError(f"{pred_source}: videos {claimed[hit]} and {video} both match {hit} in {label_source}; "
                               "give full paths")
        claimed[hit] = video
        out[video] = hit
    return out


def _shared_suffix(a: list[str], b: list[str]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


# ----------------------------------------------------------------------------------------------- metrics

def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """VQEG's monotonic 4-parameter logistic: from ``b2`` (x -> -inf) to ``b1`` (x -> +inf), centred at ``b3``."""
    z = np.clip(-(x - b3) / (abs(b4) + 1e-12), -500.0, 500.0)
    return (b1 - b2) / (1.0 + np.exp(z)) + b2


def fit_logistic(pred: np.ndarray, mos: np.ndarray) -> tuple[np.ndarray, str]:
    """MOS-scale predictions: the 4-parameter logistic fitted by least squares (scipy's curve_fit), started
    from the MOS range and the predictions' centre and spread; a linear fit when that fails or has too few
    points. Returns (mapped predictions, a word naming the fit)."""
    scipy = import_scipy()
    pred = np.asarray(pred, dtype=np.float64)
    mos = np.asarray(mos, dtype=np.float64)
    spread = float(np.std(pred))
    if pred.size >= 5 and spread > 0:
        slope = 1.0 if np.corrcoef(pred, mos)[0, 1] >= 0 else -1.0
        hi, lo = (float(mos.max()), float(mos.min())) if slope > 0 else (float(mos.min()), float(mos.max()))
        p0 = [hi, lo, float(np.mean(pred)), spread / 2.0]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                params, _ = scipy.optimize.curve_fit(logistic4, pred, mos, p0=p0, maxfev=20000)
            mapped = logistic4(pred, *params)
            if np.all(np.isfinite(mapped)):
                return mapped, "logistic4"
        except (RuntimeError, ValueError, scipy.optimize.OptimizeWarning):
            pass
    if spread > 0:
        a, b = np.polyfit(pred, mos, 1)
        return a * pred + b, "linear"
    return np.full_like(mos, float(np.mean(mos))), "constant"


def correlation_metrics(pred: Sequence[float], mos: Sequence[float]) -> dict[str, Any]:
    """n, srcc, krcc, plcc (after the logistic fit), plcc_raw, rmse (after the fit), main_score, fit."""
    scipy = import_scipy()
    pred = np.asarray(pred, dtype=np.float64)
    mos = np.asarray(mos, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant inputs give NaN with a warning; NaN is reported as null
        srcc = float(scipy.stats.spearmanr(pred, mos)[0])
        krcc = float(scipy.stats.kendalltau(pred, mos)[0])
        plcc_raw = float(scipy.stats.pearsonr(pred, mos)[0]) if np.std(pred) > 0 and np.std(mos) > 0 else math.nan
        mapped, fit = fit_logistic(pred, mos)
        plcc = float(scipy.stats.pearsonr(mapped, mos)[0]) if np.std(mapped) > 0 and np.std(mos) > 0 else math.nan
    rmse = float(np.sqrt(np.mean((mapped - mos) ** 2)))
    return {"n": int(pred.size), "srcc": srcc, "krcc": krcc, "plcc": plcc, "plcc_raw": plcc_raw, "rmse": rmse,
            "main_score": (srcc + plcc) / 2.0, "fit": fit}


def evaluate(table: ScoreTable, labels: dict[str, float], label_source: str) -> dict[str, Any]:
    """Metrics of every dimension of ``table`` against ``labels``; the first dimension is the headline."""
    matched = match_videos(table.scores, labels, table.source, label_source)
    if not matched:
        sample_p = next(iter(table.scores))
        sample_l = next(iter(labels))
        raise EdgeVQAError(f"{table.source}: no video matches any in {label_source} (e.g. {sample_p!r} vs "
                           f"{sample_l!r})")
    if len(matched) < MIN_VIDEOS:
        raise EdgeVQAError(f"{table.source}: only {len(matched)} video(s) match {label_source}; correlations need at "
                           f"least {MIN_VIDEOS}")
    videos = sorted(matched)
    mos = [labels[matched[v]] for v in videos]
    per_dim = {d: correlation_metrics([table.scores[v][d] for v in videos], mos) for d in table.dimensions}
    headline = "overall" if "overall" in per_dim else table.dimensions[0]
    out: dict[str, Any] = dict(per_dim[headline])
    out["dimension"] = headline
    if len(per_dim) > 1:
        out["dimensions"] = per_dim
    out["unmatched_predictions"] = sorted(set(table.scores) - set(matched))
    out["unlabelled_count"] = len(out["unmatched_predictions"])
    out["skipped_errors"] = list(table.skipped)
    out["labels"] = label_source
    out["predictions"] = table.source
    return out


def compare_tables(reference: ScoreTable, candidate: ScoreTable) -> dict[str, Any]:
    """An optimised artifact's scores against the reference's on the same videos, per shared dimension:
    max and mean absolute difference, SRCC and PLCC between them."""
    scipy = import_scipy()
    matched = match_videos(candidate.scores, reference.scores, candidate.source, reference.source)
    if not matched:
        raise EdgeVQAError(f"{candidate.source}: no video matches any in {reference.source}")
    dims = [d for d in reference.dimensions if d in candidate.dimensions]
    if not dims:
        raise EdgeVQAError(f"{candidate.source} and {reference.source} share no score column "
                           f"({', '.join(candidate.dimensions)} vs {', '.join(reference.dimensions)})")
    videos = sorted(matched)
    per_dim = {}
    for d in dims:
        ref = np.asarray([reference.scores[matched[v]][d] for v in videos])
        cand = np.asarray([candidate.scores[v][d] for v in videos])
        diff = np.abs(cand - ref)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            srcc = float(scipy.stats.spearmanr(ref, cand)[0]) if len(videos) >= 2 else math.nan
            plcc = (float(scipy.stats.pearsonr(ref, cand)[0])
                    if len(videos) >= 2 and np.std(ref) > 0 and np.std(cand) > 0 else math.nan)
        worst = int(np.argmax(diff))
        per_dim[d] = {"n": len(videos), "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
                      "worst_video": videos[worst], "srcc": srcc, "plcc": plcc}
    return {"reference": reference.source, "candidate": candidate.source, "n": len(videos), "dimensions": per_dim,
            "unmatched": sorted(set(candidate.scores) - set(matched))}


def check_gates(comparison: dict[str, Any] | None, metrics: dict[str, Any] | None, atol: float | None,
                min_srcc: float | None) -> list[str]:
    """The failed gates, each as one line (empty when all pass). NaN SRCC fails ``min_srcc``."""
    failed = []
    if comparison is not None:
        for d, c in comparison["dimensions"].items():
            if atol is not None and not c["max_abs_diff"] <= atol:
                failed.append(f"--atol {atol:g}: dimension '{d}' differs by up to {c['max_abs_diff']:.6g} "
                              f"(video {c['worst_video']})")
            if min_srcc is not None and not (c["srcc"] >= min_srcc):
                failed.append(f"--min-srcc {min_srcc:g}: dimension '{d}' has SRCC {c['srcc']:.6g} with the reference")
    if metrics is not None and min_srcc is not None:
        dims = metrics.get("dimensions") or {metrics["dimension"]: metrics}
        for d, m in dims.items():
            if not (m["srcc"] >= min_srcc):
                failed.append(f"--min-srcc {min_srcc:g}: dimension '{d}' has SRCC {m['srcc']:.6g} against the MOS")
    return failed


def table_from_results(results: Iterable[Any], source: str) -> ScoreTable:
    """A `ScoreTable` from pipeline `Result`s (failed videos are skipped and listed)."""
    table = ScoreTable(source=source, dimensions=[], scores={})
    for r in results:
        if not r.ok:
            table.skipped.append(r.video)
            continue
        if not table.dimensions:
            table.dimensions = list(r.scores)
        table.scores[r.video] = dict(r.scores)
    if not table.scores:
        raise EdgeVQAError(f"{source}: no video could be scored")
    return table
