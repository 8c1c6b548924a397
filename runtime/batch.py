"""Batch scoring of large video sets on Ray Data: a pool of actors, each holding one `Pipeline`.

    import ray.data, edgevqa.batch
    scores = edgevqa.batch.score_dataset(["a.mp4", "b.mp4", ...], actors=4)       # a ray.data.Dataset
    scores = edgevqa.batch.score_dataset(ray.data.read_binary_files("s3://bucket/videos/", include_paths=True))
    scores.write_parquet("scores/")

The input is paths (every node must see them: a shared or network file system, or URLs FFmpeg opens) or a
Ray Dataset with a ``path`` column and, optionally, the video's ``bytes`` (as `ray.data.read_binary_files`
gives with ``include_paths=True``: the bytes travel, so the nodes need not see the files). Each output row is
one video (`ROW_COLUMNS` and one float column per model output); a video that fails gives a row with ``ok``
False and ``error`` saying why, and the others are still scored. Ray is optional (``pip install
'edgevqa[ray]'``) and imported only here; every node needs edgevqa installed, and the model file at the same
path (the shipped default model is inside the package).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Iterable

import numpy as np

from .errors import BackendUnavailableError, EdgeVQAError, ModelError
from .manifest import load_manifest
from .pipeline import BACKENDS, Pipeline, resolve_model
from .segments import check_segment_seconds

# Columns of every output row besides the model's outputs (one float column each, NaN where scoring failed).
ROW_COLUMNS = ("index", "video", "ok", "error", "warnings", "frames_decoded", "seconds", "model", "model_version",
               "result")
PIPELINE_OPTIONS = ("backend", "threads", "seed", "plan_mode", "device", "segment_seconds", "decode_threads",
                    "deinterlace", "tone_map", "time_range", "scene_cuts", "crop_bars", "frame_stride")


def import_ray() -> Any:
    """`ray` with Ray Data, or a `BackendUnavailableError` naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data needs pyarrow and pandas, which plain `ray` does not pull)
    except ImportError as exc:
        raise BackendUnavailableError("batch (Ray Data)", "ray[data]", extra="ray", detail=str(exc)) from exc
    return ray


class VideoScorer:
    """The Ray actor: builds its `Pipeline` once (the model loads in the actor) and scores each batch of videos
    with `Pipeline.score_many`, so one video decodes while the one before it runs the model."""

    def __init__(self, model_path: str, options: dict[str, Any]):
        self.pipeline = Pipeline(model_path, **options)
        self.pipeline.activate()
        self.outputs = list(self.pipeline.manifest.outputs)

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        import pyarrow as pa

        paths = [str(p) for p in batch["path"]]
        contents = batch.get("bytes")
        sources: list[Any] = paths if contents is None else [bytes(c) for c in contents]
        indices = batch["index"] if "index" in batch else np.full(len(paths), -1, dtype=np.int64)
        rows = [result_row(result, path, source, self.outputs)
                for result, path, source in zip(self.pipeline.score_many(sources), paths, sources)]
        for row, index in zip(rows, indices):
            row["index"] = int(index)
            row.update({name: row["scores"].get(name, math.nan) for name in self.outputs})
        schema = row_schema(self.outputs)
        # Typed columns, so that every block has the same schema (a batch whose videos have no warnings would
        # otherwise give a list of nulls) and a Parquet file of many blocks reads back as one table.
        return pa.table({name: [row[name] for row in rows] for name in schema.names}, schema=schema)


def row_schema(outputs: list[str]) -> Any:
    """The Arrow schema of the result rows: `ROW_COLUMNS`, with the model's outputs (float64) after ``error``."""
    import pyarrow as pa

    types = {"index": pa.int64(), "video": pa.string(), "ok": pa.bool_(), "error": pa.string(),
             "warnings": pa.list_(pa.string()), "frames_decoded": pa.int64(), "seconds": pa.float64(),
             "model": pa.string(), "model_version": pa.string(), "result": pa.string()}
    names = list(ROW_COLUMNS)
    at = names.index("error") + 1
    names[at:at] = outputs
    return pa.schema([(name, types.get(name, pa.float64())) for name in names])


def result_row(result: Any, path: str, source: Any, outputs: list[str]) -> dict[str, Any]:
    """One output row of a `Result` (``index`` is added by the caller). Scoring bytes names the video by their
    size in messages (``<N bytes>``); the row names it by its path instead, in the result too."""
    record = result.to_dict()
    if isinstance(source, (bytes, bytearray)):
        record = _renamed(record, f"<{len(source)} bytes>", path)
    record["video"] = path
    return {
        "video": path, "ok": record["error"] is None, "error": record["error"] or "",
        "warnings": list(record["warnings"]), "frames_decoded": int(record["frames_decoded"]),
        "seconds": float(record["timings"].get("total", math.nan)), "model": record["model"],
        "model_version": record["model_version"], "result": json.dumps(record, sort_keys=True),
        "scores": {name: record["scores"][name] for name in outputs if name in record["scores"]},
    }


def _renamed(value: Any, old: str, new: str) -> Any:
    """``value`` (a JSON-like structure) with ``old`` replaced by ``new`` in every string in it."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: _renamed(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, old, new) for v in value]
    return value


def check_actor_count(actors: int) -> int:
    if isinstance(actors, bool) or not isinstance(actors, int) or actors < 1:
        raise EdgeVQAError(f"actors must be a whole number of at least 1, got {actors!r}")
    return actors


def check_pipeline_options(model_path: str, options: dict[str, Any]) -> None:
    """What the driver can check before any actor starts: the manifest, the backend's name and the segment
    length. The backend itself is made in the actors only: the driver may lack a worker's GPU libraries."""
    clashing = sorted(set(load_manifest(model_path).outputs) & set(ROW_COLUMNS))
    if clashing:
        raise ModelError(f"{model_path}: output(s) named {', '.join(clashing)} would clash with the result rows' own "
                         "columns; rename them in the manifest")
    backend = options.get("backend", "ort-cpu")
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if options.get("segment_seconds") is not None:
        check_segment_seconds(options["segment_seconds"])


def worker_path(video: str | os.PathLike) -> str:
    """How a video is named to the actors and in the rows: an existing local file by its absolute path (workers
    run in other directories, and on other machines), anything else (a URL, a missing file) as given."""
    path = os.fspath(video)
    return os.path.abspath(path) if os.path.exists(path) else path


def _input_dataset(ray: Any, videos: Any) -> Any:
    """A Ray Dataset with ``path`` (and ``index`` where the order is known) from paths or a user's Dataset."""
    if isinstance(videos, ray.data.Dataset):
        names = videos.columns() or []
        if "path" not in names:
            raise EdgeVQAError(f"the dataset to score needs a 'path' column (it has: {', '.join(names) or 'none'}); "
                               "ray.data.read_binary_files(..., include_paths=True) gives one")
        return videos
    if isinstance(videos, (str, os.PathLike)):
        raise EdgeVQAError("score_dataset takes a list of videos, not one path: pass [path]")
    items = []
    for i, video in enumerate(videos):
        if not isinstance(video, (str, os.PathLike)):
            raise EdgeVQAError(f"videos to score in a batch are paths or URLs; item {i} is a {type(video).__name__}")
        items.append({"index": i, "path": worker_path(video)})
    if not items:
        raise EdgeVQAError("no videos to score")
    return ray.data.from_items(items)


def score_dataset(videos: Iterable[str | os.PathLike] | Any, model: str | os.PathLike | None = None, *,
                  actors: int = 2, cpus_per_actor: float = 1.0, gpus_per_actor: float = 0.0,
                  batch_size: int = 4, **options: Any) -> Any:
    """Score ``videos`` (paths, or a Ray Dataset with ``path`` and optional ``bytes`` columns) on a pool of
    ``actors`` Ray actors, each holding a `Pipeline` of ``model`` (default: the shipped model) with ``options``
    (`PIPELINE_OPTIONS`). Returns the lazy `ray.data.Dataset` of result rows: `ROW_COLUMNS` plus one float
    column per model output. ``index`` is the position in ``videos`` (-1 for a Dataset's rows); ``result`` is the
    whole `Result` as JSON (segments included). The model and options are checked here, before Ray starts."""
    unknown = sorted(set(options) - set(PIPELINE_OPTIONS))
    if unknown:
        raise EdgeVQAError(f"unknown option(s) for the pipeline: {', '.join(unknown)}; "
                           f"choose from {', '.join(PIPELINE_OPTIONS)}")
    check_actor_count(actors)
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise EdgeVQAError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")
    model_path = os.path.abspath(resolve_model(model))
    check_pipeline_options(model_path, options)
    ray = import_ray()
    dataset = _input_dataset(ray, videos)
    return dataset.map_batches(VideoScorer, fn_constructor_kwargs={"model_path": model_path, "options": options},
                               compute=ray.data.ActorPoolStrategy(size=actors), batch_size=batch_size,
                               batch_format="numpy", num_cpus=cpus_per_actor, num_gpus=gpus_per_actor or None)
