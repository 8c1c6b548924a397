"""Calibration inputs: model inputs made from videos exactly as inference makes them.

Each sample is what `edgevqa.pipeline.Pipeline` feeds the model for one video and one plan seed: the same
decoder, the same sampling plan (from the model's manifest) and the same sampling kernel. The first sample
of a video uses the deterministic plan (seed ``None``, what ``edgevqa score`` uses); further samples use seeds
1, 2, ... so that fragment offsets vary. Videos take turns until ``samples`` are collected; a seed whose plan
equals one already used for that video (views that ignore the seed, e.g. SimpleVQA's resize views) is skipped,
so the set may end smaller than asked, which the result says.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from edgevqa.errors import EdgeVQAError
from edgevqa.manifest import ModelManifest

from .cache import cache_key
from .videos import VideoFile

META_NAME = "meta.json"


@dataclass
class CalibrationInputs:
    """Samples stored as ``sample-NNNNN.npz`` files (one array per model input) in ``directory``."""

    directory: str
    key: str
    sources: list[dict[str, Any]]
    requested: int
    cache_hit: bool = False
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return len(self.sources)

    def sample_path(self, index: int) -> str:
        return os.path.join(self.directory, f"sample-{index:05d}.npz")

    def load(self, index: int) -> dict[str, np.ndarray]:
        with np.load(self.sample_path(index)) as data:
            return {name: np.ascontiguousarray(data[name]) for name in data.files}

    def feeds(self, indices: Sequence[int] | None = None) -> Iterator[dict[str, np.ndarray]]:
        for index in (range(self.count) if indices is None else indices):
            yield self.load(index)

    def spread(self, count: int) -> list[int]:
        """``count`` sample indices spread evenly over the set (all when ``count`` >= the set size)."""
        if count >= self.count:
            return list(range(self.count))
        return sorted({int(round(i)) for i in np.linspace(0, self.count - 1, count)})

    def reader(self) -> Any:
        """An ONNX Runtime `CalibrationDataReader` over the samples, loading one at a time."""
        from onnxruntime.quantization import CalibrationDataReader

        inputs = self

        class SampleReader(CalibrationDataReader):
            def __init__(self) -> None:
                self.start, self.end = 0, inputs.count
                self.position = 0

            def get_next(self) -> dict[str, np.ndarray] | None:
                index = self.start + self.position
                if index >= self.end:
                    return None
                self.position += 1
                return inputs.load(index)

            def __len__(self) -> int:
                return inputs.count

            def set_range(self, start_index: int, end_index: int) -> None:
                self.start, self.end, self.position = start_index, min(end_index, inputs.count), 0

            def rewind(self) -> None:
                self.position = 0

        return SampleReader()


def inputs_key(manifest: ModelManifest, videos: Sequence[VideoFile], samples: int, plan_mode: str) -> str:
    return cache_key("calibration-inputs", {
        "views": [v.to_dict() for v in manifest.views],
        "plan_mode": plan_mode,
        "videos": [v.digest for v in videos],
        "samples": int(samples),
    })


def _plan_fingerprint(plans: Sequence[Any]) -> str:
    sha = hashlib.sha256()
    for plan in plans:
        for array in (plan.frame_indices, plan.slots, plan.tap_group, plan.luma_rows.index, plan.luma_rows.weight,
                      plan.luma_cols.index, plan.luma_cols.weight):
            sha.update(np.ascontiguousarray(array).tobytes())
            sha.update(str(array.shape).encode())
    return sha.hexdigest()


def _schedule(videos: Sequence[VideoFile], manifest: ModelManifest, samples: int, plan_mode: str,
              notes: list[str]) -> list[tuple[VideoFile, int | None]]:
    """(video, seed) pairs to sample, round-robin over the videos, skipping seeds that repeat a plan."""
    from edgevqa.decode import probe
    from edgevqa.sampling import make_plans

    infos = {}
    for video in videos:
        infos[video.path] = probe(video.path)  # fails early, naming the file, on an unreadable video
    if samples < len(videos):
        picks = sorted({int(round(i)) for i in np.linspace(0, len(videos) - 1, samples)})
        notes.append(f"--samples {samples} is below the {len(videos)} calibration videos: {len(picks)} of them "
                     f"are used")
        videos = [videos[i] for i in picks]
    seen: dict[str, set[str]] = {v.path: set() for v in videos}
    exhausted: set[str] = set()
    schedule: list[tuple[VideoFile, int | None]] = []
    # A video whose plan ignores the seed repeats its first plan; try a few seeds before giving up on it.
    max_tries = 4
    round_index = 0
    while len(schedule) < samples and len(exhausted) < len(videos):
        for video in videos:
            if len(schedule) >= samples:
                break
            if video.path in exhausted:
                continue
            for attempt in range(max_tries):
                seed = None if round_index == 0 and attempt == 0 else round_index * max_tries + attempt
                fingerprint = _plan_fingerprint(make_plans(manifest.views, infos[video.path], seed, plan_mode))
                if fingerprint not in seen[video.path]:
                    seen[video.path].add(fingerprint)
                    schedule.append((video, seed))
                    break
            else:
                exhausted.add(video.path)
        round_index += 1
    if len(schedule) < samples:
        notes.append(f"only {len(schedule)} distinct calibration samples could be made from {len(videos)} "
                     f"video(s) (--samples {samples}): the model's views sample the same pixels for every seed; "
                     f"give more videos for a larger set")
    return schedule


def collect_inputs(model_path: str, manifest: ModelManifest, videos: Sequence[VideoFile], samples: int,
                   plan_mode: str = "default", cache_dir: str | None = None,
                   work_dir: str | None = None) -> CalibrationInputs:
    """Make (or load from ``cache_dir``) ``samples`` calibration inputs for ``model_path`` from ``videos``.

    Without ``cache_dir`` the samples go to ``work_dir`` (which the caller removes).
    """
    import time

    from edgevqa.pipeline import Pipeline

    if samples < 1:
        raise EdgeVQAError(f"--samples must be at least 1, got {samples}")
    if not videos:
        raise EdgeVQAError("no calibration videos")
    key = inputs_key(manifest, videos, samples, plan_mode)
    parent = cache_dir or work_dir
    if parent is None:
        raise ValueError("collect_inputs needs cache_dir or work_dir")
    final = os.path.join(parent, f"inputs-{key}")
    meta_path = os.path.join(final, META_NAME)
    if cache_dir and os.path.isfile(meta_path):
        with open(meta_path, encoding="utf-8") as fh:
            meta = json.load(fh)
        found = CalibrationInputs(directory=final, key=key, sources=meta["sources"], requested=samples,
                                  cache_hit=True, notes=list(meta.get("notes", [])))
        if all(os.path.isfile(found.sample_path(i)) for i in range(found.count)):
            return found
        shutil.rmtree(final, ignore_errors=True)  # a damaged entry is rebuilt

    start = time.perf_counter()
    notes: list[str] = []
    schedule = _schedule(list(videos), manifest, samples, plan_mode, notes)
    staging = tempfile.mkdtemp(prefix=".inputs-", dir=parent)
    try:
        pipeline = Pipeline(model_path, plan_mode=plan_mode)
        sources = []
        for index, (video, seed) in enumerate(schedule):
            # The pipeline's own decode -> plan -> sample stage, so calibration sees exactly what inference
            # feeds the model.
            pipeline.seed = seed
            prepared = pipeline.prepare(video.path)
            np.savez(os.path.join(staging, f"sample-{index:05d}.npz"), **prepared.feed)
            sources.append({"video": video.path, "digest": video.digest, "seed": seed})
        with open(os.path.join(staging, META_NAME), "w", encoding="utf-8") as fh:
            json.dump({"sources": sources, "notes": notes, "views": [v.to_dict() for v in manifest.views],
                       "plan_mode": plan_mode}, fh, indent=1)
        if os.path.isdir(final):
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.replace(staging, final)
        except OSError:
            if not os.path.isfile(meta_path):
                raise
            shutil.rmtree(staging, ignore_errors=True)  # another run stored the same entry meanwhile
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return CalibrationInputs(directory=final, key=key, sources=sources, requested=samples, cache_hit=False,
                             notes=notes, seconds=time.perf_counter() - start)
