"""`edgevqa eval`: label formats, matching, the metrics (against scipy directly), compare mode and gates."""

from __future__ import annotations

import csv
import json
import math
import sys

import numpy as np
import pytest

scipy_stats = pytest.importorskip("scipy.stats", reason="scipy (the 'bench'/'test' extras) computes the metrics")

from edgevqa.bench.accuracy import (correlation_metrics, fit_logistic, logistic4, match_videos,  # noqa: E402
                                    read_labels, read_predictions)
from edgevqa.errors import BackendUnavailableError, EdgeVQAError  # noqa: E402


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return str(path)


@pytest.fixture
def dataset(tmp_path):
    """31 videos whose predictions follow the MOS through a monotonic non-linear map plus noise."""
    rng = np.random.default_rng()
    mos = rng.uniform(1.0, 5.0, size=31)
    pred = np.exp(mos / 1.5) + rng.normal(0.0, 0.4, size=mos.size)
    names = [f"/data/konvid/videos/{i:04d}.mp4" for i in range(mos.size)]
    return {"mos": mos, "pred": pred, "names": names, "dir": tmp_path}


def test_metrics_match_scipy_and_the_definitions(dataset):
    mos, pred = dataset["mos"], dataset["pred"]
    m = correlation_metrics(pred, mos)
    assert m["n"] == mos.size
    assert m["srcc"] == pytest.approx(scipy_stats.spearmanr(pred, mos)[0])
    assert m["krcc"] == pytest.approx(scipy_stats.kendalltau(pred, mos)[0])
    assert m["plcc_raw"] == pytest.approx(scipy_stats.pearsonr(pred, mos)[0])
    mapped, fit = fit_logistic(pred, mos)
    assert fit == "logistic4"
    assert m["plcc"] == pytest.approx(scipy_stats.pearsonr(mapped, mos)[0])
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((mapped - mos) ** 2)))
    assert m["main_score"] == pytest.approx((m["srcc"] + m["plcc"]) / 2)
    assert m["plcc"] > m["plcc_raw"]  # the fit undoes the exp


def test_logistic_fit_recovers_an_exact_logistic():
    x = np.linspace(-3.0, 7.0, 40)
    y = logistic4(x, 4.5, 1.2, 2.0, 1.3)
    mapped, fit = fit_logistic(x, y)
    assert fit == "logistic4"
    np.testing.assert_allclose(mapped, y, atol=1e-5)
    m = correlation_metrics(x, y)
    assert m["plcc"] == pytest.approx(1.0, abs=1e-9) and m["rmse"] < 1e-5 and m["srcc"] == pytest.approx(1.0)


def test_hand_computed_small_case_uses_the_linear_fallback():
    pred, mos = [1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]
    m = correlation_metrics(pred, mos)
    # ranks equal the values: d = (0, 1, -1, 0), SRCC = 1 - 6 * 2 / (4 * 15) = 0.8
    assert m["srcc"] == pytest.approx(0.8)
    # concordant pairs 5, discordant 1: KRCC = 4 / 6
    assert m["krcc"] == pytest.approx(4 / 6)
    assert m["fit"] == "linear"  # fewer than 5 points: no 4-parameter fit
    assert m["plcc"] == pytest.approx(0.8) and m["plcc_raw"] == pytest.approx(0.8)
    # least squares line y = 0.8 x + 0.5: residuals (-0.3, 0.9, -0.9, 0.3)
    assert m["rmse"] == pytest.approx(math.sqrt((0.09 + 0.81 + 0.81 + 0.09) / 4))


def test_constant_predictions_give_null_correlations():
    m = correlation_metrics([2.0] * 6, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert math.isnan(m["srcc"]) and math.isnan(m["plcc"]) and m["fit"] == "constant"


def test_label_formats(tmp_path):
    headerless = tmp_path / "labels.txt"
    headerless.write_text("KoNViD_1k_videos/1.mp4, 8.0, 30.0, 3.42\nKoNViD_1k_videos/2.mp4,8.0,24,2.5\n\n")
    assert read_labels(str(headerless)) == {"KoNViD_1k_videos/1.mp4": 3.42, "KoNViD_1k_videos/2.mp4": 2.5}
    with_header = write_csv(tmp_path / "labels.csv", ["name", "fps", "MOS"], [["a.mp4", 30, 1.5], ["b.mp4", 25, 4]])
    assert read_labels(with_header) == {"a.mp4": 1.5, "b.mp4": 4.0}
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffvideo,mos\nx.mp4,2\n".encode("utf-8"))
    assert read_labels(str(bom)) == {"x.mp4": 2.0}
    for text, fragment in (("video,score\na,1\n", "'mos'"), ("a.mp4, 8, 30, 3\nb.mp4, 8, 30, good\n", "bad.csv:2: expected a path and a numeric MOS"),
                           ("x.mp4, 8, 30, good\n", "needs a .video."),
                           ("video,mos\na,1\na,2\n", "appears twice"), ("", "empty")):
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(EdgeVQAError, match=fragment):
            read_labels(str(bad))


def test_prediction_formats(tmp_path):
    score_csv = write_csv(tmp_path / "scores.csv", ["video", "overall", "color", "time_s", "error", "warnings"],
                          [["a.mp4", 50.5, 40, 0.2, "", ""], ["b.mp4", "", "", "", "cannot decode", ""],
                           ["c.mp4", 60, 45, 0.3, "", "c.mp4: damaged stream: 3 frame(s) were decoded with error "
                            "concealment; the score reflects the damage"]])
    table = read_predictions(score_csv)
    assert table.dimensions == ["overall", "color"]
    assert table.scores == {"a.mp4": {"overall": 50.5, "color": 40.0}, "c.mp4": {"overall": 60.0, "color": 45.0}}
    assert table.skipped == ["b.mp4"]
    with_mos = write_csv(tmp_path / "p.csv", ["video", "pred", "mos"], [["a", 1, 2], ["b", 2, 3]])
    assert read_predictions(with_mos).mos == {"a": 2.0, "b": 3.0}
    for header, rows, fragment in ((["path2", "pred"], [["a", 1]], "'video' column"),
                                   (["video", "pred"], [["a", "x"]], "not a finite number"),
                                   (["video"], [["a"]], "no score column")):
        with pytest.raises(EdgeVQAError, match=fragment):
            read_predictions(write_csv(tmp_path / "bad.csv", header, rows))


def test_matching_rules():
    labels = ["KoNViD/videos/1.mp4", "LIVE/videos/1.mp4", "KoNViD/videos/2.mp4", "3"]
    assert match_videos(["KoNViD/videos/1.mp4"], labels) == {"KoNViD/videos/1.mp4": "KoNViD/videos/1.mp4"}
    assert match_videos(["./KoNViD//videos/2.mp4"], labels) == {"./KoNViD//videos/2.mp4": "KoNViD/videos/2.mp4"}
    assert match_videos(["/mnt/LIVE/videos/1.mp4"], labels) == {"/mnt/LIVE/videos/1.mp4": "LIVE/videos/1.mp4"}
    assert match_videos(["/x/2.mp4"], labels) == {"/x/2.mp4": "KoNViD/videos/2.mp4"}  # file name
    assert match_videos(["/x/3.mkv"], labels) == {"/x/3.mkv": "3"}  # name without extension
    assert match_videos(["/x/9.mp4"], labels) == {}
    with pytest.raises(EdgeVQAError, match="matches several entries"):
        match_videos(["/x/1.mp4"], labels)
    with pytest.raises(EdgeVQAError, match="both match"):
        match_videos(["/a/2.mp4", "/b/2.mp4"], labels)


def test_eval_cli_against_labels(dataset, cli):
    d = dataset
    preds = write_csv(d["dir"] / "pred.csv", ["video", "pred"], [[n, p] for n, p in zip(d["names"], d["pred"])]
                      + [["/data/other/extra.mp4", 1.0]])
    labels = d["dir"] / "labels.txt"
    labels.write_text("".join(f"konvid/videos/{i:04d}.mp4, 8.0, 30, {m}\n" for i, m in enumerate(d["mos"])))
    code, out, err = cli("eval", preds, "--labels", labels, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["schema"], report["schema_version"]) == ("edgevqa.eval", 1)
    expect = correlation_metrics(d["pred"], d["mos"])
    assert report["n"] == 31 and report["unmatched_predictions"] == ["/data/other/extra.mp4"]
    for key in ("srcc", "krcc", "plcc", "plcc_raw", "rmse", "main_score"):
        assert report[key] == pytest.approx(expect[key], rel=1e-6), key
    code, out, err = cli("eval", preds, f"--labels={labels}")
    assert code == 0 and "SRCC = " in out and "1 prediction(s) without a label" in out


def test_eval_cli_per_dimension_and_mos_column(dataset, cli):
    d = dataset
    rows = [[n, p, -p, m] for n, p, m in zip(d["names"], d["pred"], d["mos"])]
    preds = write_csv(d["dir"] / "dims.csv", ["video", "overall", "noise", "mos"], rows)
    code, out, err = cli("eval", preds, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["dimension"] == "overall" and set(report["dimensions"]) == {"overall", "noise"}
    assert report["dimensions"]["noise"]["srcc"] == pytest.approx(-report["srcc"])


def test_gates_set_the_exit_code(dataset, cli):
    d = dataset
    ref = write_csv(d["dir"] / "ref.csv", ["video", "pred"], [[n, p] for n, p in zip(d["names"], d["pred"])])
    opt_rows = [[n, p + 0.01 * (-1) ** i] for i, (n, p) in enumerate(zip(d["names"], d["pred"]))]
    opt = write_csv(d["dir"] / "opt.csv", ["video", "pred"], opt_rows)
    code, out, err = cli("eval", "--compare", ref, opt, "--atol=0.02", "--min-srcc", "0.9", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["schema"] == "edgevqa.eval.compare" and report["gates"]["passed"] is True
    assert report["dimensions"]["pred"]["max_abs_diff"] == pytest.approx(0.01)
    code, out, err = cli("eval", "--compare", ref, opt, "--atol=0.005")
    assert code == 1 and "gate failed: --atol 0.005" in err and "max |diff| = 0.01" in out
    swapped = write_csv(d["dir"] / "neg.csv", ["video", "pred"], [[n, -p] for n, p in zip(d["names"], d["pred"])])
    code, _, err = cli("eval", "--compare", ref, swapped, "--min-srcc=0.5")
    assert code == 1 and "gate failed: --min-srcc 0.5" in err and "SRCC -1" in err
    mos = write_csv(d["dir"] / "mos.csv", ["video", "pred", "mos"],
                    [[n, p, m] for n, p, m in zip(d["names"], d["pred"], d["mos"])])
    assert cli("eval", mos, "--min-srcc=0.5")[0] == 0
    code, _, err = cli("eval", mos, "--min-srcc=0.9999")
    assert code == 1 and "against the MOS" in err


def test_eval_scores_videos_with_models(probe_model, clips, tmp_path, cli):
    labels = write_csv(tmp_path / "labels.csv", ["video", "mos"],
                       [["a.mp4", 3.0], ["b.mp4", 4.0], ["c.mp4", 1.0]])
    (tmp_path / "videos").mkdir()
    import shutil
    for c in clips:
        shutil.copy(c, tmp_path / "videos")
    shutil.copy(clips[0], tmp_path / "videos" / "c.mp4")
    code, out, err = cli("eval", "--model", probe_model, "--videos", tmp_path / "videos", "--labels", labels, "--json")
    assert code == 0, err
    assert json.loads(out)["n"] == 3
    code, out, err = cli("eval", "--reference-model", probe_model, "--model", probe_model, "--videos",
                         tmp_path / "videos", "--atol=0", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["n"] == 3 and report["dimensions"]["overall"]["max_abs_diff"] == 0.0


@pytest.mark.parametrize("make_args, fragments", [
    (lambda p: ["eval", p / "missing.csv", "--labels", p / "labels.csv"], ("missing.csv", "no such predictions")),
    (lambda p: ["eval", p, "--labels", p / "labels.csv"], ("is a directory",)),
    (lambda p: ["eval", p / "binary.csv", "--labels", p / "labels.csv"], ("binary.csv", "not a text CSV")),
    (lambda p: ["eval", p / "pred.csv", "--labels", p / "other.csv"], ("no video matches",)),
    (lambda p: ["eval", p / "pred.csv"], ("no 'mos' column", "--labels")),
    (lambda p: ["eval", p / "pred.csv", "--labels", p / "labels.csv", "--atol=1"], ("--atol gates compare mode",)),
    (lambda p: ["eval", "--model", p / "m.onnx"], ("--videos",)),
    (lambda p: ["eval", "--model", p / "m.onnx", "--videos", p / "nothing"], ("no such file or folder",)),
    (lambda p: ["eval"], ("give PREDICTIONS.csv",)),
])
def test_eval_bad_inputs(tmp_path, make_args, fragments, cli, one_line_error):
    write_csv(tmp_path / "pred.csv", ["video", "pred"], [["a.mp4", 1], ["b.mp4", 2], ["c.mp4", 3]])
    write_csv(tmp_path / "labels.csv", ["video", "mos"], [["a.mp4", 1], ["b.mp4", 2], ["c.mp4", 4]])
    write_csv(tmp_path / "other.csv", ["video", "mos"], [["x.mp4", 1], ["y.mp4", 2], ["z.mp4", 4]])
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x81" * 8)
    code, _, err = cli(*make_args(tmp_path))
    one_line_error(code, err, *fragments)


def test_missing_scipy_names_the_extra(monkeypatch, tmp_path, cli, one_line_error):
    for name in [m for m in sys.modules if m == "scipy" or m.startswith("scipy.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "scipy", None)
    with pytest.raises(BackendUnavailableError, match=r"edgevqa\[bench\]"):
        correlation_metrics([1, 2, 3], [1, 2, 3])
    code, _, err = cli("eval", tmp_path / "p.csv")
    one_line_error(code, err, "scipy", "edgevqa[bench]")
