"""Making model inputs from a decoder and sampling plans: one decode pass feeds every plan.

Each decoded frame is sampled into every plan's input tensor as soon as it arrives and then released, so
memory stays bounded by the inputs. The pipeline, calibration, export parity and the training recipe all make
their inputs here, so training, checking and inference see the same pixels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edgevqa import kernels

from .errors import VideoDecodeError
from .sampling import SamplePlan, frames_needed


@dataclass
class SampledInputs:
    """The input tensor of each plan (in plan order) and what making them took."""

    arrays: list[np.ndarray]
    frames_decoded: int
    sample_seconds: float
    repeated_slots: int  # slots filled with the last frame because the stream ended early
    last_frame_index: int


def sample_plans(decoder, plans: Sequence[SamplePlan], dtype: str | None = None) -> SampledInputs:
    """Decode the frames ``plans`` need from ``decoder`` (a `PyAVDecoder`) and apply every plan.

    ``dtype`` overrides the views' output dtype. Positions whose frame the stream never delivered (the
    container promised more frames than it holds) repeat the last decoded frame, as the per-second views do
    past the end; ``repeated_slots`` counts them.
    """
    info = decoder.info
    arrays = [np.empty(p.output_shape, dtype=np.dtype(dtype or p.view.dtype)) for p in plans]
    slot_maps = [{int(f): s for s, f in enumerate(p.frame_indices)} for p in plans]
    filled = [np.zeros(len(p.frame_indices), dtype=bool) for p in plans]
    sample_seconds = 0.0
    decoded = 0
    last_frame = None
    conversion = None
    for frame in decoder.frames(frames_needed(plans)):
        decoded += 1
        if (frame.height, frame.width) != (info.height, info.width):
            raise VideoDecodeError(f"{decoder.name}: frame {frame.index} is {frame.width}x{frame.height}, the "
                                   f"stream started at {info.width}x{info.height} (resolution changes "
                                   "mid-stream are not supported)")
        if conversion is None:
            conversion = kernels.conversion_for_frame(frame)
        start = time.perf_counter()
        for plan, slots, done, out in zip(plans, slot_maps, filled, arrays):
            slot = slots.get(frame.index)
            if slot is not None:
                kernels.sample_frame(frame.planes, plan, slot, conversion, out)
                done[slot] = True
        sample_seconds += time.perf_counter() - start
        last_frame = frame
    if last_frame is None:
        raise VideoDecodeError(f"{decoder.name}: no frame could be decoded")
    start = time.perf_counter()
    repeated = 0
    for plan, done, out in zip(plans, filled, arrays):
        for slot in np.nonzero(~done)[0]:
            kernels.sample_frame(last_frame.planes, plan, int(slot), conversion, out)
            repeated += 1
    sample_seconds += time.perf_counter() - start
    return SampledInputs(arrays=arrays, frames_decoded=decoded, sample_seconds=sample_seconds,
                         repeated_slots=repeated, last_frame_index=last_frame.index)
