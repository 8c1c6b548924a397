"""Sampling kernels: apply a `edgevqa.sampling.SamplePlan` to decoded frames.

`reference` is the NumPy specification; native (C) and CUDA implementations must match it bit for bit.
`sample_frame` dispatches to the fastest available host implementation.
"""

from .colour import ColourConversion, conversion_for_frame, normalisation_table, rgb_passthrough, yuv_to_rgb_conversion
from .reference import sample, sample_frame, sample_frame_rgb8

__all__ = ["ColourConversion", "conversion_for_frame", "normalisation_table", "rgb_passthrough",
           "yuv_to_rgb_conversion", "sample", "sample_frame", "sample_frame_rgb8"]
