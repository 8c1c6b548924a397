"""The C kernel built without its vector rows, built with clang, and the aarch64 (Jetson) build compiled.

On x86, `kernels/_native.c` compiles AVX2 rows beside the portable C and picks them at run time; on aarch64
(Jetson Orin, ARM servers) it compiles NEON rows; elsewhere only the portable C. ``EDGEVQA_NATIVE_SCALAR=1``
reaches the scalar rows at run time, but that build still holds the vector code around them. These tests build
the plain C (``-DEDGEVQA_NATIVE_PORTABLE``, the package's own flags from setup.py, warnings as errors) and run
the C kernel's tests against it; where an aarch64 cross compiler is installed, the aarch64 compile (NEON rows) is
checked too. Where clang is installed, a clang build runs the kernel tests and clang compiles the aarch64 build.
`kernels/aarch64_check.sh` runs the kernel tests against the aarch64 build itself, under qemu-user.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytest.importorskip("edgevqa.kernels.native", reason="the C kernel is not built (no C compiler at install)")

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "kernels" / "_native.c"
KERNEL_TESTS = ("test_native.py", "test_native_fuzz.py", "test_native_paths.py")


def package_flags() -> list[str]:
    """setup.py's UNIX_FLAGS, read from its source (importing setup.py would run the build)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "UNIX_FLAGS" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise AssertionError("setup.py no longer defines UNIX_FLAGS")


def compile_native(compiler: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    include = sysconfig.get_paths()["include"]
    command = [compiler, *package_flags(), "-Werror", *extra, "-shared", "-fPIC", f"-I{include}", str(SOURCE),
               "-o", str(out), "-lm"]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def host_compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")


def run_kernel_tests_against(library: Path, rows: str) -> None:
    """Runs the C kernel's tests in a subprocess that loads ``library`` instead of the installed build, after
    checking that it loads and runs the ``rows`` it should."""
    env = {**os.environ, "EDGEVQA_NATIVE_LIBRARY": str(library)}
    env.pop("EDGEVQA_NATIVE_SCALAR", None)
    probe = subprocess.run([sys.executable, "-c", "import edgevqa.kernels.native as n; "
                            "print(n._native.__file__, n._native.vector_rows())"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert probe.stdout.split() == [str(library), rows], probe.stderr
    tests = [str(Path(__file__).parent / name) for name in KERNEL_TESTS]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and " failed" not in run.stdout


def test_the_portable_build_passes_the_kernel_tests(tmp_path):
    compiler = host_compiler()
    if compiler is None:
        pytest.skip("no C compiler on PATH")
    library = tmp_path / f"_native{sysconfig.get_config_var('EXT_SUFFIX')}"
    built = compile_native(compiler, library, "-DEDGEVQA_NATIVE_PORTABLE")
    assert built.returncode == 0, built.stderr
    run_kernel_tests_against(library, "scalar")


def test_a_clang_build_passes_the_kernel_tests(tmp_path):
    """setup.py builds with whatever compiler Python was built with or CC names: clang too (macOS, some
    distributions). clang 14 rejected __builtin_cpu_supports("f16c"), so such a build failed and the package fell
    back to the NumPy reference."""
    from edgevqa.kernels import native

    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("no clang on PATH (Debian: clang)")
    library = tmp_path / f"_native{sysconfig.get_config_var('EXT_SUFFIX')}"
    built = compile_native(clang, library)
    assert built.returncode == 0, built.stderr
    rows = subprocess.run([sys.executable, "-c", "import edgevqa.kernels.native as n; print(n._native.vector_rows())"],
                          capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "EDGEVQA_NATIVE_SCALAR"}).stdout.strip()
    assert rows in ("avx2+fma", "avx2", "neon", "scalar") and native is not None
    run_kernel_tests_against(library, rows)


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


def test_the_installed_x86_build_uses_its_avx2_rows():
    from edgevqa.kernels import native

    if "avx2" not in cpu_flags():
        pytest.skip("not an x86 processor with AVX2 (or no /proc/cpuinfo)")
    env = {k: v for k, v in os.environ.items() if k != "EDGEVQA_NATIVE_SCALAR"}
    code = "import edgevqa.kernels.native as n; print(n._native.vector_rows())"
    rows = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert rows.stdout.strip() == ("avx2+fma" if "fma" in cpu_flags() else "avx2"), rows.stderr
    forced = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**env, "EDGEVQA_NATIVE_SCALAR": "1"})
    assert forced.stdout.strip() == "scalar", forced.stderr
    assert native._native.vector_rows() in ("avx2+fma", "avx2", "neon", "scalar")


def test_the_aarch64_cross_compile_is_clean(tmp_path):
    compiler = shutil.which("aarch64-linux-gnu-gcc")
    if compiler is None:
        pytest.skip("no aarch64 cross compiler (Debian: gcc-aarch64-linux-gnu)")
    # The host's Python headers: a compile check of the C (NEON rows), not a loadable aarch64 module; the kernel
    # tests run against a real aarch64 build in kernels/aarch64_check.sh.
    built = compile_native(compiler, tmp_path / "_native_aarch64.so")
    assert built.returncode == 0, built.stderr


def test_clang_compiles_the_aarch64_build_cleanly(tmp_path):
    clang = shutil.which("clang")
    if clang is None or not Path("/usr/aarch64-linux-gnu/include").is_dir():
        pytest.skip("no clang, or no aarch64 C library headers (Debian: clang, gcc-aarch64-linux-gnu)")
    built = compile_native(clang, tmp_path / "_native_aarch64.so", "--target=aarch64-linux-gnu")
    assert built.returncode == 0, built.stderr
