"""Engine stamps, sidecars and optimisation profiles: the TensorRT logic that needs no TensorRT."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from edgevqa.backends.engine_stamp import (DeviceFacts, EngineStamp, STAMP_KEY, check_stamp, file_sha256, make_stamp,
                                           read_engine_sidecar, write_engine_sidecar)
from edgevqa.backends.ort_gpu import model_cache_dir, provider_list, tensorrt_provider_options
from edgevqa.backends.shape_profiles import (DEFAULT_MAX_CLIPS_FACTOR, InputProfile, clip_profiles, onnx_input_shapes,
                                             ort_trt_profile_options)
from edgevqa.errors import ManifestError, ModelError
from edgevqa.manifest import ModelManifest, ViewSpec, load_manifest, sidecar_path
from edgevqa.testing import default_probe_manifest, make_probe_model

H100 = DeviceFacts("10.13.3.9", "NVIDIA H100 80GB HBM3", "9.0")


def _two_view_manifest(clips: int = 3) -> ModelManifest:
    spatial = ViewSpec(name="spatial", kind="resize_crop", num_clips=clips, clip_len=1, temporal="key_frames",
                       size=(97, 113), layout="NTCHW")
    motion = ViewSpec(name="motion", kind="clips", num_clips=clips, clip_len=5, temporal="per_second", size=(31, 33))
    return ModelManifest(name="two", views=(spatial, motion), outputs=("overall",))


# ------------------------------------------------------------------------------------------------ profiles


def test_profiles_of_a_dynamic_clip_axis_follow_the_manifest():
    manifest = _two_view_manifest(clips=3)
    shapes = {"spatial": ("clips", 1, 3, 97, 113), "motion": (None, 3, 5, 31, 33)}
    profiles = clip_profiles(manifest, shapes, "m.onnx", max_clips=11)
    assert [p.name for p in profiles] == ["spatial", "motion"]
    spatial, motion = profiles
    assert spatial.min == (1, 1, 3, 97, 113) and spatial.opt == (3, 1, 3, 97, 113)
    assert spatial.max == (11, 1, 3, 97, 113)
    assert motion.opt == (3, 3, 5, 31, 33)
    assert spatial.admits((7, 1, 3, 97, 113)) and not spatial.admits((12, 1, 3, 97, 113))
    assert not spatial.admits((3, 1, 3, 97, 112))


def test_default_max_clips_is_a_multiple_of_the_manifest_clips():
    manifest = _two_view_manifest(clips=2)
    shapes = {"spatial": ("n", 1, 3, 97, 113), "motion": ("n", 3, 5, 31, 33)}
    (spatial, _) = clip_profiles(manifest, shapes, "m.onnx")
    assert spatial.max[0] == DEFAULT_MAX_CLIPS_FACTOR * 2


def test_static_clip_axis_gives_a_fixed_profile():
    manifest = _two_view_manifest(clips=2)
    shapes = {"spatial": (2, 1, 3, 97, 113), "motion": (2, 3, 5, 31, 33)}
    for p in clip_profiles(manifest, shapes, "m.onnx", max_clips=9):
        assert p.min == p.opt == p.max


@pytest.mark.parametrize("shapes, message", [
    ({"spatial": ("n", 1, 3, 97, 113)}, "view 'motion' is not a model input"),
    ({"spatial": ("n", 1, 3, 97, 113), "motion": ("n", 3, 5, 31, 33), "extra": ("n", 2)}, "have no view"),
    ({"spatial": ("n", 1, 3, 97, 114), "motion": ("n", 3, 5, 31, 33)}, "axis 4 is 114, its view makes 113"),
    ({"spatial": ("n", 1, 3, 97), "motion": ("n", 3, 5, 31, 33)}, "has 4 axes"),
    ({"spatial": (5, 1, 3, 97, 113), "motion": ("n", 3, 5, 31, 33)}, "takes exactly 5 clips"),
])
def test_profile_mismatches_name_the_file_and_input(shapes, message):
    with pytest.raises(ModelError, match=message) as err:
        clip_profiles(_two_view_manifest(), shapes, "bad.onnx", max_clips=8)
    assert str(err.value).startswith("bad.onnx: ")


def test_empty_clip_ranges_are_refused():
    manifest = _two_view_manifest(clips=4)
    shapes = {"spatial": ("n", 1, 3, 97, 113), "motion": ("n", 3, 5, 31, 33)}
    with pytest.raises(ModelError, match="max clips 3 is below"):
        clip_profiles(manifest, shapes, "m.onnx", max_clips=3)
    with pytest.raises(ModelError, match="at least 1"):
        clip_profiles(manifest, shapes, "m.onnx", min_clips=0)


def test_profiles_read_from_a_real_onnx_file(probe_model):
    shapes = onnx_input_shapes(probe_model)
    manifest = load_manifest(probe_model)
    (profile,) = clip_profiles(manifest, shapes, probe_model, max_clips=5)
    assert profile.opt == manifest.views[0].input_shape()
    assert profile.max[0] == 5 and profile.min[0] == 1


def test_ort_tensorrt_profile_strings():
    profiles = [InputProfile("a", (1, 3, 8, 7, 9), (2, 3, 8, 7, 9), (4, 3, 8, 7, 9)), InputProfile("b", (1, 2), (1, 2), (1, 2))]
    options = ort_trt_profile_options(profiles)
    assert options == {"trt_profile_min_shapes": "a:1x3x8x7x9,b:1x2", "trt_profile_opt_shapes": "a:2x3x8x7x9,b:1x2",
                       "trt_profile_max_shapes": "a:4x3x8x7x9,b:1x2"}


def test_ort_tensorrt_provider_options(probe_model, tmp_path):
    providers = provider_list("ort-trt", 1, probe_model, cache_root=str(tmp_path), max_clips=6, workspace_mb=512)
    (name, trt), (cuda_name, cuda), cpu = providers
    assert (name, cuda_name, cpu) == ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
    assert trt["device_id"] == 1 and cuda["device_id"] == 1
    assert trt["trt_fp16_enable"] is False
    assert trt["trt_engine_cache_enable"] and trt["trt_timing_cache_enable"]
    assert trt["trt_engine_cache_path"] == model_cache_dir(probe_model, str(tmp_path))
    assert trt["trt_engine_cache_path"].startswith(str(tmp_path))
    assert trt["trt_max_workspace_size"] == 512 << 20
    assert trt["trt_profile_max_shapes"].startswith("video:6x")
    assert "trt_dla_enable" not in trt
    assert tensorrt_provider_options(0, "c", dla_core=1)["trt_dla_core"] == 1
    assert provider_list("ort-cuda", 0)[0][0] == "CUDAExecutionProvider"


def test_tensorrt_ep_cache_folder_changes_with_the_model(tmp_path):
    a = make_probe_model(tmp_path / "a.onnx")
    b = make_probe_model(tmp_path / "b.onnx", default_probe_manifest(outputs=("overall",)))
    assert model_cache_dir(a, "r") != model_cache_dir(b, "r")
    assert model_cache_dir(a, "r") == model_cache_dir(a, "r")


# ------------------------------------------------------------------------------------------------ stamps


@pytest.fixture
def engine(tmp_path, probe_model):
    path = tmp_path / "probe.plan"
    path.write_bytes(b"\x00serialized engine bytes\x01" * 17)
    profiles = clip_profiles(load_manifest(probe_model), onnx_input_shapes(probe_model), probe_model, max_clips=4)
    stamp = make_stamp(str(path), H100, profiles, None, probe_model)
    write_engine_sidecar(path, load_manifest(probe_model), stamp)
    return str(path)


def test_sidecar_round_trip_keeps_manifest_and_stamp(engine, probe_model):
    manifest, stamp = read_engine_sidecar(engine)
    original = load_manifest(probe_model)
    assert manifest.views == original.views and manifest.outputs == original.outputs
    assert stamp.tensorrt_version == "10.13.3.9" and stamp.compute_capability == "9.0"
    assert stamp.engine_sha256 == file_sha256(engine)
    assert stamp.source_sha256 == file_sha256(probe_model)
    assert stamp.profiles[0].max[0] == 4
    # The pipeline reads an engine's manifest through the same sidecar.
    assert load_manifest(engine).views == original.views
    with open(sidecar_path(engine), encoding="utf-8") as fh:
        assert json.load(fh)["metadata"][STAMP_KEY]["format"] == "edgevqa-trt-engine-1"


def test_matching_machine_passes_without_warnings(engine):
    _, stamp = read_engine_sidecar(engine)
    assert check_stamp(engine, stamp, H100) == []


def test_other_tensorrt_version_is_refused(engine):
    _, stamp = read_engine_sidecar(engine)
    with pytest.raises(ModelError, match=r"built with TensorRT 10.13.3.9, this machine has TensorRT 11.0.0.1") as err:
        check_stamp(engine, stamp, replace(H100, tensorrt_version="11.0.0.1"))
    assert "edgevqa build" in str(err.value) and str(err.value).startswith(engine)


def test_other_compute_capability_is_refused(engine):
    _, stamp = read_engine_sidecar(engine)
    with pytest.raises(ModelError, match=r"compute capability 9.0 .* Orin .* compute capability 8.7"):
        check_stamp(engine, stamp, DeviceFacts("10.13.3.9", "Orin", "8.7"))


def test_same_capability_other_gpu_only_warns(engine):
    _, stamp = read_engine_sidecar(engine)
    warnings = check_stamp(engine, stamp, replace(H100, gpu_name="NVIDIA H100 PCIe"))
    assert len(warnings) == 1 and "NVIDIA H100 PCIe" in warnings[0]


def test_replaced_engine_file_fails_its_checksum(engine):
    _, stamp = read_engine_sidecar(engine)
    with open(engine, "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(ModelError, match="SHA-256 does not match"):
        check_stamp(engine, stamp, H100)
    assert check_stamp(engine, stamp, H100, verify_checksum=False) == []


def test_missing_or_malformed_stamps(tmp_path, engine):
    bare = tmp_path / "bare.plan"
    bare.write_bytes(b"x")
    with pytest.raises(ManifestError, match="no manifest found"):
        read_engine_sidecar(bare)
    from edgevqa.manifest import write_sidecar

    write_sidecar(bare, default_probe_manifest())
    with pytest.raises(ManifestError, match="has no TensorRT stamp"):
        read_engine_sidecar(bare)
    with pytest.raises(ManifestError, match="format"):
        EngineStamp.from_dict({"format": "other"}, "x.json")
    with pytest.raises(ManifestError, match="malformed"):
        EngineStamp.from_dict({"format": "edgevqa-trt-engine-1", "gpu_name": "g"}, "x.json")
