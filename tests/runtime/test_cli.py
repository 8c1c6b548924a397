"""The `edgevqa` command line as a user runs it: exit codes, one-line errors, output formats."""

import json
import os
import subprocess
import sys

import pytest

from edgevqa.pipeline import default_model_path


def run_cli(*args, timeout=120):
    proc = subprocess.run([sys.executable, "-m", "edgevqa.cli", *map(os.fspath, args)], capture_output=True,
                          text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_score_table_json_csv(small_clip, probe_model, tmp_path):
    proc = run_cli("score", small_clip, "--model", probe_model)
    assert proc.returncode == 0, proc.stderr
    assert "overall" in proc.stdout and "small.mp4" in proc.stdout

    proc = run_cli("score", small_clip, "--model", probe_model, "--json", "--seed", "3")
    row = json.loads(proc.stdout.strip().splitlines()[0])
    assert {"video", "model", "scores", "timings"} <= set(row) and row["seed"] == 3
    assert set(row["scores"]) == {"overall", "color", "noise", "artifact", "blur", "temporal"}

    out = tmp_path / "scores.csv"
    proc = run_cli("score", small_clip, "--model", probe_model, "--csv", out)
    assert proc.returncode == 0 and out.read_text().startswith("video,overall")
    header, row = out.read_text().splitlines()[:2]
    assert header.endswith(",time_s,error,warnings") and row.endswith("upscaled to 373x224")
    proc = run_cli("score", small_clip, "--model", probe_model, "--csv", out)
    assert proc.returncode == 1 and "already exists" in proc.stderr
    proc = run_cli("score", small_clip, "--model", probe_model, "--csv", small_clip)
    assert proc.returncode == 1 and "input videos" in proc.stderr
    assert os.path.getsize(small_clip) > 1000  # the input was not touched


def test_the_table_says_what_the_scores_do_not(small_clip, probe_model):
    """Warnings (here: a 160x96 clip upscaled to the fragments' size) go to stderr when the table has no room
    for them, even with --quiet (which silences only the progress)."""
    proc = run_cli("score", small_clip, "--model", probe_model, "--quiet")
    assert proc.returncode == 0
    assert proc.stderr == f"edgevqa: warning: {small_clip}: frame 160x96 smaller than 224x224: upscaled to 373x224\n"
    proc = run_cli("score", small_clip, "--model", probe_model, "--json", "--quiet")
    assert proc.stderr == "" and json.loads(proc.stdout)["warnings"]


def test_scores_over_time(small_clip, probe_model, tmp_path):
    """--every: the segments' rows under their video in the table, in the JSON and as CSV rows with their
    times; the whole video's scores as without it; warnings the whole video already gives are not repeated."""
    plain = json.loads(run_cli("score", small_clip, "--model", probe_model, "--json", "--quiet").stdout)
    assert plain["segments"] == []
    proc = run_cli("score", small_clip, "--model", probe_model, "--json", "--quiet", "--every", "0.5")
    row = json.loads(proc.stdout)
    assert proc.returncode == 0 and row["scores"] == plain["scores"]
    spans = [(g["start_frame"], g["end_frame"], g["start_s"], g["end_s"]) for g in row["segments"]]
    assert spans == [(0, 10, 0.0, 0.5), (10, 20, 0.5, 1.0), (20, 30, 1.0, 1.5), (30, 40, 1.5, 2.0)]  # 20 fps
    assert all(set(g["scores"]) == set(row["scores"]) and g["warnings"] == [] for g in row["segments"])

    out = tmp_path / "over-time.csv"
    proc = run_cli("score", small_clip, "--model", probe_model, "--every", "0.5", "--csv", out)
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.splitlines()
    at = next(i for i, line in enumerate(table) if line.startswith("small.mp4"))
    assert [line.split()[0] for line in table[at + 1:at + 5]] == ["0.00-0.50", "0.50-1.00", "1.00-1.50", "1.50-2.00"]
    assert proc.stderr.count("warning") == 1  # the upscaling, once
    lines = out.read_text().splitlines()
    assert lines[0] == "video,start_s,end_s,overall,color,noise,artifact,blur,temporal,time_s,error,warnings"
    assert len(lines) == 6 and lines[1].startswith(f"{small_clip},,,") and lines[2].startswith(f"{small_clip},0.0,0.5,")

    for bad in ("0", "-1", "nan"):
        proc = run_cli("score", small_clip, "--model", probe_model, "--every", bad)
        assert proc.returncode == 1 and proc.stderr.startswith("edgevqa: error: --every must be a positive number")
    proc = run_cli("score", small_clip, "--model", probe_model, "--every", "soon")
    assert proc.returncode == 2 and "invalid float value" in proc.stderr


def test_one_failure_does_not_stop_the_others(small_clip, probe_model, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 100)
    proc = run_cli("score", small_clip, bad, small_clip, "--model", probe_model, "--json", "--quiet")
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 1
    assert [r["error"] is None for r in rows] == [True, False, True]
    assert "broken.mp4" in rows[1]["error"]


def test_a_folder_scores_every_video_under_it(small_clip, probe_model, tmp_path):
    import shutil

    folder = tmp_path / "clips"
    (folder / "more").mkdir(parents=True)
    (folder / ".hidden").mkdir()
    for target in (folder / "b.mp4", folder / "a.MKV", folder / "more" / "c.mp4", folder / ".hidden" / "d.mp4",
                   folder / ".e.mp4"):
        shutil.copy(small_clip, target)
    (folder / "notes.txt").write_text("not a video")
    proc = run_cli("score", folder, small_clip, "--model", probe_model, "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    videos = [json.loads(line)["video"] for line in proc.stdout.splitlines()]
    assert videos == [str(folder / "a.MKV"), str(folder / "b.mp4"), str(folder / "more" / "c.mp4"), small_clip]


@pytest.mark.parametrize("make_bad, expect", [
    (lambda d: d / "missing.mp4", "missing.mp4: no such file"),
    (lambda d: d, "the folder holds no video files"),
])
def test_bad_single_video_is_one_line(tmp_path, probe_model, make_bad, expect):
    proc = run_cli("score", make_bad(tmp_path), "--model", probe_model)
    assert proc.returncode == 1
    assert expect in proc.stderr and proc.stderr.count("\n") == 1


def test_bad_model_arguments(small_clip, tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"garbage" * 20)
    proc = run_cli("score", small_clip, "--model", corrupt)
    assert proc.returncode == 1 and "corrupt.onnx" in proc.stderr
    proc = run_cli("score", small_clip, "--model", tmp_path / "none.onnx")
    assert proc.returncode == 1 and "no such model file" in proc.stderr
    proc = run_cli("score", small_clip, "--threads", "0", "--model", corrupt)
    assert proc.returncode == 1 and "--threads" in proc.stderr


def test_default_model(small_clip):
    proc = run_cli("score", small_clip)
    if default_model_path() is None:
        assert proc.returncode == 1 and "no default model is installed" in proc.stderr
    else:
        assert proc.returncode == 0 and "overall" in proc.stdout


def test_info_and_make_sample(tmp_path):
    proc = run_cli("info", "--json")
    info = json.loads(proc.stdout)
    assert info["onnxruntime"] and "CPUExecutionProvider" in info["onnxruntime_providers"] and info["ffmpeg"]
    from edgevqa import kernels

    if kernels.IMPLEMENTATION == "native":  # which rows the C kernel runs: an ARM build says "scalar"
        from edgevqa.kernels import native

        assert info["sampling_kernels"] == f"native ({native._native.vector_rows()} rows)"
    else:
        assert info["sampling_kernels"] == "reference"
    shipped = info["default_model"]
    manifest = json.loads(run_cli("info", shipped, "--json").stdout)
    assert manifest["name"] == "edgevqa-default" and len(manifest["metadata"]["recipe_hash"]) == 16
    assert "recipe_hash" in run_cli("info", shipped).stdout
    for bad in (tmp_path / "missing.onnx", tmp_path / "broken.onnx"):
        if bad.name == "broken.onnx":
            bad.write_bytes(b"not a model")
        proc = run_cli("info", bad)
        assert proc.returncode != 0 and str(bad) in proc.stderr and "Traceback" not in proc.stderr
    out = tmp_path / "sample.mp4"
    assert run_cli("make-sample", out).returncode == 0 and out.stat().st_size > 10_000
    proc = run_cli("make-sample", out)
    assert proc.returncode == 1 and "already exists" in proc.stderr
    # a video: how edgevqa reads it
    video = json.loads(run_cli("info", out, "--json").stdout)
    assert (video["width"], video["height"], video["pix_fmt"], video["interlaced"]) == (640, 360, "yuv420p", False)
    assert video["num_frames"] > 0 and video["notes"] == [] and video["path"] == str(out)
    assert "interlaced: False" in run_cli("info", out).stdout
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    proc = run_cli("info", text)
    assert proc.returncode == 1 and str(text) in proc.stderr and "Traceback" not in proc.stderr


def test_score_quality_gate(small_clip, probe_model):
    scores = json.loads(run_cli("score", small_clip, "--model", probe_model, "--json").stdout.splitlines()[0])["scores"]
    overall = scores["overall"]
    proc = run_cli("score", small_clip, "--model", probe_model, "--fail-below", f"overall={overall + 1:.4f}")
    assert proc.returncode == 3 and f"below threshold: {small_clip}: overall {overall:.2f} <" in proc.stderr
    assert "overall" in proc.stdout  # the table is still printed
    proc = run_cli("score", small_clip, "--model", probe_model, "--fail-below", f"overall={overall - 1:.4f}",
                   "--fail-below", f"blur={scores['blur'] - 1:.4f}", "--json")
    assert proc.returncode == 0 and "below threshold" not in proc.stderr
    # a video that cannot be scored outranks a gate: status 1
    proc = run_cli("score", small_clip, "missing.mp4", "--model", probe_model, "--fail-below", "overall=101")
    assert proc.returncode == 1 and "below threshold" in proc.stderr
    for bad, message in (("overall", "NAME=SCORE"), ("overall=high", "NAME=SCORE"), ("sharpness=3", "no output")):
        proc = run_cli("score", small_clip, "--model", probe_model, "--fail-below", bad)
        assert proc.returncode == 1 and message in proc.stderr
