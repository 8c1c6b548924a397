"""Sampling kernels: apply a `edgevqa.sampling.SamplePlan` to decoded frames.

`reference` is the NumPy specification; the C kernel (`native`, built from `_native.c`) and the CUDA kernels
(`device`) match it bit for bit. `sample_frame` / `sample` dispatch to the C kernel when it was built and to
the reference otherwise; `IMPLEMENTATION` says which ("native" or "reference"). The environment variable
``EDGEVQA_KERNELS`` chooses: ``auto`` (default), ``reference`` (force the NumPy reference), ``native``
(require the C kernel: importing fails with KernelError when it is missing).
"""

import os as _os

from edgevqa.errors import KernelError as _KernelError

from . import reference
from .colour import ColourConversion, conversion_for_frame, normalisation_table, rgb_passthrough, yuv_to_rgb_conversion
from .reference import sample_frame_rgb8

IMPLEMENTATIONS = ("native", "reference")
#: Why the C kernel is not in use (None when it is).
NATIVE_UNAVAILABLE_REASON = None

_wanted = _os.environ.get("EDGEVQA_KERNELS", "auto").strip().lower() or "auto"
if _wanted not in ("auto",) + IMPLEMENTATIONS:
    raise _KernelError(f"EDGEVQA_KERNELS={_wanted!r} is not one of auto, native, reference")
if _wanted == "reference":
    NATIVE_UNAVAILABLE_REASON = "EDGEVQA_KERNELS=reference"
    from .reference import sample, sample_frame
else:
    try:
        from .native import sample, sample_frame
    except ImportError as _exc:
        if _wanted == "native":
            raise _KernelError(f"EDGEVQA_KERNELS=native but the C kernel is not built ({_exc}); reinstall "
                               f"edgevqa with a C compiler present") from _exc
        NATIVE_UNAVAILABLE_REASON = f"C kernel not built ({_exc})"
        from .reference import sample, sample_frame

#: The host implementation behind `sample_frame` and `sample`: "native" (C) or "reference" (NumPy).
IMPLEMENTATION = "reference" if NATIVE_UNAVAILABLE_REASON else "native"

__all__ = ["ColourConversion", "conversion_for_frame", "normalisation_table", "rgb_passthrough",
           "yuv_to_rgb_conversion", "sample", "sample_frame", "sample_frame_rgb8", "reference", "IMPLEMENTATION",
           "NATIVE_UNAVAILABLE_REASON"]
