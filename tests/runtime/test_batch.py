"""Batch scoring on Ray Data (`edgevqa.batch`, `edgevqa batch`): the rows equal what `Pipeline.score` gives,
failures are rows, not crashes, and the command's files match `edgevqa score`'s."""

import csv
import json
import math
import os
import subprocess
import sys

import pytest

from edgevqa.errors import BackendUnavailableError, EdgeVQAError
from edgevqa.pipeline import Pipeline

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

import edgevqa.batch as batch  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    """One small local Ray for the module (2 CPUs, a 128 MB object store)."""
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 * 1024 * 1024, log_to_driver=False,
             logging_level="ERROR")
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def video_set(tmp_path_factory, small_clip):
    """A clip, a second clip of another size, a file that is not a video and a path that does not exist."""
    from edgevqa.samples import write_clip

    folder = tmp_path_factory.mktemp("batch")
    other = write_clip(folder / "other.mp4", width=96, height=144, num_frames=30, fps=15)
    broken = folder / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(500))
    return [small_clip, os.fspath(other), os.fspath(broken), os.fspath(folder / "missing.mp4")]


def test_rows_equal_pipeline_scores(local_ray, video_set, probe_model, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    dataset = batch.score_dataset(video_set, probe_model, actors=2, batch_size=1, seed=5).materialize()
    rows = sorted(dataset.iter_rows(), key=lambda r: r["index"])
    # Every block typed alike (the warnings of a block without any are still strings), so Parquet reads it back
    dataset.write_parquet(tmp_path / "rows")
    table = pq.read_table(tmp_path / "rows")
    assert table.num_rows == 4 and table.schema.field("warnings").type == pa.list_(pa.string())
    assert table.schema.names[:5] == ["index", "video", "ok", "error", "overall"]
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    assert [r["video"] for r in rows] == [os.path.abspath(v) for v in video_set[:3]] + [video_set[3]]
    with Pipeline(probe_model, seed=5) as pipeline:
        for row, video in zip(rows[:2], video_set[:2]):
            expected = pipeline.score(video)
            assert row["ok"] and row["error"] == ""
            for name, value in expected.scores.items():
                assert row[name] == value  # the same pipeline, the same bits
            record = json.loads(row["result"])
            assert record["scores"] == expected.scores and record["clip_outputs"] == expected.clip_outputs
            assert list(row["warnings"]) == expected.warnings and row["frames_decoded"] == expected.frames_decoded
    broken, missing = rows[2], rows[3]
    assert not broken["ok"] and broken["error"].startswith(os.path.abspath(video_set[2]) + ": not a readable video")
    assert not missing["ok"] and "no such file" in missing["error"]
    assert all(math.isnan(r["overall"]) for r in (broken, missing))


def test_binary_files_named_by_path(local_ray, video_set, probe_model):
    data = ray.data.read_binary_files(video_set[:3], include_paths=True)
    rows = {os.path.basename(r["video"]): r
            for r in batch.score_dataset(data, probe_model, actors=1, segment_seconds=1.0).iter_rows()}
    small = rows[os.path.basename(video_set[0])]
    with Pipeline(probe_model, segment_seconds=1.0) as pipeline:
        expected = pipeline.score(video_set[0])
    assert small["ok"] and small["overall"] == expected.scores["overall"] and small["index"] == -1
    assert json.loads(small["result"])["segments"] == expected.to_dict()["segments"]
    broken = rows["broken.mp4"]
    # Scored from bytes, but the message names the file, not "<N bytes>".
    assert not broken["ok"] and broken["error"].startswith(broken["video"] + ": ") and "bytes>" not in broken["error"]


def test_bad_arguments_fail_before_ray_runs(probe_model, video_set, local_ray):
    with pytest.raises(EdgeVQAError, match="unknown option"):
        batch.score_dataset(video_set, probe_model, sede=1)
    with pytest.raises(EdgeVQAError, match="actors must be"):
        batch.score_dataset(video_set, probe_model, actors=0)
    with pytest.raises(EdgeVQAError, match="not one path"):
        batch.score_dataset(video_set[0], probe_model)
    with pytest.raises(EdgeVQAError, match="item 1 is a bytes"):
        batch.score_dataset([video_set[0], b"data"], probe_model)
    with pytest.raises(EdgeVQAError, match="no videos"):
        batch.score_dataset([], probe_model)
    with pytest.raises(EdgeVQAError, match="unknown backend"):
        batch.score_dataset(video_set, probe_model, backend="fast")
    with pytest.raises(EdgeVQAError, match="no such model"):
        batch.score_dataset(video_set, "nowhere.onnx")
    with pytest.raises(EdgeVQAError, match="needs a 'path' column"):
        batch.score_dataset(ray.data.from_items([{"file": video_set[0]}]), probe_model)


def test_without_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(BackendUnavailableError, match=r"edgevqa\[ray\]"):
        batch.import_ray()


def run_cli(*args, timeout=240):
    env = dict(os.environ, RAY_DISABLE_USAGE_STATS="1")
    proc = subprocess.run([sys.executable, "-m", "edgevqa.cli", *map(os.fspath, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_cli_files_match_score(video_set, probe_model, tmp_path):
    listing = tmp_path / "videos.txt"
    listing.write_text(f"# two clips and two failures\n{video_set[1]}\n\n" + "\n".join(video_set[2:]) + "\n")
    out = tmp_path / "batch.csv"
    proc = run_cli("batch", video_set[0], "--list", listing, "--model", probe_model, "--out", out, "--actors", "2",
                   "--every", "1")
    assert proc.returncode == 1, proc.stderr  # two videos failed
    assert "2 of 4 video(s) scored" in proc.stderr and "no such file" in proc.stderr
    assert not os.path.exists(f"{out}.partial")
    reference = tmp_path / "score.csv"
    run_cli("score", *video_set, "--model", probe_model, "--csv", reference, "--every", "1", "--quiet")

    def table(path, drop):
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
        time_col = rows[0].index("time_s")
        return [[os.path.basename(r[0])] + [c for i, c in enumerate(r[1:], 1) if i != time_col and i != drop]
                for r in rows]

    error_col = next(csv.reader(open(reference)))[1:].index("error") + 1
    # The same rows in the same order; error texts differ only in how the path is spelled (absolute here).
    assert table(out, error_col) == table(reference, error_col)
    assert len(table(out, error_col)) > 5  # segment rows are there

    jsonl = tmp_path / "batch.jsonl"
    assert run_cli("batch", *video_set[:2], "--model", probe_model, "--out", jsonl, "--seed", "2", "--start", "0.5",
                   "--duration", "1").returncode == 0
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    with Pipeline(probe_model, seed=2, time_range=(0.5, 1.5)) as pipeline:
        assert [r["scores"] for r in records] == [pipeline.score(v).scores for v in video_set[:2]]
        assert records[0]["time_range"] == pipeline.score(video_set[0]).time_range is not None

    import pyarrow.parquet as pq

    parquet = tmp_path / "batch.parquet"
    assert run_cli("batch", *video_set, "--model", probe_model, "--out", parquet, "--quiet").returncode == 1
    table_ = pq.read_table(parquet).to_pylist()
    assert [r["ok"] for r in table_] == [True, True, False, False]
    with Pipeline(probe_model) as pipeline:
        for row, video in zip(table_, video_set[:2]):
            assert {name: row[name] for name in pipeline.manifest.outputs} == pipeline.score(video).scores
    assert math.isnan(table_[2]["overall"]) and "not a readable video" in table_[2]["error"]
    assert [os.path.basename(r["video"]) for r in table_] == [os.path.basename(v) for v in video_set]
    assert json.loads(table_[1]["result"])["video"] == table_[1]["video"]


def test_cli_refuses_to_overwrite_or_guess(video_set, probe_model, tmp_path):
    out = tmp_path / "kept.jsonl"
    out.write_text("earlier scores\n")
    proc = run_cli("batch", video_set[0], "--model", probe_model, "--out", out)
    assert proc.returncode == 1 and "already exists; add --force" in proc.stderr
    assert out.read_text() == "earlier scores\n"
    before = open(video_set[0], "rb").read()
    proc = run_cli("batch", video_set[0], "--model", probe_model, "--out", video_set[0], "--force")
    assert proc.returncode == 1 and "say the format by the extension" in proc.stderr
    named_like_output = tmp_path / "clip.csv"  # a video whose name would pass as an output file
    named_like_output.write_bytes(before)
    proc = run_cli("batch", named_like_output, "--model", probe_model, "--out", named_like_output, "--force")
    assert proc.returncode == 1 and "is one of the input videos" in proc.stderr
    assert open(video_set[0], "rb").read() == before and named_like_output.read_bytes() == before
    proc = run_cli("batch", video_set[0], "--out", tmp_path / "scores.xlsx")
    assert proc.returncode == 1 and ".jsonl" in proc.stderr
    proc = run_cli("batch", video_set[0], "--out", tmp_path / "no" / "scores.csv")
    assert proc.returncode == 1 and "does not exist" in proc.stderr
    proc = run_cli("batch", "--list", tmp_path / "none.txt", "--out", tmp_path / "s.csv")
    assert proc.returncode == 1 and "none.txt: no such file" in proc.stderr
    proc = run_cli("batch", video_set[0], "--out", tmp_path / "s.csv", "--actors", "0")
    assert proc.returncode == 1 and "actors must be" in proc.stderr
    proc = run_cli("batch", video_set[0], "--out", tmp_path / "s.csv", "--every", "0")
    assert proc.returncode == 1 and "--every must be" in proc.stderr


def test_cli_resumes_an_interrupted_run(video_set, probe_model, tmp_path):
    out = tmp_path / "scores.jsonl"
    assert run_cli("batch", *video_set[:2], "--model", probe_model, "--out", out, "--quiet").returncode == 0
    first, second = out.read_text().splitlines()
    # An interrupted run: one video's row in the partial file and the next one's cut short.
    partial = tmp_path / "scores.jsonl.partial"
    partial.write_text(first + "\n" + second[:40])
    out.unlink()
    proc = run_cli("batch", *video_set, "--model", probe_model, "--out", out)
    assert proc.returncode == 1 and "add --resume" in proc.stderr and partial.exists()
    proc = run_cli("batch", *video_set, "--model", probe_model, "--out", out, "--resume")
    assert proc.returncode == 1, proc.stderr  # two of the videos fail, as before
    assert "resuming: 1 of 4 video(s) already in" in proc.stderr and "2 of 4 video(s) scored" in proc.stderr
    lines = out.read_text().splitlines()
    untimed = [{k: v for k, v in json.loads(line).items() if k != "timings"} for line in lines]
    assert not partial.exists() and len(lines) == 4 and lines[0] == first  # kept as it was
    assert untimed[1] == {k: v for k, v in json.loads(second).items() if k != "timings"}  # scored again
    assert [json.loads(line)["video"] for line in lines] == [batch.worker_path(v) for v in video_set]
    # Nothing left to score: the partial file simply becomes the output.
    partial.write_text(out.read_text())
    out.unlink()
    proc = run_cli("batch", *video_set, "--model", probe_model, "--out", out, "--resume")
    assert proc.returncode == 1 and "resuming: 4 of 4" in proc.stderr and out.read_text().splitlines() == lines
    proc = run_cli("batch", *video_set, "--model", probe_model, "--out", tmp_path / "s.parquet", "--resume")
    assert proc.returncode == 1 and "cannot be resumed" in proc.stderr
    (tmp_path / "s.csv.partial").write_text("video,overall\n")
    proc = run_cli("batch", *video_set, "--model", probe_model, "--out", tmp_path / "s.csv", "--resume")
    assert proc.returncode == 1 and "does not start with the header" in proc.stderr
    proc = run_cli("batch", *video_set, "--model", probe_model, "--out", tmp_path / "t.csv", "--resume")
    assert proc.returncode == 1 and "no interrupted run" in proc.stderr
