"""The CUDA kernel source compiles for Jetson Orin (sm_87) and Hopper (sm_90, plus PTX), without a GPU.

nvcc (CI has CUDA's compiler, no GPU) builds the same ``kernels/cuda/sample.cu`` text that NVRTC compiles at
first use on a GPU machine; ptxas must keep the parameter block in constant memory (no stack frame), which is
what ``__grid_constant__`` promises. The NVRTC path itself runs when cuda-python and libnvrtc are installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edgevqa.kernels import device

SOURCE = Path(device.__file__).resolve().parent / "cuda" / "sample.cu"


def nvcc() -> str:
    path = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None)
    if path is None:
        pytest.skip("nvcc is not installed")
    return path


@pytest.mark.parametrize("arch", ["sm_87", "sm_90"])
def test_nvcc_builds_a_cubin_keeping_parameters_in_constant_memory(tmp_path, arch):
    result = subprocess.run([nvcc(), "-std=c++17", "-cubin", f"-arch={arch}", "-Xptxas", "-v", "-o",
                             str(tmp_path / f"sample_{arch}.cubin"), str(SOURCE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / f"sample_{arch}.cubin").stat().st_size > 0
    # The parameter block (3.6 KiB) must stay in constant memory (__grid_constant__): a copy would show up as
    # a stack frame of its size. A few bytes of register spill are fine.
    frames = re.findall(r"(\d+) bytes stack frame", result.stderr)
    assert frames and all(int(f) < 256 for f in frames), result.stderr


def test_nvcc_builds_a_fatbin_for_orin_and_hopper_plus_ptx(tmp_path):
    out = tmp_path / "sample.fatbin"
    result = subprocess.run([nvcc(), "-std=c++17", "-fatbin", "-gencode", "arch=compute_87,code=sm_87",
                             "-gencode", "arch=compute_90,code=sm_90", "-gencode", "arch=compute_90,code=compute_90",
                             "-o", str(out), str(SOURCE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0


def test_nvrtc_compiles_the_same_source(tmp_path, monkeypatch):
    nvrtc = pytest.importorskip("cuda.bindings.nvrtc", reason="cuda-python (cuda.bindings) is not installed")
    try:
        nvrtc.nvrtcVersion()
    except Exception as exc:  # noqa: BLE001 - libnvrtc missing shows up as a loader error
        pytest.skip(f"libnvrtc is not loadable: {exc}")
    monkeypatch.setenv("EDGEVQA_CACHE_DIR", str(tmp_path))
    cubin = device.compile_kernel(nvrtc, 87)
    assert cubin[:4] == b"\x7fELF"
    assert device.compile_kernel(nvrtc, 87) == cubin  # second time from the disk cache
    assert list(tmp_path.glob("cuda/*sm_87.cubin"))
    ptx = device.compile_kernel(nvrtc, 999, cache=False)  # an architecture NVRTC does not know: PTX
    assert b".entry edgevqa_sample" in ptx
