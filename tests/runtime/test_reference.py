"""The NumPy reference sampler against plain float conversions and against FFmpeg's own RGB."""

import numpy as np
import pytest

from edgevqa.decode import PyAVDecoder
from edgevqa.kernels import reference
from edgevqa.kernels.colour import MATRIX_KR_KB, normalisation_table, rgb_passthrough, yuv_to_rgb_conversion
from edgevqa.manifest import ViewSpec
from edgevqa.sampling import make_plan
from edgevqa.video import VideoInfo


def float_yuv_to_rgb(y, u, v, matrix, colour_range, depth):
    """Textbook float conversion (the plain reference for the fixed-point one)."""
    kr, kb = MATRIX_KR_KB[matrix]
    kg = 1 - kr - kb
    s = 2 ** (depth - 8)
    if colour_range == "limited":
        yn, cn = (y - 16 * s) / (219 * s), 1 / (224 * s)
    else:
        yn, cn = y / (2 ** depth - 1), 1 / (2 ** depth - 1)
    cb, cr = (u - 128 * s) * cn, (v - 128 * s) * cn
    r = yn + 2 * (1 - kr) * cr
    b = yn + 2 * (1 - kb) * cb
    g = yn - 2 * (1 - kb) * kb / kg * cb - 2 * (1 - kr) * kr / kg * cr
    return np.clip(np.stack([r, g, b]) * 255, 0, 255)


@pytest.mark.parametrize("matrix", ["bt601", "bt709", "bt2020"])
@pytest.mark.parametrize("colour_range", ["limited", "full"])
@pytest.mark.parametrize("depth", [8, 10])
def test_fragments_from_yuv_match_float_conversion_and_slicing(matrix, colour_range, depth):
    rng = np.random.default_rng(depth * 7 + len(matrix))
    h, w = 359, 641  # odd sizes
    dtype = np.uint8 if depth == 8 else np.uint16
    y = rng.integers(0, 2 ** depth, size=(h, w)).astype(dtype)
    u = rng.integers(0, 2 ** depth, size=((h + 1) // 2, (w + 1) // 2)).astype(dtype)
    v = rng.integers(0, 2 ** depth, size=((h + 1) // 2, (w + 1) // 2)).astype(dtype)
    view = ViewSpec(num_clips=2, clip_len=4, frame_interval=1, aligned=2)
    vinfo = VideoInfo(path="rand", width=w, height=h, num_frames=8, fps=25, duration=0.32, bit_depth=depth)
    plan = make_plan(view, vinfo, seed=11)
    conv = yuv_to_rgb_conversion(matrix, colour_range, depth)
    for group in range(plan.luma_rows.index.shape[0]):
        rgb = reference.sample_frame_rgb8((y, u, v), plan, group, conv).astype(np.float64)
        ri = plan.luma_rows.index[group][..., 0]
        ci = plan.luma_cols.index[group][..., 0]
        ys = y[ri[:, :, :, None], ci[:, :, None, :]].astype(np.float64)
        us = u[ri[:, :, :, None] >> 1, ci[:, :, None, :] >> 1].astype(np.float64)
        vs = v[ri[:, :, :, None] >> 1, ci[:, :, None, :] >> 1].astype(np.float64)
        expect = float_yuv_to_rgb(ys, us, vs, matrix, colour_range, depth)  # [3, gh, gw, ph, pw]
        expect = expect.transpose(0, 1, 3, 2, 4).reshape(rgb.shape)
        assert np.abs(rgb - expect).max() <= 1.0


def test_sample_writes_normalised_values_in_both_layouts():
    rng = np.random.default_rng(3)
    h, w = 97, 131
    planes = [rng.integers(0, 256, size=(h, w)).astype(np.uint8) for _ in range(3)]
    vinfo = VideoInfo(path="rand", width=w, height=h, num_frames=3, fps=25, duration=0.12, is_rgb=True,
                      chroma_shift=(0, 0))
    out = {}
    for layout in ("NCTHW", "NTCHW"):
        view = ViewSpec(kind="resize_crop", clip_len=3, segments_per_clip=3, frame_interval=1, size=(45, 61),
                        layout=layout)
        plan = make_plan(view, vinfo)
        frames = [planes] * len(plan.frame_indices)
        out[layout] = reference.sample(frames, plan, rgb_passthrough())
    assert np.array_equal(out["NCTHW"], out["NTCHW"].transpose(0, 2, 1, 3, 4))
    # RGB passthrough + resize of a resized constant image is that constant, normalised
    const = [np.full((h, w), 200, np.uint8)] * 3
    view = ViewSpec(kind="resize_crop", clip_len=1, size=(45, 61))
    plan = make_plan(view, vinfo)
    res = reference.sample([const], plan, rgb_passthrough())
    table = normalisation_table(view.mean, view.std)
    assert np.array_equal(res[0, :, 0], np.broadcast_to(table[:, 200, None, None], (3, 45, 61)))


def test_reference_rejects_mismatched_inputs():
    from edgevqa.errors import KernelError

    vinfo = VideoInfo(path="rand", width=300, height=300, num_frames=4, fps=25, duration=0.16)
    plan = make_plan(ViewSpec(clip_len=4, aligned=4), vinfo)
    conv = yuv_to_rgb_conversion()
    small = [np.zeros((100, 100), np.uint8), np.zeros((50, 50), np.uint8), np.zeros((50, 50), np.uint8)]
    out = np.empty(plan.output_shape, np.float32)
    with pytest.raises(KernelError, match="another frame size"):
        reference.sample_frame(small, plan, 0, conv, out)
    with pytest.raises(KernelError, match="dtype"):
        reference.sample_frame([p.astype(np.uint16) for p in small], plan, 0, conv, out)
    with pytest.raises(KernelError, match="shape"):
        reference.sample_frame(small, plan, 0, conv, np.empty((1, 3, 4, 10, 10), np.float32))


def test_agrees_with_ffmpeg_rgb_on_real_frames(shared_clips):
    """Against libswscale's yuv420p -> rgb24 + slicing: a rounding step or two apart (sampling.md s.5)."""
    view = ViewSpec(num_clips=1, clip_len=4, frame_interval=3, aligned=4)
    for path in shared_clips:
        with PyAVDecoder(path) as dec:
            if dec.info.width < 224 or dec.info.height < 224:
                continue
            plan = make_plan(view, dec.info, seed=2)
            frame = next(iter(dec.frames(plan.frame_indices[:1])))
            conv = yuv_to_rgb_conversion(frame.color_matrix, frame.color_range, frame.bit_depth)
            ours = reference.sample_frame_rgb8(frame.planes, plan, 0, conv).astype(int)
            full = frame.owner.to_ndarray(format="rgb24")
            ri, ci = plan.luma_rows.index[0][..., 0], plan.luma_cols.index[0][..., 0]
            theirs = full[ri[:, :, :, None], ci[:, :, None, :]].transpose(4, 0, 2, 1, 3).reshape(ours.shape)
            diff = np.abs(ours - theirs.astype(int))
            assert np.mean(diff <= 2) > 0.99, path
            assert diff.max() <= 4, path
