"""The scoring pipeline: decode -> plan -> sample -> infer -> aggregate, one video at a time or many overlapped.

Decoding happens once per video and only as far as the plans need; each decoded frame is sampled into every
view's input tensor as soon as it arrives and is then released, so memory stays bounded by the model inputs.
`Pipeline.score_many` decodes and samples the next videos on a worker thread while the model runs (PyAV and
ONNX Runtime both release the GIL), through a bounded queue.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from contextlib import ExitStack
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any, Iterable, Iterator

import numpy as np

from .backends.base import Runner
from .decode import PyAVDecoder, describe_source
from .deinterlace import deinterlace_mode
from .errors import EdgeVQAError, ModelError, VideoDecodeError
from .fetch import download, is_http_url
from .manifest import ModelManifest, load_manifest
from .feed import sample_plans as feed_plans
from .sampling import check_frame_stride, frame_stride, make_plans, views_at_stride
from .bars import crop_bars_mode
from .scenecuts import scene_cut_mode
from .segments import (check_segment_seconds, check_time_range, segment_plans, segment_ranges, segment_times,
                       time_range_frames)
from .tonemap import tone_map_mode

DEFAULT_MODEL_NAME = "default"
BACKENDS = ("ort-cpu", "ort-cuda", "ort-trt", "trt", "torch")


def default_model_path() -> str | None:
    """The shipped default model, or None when this installation has none."""
    try:
        candidate = resources.files("edgevqa").joinpath("data", "default.onnx")
    except (ModuleNotFoundError, FileNotFoundError):
        return None
    path = os.fspath(candidate)
    return path if os.path.isfile(path) else None


def resolve_model(model: str | os.PathLike | None) -> str:
    """A model argument (path, or None / 'default' for the shipped model) -> an existing file path."""
    if model is None or os.fspath(model) == DEFAULT_MODEL_NAME:
        path = default_model_path()
        if path is None:
            raise ModelError("no default model is installed with this edgevqa; give one with --model PATH "
                             "(an .onnx exported by 'edgevqa export')")
        return path
    path = os.fspath(model)
    if not os.path.exists(path):
        raise ModelError(f"{path}: no such model file (give an .onnx path, or omit --model for the default)")
    if os.path.isdir(path):
        raise ModelError(f"{path}: is a directory, not a model file")
    return path


def make_runner(model_path: str, backend: str = "ort-cpu", threads: int | None = None,
                device: str = "cpu") -> Runner:
    """The runner for ``backend``; GPU backends are looked up lazily so their libraries stay optional."""
    if backend == "ort-cpu":
        from .backends.onnxrt import OrtRunner

        return OrtRunner(model_path, threads=threads)
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    try:
        from .backends import registry
    except ModuleNotFoundError as exc:
        raise EdgeVQAError(f"backend {backend!r} is not part of this edgevqa build yet") from exc
    return registry.make_runner(model_path, backend=backend, threads=threads, device=device)


@dataclass
class Result:
    """The outcome of scoring one video. ``error`` is set (and ``scores`` empty) when scoring failed."""

    video: str
    model: str
    scores: dict[str, float] = field(default_factory=dict)
    clip_outputs: dict[str, list[float]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    seed: int | None = None
    plan_mode: str = "default"
    backend: str = "ort-cpu"
    model_version: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    frames_decoded: int = 0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    # With ``segment_seconds``: per segment, its frames and times, scores and warnings (see `Pipeline`).
    segments: list[dict[str, Any]] = field(default_factory=list)
    # With ``time_range``: the part scored: ``start_frame``, ``end_frame`` (exclusive), ``start_s``, ``end_s``.
    time_range: dict[str, Any] | None = None
    # Snippets read elsewhere than planned, off a scene cut (``scene_cuts="avoid"``, `edgevqa.scenecuts`): per
    # snippet its view and the first and last frames planned and read.
    moved_snippets: list[dict[str, Any]] = field(default_factory=list)
    # Every how many frames the model's runs of consecutive frames were read (``frame_stride``; 1: every frame).
    frame_stride: int = 1
    # With ``keep_inputs``: the model's inputs by view name (not in `to_dict`; see `edgevqa.input_images`).
    inputs: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "video": self.video, "model": self.model, "model_version": self.model_version,
            "backend": self.backend, "scores": dict(self.scores), "clip_outputs": dict(self.clip_outputs),
            "timings": dict(self.timings), "seed": self.seed, "plan_mode": self.plan_mode,
            "frames_decoded": self.frames_decoded, "info": dict(self.info), "warnings": list(self.warnings),
            "error": self.error, "segments": [dict(g, scores=dict(g["scores"]), warnings=list(g["warnings"]))
                                             for g in self.segments],
            "time_range": None if self.time_range is None else dict(self.time_range),
            "moved_snippets": [dict(m) for m in self.moved_snippets],
            "frame_stride": self.frame_stride,
        }


@dataclass
class PreparedVideo:
    """A decoded and sampled video, waiting for inference: ``feed`` maps model input names to arrays."""

    video: str
    feed: dict[str, np.ndarray]
    info: dict[str, Any]
    timings: dict[str, float]
    frames_decoded: int
    warnings: list[str]
    segments: list[dict[str, Any]] = field(default_factory=list)  # already scored (see `Pipeline.prepare`)
    time_range: dict[str, Any] | None = None  # the part scored, with ``time_range`` (see `Result.time_range`)
    moved_snippets: list[dict[str, Any]] = field(default_factory=list)  # see `Result.moved_snippets`
    frame_stride: int = 1  # see `Result.frame_stride`


class Pipeline:
    """Scores videos with one model. Construction is cheap; the model loads on first use.

    ``seed=None`` uses the deterministic plan (the same video always gets the same score); an integer draws
    sampling offsets reproducibly. ``plan_mode='reference'`` reproduces the original FAST-VQA sampling.

    ``segment_seconds`` also scores the video over time: cut into consecutive segments of that many seconds
    (`edgevqa.segments.segment_ranges`), each scored as a video of its own, in the same decode pass as the
    whole video, whose scores do not change. `Result.segments` lists them: ``start_frame``, ``end_frame``
    (exclusive), ``start_s``, ``end_s``, ``scores`` and ``warnings``.

    ``time_range`` = (start, end) in seconds (end None: to the video's end) scores only that part of each
    video, planned as a cut holding those frames would be (a frame is in it when index / fps lies in
    [start, end)); segments then cover that part. `Result.time_range` says which frames and times were scored.

    ``crop_bars`` ("auto" or "never"; default "auto", "never" with ``plan_mode='reference'``) crops black bars
    (letterbox, pillarbox) so the picture alone is sampled (`edgevqa.bars`).

    ``scene_cuts`` ("keep" or "avoid"; default: the model's manifest) says whether snippets of consecutive
    frames are moved off scene cuts (`edgevqa.scenecuts`); `Result.moved_snippets` lists those moved.

    ``frame_stride`` ("model", the default, or a whole number of frames) says every how many frames the model's
    runs of consecutive frames are read: "model" reads video at about k times the model's ``frame_rate`` every
    k-th frame (`edgevqa.sampling.frame_stride`; a model without one reads every frame); `Result.frame_stride`
    says what was used.
    """

    def __init__(self, model: str | os.PathLike | None = None, backend: str = "ort-cpu",
                 threads: int | None = None, seed: int | None = None, plan_mode: str = "default",
                 decode_threads: int = 0, device: str = "cpu", runner: Runner | None = None,
                 segment_seconds: float | None = None, deinterlace: bool | str = "auto", keep_inputs: bool = False,
                 tone_map: bool | str = "auto", time_range: tuple[float, float | None] | None = None,
                 scene_cuts: str | None = None, crop_bars: bool | str | None = None,
                 frame_stride: int | str | None = "model"):
        self.keep_inputs = keep_inputs
        self.segment_seconds = None if segment_seconds is None else check_segment_seconds(segment_seconds)
        self.time_range = check_time_range(time_range)  # (start s, end s or None): only that part of each video
        self.model_path = resolve_model(model)
        self.manifest: ModelManifest = load_manifest(self.model_path)
        self.backend = backend
        self.seed = seed
        self.plan_mode = plan_mode
        self.decode_threads = decode_threads
        self.deinterlace = deinterlace_mode(deinterlace)  # auto, always or never (`edgevqa.deinterlace`)
        self.tone_map = tone_map_mode(tone_map)  # auto or never (`edgevqa.tonemap`)
        self.scene_cuts = self.manifest.scene_cuts if scene_cuts is None else scene_cut_mode(scene_cuts)
        self.frame_stride = check_frame_stride(frame_stride)
        # black bars cropped (`edgevqa.bars`), except where the original sampling is reproduced
        self.crop_bars = ("never" if plan_mode == "reference" else "auto") if crop_bars is None \
            else crop_bars_mode(crop_bars)
        self.runner = runner or make_runner(self.model_path, backend, threads, device)
        self.model_load_seconds: float | None = None
        self._checked = False
        # Segments are scored on the decoding thread while `score_many` may be running the model for another
        # video: one inference at a time, whatever the backend's own thread safety.
        self._infer_lock = threading.Lock()

    # ------------------------------------------------------------------ model

    def activate(self) -> None:
        if not self.runner.is_active:
            start = time.perf_counter()
            self.runner.activate()
            self.model_load_seconds = time.perf_counter() - start
        if not self._checked:
            self._check_model_inputs()
            self._checked = True

    def _check_model_inputs(self) -> None:
        inputs = {m.name: m for m in self.runner.get_input_metadata()}
        outputs = {m.name for m in self.runner.get_output_metadata()}
        src = self.model_path
        for view in self.manifest.views:
            meta = inputs.get(view.name)
            if meta is None:
                raise ModelError(f"{src}: the manifest's view '{view.name}' is not a model input "
                                 f"(inputs: {sorted(inputs)})")
            want = view.input_shape()
            if len(meta.shape) != len(want) or any(
                    isinstance(have, int) and have != need for have, need in zip(meta.shape[1:], want[1:])):
                raise ModelError(f"{src}: model input '{view.name}' has shape {list(meta.shape)}, but its manifest's "
                                 f"view makes {list(want)}")
            if isinstance(meta.shape[0], int) and meta.shape[0] != want[0]:
                raise ModelError(f"{src}: model input '{view.name}' takes {meta.shape[0]} clips, the manifest's view "
                                 f"makes {want[0]}")
            if meta.dtype != view.dtype:
                raise ModelError(f"{src}: model input '{view.name}' is {meta.dtype}, its manifest says {view.dtype}")
        missing = [o for o in self.manifest.outputs if o not in outputs]
        if missing:
            raise ModelError(f"{src}: the manifest names outputs {missing} that the model lacks "
                             f"(outputs: {sorted(outputs)})")
        extra = set(inputs) - {v.name for v in self.manifest.views}
        if extra:
            raise ModelError(f"{src}: model inputs {sorted(extra)} have no view in the manifest")

    def close(self) -> None:
        self.runner.deactivate()

    def __enter__(self) -> "Pipeline":
        self.activate()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def stride_for(self, info) -> int:
        """Every how many frames of the video ``info`` describes the model's runs of frames are read."""
        if self.frame_stride == "model":
            return frame_stride(info.fps, self.manifest.frame_rate)
        return self.frame_stride

    def views_for(self, info) -> tuple:
        """The model's views as read from the video ``info`` describes (at its frame stride)."""
        return views_at_stride(self.manifest.views, self.stride_for(info))

    # ------------------------------------------------------------------ stages

    def prepare(self, video: Any) -> PreparedVideo:
        """Decode, plan and sample one video: exactly the model input inference sees.

        Thread-safe (touches no shared state) and needs no active model; calibration uses it directly. With
        ``segment_seconds`` it activates the model: the segments are scored during the decode pass. An HTTP(S)
        video FFmpeg cannot open where it is (a server without range requests), or whose container does not
        declare its frame count, is downloaded to a temporary file first, removed afterwards.
        """
        downloads: list[str] = []
        try:
            return self._prepare(video, downloads)
        finally:
            for path in downloads:
                os.remove(path)

    def _prepare(self, video: Any, downloads: list[str]) -> PreparedVideo:
        timings: dict[str, float] = {}
        warnings: list[str] = []
        t0 = time.perf_counter()
        name = None
        if _is_pipe(video):
            # A pipe cannot be read twice, and its length is known only at its end: read it whole (the
            # compressed video), so it is planned, and scored, exactly as the same file would be.
            name, video = describe_source(video), _read_whole(video)
        start = video.tell() if _is_file_object(video) else None
        decoder = None
        if is_http_url(video):
            name, video, decoder = self._read_in_place_or_download(video, downloads, warnings)
        decoder = decoder or self.open_decoder(video, name)
        if decoder.info.frame_count_source == "unknown" and start is not None:
            # No frame count and no duration (a raw H.264 stream, say): only counting its packets tells how
            # many frames there are, and that needs the data twice, so a file object is read whole.
            decoder.close()
            video.seek(start)
            name, video = describe_source(video), _read_whole(video)
            decoder = self.open_decoder(video, name)
        with ExitStack() as opened:
            opened.enter_context(decoder)
            info = decoder.info
            if info.frame_count_source == "unknown":  # a plan for a guessed length would score other frames
                raise VideoDecodeError(f"{decoder.name}: the video's length is unknown (no frame count, duration or "
                                       "packets to count), so its frames cannot be planned")
            t1 = time.perf_counter()
            warnings.extend(info.picture_notes(self.deinterlace, self.tone_map))
            video_notes = len(warnings)
            while True:
                frames = None
                if self.time_range is None:
                    plans = make_plans(self.views_for(info), info, self.seed, self.plan_mode)
                else:  # the part is planned as a cut of it would be (`edgevqa.segments`)
                    frames, notes = time_range_frames(info, self.time_range)
                    warnings.extend(notes)
                    plans = segment_plans(self.views_for(info), info, *frames, self.seed, self.plan_mode)
                for plan in plans:
                    warnings.extend(plan.notes)
                segments = _SegmentScorer(self, info, warnings, frames) if self.segment_seconds else None
                t2 = time.perf_counter()
                decoder, sampled = self._decode_and_sample(decoder, opened, video, name, plans, segments, warnings)
                held = decoder.frames_in_stream
                if not (sampled.repeated_slots and held and held < info.num_frames and decoder.reopenable):
                    break
                # The container promised more frames than the stream holds (a file cut short, a recording that
                # starts between keyframes, whose first packets decode to nothing): the plan would repeat the
                # last frame in place of the missing ones, a freeze the video does not have. Planned again for
                # the frames there are, and decoded again.
                declared = info.num_frames
                info = replace(info, num_frames=held, frame_count_source="decoded")
                del warnings[video_notes:]
                warnings.append(f"the container declares {declared} frames, the stream holds {held}: planned for "
                                f"{held} and decoded again")
                video_notes = len(warnings)
                decoder = opened.enter_context(self.open_decoder(video, name, threads=decoder.threads))
            if sampled.repeated_slots:
                warnings.append(f"the stream ended before the {info.num_frames} frames its container declares; "
                                f"{sampled.repeated_slots} sampled frame(s) past its end repeat the last one sampled, "
                                f"frame {sampled.last_frame_index}")
            t3 = time.perf_counter()
        segment_time = segments.seconds if segments is not None else 0.0
        timings["decode"] = (t1 - t0) + (t3 - t2) - sampled.sample_seconds - segment_time
        timings["plan"] = t2 - t1
        timings["sample"] = sampled.sample_seconds
        if segments is not None:
            timings["segments"] = segment_time  # their inference and aggregation, inside the decode pass
        feed = {plan.view.name: buf for plan, buf in zip(plans, sampled.arrays)}
        scored = None
        if frames is not None:
            start_s, end_s = segment_times(info, *frames)
            scored = {"start_frame": frames[0], "end_frame": frames[1], "start_s": start_s, "end_s": end_s}
        return PreparedVideo(video=decoder.name, feed=feed, info=info.to_dict(), timings=timings,
                             frames_decoded=sampled.frames_decoded, warnings=warnings,
                             segments=segments.results if segments is not None else [], time_range=scored,
                             moved_snippets=sampled.moved_snippets, frame_stride=self.stride_for(info))

    def _decode_and_sample(self, decoder: PyAVDecoder, opened: ExitStack, video: Any, name: str | None,
                           plans: list, segments: "_SegmentScorer | None", warnings: list[str]
                           ) -> tuple[PyAVDecoder, Any]:
        """Decode and sample ``plans`` (and the segments' plans) from ``decoder``: (the decoder that gave the
        inputs, `edgevqa.feed.SampledInputs`). Adds what decoding reported to ``warnings``; a damaged stream is
        decoded again on one thread where it can be (another decoder, closed with ``opened``)."""

        def decode_and_sample(decoder):
            if segments is None:
                return feed_plans(decoder, plans, scene_cuts=self.scene_cuts)
            segments.reset()
            return feed_plans(decoder, plans, streamed=segments.plans, on_ready=segments.ready,
                              scene_cuts=self.scene_cuts)

        sampled = decode_and_sample(decoder)
        if decoder.damaged and decoder.threads != 1:
            # FFmpeg's error concealment in frame-threaded decoding depends on thread timing, so a damaged
            # stream decoded that way scores differently from run to run. One thread makes it reproducible;
            # only damaged videos pay for the second decode.
            if decoder.reopenable:
                first_report = decoder.damage_report()
                decoder = opened.enter_context(self.open_decoder(video, name, threads=1))
                sampled = decode_and_sample(decoder)
                warnings.append(f"{decoder.damage_report() or first_report}; decoded again on one thread so the "
                                "score is reproducible; it reflects the damage")
            else:
                warnings.append(f"{decoder.damage_report()}; a file object cannot be read twice, so the "
                                "score may differ from run to run (pass a path or bytes)")
        elif decoder.damaged:
            warnings.append(decoder.damage_report() + "; the score reflects the damage")
        if decoder.decode_error:
            warnings.append(decoder.decode_error)
        if decoder.format_report():
            warnings.append(decoder.format_report())
        return decoder, sampled

    def _read_in_place_or_download(self, url: str, downloads: list[str], warnings: list[str]
                                   ) -> tuple[str | None, str, PyAVDecoder | None]:
        """(name, source, decoder) for an HTTP(S) video: the URL itself, with the decoder already open on it,
        when FFmpeg can open it there and its container declares its frame count; else a temporary download
        (listed in ``downloads``), named by the URL, and no decoder. Counting the frames of a container that does
        not declare them (MKV, MPEG-TS) reads the whole video, and decoding reads it again: over the network, one
        download costs half as much."""
        try:
            probe = self.open_decoder(url, None, live=True)  # live: nothing read ahead to count
        except VideoDecodeError:
            probe = None
        if probe is not None and probe.info.frame_count_source == "container":
            return None, url, probe  # `live` changes only the counting, which the container's count made moot
        if probe is not None:
            probe.close()
        else:
            warnings.append("FFmpeg could not read the video from its server (an MP4 whose index follows its media, "
                            "from a server without range requests), so it was downloaded whole first")
        path = download(url)
        downloads.append(path)
        return url, path, None

    def open_decoder(self, video: Any, name: str | None, threads: int | None = None, **options: Any) -> PyAVDecoder:
        """A decoder giving frames as this pipeline's model wants them (deinterlaced, HDR tone-mapped, at its
        sample precision)."""
        return PyAVDecoder(video, threads=self.decode_threads if threads is None else threads, name=name,
                           deinterlace=self.deinterlace, max_bit_depth=self.manifest.sample_bit_depth,
                           tone_map=self.tone_map, crop_bars=self.crop_bars, **options)

    def finish(self, prepared: PreparedVideo) -> Result:
        """Run the model on a prepared video and aggregate its outputs into scores."""
        self.activate()
        timings = dict(prepared.timings)
        t0 = time.perf_counter()
        outputs = self._infer(prepared.feed)
        t1 = time.perf_counter()
        scores, clip_outputs = self._aggregate(outputs, prepared.video)
        t2 = time.perf_counter()
        timings["infer"] = t1 - t0
        timings["aggregate"] = t2 - t1
        timings["total"] = sum(timings.get(k, 0.0)
                               for k in ("decode", "plan", "sample", "segments", "infer", "aggregate"))
        return Result(video=prepared.video, model=self.manifest.name, scores=scores, clip_outputs=clip_outputs,
                      timings=timings, seed=self.seed, plan_mode=self.plan_mode, backend=self.backend,
                      model_version=self.manifest.version, info=prepared.info,
                      frames_decoded=prepared.frames_decoded, warnings=prepared.warnings,
                      segments=prepared.segments, inputs=dict(prepared.feed) if self.keep_inputs else None,
                      time_range=prepared.time_range, moved_snippets=prepared.moved_snippets,
                      frame_stride=prepared.frame_stride)

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, Any]:
        with self._infer_lock:
            return self.runner.infer(feed)

    def _aggregate(self, outputs: dict[str, Any], video: str) -> tuple[dict[str, float], dict[str, list[float]]]:
        """Model outputs -> (scores, per-clip outputs): the mean over clips, rescaled by the manifest."""
        scores: dict[str, float] = {}
        clip_outputs: dict[str, list[float]] = {}
        for name in self.manifest.outputs:
            value = np.asarray(outputs[name], dtype=np.float64)
            if value.ndim == 0:
                value = value.reshape(1)
            per_clip = value.reshape(value.shape[0], -1).mean(axis=1)
            if not np.all(np.isfinite(per_clip)):
                raise ModelError(f"{self.model_path}: output '{name}' is not finite for {video}")
            clip_outputs[name] = [float(v) for v in per_clip]
            scores[name] = float(self.manifest.score(name, float(per_clip.mean())))
        return scores, clip_outputs

    # ------------------------------------------------------------------ public

    def score(self, video: Any) -> Result:
        """Score one video (path, URL, bytes or file object). Raises `EdgeVQAError` on bad input."""
        self.activate()
        return self.finish(self.prepare(video))

    def score_stream(self, source: Any, seconds: float, max_segments: int | None = None,
                     input_format: str | None = None, input_options: dict[str, str] | None = None,
                     reconnect: float | None = None, on_note: Any = None):
        """Score a live stream (URL, pipe, file object or path) segment by segment as it plays: returns
        `edgevqa.live.StreamScores`, whose iteration yields each segment's dict (as in `Result.segments`, plus
        ``scored_at``) the moment it is scored. A segment's scores equal those `segment_seconds` gives on the
        whole file. ``input_format`` and ``input_options`` go to FFmpeg's demuxer (a raw stream of frames:
        ``'rawvideo'`` with ``video_size``, ``pixel_format`` and ``framerate``); ``reconnect`` opens a stream
        that stopped again after that many seconds; ``on_note`` is called with each note as it arises."""
        from .live import StreamScores

        return StreamScores(self, source, seconds, max_segments, input_format, input_options, reconnect, on_note)

    def score_many(self, videos: Iterable[Any], prefetch: int = 2) -> Iterator[Result]:
        """Score videos in order, decoding up to ``prefetch`` videos ahead of inference.

        A video that fails yields a `Result` whose ``error`` says why; the others are still scored.
        """
        self.activate()
        pending: deque[tuple[str, Future]] = deque()
        source = iter(videos)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgevqa-decode") as pool:
            def refill() -> None:
                while len(pending) < max(1, prefetch):
                    try:
                        video = next(source)
                    except StopIteration:
                        return
                    pending.append((describe_source(video), pool.submit(self.prepare, video)))

            refill()
            while pending:
                name, future = pending.popleft()
                refill()
                try:
                    yield self.finish(future.result())
                except EdgeVQAError as exc:
                    yield Result(video=name, model=self.manifest.name, seed=self.seed, plan_mode=self.plan_mode,
                                 backend=self.backend, model_version=self.manifest.version, error=str(exc))


class _SegmentScorer:
    """The segments of one video during its decode pass: their plans (every view of every segment, in order),
    and each segment scored as soon as all its views' inputs are complete, so only the segments being decoded
    hold inputs in memory."""

    def __init__(self, pipeline: Pipeline, info, video_notes: list[str], frames: tuple[int, int] | None = None):
        pipeline.activate()  # inference runs inside the decode pass
        self.pipeline, self.info = pipeline, info
        views = pipeline.views_for(info)
        self.ranges = segment_ranges(info, pipeline.segment_seconds, frames)
        self.per_segment = len(views)
        self.plans = []
        self.notes: list[list[str]] = []
        for start, end in self.ranges:
            plans = segment_plans(views, info, start, end, pipeline.seed, pipeline.plan_mode)
            self.plans += plans
            # what the whole video's notes already say (a small frame upscaled) is not repeated per segment
            self.notes.append([n for p in plans for n in p.notes if n not in video_notes])
        self.reset()

    def reset(self) -> None:
        """Forget what a decode pass made (a damaged stream is decoded again on one thread)."""
        self.inputs: dict[int, dict[str, np.ndarray]] = {}
        self.repeated: dict[int, int] = {}
        self.done: dict[int, dict[str, Any]] = {}
        self.seconds = 0.0

    def ready(self, k: int, array: np.ndarray, repeated: int) -> None:
        started = time.perf_counter()
        segment = k // self.per_segment
        feed = self.inputs.setdefault(segment, {})
        feed[self.plans[k].view.name] = array
        self.repeated[segment] = self.repeated.get(segment, 0) + repeated
        if len(feed) == self.per_segment:
            del self.inputs[segment]
            self.done[segment] = self._score(segment, feed)
        self.seconds += time.perf_counter() - started

    def _score(self, segment: int, feed: dict[str, np.ndarray]) -> dict[str, Any]:
        start, end = self.ranges[segment]
        name = f"{self.info.path} [frames {start}-{end - 1}]"
        scores, _ = self.pipeline._aggregate(self.pipeline._infer(feed), name)
        warnings = list(self.notes[segment])
        if self.repeated[segment]:
            warnings.append(f"the stream ended before this segment's last frame; {self.repeated[segment]} sampled "
                            "frame(s) repeat the last decoded one")
        start_s, end_s = segment_times(self.info, start, end)
        return {"start_frame": start, "end_frame": end, "start_s": start_s, "end_s": end_s, "scores": scores,
                "warnings": warnings}

    @property
    def results(self) -> list[dict[str, Any]]:
        return [self.done[k] for k in sorted(self.done)]


def _is_file_object(video: Any) -> bool:
    return hasattr(video, "read") and not isinstance(video, (str, os.PathLike, bytes, bytearray, memoryview))


def _read_whole(video: Any) -> bytes:
    data = video.read()
    if not data:
        raise VideoDecodeError(f"{describe_source(video)}: no data to read")
    return bytes(data)


def _is_pipe(video: Any) -> bool:
    """A file object that cannot seek (standard input, a pipe, a socket)."""
    if not _is_file_object(video):
        return False
    try:
        return not video.seekable()
    except (AttributeError, OSError, ValueError):
        return True


def score(video: Any, model: str | os.PathLike | None = None, **options: Any) -> Result:
    """Score one video with ``model`` (default: the shipped model). Options as for `Pipeline`."""
    with Pipeline(model, **options) as pipeline:
        return pipeline.score(video)
