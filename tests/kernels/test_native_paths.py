"""The C kernel's fast paths (AVX2 or NEON rows, computed normalisation) against the NumPy reference, bit for bit.

The small views of test_native.py have tiles narrower than the 8 pixels the vector rows work on, so these
tests use fragment views with tile widths around and above 8 (vector blocks plus scalar tails), odd means and
standard deviations, and compare the vector build with the scalar one (EDGEVQA_NATIVE_SCALAR=1). The direct
path (planar 8-bit luma, rows read in place) also gets tiles ending at the plane's last column (its 16-byte
chroma loads are cut there), a full 7x7 grid (rows prefetched ahead), outputs at unaligned addresses with
padded rows, random normalisations (the exact float32 form is checked per table and used only where it
reproduces it) and many tables in turn (the table cache).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgevqa.kernels import reference
from edgevqa.manifest import ViewSpec
from edgevqa.sampling import make_plan

from kernel_inputs import make_frame, same_bits, sentinel_out, video_info

native = pytest.importorskip("edgevqa.kernels.native", reason="the C kernel is not built (no C compiler at install)")

PATCH_WIDTHS = (8, 13, 16, 21, 32)
NORMALISATIONS = [
    ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),  # ImageNet, in 0..255 units
    ((0.0, 0.0, 0.0), (255.0, 255.0, 255.0)),
    ((127.5, -3.25, 1e6), (0.1, 7.0, 3e-3)),  # a negative mean, a huge one, a small standard deviation
    ((0.1 + 0.2, 1 / 3, 2 / 3), (1 / 7, 3.0, 1e-30)),  # 1e-30: float32 overflow to inf
    # the float64 fma form reproduces this table, the float32 split form misses an entry (found by search)
    ((120.22827444143047, 240.80111451251483, 85.769537042719094),
     (60.253991888488642, 46.091755802320208, 85.768443594113194)),
]


def fragments_view(patch_w: int, mean, std, dtype: str, layout: str = "NCTHW") -> ViewSpec:
    return ViewSpec(kind="fragments", grid=(2, 3), patch=(5, patch_w), size=(10, 3 * patch_w), num_clips=1,
                    clip_len=3, frame_interval=1, aligned=1, mean=mean, std=std, dtype=dtype, layout=layout)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("patch_w", PATCH_WIDTHS)
@pytest.mark.parametrize("fmt", ["yuv420p", "yuv422p", "yuv444p", "nv12"])
def test_wide_tiles_match_the_reference(fmt, patch_w, dtype):
    rng = np.random.default_rng([patch_w, len(fmt), len(dtype)])
    height, width = 2 * int(rng.integers(30, 60)) + 1, 2 * int(rng.integers(60, 120)) + 1
    planes, conversion, info = make_frame(fmt, height, width, rng)
    for mean, std in NORMALISATIONS:
        with np.errstate(all="ignore"):
            plan = make_plan(fragments_view(patch_w, mean, std, dtype), video_info(num_frames=9, **info), seed=3)
            want, got = sentinel_out(plan), sentinel_out(plan)
            for slot in range(len(plan.frame_indices)):
                reference.sample_frame(planes, plan, slot, conversion, want)
                native.sample_frame(planes, plan, slot, conversion, got)
        assert same_bits(got, want), (mean, std)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("fmt", ["yuv420p", "nv12", "yuv444p"])
def test_a_full_fragment_grid_on_an_odd_sized_frame(fmt, dtype):
    """FAST-VQA's 7x7 grid of 32x32 cells: each grid row's source lines are prefetched while the row above it
    is computed, so every grid row after the first reads through the prefetched set of prepared tiles."""
    rng = np.random.default_rng([len(fmt), len(dtype), 11])
    planes, conversion, info = make_frame(fmt, 301, 457, rng, "padded")
    view = ViewSpec(kind="fragments", grid=(7, 7), patch=(32, 32), size=(224, 224), num_clips=1, clip_len=4,
                    frame_interval=1, aligned=1, dtype=dtype)
    plan = make_plan(view, video_info(num_frames=7, **info), seed=5)
    want, got = sentinel_out(plan), sentinel_out(plan)
    for slot in range(len(plan.frame_indices)):
        reference.sample_frame(planes, plan, slot, conversion, want)
        native.sample_frame(planes, plan, slot, conversion, got)
    assert same_bits(got, want)


def test_a_wrong_mean_std_hint_never_changes_the_output():
    """The hint is checked against every table entry; a table it does not reproduce is used as it is."""
    from edgevqa.kernels import _native

    rng = np.random.default_rng(11)
    planes, conversion, info = make_frame("yuv420p", 81, 163, rng)
    plan = make_plan(fragments_view(16, *NORMALISATIONS[0], "float32"), video_info(num_frames=9, **info), seed=1)
    slots, groups, taps = native.plan_arrays(plan)
    table = native._table(plan.view.mean, plan.view.std, "float32")
    coef = np.asarray(conversion.coefficients, np.int32)
    want = sentinel_out(plan)
    reference.sample_frame(planes, plan, 0, conversion, want)
    for hint in [None, native._mean_std(plan.view.mean, plan.view.std), (0.0,) * 3 + (1.0,) * 3,
                 tuple(np.nextafter(native._mean_std(plan.view.mean, plan.view.std), np.inf))]:
        got = sentinel_out(plan)
        _native.sample_frame(planes, got, 0, slots, groups, taps, coef, False, 8, table, True, hint)
        assert same_bits(got, want), hint


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("patch_w", PATCH_WIDTHS)
@pytest.mark.parametrize("fmt", ["yuv420p", "yuv422p", "yuv444p", "nv12"])
def test_tiles_that_end_at_the_last_column(fmt, patch_w, dtype):
    """A frame as wide as the view: the last tile's chroma blocks reach the plane's last sample, where a full
    16-byte load would read past the buffer (AddressSanitizer watches these exact-size planes)."""
    rng = np.random.default_rng([patch_w, len(fmt), 7])
    planes, conversion, info = make_frame(fmt, 11, 3 * patch_w, rng)
    plan = make_plan(fragments_view(patch_w, *NORMALISATIONS[0], dtype), video_info(num_frames=9, **info), seed=4)
    assert plan.luma_cols.index[..., 0].max() == 3 * patch_w - 1
    want, got = sentinel_out(plan), sentinel_out(plan)
    for slot in range(len(plan.frame_indices)):
        reference.sample_frame(planes, plan, slot, conversion, want)
        native.sample_frame(planes, plan, slot, conversion, got)
    assert same_bits(got, want)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("shift", [1, 3, 4])
def test_outputs_at_unaligned_addresses_with_padded_rows(shift, dtype):
    rng = np.random.default_rng(shift)
    planes, conversion, info = make_frame("yuv420p", 61, 127, rng, "padded")
    plan = make_plan(fragments_view(21, *NORMALISATIONS[0], dtype), video_info(num_frames=9, **info), seed=6)
    n, c, t, h, w = plan.output_shape
    flat = np.zeros(n * c * t * h * (w + 3) + shift, np.dtype(dtype))
    got = flat[shift:].reshape(n, c, t, h, w + 3)[..., :w]  # element offset `shift`, rows 3 elements longer
    want = sentinel_out(plan)
    got[...] = want
    for slot in range(len(plan.frame_indices)):
        reference.sample_frame(planes, plan, slot, conversion, want)
        native.sample_frame(planes, plan, slot, conversion, got)
    assert same_bits(np.ascontiguousarray(got), want)


def test_random_normalisations_match_the_reference():
    rng = np.random.default_rng(2024)
    planes, conversion, info = make_frame("yuv420p", 23, 67, rng)
    for case in range(40):
        scale = 10.0 ** rng.uniform(-3, 3)
        mean = tuple(float(m) for m in rng.uniform(-300, 300, 3))
        std = tuple(float(s) for s in scale * rng.uniform(0.1, 10, 3))
        dtype = ("float32", "float16")[case % 2]
        with np.errstate(all="ignore"):
            plan = make_plan(fragments_view(16, mean, std, dtype), video_info(num_frames=4, **info), seed=case)
            want, got = sentinel_out(plan), sentinel_out(plan)
            reference.sample_frame(planes, plan, 0, conversion, want)
            native.sample_frame(planes, plan, 0, conversion, got)
        assert same_bits(got, want), (mean, std, dtype)


def test_many_tables_in_turn():
    """More (conversion, normalisation, dtype) combinations than the kernel keeps tables for, revisited."""
    from edgevqa.kernels import yuv_to_rgb_conversion

    rng = np.random.default_rng(5)
    planes, _, info = make_frame("yuv420p", 21, 35, rng)
    cases = [(matrix, colour_range, dtype, norm) for matrix in ("bt601", "bt709", "bt2020")
             for colour_range in ("limited", "full") for dtype in ("float32", "float16") for norm in (0, 1)]
    for matrix, colour_range, dtype, norm in cases + cases[::-1] + cases[::3]:
        conversion = yuv_to_rgb_conversion(matrix, colour_range, 8)
        plan = make_plan(fragments_view(8, *NORMALISATIONS[norm], dtype), video_info(num_frames=4, **info), seed=1)
        want, got = sentinel_out(plan), sentinel_out(plan)
        reference.sample_frame(planes, plan, 1, conversion, want)
        native.sample_frame(planes, plan, 1, conversion, got)
        assert same_bits(got, want), (matrix, colour_range, dtype, norm)


_SCALAR_VS_VECTOR = """
import sys, numpy as np
sys.path.insert(0, {tests!r})
from kernel_inputs import make_frame, video_info
from test_native_paths import fragments_view, NORMALISATIONS
from edgevqa.kernels import native
from edgevqa.sampling import make_plan
parts = []
for fmt in ("yuv420p", "yuv422p", "yuv444p", "nv12"):
    for dtype in ("float32", "float16"):
        for width, frame_width in ((8, 151), (21, 151), (32, 151), (13, 39)):
            rng = np.random.default_rng(width)
            planes, conversion, info = make_frame(fmt, 71, frame_width, rng)
            plan = make_plan(fragments_view(width, *NORMALISATIONS[0], dtype), video_info(num_frames=5, **info), seed=2)
            out = np.zeros(plan.output_shape, np.dtype(dtype))
            native.sample(planes_list := [planes] * len(plan.frame_indices), plan, conversion, out)
            parts.append(out.view(np.uint8).ravel())
sys.stdout.buffer.write(np.concatenate(parts).tobytes())
"""


def test_the_vector_and_scalar_rows_agree():
    code = _SCALAR_VS_VECTOR.format(tests=str(Path(__file__).parent))
    outputs = []
    for scalar in ("0", "1"):
        env = dict(os.environ, EDGEVQA_NATIVE_SCALAR=scalar)
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=True)
        outputs.append(result.stdout)
    assert len(outputs[0]) > 0 and outputs[0] == outputs[1]
