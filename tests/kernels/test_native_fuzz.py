"""Hypothesis fuzzing of the C kernel's bindings: random valid calls match the reference bit for bit, random
broken calls raise KernelError (never a crash, never another exception type). 1,300 + 1,000 cases.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgevqa.errors import KernelError
from edgevqa.kernels import reference

from kernel_inputs import (FORMATS, SMALL_VIEWS, STRIDE_VARIANTS, make_frame, random_raw_plan, same_bits,
                           sentinel_out, small_plan, video_info)

native = pytest.importorskip("edgevqa.kernels.native", reason="the C kernel is not built (no C compiler at install)")
from edgevqa.kernels import _native  # noqa: E402 - only once the extension is known to exist

def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@fuzz_settings(1300)
@given(seed=st.integers(0, 2 ** 32 - 1), fmt=st.sampled_from(sorted(FORMATS)),
       height=st.integers(1, 26), width=st.integers(1, 26), variant=st.sampled_from(STRIDE_VARIANTS),
       kind=st.sampled_from(sorted(SMALL_VIEWS) + ["raw", "raw_extreme"]),
       layout=st.sampled_from(["NCTHW", "NTCHW"]), dtype=st.sampled_from(["float32", "float16"]),
       over_range=st.booleans())
def test_valid_calls_match_the_reference(seed, fmt, height, width, variant, kind, layout, dtype, over_range):
    rng = np.random.default_rng(seed)
    planes, conversion, info = make_frame(fmt, height, width, rng, variant, over_range)
    if kind.startswith("raw"):
        plan = random_raw_plan(rng, planes, kind == "raw_extreme", layout, dtype)
    else:
        plan = small_plan(kind, video_info(num_frames=int(rng.integers(1, 50)), **info), layout, dtype,
                          seed=int(rng.integers(0, 100)), mode=("default", "reference")[int(rng.integers(0, 2))])
    slot = int(rng.integers(0, len(plan.frame_indices)))
    want, got = sentinel_out(plan), sentinel_out(plan)
    reference.sample_frame(planes, plan, slot, conversion, want)
    native.sample_frame(planes, plan, slot, conversion, got)
    assert same_bits(got, want)


def _valid_arguments(rng):
    planes, conversion, info = make_frame(("yuv420p", "yuv420p10", "rgb24")[int(rng.integers(0, 3))],
                                          int(rng.integers(1, 20)), int(rng.integers(1, 20)), rng)
    plan = small_plan(("fragments", "resize_crop", "clips")[int(rng.integers(0, 3))],
                      video_info(num_frames=int(rng.integers(1, 20)), **info))
    slots, groups, taps = native.plan_arrays(plan)
    return dict(planes=list(planes), out=np.zeros(plan.output_shape, np.float32), slot=0, slots=slots,
                tap_group=groups, taps=list(taps), coefficients=np.asarray(conversion.coefficients, np.int32),
                is_rgb=conversion.is_rgb, bit_depth=conversion.bit_depth,
                table=native._table(plan.view.mean, plan.view.std, "float32"), channels_first=True)


def _mutate(args, rng, choice: int) -> None:
    junk = [None, 3, "text", b"", [1, 2], np.zeros(0, np.uint8), np.zeros((2, 2, 2), np.uint8), 1.5, object()]

    def any_junk():
        return junk[int(rng.integers(0, len(junk)))]

    p = int(rng.integers(0, 3))
    a = int(rng.integers(0, 8))
    kind = choice % 24
    if kind == 0:
        args["planes"][p] = args["planes"][p].astype((np.int8, np.uint32, np.float32, np.int16)[int(rng.integers(0, 4))])
    elif kind == 1:
        args["planes"][p] = args["planes"][p][:, :, None] if rng.integers(0, 2) else args["planes"][p].reshape(-1)
    elif kind == 2:
        args["planes"][p] = args["planes"][p][: int(rng.integers(0, 2)), : int(rng.integers(0, 3))]
    elif kind == 3:
        args["planes"][p] = any_junk()
    elif kind == 4:
        args["planes"] = args["planes"][: int(rng.integers(0, 3))] if rng.integers(0, 2) else any_junk()
    elif kind == 5:
        args["taps"] = args["taps"][: int(rng.integers(0, 8))] if rng.integers(0, 2) else any_junk()
    elif kind == 6:
        args["taps"][a] = args["taps"][a].astype((np.int64, np.uint32, np.float32, np.int16)[int(rng.integers(0, 4))])
    elif kind == 7:
        args["taps"][a] = np.asfortranarray(np.repeat(args["taps"][a], 2, axis=int(rng.integers(0, 5))))
    elif kind == 8:
        t = args["taps"][a].copy()
        t.flat[int(rng.integers(0, t.size))] = int(rng.integers(-(2 ** 31), 2 ** 31))
        args["taps"][a] = t
    elif kind == 9:
        args["taps"][a] = args["taps"][a][..., :1] if rng.integers(0, 2) else args["taps"][a][None]
    elif kind == 10:
        args["taps"][a] = any_junk()
    elif kind == 11:
        args["slots"] = args["slots"].astype(np.int64) if rng.integers(0, 2) else args["slots"][:, :0]
    elif kind == 12:
        g = args["tap_group"].copy()
        g.flat[0] = int(rng.integers(-(2 ** 31), 2 ** 31))
        args["tap_group"] = g
    elif kind == 13:
        args["slot"] = int(rng.integers(-(2 ** 40), 2 ** 40)) if rng.integers(0, 2) else any_junk()
    elif kind == 14:
        args["coefficients"] = args["coefficients"][: int(rng.integers(0, 7))] if rng.integers(0, 2) else any_junk()
    elif kind == 15:
        args["coefficients"] = rng.integers(-(2 ** 31), 2 ** 31, size=7, dtype=np.int64).astype(np.int32)
    elif kind == 16:
        args["table"] = (args["table"][:2], args["table"].astype(np.float16), args["table"].T, any_junk())[
            int(rng.integers(0, 4))]
    elif kind == 17:
        shape = list(args["out"].shape)
        shape[int(rng.integers(0, 5))] += int(rng.integers(1, 3))
        args["out"] = np.zeros(shape, np.float32)
    elif kind == 18:
        args["out"] = (args["out"].astype(np.float16), args["out"].astype(np.float64), args["out"][0],
                       any_junk())[int(rng.integers(0, 4))]
    elif kind == 19:
        args["out"].flags.writeable = False
    elif kind == 20:
        args["bit_depth"] = int(rng.integers(-5, 40)) if rng.integers(0, 2) else any_junk()
    elif kind == 21:
        args["is_rgb"] = not args["is_rgb"]
    elif kind == 22:
        args["channels_first"] = not args["channels_first"]
    else:
        args["out"] = args["out"][..., ::-1] if rng.integers(0, 2) else args["out"].transpose(0, 2, 1, 3, 4)


@fuzz_settings(1000)
@given(seed=st.integers(0, 2 ** 32 - 1), choices=st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=3))
def test_broken_calls_raise_kernel_error(seed, choices):
    rng = np.random.default_rng(seed)
    args = _valid_arguments(rng)
    for choice in choices:
        try:
            _mutate(args, rng, choice)
        except (TypeError, AttributeError, IndexError, ValueError, KeyError):
            pass  # an earlier mutation already replaced what this one would change
    try:
        _native.sample_frame(*args.values())
    except KernelError:
        pass  # the expected outcome for almost every mutation
    # Some mutations leave a valid call (a changed index still in range, the other layout's shape fitting):
    # returning normally is fine; any other exception type, or a crash, fails.
