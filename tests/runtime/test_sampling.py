"""Plans against the semantics of shared/design/sampling.md."""

import numpy as np
import pytest

from edgevqa.errors import PlanError
from edgevqa.manifest import KINETICS_MEAN_255, KINETICS_STD_255, ViewSpec
from edgevqa.sampling import WEIGHT_ONE, make_plan, resize_taps, temporal_indices
from edgevqa.video import VideoInfo


def info(w, h, n=240, fps=30.0):
    return VideoInfo(path="synthetic", width=w, height=h, num_frames=n, fps=fps, duration=n / fps)


FASTVQA_B = ViewSpec(num_clips=4, clip_len=32, frame_interval=2, aligned=32)
FASTERVQA = ViewSpec(num_clips=1, clip_len=32, frame_interval=2, segments_per_clip=8, aligned=8)


def fragment_origins(plan, group):
    """Top-left virtual coordinate of every patch: ([gh, gw] rows, [gh, gw] cols)."""
    return plan.luma_rows.index[group][:, :, 0, 0], plan.luma_cols.index[group][:, :, 0, 0]


def test_fragments_default_is_deterministic_and_centred():
    a = make_plan(FASTVQA_B, info(1280, 720))
    b = make_plan(FASTVQA_B, info(1280, 720))
    assert np.array_equal(a.luma_rows.index, b.luma_rows.index)
    rows, cols = fragment_origins(a, 0)
    cell_h, cell_w = 720 // 7, 1280 // 7
    assert np.array_equal(rows[:, 0], np.arange(7) * cell_h + (cell_h - 32) // 2)
    assert np.array_equal(cols[0, :], np.arange(7) * cell_w + (cell_w - 32) // 2)
    # patches are contiguous runs of source pixels, one tap of full weight
    assert a.luma_rows.num_taps == 1 and np.all(a.luma_rows.weight == WEIGHT_ONE)
    assert np.all(np.diff(a.luma_rows.index[..., 0], axis=-1) == 1)
    # chroma of 4:2:0 reads the co-sited sample
    assert np.array_equal(a.chroma_rows.index, a.luma_rows.index >> 1)


def test_fragments_seeded_reference_offsets_follow_fastvqa():
    # FAST-VQA draws offsets from [0, cell - patch) (upper bound exclusive), per cell and temporal group.
    seen_h = set()
    for seed in range(40):
        plan = make_plan(FASTVQA_B, info(1280, 720), seed=seed, mode="reference")
        assert plan.luma_rows.index.shape[0] == 4  # one tap group per clip when aligned == clip_len
        rows, _ = fragment_origins(plan, seed % 4)
        offsets = rows - (np.arange(7) * (720 // 7))[:, None]
        seen_h.update(offsets.ravel().tolist())
    cell_h = 720 // 7
    assert min(seen_h) >= 0 and max(seen_h) <= cell_h - 32 - 1
    assert max(seen_h) >= cell_h - 32 - 8  # the range is really explored


def test_aligned_groups_share_positions():
    view = ViewSpec(num_clips=1, clip_len=32, frame_interval=2, aligned=8)
    plan = make_plan(view, info(640, 480), seed=5)
    assert plan.tap_group.tolist() == [[t // 8 for t in range(32)]]
    assert plan.luma_rows.index.shape[0] == 4
    assert not np.array_equal(plan.luma_rows.index[0], plan.luma_rows.index[1])
    again = make_plan(view, info(640, 480), seed=5)
    assert np.array_equal(plan.luma_cols.index, again.luma_cols.index)
    other = make_plan(view, info(640, 480), seed=6)
    assert not np.array_equal(plan.luma_cols.index, other.luma_cols.index)


def test_small_video_reference_quirk_and_default_fix():
    small = info(192, 144)
    ref = make_plan(FASTERVQA, small, mode="reference")
    fixed = make_plan(FASTERVQA, small)
    # reference: grid of the 144x192 original inside an upscaled frame -> only the top-left region is read
    ref_rows = ref.luma_rows.index[..., 0]
    assert ref.luma_rows.num_taps > 1  # reads go through the upscale
    virt_h = 224
    assert ref_rows.max() < 144 and fixed.luma_rows.index.max() == 143
    # default: the whole frame is covered (last patch reaches the bottom rows of the source)
    top_of_last_row = fixed.luma_rows.index[0, 6, 0, 0, 0]
    assert top_of_last_row > 0.75 * 144
    assert ref.luma_rows.index[0, 6, 0, 0, 0] < 0.75 * 144
    assert fixed.notes and ref.notes
    assert virt_h == 224


def test_temporal_fastvqa_b_reference_wraps_and_default_does_not():
    idx = temporal_indices(FASTVQA_B, 240, 30.0, mode="reference")
    assert idx.shape == (4, 32)
    # segments of 60 < 64 frames: offset 0, the last clip reads 180..242 and wraps to 0 and 2
    assert idx[3].tolist() == [(180 + 2 * k) % 240 for k in range(32)]
    default = temporal_indices(FASTVQA_B, 240, 30.0)
    assert default.max() <= 239 and np.all(np.diff(default, axis=1) >= 0)
    for clip in range(4):
        assert np.all((default[clip] >= clip * 60) & (default[clip] < (clip + 1) * 60))


def test_temporal_long_video_centred_with_stride():
    idx = temporal_indices(FASTVQA_B, 1000, 30.0)
    assert np.all(np.diff(idx, axis=1) == 2)
    seg = 250
    for clip in range(4):
        start = idx[clip, 0] - clip * seg
        assert start == (seg - 63 - 1) // 2 + 0 or abs(start - (seg - 63) // 2) <= 1


def test_fastervqa_segments_and_all_test_configs_express():
    idx = temporal_indices(FASTERVQA, 800, 25.0)
    assert idx.shape == (1, 32)
    groups = idx.reshape(8, 4)
    assert np.all(np.diff(groups, axis=1) == 2)
    assert np.all(groups[:, 0] // 100 == np.arange(8))
    configs = [
        FASTVQA_B, FASTERVQA,
        ViewSpec(num_clips=1, clip_len=16, segments_per_clip=4, frame_interval=2, aligned=8),  # FasterVQA-MT
        ViewSpec(num_clips=1, clip_len=32, segments_per_clip=8, aligned=8, grid=5, size=160),  # FasterVQA-MS
        ViewSpec(num_clips=3, clip_len=32, frame_interval=2, aligned=32),  # DOVER technical
        ViewSpec(name="aesthetic", kind="resize_crop", clip_len=32, segments_per_clip=32, frame_interval=1),
    ]
    for view in configs:
        plan = make_plan(view, info(1920, 1080, n=300))
        assert plan.output_shape == view.input_shape()


def test_simplevqa_views():
    spatial = ViewSpec(name="spatial", kind="resize_crop", temporal="key_frames", num_clips=1, clip_len=8,
                       size=448, short_side=520)
    motion = ViewSpec(name="motion", kind="clips", temporal="per_second", num_clips=8, clip_len=32,
                      frame_interval=1, size=224, mean=KINETICS_MEAN_255, std=KINETICS_STD_255)
    short = info(1280, 720, n=150, fps=29.97)  # 5 s: pads with the last frame
    key = temporal_indices(spatial, 150, 29.97)
    assert key.tolist() == [[0, 30, 60, 90, 120, 149, 149, 149]]
    clips = temporal_indices(motion, 150, 29.97)
    assert clips[1].tolist() == list(range(30, 62)) and clips[7].tolist() == [149] * 32
    plan = make_plan(spatial, short)
    # short side 720 -> 520, long side 1280 -> 924; centre crop 448
    assert plan.luma_rows.index.shape[:4] == (1, 1, 1, 448)
    rows = (plan.luma_rows.index * plan.luma_rows.weight).sum(-1) / WEIGHT_ONE
    assert abs(rows[0, 0, 0, 224] - (36 + 224 + 0.5) * 720 / 520) < 2
    assert make_plan(motion, short).output_shape == (8, 3, 32, 224, 224)


@pytest.mark.parametrize("in_size,out_size", [(1080, 224), (359, 224), (144, 224), (97, 31), (17, 5), (1, 7)])
def test_resize_taps_match_float_antialiased_triangle(in_size, out_size):
    rng = np.random.default_rng(in_size)
    x = rng.integers(0, 256, size=in_size).astype(np.float64)
    idx, w = resize_taps(in_size, out_size, np.arange(out_size))
    assert np.all(w.sum(-1) == WEIGHT_ONE) and idx.min() >= 0 and idx.max() < in_size
    ours = (x[idx] * w).sum(-1) / WEIGHT_ONE
    # plain float reference: triangle filter of support max(scale, 1), out-of-range taps dropped
    scale = in_size / out_size
    support = max(scale, 1.0)
    expect = []
    for o in range(out_size):
        c = (o + 0.5) * scale
        src = np.arange(in_size)
        wt = np.maximum(0.0, 1 - np.abs(src + 0.5 - c) / support)
        expect.append((wt * x).sum() / wt.sum())
    assert np.abs(ours - np.array(expect)).max() < 0.05


def test_plan_errors():
    with pytest.raises(PlanError, match="no frames"):
        make_plan(ViewSpec(), info(64, 64, n=0))
    with pytest.raises(PlanError, match="mode"):
        make_plan(ViewSpec(), info(64, 64), mode="fast")


def test_tiny_and_odd_frames_stay_in_bounds():
    for w, h in [(16, 16), (641, 359), (1, 1), (3840, 2160), (225, 223)]:
        for view in (FASTVQA_B, FASTERVQA, ViewSpec(kind="resize_crop", short_side=256, size=224)):
            for mode in ("default", "reference"):
                plan = make_plan(view, info(w, h, n=7), seed=1, mode=mode)
                assert plan.luma_rows.index.max() < h and plan.luma_cols.index.max() < w
                assert plan.chroma_rows.index.max() < -(-h // 2) and plan.chroma_cols.index.max() < -(-w // 2)
                assert plan.frame_indices.max() < 7


@pytest.mark.parametrize("frames", [1, 2, 5, 7])
def test_a_video_shorter_than_a_clip_is_noted(frames):
    """A clip that must show a frame twice in a row reads a freeze the video does not have: the plan says so."""
    view = ViewSpec(num_clips=1, clip_len=8, frame_interval=1, segments_per_clip=2, temporal="segments", aligned=8)
    plan = make_plan(view, info(320, 240, n=frames))
    assert any("shown twice in a row" in note and f"{frames} frame(s)" in note for note in plan.notes)
    for enough in (8, 9, 240):
        assert not any("twice in a row" in note for note in make_plan(view, info(320, 240, n=enough)).notes)
    for long_view in (FASTVQA_B, FASTERVQA):  # the FAST-VQA views on a normal video: nothing to say
        assert not any("twice in a row" in note for note in make_plan(long_view, info(320, 240)).notes)
