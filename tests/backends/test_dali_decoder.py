"""DALI decoding: the CPU variant (VP8/VP9) runs here and must match PyAV's decoding of the same VP9 file; NVDEC
(device='gpu') runs on the GPU machine only."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("nvidia.dali", reason="NVIDIA DALI is not installed (the 'dali' extra)")

from edgevqa import kernels  # noqa: E402
from edgevqa.decode import PyAVDecoder  # noqa: E402
from edgevqa.decode_dali import DaliDecoder  # noqa: E402
from edgevqa.errors import EdgeVQAError, VideoDecodeError  # noqa: E402
from edgevqa.manifest import ViewSpec  # noqa: E402
from edgevqa.sampling import frames_needed, make_plans  # noqa: E402
from edgevqa.video import Frame  # noqa: E402

VIEW = ViewSpec(name="video", kind="fragments", num_clips=1, clip_len=4, frame_interval=2, grid=(3, 3),
                patch=(16, 16), size=(48, 48), aligned=4)


@pytest.fixture(scope="module")
def vp9_clip(tmp_path_factory):
    from edgevqa.samples import write_clip

    path = tmp_path_factory.mktemp("dali") / "odd.webm"
    return write_clip(path, width=131, height=75, num_frames=23, fps=25, codec="libvpx-vp9", crf=None, seed=3)


def _pyav_rgb(path):
    import av

    with av.open(path) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _sample(frames, info):
    (plan,) = make_plans([VIEW], info, None)
    out = np.empty(plan.output_shape, np.float32)
    slots = {int(f): s for s, f in enumerate(plan.frame_indices)}
    conversion = None
    for frame in frames(frames_needed([plan])):
        conversion = conversion or kernels.conversion_for_frame(frame)
        kernels.sample_frame(frame.planes, plan, slots[frame.index], conversion, out)
    return out


def test_cpu_frames_match_pyav(vp9_clip):
    reference = _pyav_rgb(vp9_clip)
    with DaliDecoder(vp9_clip, device="cpu") as decoder:
        info = decoder.info
        frames = list(decoder.frames([0, 5, 6, 22, 40]))
    assert (info.width, info.height, info.num_frames, info.codec) == (131, 75, 23, "vp9")
    assert info.is_rgb and info.chroma_shift == (0, 0)
    assert [f.index for f in frames] == [0, 5, 6, 22]  # 40 is past the end: not yielded
    for frame in frames:
        assert frame.is_rgb and (frame.height, frame.width) == (75, 131)
        rgb = np.stack(frame.planes, axis=-1).astype(np.int16)
        diff = np.abs(rgb - reference[frame.index])
        # DALI's CPU decoder converts with libswscale, as PyAV does: equal here; allow rounding across versions.
        assert diff.max() <= 2 and diff.mean() < 0.25, (frame.index, diff.max(), diff.mean())


def test_all_frames_in_chunks(vp9_clip):
    with DaliDecoder(vp9_clip, device="cpu", max_frames_per_run=4) as decoder:
        indices = [f.index for f in decoder.frames()]
    assert indices == list(range(23))


def test_cpu_frames_feed_the_sampler_like_pyav(vp9_clip):
    with DaliDecoder(vp9_clip, device="cpu") as decoder:
        got = _sample(decoder.frames, decoder.info)
        info = decoder.info
    reference = _pyav_rgb(vp9_clip)

    def rgb_frames(indices):
        for i in indices:
            rgb = reference[i]
            yield Frame(index=int(i), pts=None, planes=(rgb[..., 0], rgb[..., 1], rgb[..., 2]), is_rgb=True,
                        chroma_shift=(0, 0), color_range="full")

    np.testing.assert_allclose(got, _sample(rgb_frames, info), atol=0.05)
    # Against our own YUV path (its chroma siting and rounding differ from libswscale's): close on average.
    with PyAVDecoder(vp9_clip) as pyav:
        from_yuv = _sample(pyav.frames, pyav.info)
    assert float(np.abs(got - from_yuv).mean()) < 0.15


def test_cpu_decoder_refuses_h264(small_clip):
    with pytest.raises(VideoDecodeError, match="VP8, VP9 and MJPEG only, this video is h264"):
        DaliDecoder(small_clip, device="cpu")


def test_bad_inputs(tmp_path):
    with pytest.raises(VideoDecodeError, match="no such file"):
        DaliDecoder(tmp_path / "missing.webm", device="cpu")
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="empty"):
        DaliDecoder(empty, device="cpu")
    with pytest.raises(EdgeVQAError, match="device must be one of"):
        DaliDecoder(empty, device="npu")


@pytest.mark.gpu
def test_nvdec_frames_stay_on_the_device_and_match_pyav(small_clip):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device visible to torch")
    reference = _pyav_rgb(small_clip)
    with DaliDecoder(small_clip, device="gpu") as decoder:
        frames = list(decoder.frames([0, 7, 39]))
    assert [f.index for f in frames] == [0, 7, 39]
    for frame in frames:
        assert frame.planes[0].is_cuda
        rgb = torch.stack(frame.planes, dim=-1).cpu().numpy().astype(np.int16)
        diff = np.abs(rgb - reference[frame.index])
        # NVDEC output is converted to RGB by DALI's own kernel: small rounding and chroma differences.
        assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 8, (frame.index, diff.mean())
