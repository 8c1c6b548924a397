"""Making model inputs from a decoder and sampling plans: one decode pass feeds every plan.

Each decoded frame is sampled into every plan's input tensor as soon as it arrives and then released, so
memory stays bounded by the inputs. The pipeline, calibration, export parity and the training recipe all make
their inputs here, so training, checking and inference see the same pixels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from edgevqa import kernels

from .errors import VideoDecodeError
from .sampling import SamplePlan, frame_region, frames_needed
from .scenecuts import SnippetPlacer, scene_cut_mode


@dataclass
class SampledInputs:
    """The input tensor of each plan (in plan order) and what making them took."""

    arrays: list[np.ndarray]
    frames_decoded: int
    sample_seconds: float
    repeated_slots: int  # slots filled with the last frame because the stream ended early
    last_frame_index: int
    # `SnippetPlacer.moves` of ``plans`` (not ``streamed``): snippets moved off a scene cut
    moved_snippets: list = field(default_factory=list)


def check_frame_size(name: str, frame, info) -> None:
    """A frame of another size than the stream's first: plans are made for one size, so that is an error."""
    if (frame.height, frame.width) != (info.height, info.width):
        raise VideoDecodeError(f"{name}: frame {frame.index} is {frame.width}x{frame.height}, the stream started at "
                               f"{info.width}x{info.height} (resolution changes mid-stream are not supported)")


def sample_plans(decoder, plans: Sequence[SamplePlan], dtype: str | None = None,
                 streamed: Sequence[SamplePlan] = (),
                 on_ready: Callable[[int, np.ndarray, int], None] | None = None,
                 scene_cuts: str = "keep") -> SampledInputs:
    """Decode the frames ``plans`` and ``streamed`` need from ``decoder`` (a `PyAVDecoder`) and apply every plan.

    ``dtype`` overrides the views' output dtype. Positions whose frame the stream never delivered (the
    container promised more frames than it holds) repeat the last decoded frame, as the per-second views do
    past the end; ``repeated_slots`` counts them (in ``plans``).

    ``streamed`` plans keep memory bounded when a long video is cut into many segments: the input of each is
    made only when its first frame arrives and is handed to ``on_ready(k, array, repeated)`` (``k`` its index in
    ``streamed``, ``repeated`` how many of its positions repeat the last frame) as soon as it is complete, then
    dropped; it is not in ``arrays``.

    ``scene_cuts="avoid"`` moves each snippet of consecutive frames off a scene cut inside it
    (`edgevqa.scenecuts`); ``moved_snippets`` lists what moved.
    """
    if streamed and on_ready is None:
        raise ValueError("streamed plans need an on_ready callback")
    info = decoder.info
    every = list(plans) + list(streamed)
    kept = len(plans)
    arrays: list[np.ndarray | None] = [np.empty(p.output_shape, dtype=np.dtype(dtype or p.view.dtype))
                                       for p in plans] + [None] * len(streamed)
    conversion = None

    def buffer(k: int) -> np.ndarray:
        if arrays[k] is None:
            arrays[k] = np.empty(every[k].output_shape, dtype=np.dtype(dtype or every[k].view.dtype))
        return arrays[k]

    def sample(k: int, slot: int, frame, out: np.ndarray | None = None) -> None:
        kernels.sample_frame(frame.planes, every[k], slot, conversion, buffer(k) if out is None else out)

    placer = SnippetPlacer(every, sample, buffer) if scene_cut_mode(scene_cuts) == "avoid" else None
    # frame index -> the (plan, slot) pairs it feeds: one lookup per decoded frame, however many plans
    users: dict[int, list[tuple[int, int]]] = {}
    for k, p in enumerate(every):
        for s, f in enumerate(p.frame_indices):
            if placer is None or not placer.owns(k, s):
                users.setdefault(int(f), []).append((k, s))
    filled = [np.zeros(len(p.frame_indices), dtype=bool) for p in every]
    missing = [len(p.frame_indices) for p in every]
    sample_seconds = 0.0
    decoded = 0
    last_frame = None
    ready: list[int] = []

    def mark(k: int, slot: int) -> None:
        filled[k][slot] = True
        missing[k] -= 1
        if missing[k] == 0 and k >= kept:
            ready.append(k)

    def hand_on(k: int, repeated: int) -> None:
        array, arrays[k] = arrays[k], None
        on_ready(k - kept, array, repeated)

    def region(index: int) -> tuple[np.ndarray, np.ndarray]:
        """The display rows and columns the plans read of frame ``index``: an HDR frame is mapped only there."""
        uses = [(every[k], slot) for k, slot in users.get(index, ())]
        return frame_region(uses + (placer.region_uses(index) if placer is not None else []))

    wanted = frames_needed(every)
    if placer is not None:
        wanted = np.union1d(wanted, placer.frames)
    has_regions = hasattr(decoder, "regions")
    regions_before = getattr(decoder, "regions", None)
    if has_regions:
        decoder.regions = region
    try:
        for frame in decoder.frames(wanted):
            decoded += 1
            check_frame_size(decoder.name, frame, info)
            if conversion is None:
                conversion = kernels.conversion_for_frame(frame)
            start = time.perf_counter()
            for k, slot in users.get(frame.index, ()):
                sample(k, slot, frame)
                mark(k, slot)
            if placer is not None:
                for k, slot in placer.offer(frame):
                    mark(k, slot)
            sample_seconds += time.perf_counter() - start
            last_frame = frame
            for k in ready:  # outside the timing: the callback is the caller's work (inference)
                hand_on(k, 0)
            ready.clear()
    finally:
        if has_regions:
            decoder.regions = regions_before
    if last_frame is None:
        raise VideoDecodeError(f"{decoder.name}: no frame could be decoded")
    if placer is not None:
        start = time.perf_counter()
        for k, slot in placer.finish():  # the snippets still waiting for frames past the stream's end
            mark(k, slot)
        sample_seconds += time.perf_counter() - start
        for k in ready:
            hand_on(k, 0)
        ready.clear()
    if getattr(last_frame, "whole", None) is not None and not all(f.all() for f in filled):
        last_frame = last_frame.whole()  # it fills the positions of frames never delivered: all of it is read
    repeated = 0
    for k, p in enumerate(every):
        start = time.perf_counter()
        slots = np.nonzero(~filled[k])[0]
        for slot in slots:
            kernels.sample_frame(last_frame.planes, p, int(slot), conversion, buffer(k))
        repeated += len(slots) if k < kept else 0
        sample_seconds += time.perf_counter() - start
        if k >= kept and len(slots):
            hand_on(k, len(slots))
    return SampledInputs(arrays=arrays[:kept], frames_decoded=decoded, sample_seconds=sample_seconds,
                         repeated_slots=repeated, last_frame_index=last_frame.index,
                         moved_snippets=[{k: v for k, v in m.items() if k != "plan"}
                                         for m in (placer.moves if placer is not None else []) if m["plan"] < kept])
