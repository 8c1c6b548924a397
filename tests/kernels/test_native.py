"""The C sampling kernel against the NumPy reference: bit for bit, for every format, layout, view and plan."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import zlib

import numpy as np
import pytest

from edgevqa.errors import KernelError
from edgevqa.kernels import reference
from edgevqa.kernels.colour import rgb_passthrough, yuv_to_rgb_conversion
from edgevqa.manifest import ViewSpec
from edgevqa.sampling import make_plan

from kernel_inputs import (FORMATS, SHARED_VIDEOS, SMALL_VIEWS, STRIDE_VARIANTS, make_frame, random_raw_plan,
                           same_bits, sentinel_out, small_plan, video_info)

native = pytest.importorskip("edgevqa.kernels.native", reason="the C kernel is not built (no C compiler at install)")


def assert_matches_reference(planes, plan, conversion, slots=None) -> None:
    """Every slot (or ``slots``) through both implementations into sentinel-filled outputs: same bytes."""
    want, got = sentinel_out(plan), sentinel_out(plan)
    for slot in range(len(plan.frame_indices)) if slots is None else slots:
        reference.sample_frame(planes, plan, slot, conversion, want)
        native.sample_frame(planes, plan, slot, conversion, got)
    assert same_bits(got, want), f"max abs difference {np.nanmax(np.abs(got.astype(np.float64) - want))}"


@pytest.mark.parametrize("kind", sorted(SMALL_VIEWS))
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_and_view_kind(fmt, kind):
    rng = np.random.default_rng([len(fmt), len(kind), 1])
    height, width = (int(v) * 2 + 1 for v in rng.integers(8, 40, size=2))  # odd sizes
    variant = STRIDE_VARIANTS[int(rng.integers(0, len(STRIDE_VARIANTS)))]
    planes, conversion, info = make_frame(fmt, height, width, rng, variant)
    layout, dtype = ("NCTHW", "NTCHW")[int(rng.integers(0, 2))], ("float32", "float16")[int(rng.integers(0, 2))]
    plan = small_plan(kind, video_info(num_frames=int(rng.integers(3, 90)), **info), layout, dtype,
                      seed=int(rng.integers(0, 1000)))
    assert_matches_reference(planes, plan, conversion)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("layout", ["NCTHW", "NTCHW"])
@pytest.mark.parametrize("kind", sorted(SMALL_VIEWS))
def test_layouts_and_dtypes(kind, layout, dtype):
    rng = np.random.default_rng(7)
    planes, conversion, info = make_frame("yuv420p", 61, 83, rng)
    plan = small_plan(kind, video_info(num_frames=40, **info), layout, dtype, seed=5)
    assert_matches_reference(planes, plan, conversion)


@pytest.mark.parametrize("variant", STRIDE_VARIANTS)
@pytest.mark.parametrize("fmt", ["yuv420p", "yuv420p10", "rgb24"])
def test_plane_memory_layouts(fmt, variant):
    rng = np.random.default_rng(zlib.crc32(f"{fmt}/{variant}".encode()))
    planes, conversion, info = make_frame(fmt, 47, 59, rng, variant)
    for kind in ("fragments", "resize_crop"):
        assert_matches_reference(planes, small_plan(kind, video_info(num_frames=9, **info), seed=1), conversion)


def test_output_with_any_strides():
    rng = np.random.default_rng(11)
    planes, conversion, info = make_frame("yuv420p", 41, 45, rng)
    plan = small_plan("fragments", video_info(num_frames=12, **info), seed=2)
    big = np.zeros(plan.output_shape[:-1] + (2 * plan.output_shape[-1],), np.float32)
    want, got = sentinel_out(plan), big[..., ::-2][..., ::-1]  # a strided, non-contiguous output view
    got[...] = want
    for slot in range(len(plan.frame_indices)):
        reference.sample_frame(planes, plan, slot, conversion, want)
        native.sample_frame(planes, plan, slot, conversion, got)
    assert same_bits(np.ascontiguousarray(got), want)


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (3, 5), (16, 16), (17, 1)])
@pytest.mark.parametrize("fmt", ["yuv420p", "nv12", "yuv422p", "gray"])
def test_tiny_frames(fmt, size):
    """Frames smaller than the view (upscaled through resize taps), 1x1 chroma planes included."""
    rng = np.random.default_rng(size[0] * 31 + size[1])
    planes, conversion, info = make_frame(fmt, size[0], size[1], rng)
    for kind in sorted(SMALL_VIEWS):
        assert_matches_reference(planes, small_plan(kind, video_info(num_frames=5, **info), seed=3), conversion)


def test_4k_frame_with_the_fast_vqa_view():
    rng = np.random.default_rng(4)
    planes, conversion, info = make_frame("yuv420p", 2160, 3840, rng, "padded")
    plan = make_plan(ViewSpec(), video_info(num_frames=300, **info), seed=9)
    assert_matches_reference(planes, plan, conversion, slots=[0, 17])


@pytest.mark.parametrize("mode", ["default", "reference"])
def test_fast_vqa_plans_on_odd_1080p_like_frames(mode):
    rng = np.random.default_rng(5)
    planes, conversion, info = make_frame("yuv420p", 541, 961, rng, "padded")
    for view in (ViewSpec(num_clips=2, clip_len=8, aligned=4), ViewSpec(dtype="float16", layout="NTCHW")):
        plan = make_plan(view, video_info(num_frames=97, **info), seed=13, mode=mode)
        assert_matches_reference(planes, plan, conversion, slots=[0, len(plan.frame_indices) - 1])


@pytest.mark.parametrize("extreme", [False, True])
def test_random_taps_weights_and_slots(extreme):
    """Arbitrary K, negative and full-range int32 weights (wrapping int64 arithmetic), repeated slots."""
    rng = np.random.default_rng(21 + extreme)
    for case in range(40):
        fmt = ("yuv420p", "yuv420p10", "rgb24", "gbrp10")[case % 4]
        planes, conversion, _ = make_frame(fmt, int(rng.integers(1, 30)), int(rng.integers(1, 30)), rng,
                                           over_range=bool(case % 3 == 0))
        plan = random_raw_plan(rng, planes, extreme, ("NCTHW", "NTCHW")[case % 2], ("float32", "float16")[case % 3 % 2])
        assert_matches_reference(planes, plan, conversion)


def test_values_above_the_bit_depth_are_clamped_like_the_reference():
    rng = np.random.default_rng(8)
    for fmt in ("yuv420p10", "yuv422p12", "gbrp10", "gray10"):
        planes, conversion, info = make_frame(fmt, 33, 35, rng, over_range=True)
        for kind in sorted(SMALL_VIEWS):
            assert_matches_reference(planes, small_plan(kind, video_info(num_frames=6, **info), seed=4), conversion)


def test_extreme_colour_coefficients_wrap_like_numpy():
    rng = np.random.default_rng(9)
    planes, conversion, info = make_frame("yuv420p10", 29, 31, rng)
    for _ in range(5):
        coefficients = rng.integers(-(2 ** 31), 2 ** 31, size=7, dtype=np.int64).astype(np.int32)
        wild = dataclasses.replace(conversion, coefficients=coefficients)
        assert_matches_reference(planes, small_plan("fragments", video_info(num_frames=4, **info)), wild)


def test_uses_from_several_threads():
    rng = np.random.default_rng(12)
    planes, conversion, info = make_frame("yuv420p", 121, 163, rng)
    plan = small_plan("clips", video_info(num_frames=80, **info), seed=6)
    want = sentinel_out(plan)
    for slot in range(len(plan.frame_indices)):
        reference.sample_frame(planes, plan, slot, conversion, want)
    outs = [sentinel_out(plan) for _ in range(4)]

    def work(out):
        for _ in range(5):
            for slot in range(len(plan.frame_indices)):
                native.sample_frame(planes, plan, slot, conversion, out)

    threads = [threading.Thread(target=work, args=(o,)) for o in outs]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(same_bits(o, want) for o in outs)


def test_the_gil_is_released_while_the_kernel_runs():
    """Another Python thread makes progress while a long kernel call is inside C (no timing thresholds)."""
    rng = np.random.default_rng(13)
    planes, conversion, info = make_frame("yuv444p", 1440, 2560, rng)
    view = ViewSpec(kind="clips", size=(512, 512), temporal="per_second", num_clips=1, clip_len=1)
    plan = make_plan(view, video_info(num_frames=10, **info))
    out = np.zeros(plan.output_shape, np.float32)
    inside, progress = threading.Event(), []
    done = threading.Event()

    def kernel_calls():
        for _ in range(6):
            inside.set()
            native.sample_frame(planes, plan, 0, conversion, out)
        done.set()

    worker = threading.Thread(target=kernel_calls)
    worker.start()
    inside.wait()
    while not done.is_set():
        progress.append(1)
    worker.join()
    assert len(progress) > 6  # with the GIL held throughout, the loop could only run between calls


# --------------------------------------------------------------------------------------------- errors


@pytest.fixture()
def good_call():
    rng = np.random.default_rng(14)
    planes, conversion, info = make_frame("yuv420p", 31, 37, rng)
    plan = small_plan("fragments", video_info(num_frames=8, **info), seed=1)
    return planes, plan, conversion, np.zeros(plan.output_shape, np.float32)


def test_rejects_wrong_planes(good_call):
    planes, plan, conversion, out = good_call
    bad_cases = [
        (planes[:2], "expected 3 planes"),
        ([planes[0].astype(np.uint16), planes[1], planes[2]], "uint8"),
        ([planes[0].astype(np.float32), planes[1], planes[2]], "uint8"),
        ([planes[0][None], planes[1], planes[2]], "2 dimensions"),
        ([planes[0][:0], planes[1], planes[2]], "empty"),
        ([planes[0][:10, :10], planes[1], planes[2]], "outside"),
        ([planes[0], planes[1][:3], planes[2]], "outside"),
        ([planes[0], "not an array", planes[2]], "buffer protocol"),
        (None, "sequence"),
    ]
    for bad, words in bad_cases:
        with pytest.raises(KernelError, match=words):
            native.sample_frame(bad, plan, 0, conversion, out)


def test_rejects_wrong_outputs_and_arguments(good_call):
    planes, plan, conversion, out = good_call
    with pytest.raises(KernelError, match="shape"):
        native.sample_frame(planes, plan, 0, conversion, out[:, :, :-1])
    with pytest.raises(KernelError, match="dtype"):
        native.sample_frame(planes, plan, 0, conversion, out.astype(np.float16))
    readonly = out.copy()
    readonly.flags.writeable = False
    with pytest.raises(KernelError, match="writable"):
        native.sample_frame(planes, plan, 0, conversion, readonly)
    with pytest.raises(KernelError, match="slot"):
        native.sample_frame(planes, plan, len(plan.frame_indices), conversion, out)
    with pytest.raises(KernelError, match="slot"):
        native.sample_frame(planes, plan, -1, conversion, out)
    with pytest.raises(KernelError, match="SamplePlan"):
        native.sample_frame(planes, "plan", 0, conversion, out)
    with pytest.raises(KernelError, match="ColourConversion"):
        native.sample_frame(planes, plan, 0, None, out)
    with pytest.raises(KernelError, match="bit depth"):
        native.sample_frame(planes, plan, 0, rgb_passthrough(7), out)
    ten_bit = yuv_to_rgb_conversion("bt709", "limited", 10)
    with pytest.raises(KernelError, match="uint16"):
        native.sample_frame(planes, plan, 0, ten_bit, out)


def test_raw_binding_rejects_inconsistent_plans(good_call):
    from edgevqa.kernels import _native

    planes, plan, conversion, out = good_call
    slots, groups, taps = native.plan_arrays(plan)
    table = native._table(plan.view.mean, plan.view.std, "float32")
    coef = np.asarray(conversion.coefficients, np.int32)

    def call(**change):
        args = dict(planes=planes, out=out, slot=0, slots=slots, tap_group=groups, taps=taps, coefficients=coef,
                    is_rgb=False, bit_depth=8, table=table, channels_first=True)
        args.update(change)
        _native.sample_frame(*args.values())

    call()  # the unchanged call works
    negative = [a.copy() for a in taps]
    negative[0][0, 0, 0, 0, 0] = -1
    wrong_k = list(taps)
    wrong_k[1] = taps[1][..., :0]
    bad = {
        "taps": [(taps[:7], "8 int32"), (tuple(negative), "outside"), (tuple(wrong_k), "shape|empty"),
                 ((np.asfortranarray(taps[0]),) + taps[1:], "contiguous"),
                 ((taps[0].astype(np.int64),) + taps[1:], "int32")],
        "tap_group": [(groups + 100, "tap groups"), (groups[:, :1], "shape|contiguous")],
        "slots": [(slots.astype(np.float32), "int32"), (slots[0], "2 dimensions")],
        "coefficients": [(coef[:6], "7 values")],
        "table": [(table[:2], "table"), (table.astype(np.float16), "table")],
        "bit_depth": [(17, "bit depth"), (0, "bit depth")],
        "slot": [("zero", "bad arguments"), (-3, "negative")],
        "out": [(out[..., 0], "5 dimensions"), (np.zeros(out.shape, np.int32), "float")],
        "channels_first": [(False, "shape")],
    }
    for name, cases in bad.items():
        for value, words in cases:
            with pytest.raises(KernelError, match=words):
                call(**{name: value})


def test_an_index_outside_the_plane_is_caught_wherever_it_sits():
    """The range check reduces 8 values a step plus a tail: a bad index first, in the body and last."""
    from edgevqa.kernels import _native

    rng = np.random.default_rng(31)
    planes, conversion, info = make_frame("yuv420p", 67, 45, rng)
    plan = small_plan("fragments", video_info(num_frames=8, **info), seed=2)
    slots, groups, taps, *rest = native._call_arguments(plan, conversion)
    out = np.zeros(plan.output_shape, np.float32)
    group = int(groups.flat[0])
    for array in (0, 2, 4, 6):  # the index arrays of luma rows, luma columns, chroma rows, chroma columns
        limit = (67, 45, 34, 23)[array // 2]
        values = taps[array][group].reshape(-1)
        assert values.size > 8 and values.size % 8, "a body of whole steps and a tail are the point"
        for position in (0, values.size // 2, values.size - 1):
            for bad_value in (-1, limit):
                changed = list(taps)
                changed[array] = taps[array].copy()
                changed[array][group].reshape(-1)[position] = bad_value
                with pytest.raises(KernelError, match="outside plane"):
                    _native.sample_frame(planes, out, 0, slots, groups, tuple(changed), *rest)


def test_a_one_tap_weight_other_than_one_leaves_the_fast_path():
    """One-tap plans take the direct path only when every weight is WEIGHT_ONE; a single other weight, even in
    the last position, must send the image through the general filter (same bits as the reference)."""
    rng = np.random.default_rng(32)
    planes, conversion, info = make_frame("yuv420p", 129, 97, rng)
    view = ViewSpec(kind="fragments", clip_len=4, frame_interval=1, grid=(3, 3), patch=(16, 16), size=(48, 48),
                    aligned=4)
    plan = make_plan(view, video_info(num_frames=8, **info), seed=3)
    for axis in ("luma_rows", "luma_cols", "chroma_rows", "chroma_cols"):
        for position in (0, -1):
            taps = getattr(plan, axis)
            weight = taps.weight.copy()
            weight.reshape(-1)[position] = (1 << 14) - 3000
            changed = dataclasses.replace(plan, **{axis: dataclasses.replace(taps, weight=weight)})
            assert_matches_reference(planes, changed, conversion, slots=[0])


def test_calls_alternating_between_plans_and_conversions_use_their_own():
    """The wrapper keeps the arguments of the last (plan, conversion) pair; switching pairs must not reuse them."""
    rng = np.random.default_rng(33)
    planes, conversion, info = make_frame("yuv420p", 65, 81, rng)
    other_conversion = yuv_to_rgb_conversion("bt709", "full")
    plans = [small_plan("fragments", video_info(num_frames=8, **info), seed=seed) for seed in (4, 5)]
    plans.append(small_plan("fragments", video_info(num_frames=8, **info), dtype="float16", seed=4))
    calls = [(plans[0], conversion), (plans[1], conversion), (plans[0], other_conversion), (plans[2], conversion),
             (plans[0], conversion)]
    for plan, conv in calls:
        want, got = sentinel_out(plan), sentinel_out(plan)
        reference.sample_frame(planes, plan, 0, conv, want)
        native.sample_frame(planes, plan, 0, conv, got)
        assert same_bits(got, want)


# --------------------------------------------------------------------------------------------- dispatch


def test_dispatch_uses_the_native_kernel():
    import edgevqa.kernels as kernels

    if os.environ.get("EDGEVQA_KERNELS", "auto") == "reference":
        pytest.skip("EDGEVQA_KERNELS=reference forces the reference")
    assert kernels.IMPLEMENTATION == "native"
    assert kernels.sample_frame is native.sample_frame and kernels.sample is native.sample
    assert kernels.NATIVE_UNAVAILABLE_REASON is None


@pytest.mark.parametrize("setting,expect", [("reference", "reference"), ("native", "native"), ("auto", "native")])
def test_environment_chooses_the_implementation(setting, expect):
    code = "import edgevqa.kernels as k; print(k.IMPLEMENTATION)"
    env = dict(os.environ, EDGEVQA_KERNELS=setting)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == expect


def test_environment_with_an_unknown_value_fails_clearly():
    env = dict(os.environ, EDGEVQA_KERNELS="fastest")
    result = subprocess.run([sys.executable, "-c", "import edgevqa.kernels"], env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "EDGEVQA_KERNELS" in result.stderr


def test_sample_fills_the_whole_view():
    rng = np.random.default_rng(15)
    frames, conversion = [], None
    for _ in range(8):
        planes, conversion, info = make_frame("nv12", 45, 53, rng)
        frames.append(planes)
    plan = small_plan("fragments", video_info(num_frames=8, **info))
    assert len(plan.frame_indices) == 8
    assert same_bits(native.sample(frames, plan, conversion), reference.sample(frames, plan, conversion))
    with pytest.raises(KernelError, match="frames"):
        native.sample(frames[:-1], plan, conversion)


# --------------------------------------------------------------------------------------------- real clips


@pytest.mark.skipif(not SHARED_VIDEOS.is_dir(), reason="../shared/data/videos is absent")
def test_real_clip_frames_match_the_reference_and_stay_close_to_swscale():
    from edgevqa.decode import PyAVDecoder
    from edgevqa.kernels import conversion_for_frame, sample_frame_rgb8

    for clip in sorted(SHARED_VIDEOS.glob("*.mp4")):
        with PyAVDecoder(str(clip)) as decoder:
            if min(decoder.info.height, decoder.info.width) < 224:
                continue  # smaller frames are upscaled: no pixel-for-pixel RGB counterpart
            plan = make_plan(ViewSpec(), decoder.info, seed=1)
            frames = list(decoder.frames(plan.frame_indices[:3]))
            break
    else:
        pytest.skip("no shared clip of at least 224x224")
    assert plan.luma_rows.num_taps == 1
    conversion = conversion_for_frame(frames[0])
    assert_matches_reference(frames[0].planes, plan, conversion, slots=[0])
    worst, total, count = 0, 0.0, 0
    for slot, frame in enumerate(frames):
        group = int(plan.tap_group[plan.uses_of_slot(slot)[0]])
        ours = sample_frame_rgb8(frame.planes, plan, group, conversion).astype(np.int16)
        rows = plan.luma_rows.index[group, :, :, :, 0]
        cols = plan.luma_cols.index[group, :, :, :, 0]
        cells = frame.owner.to_ndarray(format="rgb24")[rows[:, :, :, None], cols[:, :, None, :]]
        gh, gw, th, tw, _ = cells.shape
        theirs = cells.transpose(4, 0, 2, 1, 3).reshape(3, gh * th, gw * tw).astype(np.int16)
        diff = np.abs(ours - theirs)
        worst, total, count = max(worst, int(diff.max())), total + float(diff.sum()), count + diff.size
    # Same BT.601/709 formula, different rounding and chroma siting than libswscale (sampling.md section 5).
    assert worst <= 4 and total / count <= 1.5
