"""The Triton model repository (`edgevqa.triton_repo`, ``edgevqa triton``): its files, and videos scored by a real
Triton Inference Server through it.

The server test needs a Python environment with NumPy 1, PyTriton (its wheel carries tritonserver and the
Python backend's stubs) and edgevqa: ``export EDGEVQA_TRITON_PYTHON=$(bash .ci/triton_env.sh)``, as CI does.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from importlib import resources

import pytest

from edgevqa.errors import EdgeVQAError
from edgevqa.manifest import load_manifest
from edgevqa.triton_repo import config_text, write_repository
from test_cli import run_cli  # noqa: E402  (tests/runtime is on the path)


def test_repository_files(tmp_path, probe_model):
    folder = write_repository(probe_model, str(tmp_path / "repo"), name="vqa", instances=2, threads=3,
                              python_path="/opt/a:/opt/b")
    assert sorted(os.listdir(folder)) == ["1", "config.pbtxt"]
    assert sorted(os.listdir(os.path.join(folder, "1"))) == ["model.onnx", "model.py"]
    assert load_manifest(os.path.join(folder, "1", "model.onnx")) == load_manifest(probe_model)
    script = resources.files("edgevqa").joinpath("triton_model.py").read_text(encoding="utf-8")
    assert open(os.path.join(folder, "1", "model.py"), encoding="utf-8").read() == script
    config = open(os.path.join(folder, "config.pbtxt"), encoding="utf-8").read()
    outputs = load_manifest(probe_model).outputs
    assert config == config_text("vqa", list(outputs), 2, 3, "/opt/a:/opt/b")
    assert 'name: "vqa"' in config and 'backend: "python"' in config and "count: 2 kind: KIND_CPU" in config
    for name in outputs:
        assert f'{{ name: "{name}" data_type: TYPE_FP64 dims: [ 1 ] }}' in config
    assert '{ name: "VIDEO" data_type: TYPE_STRING dims: [ 1 ] }' in config
    assert '{ key: "python_path" value: { string_value: "/opt/a:/opt/b" } }' in config
    assert '{ key: "threads" value: { string_value: "3" } }' in config


def test_repository_refuses_what_it_should(tmp_path, probe_model):
    repo = tmp_path / "repo"
    write_repository(probe_model, str(repo))
    other = repo / "other-model"
    other.mkdir()
    with pytest.raises(EdgeVQAError, match="already exists; add --force"):
        write_repository(probe_model, str(repo))
    write_repository(probe_model, str(repo), force=True)
    assert other.is_dir()  # the rest of the repository is left alone
    with pytest.raises(EdgeVQAError, match="cannot be a model name"):
        write_repository(probe_model, str(repo), name="../x")
    with pytest.raises(EdgeVQAError, match="at least 1"):
        write_repository(probe_model, str(repo), name="y", instances=0)
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(EdgeVQAError, match="not a directory"):
        write_repository(probe_model, str(afile))
    with pytest.raises(EdgeVQAError):
        write_repository(str(afile), str(tmp_path / "repo2"))  # not a model


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ask(python: str, code: str, *args: str) -> str:
    done = subprocess.run([python, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


CLIENT = """
import json, sys
import numpy as np
import tritonclient.http as http
client = http.InferenceServerClient(sys.argv[1])
answers = []
for path in sys.argv[3:]:
    video = http.InferInput("VIDEO", [1], "BYTES")
    video.set_data_from_numpy(np.array([open(path, "rb").read()], dtype=np.object_))
    try:
        response = client.infer(sys.argv[2], [video])
    except Exception as exc:
        answers.append({"error": str(exc)})
        continue
    answers.append({"result": json.loads(response.as_numpy("RESULT")[0]),
                    "overall": float(response.as_numpy("overall")[0])})
print(json.dumps(answers))
"""


@pytest.mark.slow
def test_triton_server_scores_videos_through_the_repository(tmp_path, small_clip, probe_model):
    python = os.environ.get("EDGEVQA_TRITON_PYTHON")
    if not python:
        pytest.skip("EDGEVQA_TRITON_PYTHON is not set: export EDGEVQA_TRITON_PYTHON=$(bash .ci/triton_env.sh)")
    from edgevqa.pipeline import Pipeline
    from edgevqa.samples import write_clip

    where = json.loads(_ask(python, "import json, os, sys, site, pytriton; print(json.dumps({"
                                    "'pytriton': os.path.dirname(pytriton.__file__), 'home': sys.base_prefix, "
                                    "'version': f'{sys.version_info[0]}.{sys.version_info[1]}', "
                                    "'site': site.getsitepackages()}))"))
    server_root = os.path.join(where["pytriton"], "tritonserver")
    libraries = os.path.join(os.path.dirname(where["pytriton"]), "nvidia_pytriton.libs")
    backends = tmp_path / "backends"
    shutil.copytree(os.path.join(server_root, "backends"), backends)
    shutil.copy(os.path.join(server_root, "python_backend_stubs", where["version"], "triton_python_backend_stub"),
                backends / "python")
    repo = tmp_path / "repo"
    write_repository(probe_model, str(repo), name="vqa", python_path=os.pathsep.join(where["site"]))
    http_port = _free_port()
    env = dict(os.environ, LD_LIBRARY_PATH=libraries, PYTHONHOME=where["home"],
               PATH=os.path.dirname(python) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("PYTHONPATH", None)
    log = open(tmp_path / "triton.log", "w")
    server = subprocess.Popen([os.path.join(server_root, "bin", "tritonserver"), f"--model-repository={repo}",
                               f"--backend-directory={backends}", f"--http-port={http_port}",
                               f"--grpc-port={_free_port()}", "--allow-metrics=false"],
                              stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/models/vqa/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("Triton did not load the model:\n" + (tmp_path / "triton.log").read_text()[-3000:])
            time.sleep(0.5)
        other = write_clip(tmp_path / "other.mkv", width=200, height=120, num_frames=30, fps=15, seed=3)
        junk = tmp_path / "junk.mp4"
        junk.write_bytes(b"not a video at all")
        answers = json.loads(_ask(python, CLIENT, f"127.0.0.1:{http_port}", "vqa", small_clip, other, str(junk)))
        # edgevqa's own client, from this (NumPy 2) environment, with the standard library only
        from edgevqa.triton_client import TritonScorer

        scorer = TritonScorer(f"127.0.0.1:{http_port}", "vqa")
        ours = list(scorer.score_many([small_clip, other, str(junk), str(tmp_path / "missing.mp4")]))
        cli = run_cli("score", small_clip, str(junk), "--triton", f"http://127.0.0.1:{http_port}", "--triton-model",
                      "vqa", "--json")
        with pytest.raises(EdgeVQAError, match="not found"):
            TritonScorer(f"127.0.0.1:{http_port}", "other")
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    with Pipeline(probe_model) as pipeline:
        expected = [pipeline.score(small_clip), pipeline.score(other)]
    for answer, local in zip(answers[:2], expected):
        served = answer["result"]
        assert served["error"] is None and served["model"] == local.model
        assert served["scores"] == pytest.approx(local.scores, abs=1e-6)
        assert answer["overall"] == pytest.approx(local.scores["overall"], abs=1e-6)
        assert served["warnings"] == local.warnings
    assert "not a readable video" in answers[2]["error"]
    assert scorer.outputs == list(load_manifest(probe_model).outputs)
    for result, local in zip(ours[:2], expected):
        assert result.ok and result.video == local.video and result.warnings == local.warnings
        assert result.scores == pytest.approx(local.scores, abs=1e-6)
    assert ours[2].error == f"{junk}: not a readable video (Invalid data found when processing input)"
    assert ours[3].error.startswith(f"{tmp_path / 'missing.mp4'}: cannot read it")
    rows = [json.loads(line) for line in cli.stdout.splitlines()]
    assert cli.returncode == 1 and [r["video"] for r in rows] == [small_clip, str(junk)]
    assert rows[0]["scores"] == pytest.approx(expected[0].scores, abs=1e-6) and rows[1]["error"]


def test_score_refuses_local_settings_with_triton(small_clip):
    proc = run_cli("score", small_clip, "--triton", "http://127.0.0.1:9", "--every", "2", "--seed", "3")
    assert proc.returncode == 1 and "--every, --seed set(s) the local pipeline" in proc.stderr
    proc = run_cli("score", small_clip, "--triton", "http://127.0.0.1:9")
    assert proc.returncode == 1 and "cannot reach the Triton server" in proc.stderr
    proc = run_cli("score", small_clip, "--triton", "ftp://example.org/x")
    assert proc.returncode == 1 and "HTTP address" in proc.stderr
