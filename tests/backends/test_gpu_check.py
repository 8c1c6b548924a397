"""The GPU check script and benchmark, as far as a machine without a GPU can run them."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgevqa.bench import gpu_bench

ROOT = Path(__file__).resolve().parents[2]


def _has_nvidia_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0


def test_check_script_skips_cleanly_without_a_gpu(tmp_path):
    if _has_nvidia_gpu():
        pytest.skip("this machine has a GPU: the script would run the real check")
    result = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh")], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path)}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "SKIPPED: no NVIDIA GPU" in result.stdout


def test_check_script_rejects_unknown_modes():
    result = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "launch"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "usage" in result.stderr


def test_bench_skips_cleanly_without_cuda(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available: the benchmark would run")
    assert gpu_bench.main([]) == 0
    assert "SKIPPED" in capsys.readouterr().err


def test_table_renders_aligned_columns():
    table = gpu_bench.Table()
    table.add("torch per video", "athqa_base FP16 graph", "2.10 ms", "3.0x vs FP32 eager")
    table.add("GPU pipeline", "  decode", "12.00 ms", "")
    lines = table.render().splitlines()
    assert lines[0].split() == ["section", "item", "value", "note"]
    assert len(lines) == 4
    assert lines[2].index("2.10 ms") == lines[3].index("12.00 ms")


def test_make_clip_loops_one_rendered_second(tmp_path):
    from edgevqa.decode import probe

    path = gpu_bench.make_clip(str(tmp_path / "c.mp4"), seconds=1.5, width=64, height=48, fps=4)
    info = probe(path)
    assert (info.width, info.height, info.num_frames) == (64, 48, 6)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from edgevqa.export.checkpoint import save_checkpoint
    from edgevqa.export.models import create_model
    from edgevqa.manifest import write_sidecar

    torch.manual_seed(3)
    model = create_model("athqa_tiny", frames=2, grid=2)
    path = save_checkpoint(model, tmp_path_factory.mktemp("gpu_bench") / "tiny.pt")
    write_sidecar(path, model.manifest)
    return path


def test_gpu_score_path_on_the_cpu_matches_the_pipeline(tiny_checkpoint, small_clip):
    from edgevqa.backends.torch_backend import TorchRunner
    from edgevqa.manifest import load_manifest
    from edgevqa.pipeline import Pipeline

    manifest = load_manifest(tiny_checkpoint)
    with TorchRunner(tiny_checkpoint, device="cpu") as runner:
        got = gpu_bench.gpu_score(small_clip, runner, manifest, decoder="pyav", sampler="host", device="cpu")
        with Pipeline(tiny_checkpoint, backend="torch", runner=runner) as pipeline:
            want = pipeline.score(small_clip)
    assert got["sampler"] == "host" and got["frames"] == 2
    assert set(got["timings"]) == {"decode", "plan", "sample", "infer", "total"}
    for name in manifest.outputs:
        assert got["scores"][name] == pytest.approx(want.scores[name], rel=1e-6, abs=1e-7)


@pytest.mark.skipif(importlib.util.find_spec("nvidia") is None or importlib.util.find_spec("nvidia.dali") is None,
                    reason="NVIDIA DALI is not installed (the 'dali' extra)")
def test_gpu_score_with_dali_cpu_decoding_of_vp9(tiny_checkpoint, tmp_path):
    from edgevqa.backends.torch_backend import TorchRunner
    from edgevqa.manifest import load_manifest
    from edgevqa.samples import write_clip

    clip = write_clip(tmp_path / "v.webm", width=97, height=71, num_frames=15, codec="libvpx-vp9", crf=None)
    manifest = load_manifest(tiny_checkpoint)
    with TorchRunner(tiny_checkpoint, device="cpu") as runner:
        dali = gpu_bench.gpu_score(clip, runner, manifest, decoder="dali-cpu", sampler="host", device="cpu")
        pyav = gpu_bench.gpu_score(clip, runner, manifest, decoder="pyav", sampler="host", device="cpu")
    # DALI hands RGB from libswscale, PyAV's path converts YUV in our kernel: close, not equal.
    diffs = [abs(dali["scores"][n] - pyav["scores"][n]) for n in manifest.outputs]
    scale = max(abs(pyav["scores"][n]) for n in manifest.outputs)
    assert max(diffs) <= 0.05 * scale + 1e-3, (dali["scores"], pyav["scores"])
    assert np.isfinite(list(dali["scores"].values())).all()


def test_gpu_score_device_sampler_without_cuda_says_why(tiny_checkpoint, small_clip):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    from edgevqa.backends.torch_backend import TorchRunner
    from edgevqa.manifest import load_manifest

    with TorchRunner(tiny_checkpoint, device="cpu") as runner:
        with pytest.raises(RuntimeError, match="CUDA kernel|kernels.device"):
            gpu_bench.gpu_score(small_clip, runner, load_manifest(tiny_checkpoint), decoder="pyav",
                                sampler="device", device="cpu")
