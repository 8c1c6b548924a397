"""The C sampling kernel (`_native.c`) behind the same signature and semantics as `reference.sample_frame`.

The binding itself validates every buffer (shape, strides, dtype, tap index ranges) and raises `KernelError`;
this module only turns a `SamplePlan` and a `ColourConversion` into the arrays it takes. Import fails with
ImportError when the extension was not built (no C compiler at install time); `edgevqa.kernels` then falls
back to the reference. ``EDGEVQA_NATIVE_LIBRARY=/path/to/_native*.so`` loads another build of the same
extension instead (``kernels/asan_check.sh`` uses it to run the tests against an AddressSanitizer build).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from edgevqa.errors import KernelError
from edgevqa.sampling import SamplePlan

from . import reference
from .colour import ColourConversion, normalisation_table
from .extension import load_extension


_native = load_extension("_native", "EDGEVQA_NATIVE_LIBRARY")

__all__ = ["sample_frame", "sample", "plan_arrays"]


@lru_cache(maxsize=32)
def _table(mean: tuple[float, ...], std: tuple[float, ...], dtype: str) -> np.ndarray:
    table = np.ascontiguousarray(normalisation_table(mean, std, dtype))
    table.flags.writeable = False
    return table


@lru_cache(maxsize=32)
def _mean_std(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[float, ...]:
    """The table's parameters, which let the kernel compute the normalisation where that reproduces every
    table entry bit for bit (it checks all 768)."""
    return tuple(float(m) for m in mean) + tuple(float(s) for s in std)


def plan_arrays(plan: SamplePlan) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """``(slots, tap_group, taps)`` as the C-contiguous int32 arrays the kernels take (no copy when they are)."""
    taps = []
    for t in (plan.luma_rows, plan.luma_cols, plan.chroma_rows, plan.chroma_cols):
        taps += [np.ascontiguousarray(t.index, dtype=np.int32), np.ascontiguousarray(t.weight, dtype=np.int32)]
    return (np.ascontiguousarray(plan.slots, dtype=np.int32), np.ascontiguousarray(plan.tap_group, dtype=np.int32),
            tuple(taps))


def _check_call(plan: SamplePlan, slot: int, conversion: ColourConversion, out) -> None:
    if not isinstance(plan, SamplePlan):
        raise KernelError(f"plan must be a SamplePlan, got {type(plan).__name__}")
    if not isinstance(conversion, ColourConversion):
        raise KernelError(f"conversion must be a ColourConversion, got {type(conversion).__name__}")
    if not isinstance(slot, (int, np.integer)) or not 0 <= int(slot) < len(plan.frame_indices):
        raise KernelError(f"slot {slot!r} is outside the plan's {len(plan.frame_indices)} frames")
    out_dtype = getattr(out, "dtype", None)
    if out_dtype is not None and np.dtype(out_dtype) != np.dtype(plan.view.dtype):
        raise KernelError(f"output has dtype {out_dtype}, the view asks for {plan.view.dtype}")


def sample_frame(planes: Sequence[np.ndarray], plan: SamplePlan, slot: int, conversion: ColourConversion,
                 out: np.ndarray) -> None:
    """Write every (clip, time) position that decoded frame ``slot`` feeds into ``out`` (the view's shape).

    Same contract as `edgevqa.kernels.reference.sample_frame`, bit for bit; ``planes`` and ``out`` may be any
    objects with the buffer protocol (NumPy arrays, memoryviews), with any strides. The GIL is released
    while the kernel runs.
    """
    _check_call(plan, slot, conversion, out)
    _native.sample_frame(planes, out, int(slot), *_call_arguments(plan, conversion))


# The arguments a (plan, conversion) pair gives, kept for the last pair seen: the pipeline calls sample_frame
# once per decoded frame with the same pair, and building them again (a dozen NumPy calls and cache lookups)
# took about 3 of the 8 microseconds a call costs beyond its pixels. Plans and conversions are frozen. Arrays
# already int32 and C-contiguous (make_plan's are) are passed as they are, so a change made to them in place
# is still seen; arrays of another dtype or layout are copied once per pair, and a later in-place change to
# their originals is not.
_last_call: tuple | None = None


def _call_arguments(plan: SamplePlan, conversion: ColourConversion) -> tuple:
    global _last_call
    last = _last_call  # one read: another thread may replace it meanwhile
    if last is not None and last[0] is plan and last[1] is conversion:
        return last[2]
    slots, tap_group, taps = plan_arrays(plan)
    view = plan.view
    coefficients = np.ascontiguousarray(conversion.coefficients, dtype=np.int32)
    arguments = (slots, tap_group, taps, coefficients, bool(conversion.is_rgb), int(conversion.bit_depth),
                 _table(view.mean, view.std, view.dtype), view.layout == "NCTHW", _mean_std(view.mean, view.std))
    _last_call = (plan, conversion, arguments)
    return arguments


def sample(frames: Sequence[Sequence[np.ndarray]], plan: SamplePlan, conversion: ColourConversion,
           out: np.ndarray | None = None) -> np.ndarray:
    """Apply ``plan`` to ``frames`` (the planes of each of ``plan.frame_indices``, in order)."""
    return reference.sample(frames, plan, conversion, out, frame_kernel=sample_frame)
