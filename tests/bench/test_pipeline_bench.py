"""`edgevqa bench --pipeline`: stages, rates, cold vs warm, decode-only baseline, plot, and bad inputs."""

from __future__ import annotations

import json

import pytest

from edgevqa.bench.pipeline_bench import STAGES, decode_only, last_planned_frame
from edgevqa.manifest import load_manifest


def test_decode_only_decodes_up_to_the_last_planned_frame(probe_model, clips):
    manifest = load_manifest(probe_model)
    last, info = last_planned_frame(clips[1], manifest, None, "default")
    assert 0 < last < info.num_frames
    seconds, decoded = decode_only(clips[1], last)
    assert decoded == last + 1 and seconds > 0
    assert decode_only(clips[1], 10_000)[1] == info.num_frames  # past the end: every frame, no error


def test_cli_pipeline_json_report(probe_model, clips, cli):
    code, out, err = cli("bench", "--pipeline", clips[0], "--model", probe_model, clips[1], "--repeats=2", "--json",
                         "--threads=1")
    assert code == 0, err
    report = json.loads(out)
    assert (report["schema"], report["schema_version"]) == ("edgevqa.bench.pipeline", 1)
    assert [v["video"] for v in report["videos"]] == [str(c) for c in clips]
    for v in report["videos"]:
        assert set(v["stages_ms"]) == set(STAGES)
        assert v["decoded_frames"] == v["last_planned_frame"] + 1
        assert v["sampled_frames"] == 4  # the probe view reads 4 frames
        assert v["ratio_to_decode_only"] == pytest.approx(v["latency_ms"] / v["decode_only_ms"])
    steady = report["steady"]
    assert steady["bound_by"] in STAGES
    assert steady["latency"]["count"] == 4
    assert sum(steady["stage_share_percent"].values()) == pytest.approx(100.0)
    assert steady["realtime_factor"] == pytest.approx(
        2 * sum(v["duration_s"] for v in report["videos"]) / steady["wall_s"])
    assert report["throughput"]["videos"] == 4 and report["throughput"]["bound_by"] in ("prepare", "infer")
    assert report["cold"]["model_load_ms"] > 0 and report["cold"]["first_video_ms"] > 0
    assert report["ratio_to_decode_only"]["latency"] > 0
    assert "last frame any sampling plan reads" in report["definitions"]["decode_only"]
    assert report["settings"]["runner"]["providers"] == ["CPUExecutionProvider"]


def test_cli_pipeline_text_and_plot(probe_model, clips, tmp_path, cli):
    pytest.importorskip("matplotlib", reason="matplotlib (the 'bench' extra) draws --plot")
    plot = tmp_path / "bench.png"
    code, out, err = cli("bench", "--pipeline", clips[0], f"--model={probe_model}", "--repeats=1", f"--plot={plot}")
    assert code == 0, err
    for text in ("=== Pipeline benchmark ===", "Model load: ", "First video: ", "Bound by: ", "Videos/s: ",
                 "real-time factor: ", "Ratio pipeline / decode-only: latency "):
        assert text in out, text
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, fragments", [
    (["--pipeline"], ("give at least one video",)),
    (["--pipeline", "/nonexistent/v.mp4"], ("/nonexistent/v.mp4", "no such video file")),
    (["VIDEO.mp4"], ("without --pipeline",)),
    (["--pipeline", "CLIP", "--shapes=video:1x3x4x32x32"], ("model-mode flags",)),
    (["--pipeline", "CLIP", "--repeats=0"], ("--repeats must be at least 1",)),
])
def test_pipeline_bad_inputs(probe_model, clips, args, fragments, cli, one_line_error):
    args = [clips[0] if a == "CLIP" else a for a in args]
    code, _, err = cli("bench", f"--model={probe_model}", *args)
    one_line_error(code, err, *fragments)


def test_pipeline_missing_model(tmp_path, clips, cli, one_line_error):
    code, _, err = cli("bench", "--pipeline", clips[0], f"--model={tmp_path / 'none.onnx'}")
    one_line_error(code, err, "none.onnx", "no such model file")
