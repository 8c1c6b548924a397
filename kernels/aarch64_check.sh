#!/usr/bin/env bash
# Runs the C kernels' tests against the aarch64 builds of kernels/_native.c (NEON rows: what a Jetson Orin or an
# ARM server compiles), kernels/_deinterlace.c and kernels/_tonemap.c, on x86, under qemu-user: an arm64 Python
# from Debian's packages and aarch64 wheels of the test dependencies, unpacked into a sysroot (no chroot, no
# binfmt_misc).
# CI: `bash kernels/aarch64_check.sh` from the repository root (a few minutes; the sysroot is kept in
# $EDGEVQA_AARCH64_ROOT, default ~/.cache/edgevqa-aarch64, for the next run). Extra arguments go to pytest.
#
# Needs qemu-user and gcc-aarch64-linux-gnu (installed with apt-get when missing and this runs as root), and
# Debian's arm64 package index (`dpkg --add-architecture arm64`, done here as root). Where those cannot be had
# the script says why and exits 0 without testing: "SKIPPED" in its output means nothing was checked.
# Under emulation the tests check bits, not speed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
sysroot=${EDGEVQA_AARCH64_ROOT:-$HOME/.cache/edgevqa-aarch64}
PYTHON=${PYTHON:-python}

skip() {
    echo "aarch64 check SKIPPED: $*"
    exit 0
}

source .ci/as_root.sh

install_tools() {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user gcc-aarch64-linux-gnu >/dev/null
}

if ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null; then
    command -v apt-get >/dev/null || skip "no qemu-aarch64 or aarch64-linux-gnu-gcc, and no apt-get to install them"
    install_tools || { as_root apt-get update -q >/dev/null && install_tools; } ||
        skip "could not install qemu-user and gcc-aarch64-linux-gnu (not root, or no package index)"
fi

# The arm64 Python: the interpreter, its standard library and headers, and the shared libraries they load.
python_debs=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libpython3.11 libpython3.11-dev libc6
             libssl3 libffi8 zlib1g libexpat1 libbz2-1.0 liblzma5 libsqlite3-0 libncursesw6 libtinfo6 libreadline8
             libuuid1 libgcc-s1 libstdc++6 libcrypt1 libdb5.3 libgdbm6 libnsl2 libtirpc3)
interpreter="$sysroot/usr/bin/python3.11"
if [ ! -x "$interpreter" ]; then
    command -v apt-get >/dev/null || skip "no apt-get to fetch Debian's arm64 Python"
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        as_root dpkg --add-architecture arm64 || skip "could not add the arm64 architecture to dpkg (not root?)"
        if ! as_root apt-get update -q >/dev/null; then
            as_root dpkg --remove-architecture arm64 # leave apt as it was: its sources may carry no arm64
            skip "no arm64 package index in this machine's apt sources"
        fi
    fi
    debs=$(mktemp -d)
    chmod 777 "$debs" # apt-get download drops root for the fetch
    (cd "$debs" && apt-get download -q "${python_debs[@]/%/:arm64}" >/dev/null) ||
        skip "could not download Debian's arm64 Python packages"
    mkdir -p "$sysroot"
    for deb in "$debs"/*.deb; do dpkg -x "$deb" "$sysroot"; done
    rm -rf "$debs"
fi
[ -x "$interpreter" ] || skip "the arm64 sysroot holds no python3.11"

# qemu runs the interpreter; `-0` makes this wrapper its argv[0], so sys.executable is the wrapper and the
# tests' subprocesses run under qemu too.
launcher="$sysroot/usr/bin/python3-qemu"
cat >"$launcher" <<EOF
#!/bin/sh
exec qemu-aarch64 -L "$sysroot" -0 "\$0" "$interpreter" "\$@"
EOF
chmod +x "$launcher"

# onnxruntime: newer aarch64 wheels stop with SIGSEGV at import under Debian 12's qemu 7.2; 1.20 runs there.
site="$sysroot/site-packages"
if [ ! -d "$site/numpy" ] || [ ! -d "$site/av" ] || [ ! -d "$site/hypothesis" ] || [ ! -d "$site/onnxruntime" ]; then
    wheels=$(mktemp -d)
    "$PYTHON" -m pip download -q -d "$wheels" --only-binary=:all: --python-version 3.11 --implementation cp \
        --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 \
        "numpy>=1.26" "av>=12" "onnx>=1.16" "onnxruntime>=1.18,<1.21" "pytest>=8" "pytest-timeout>=2.3" \
        "hypothesis>=6.100" >/dev/null ||
        skip "could not download the aarch64 wheels of the test dependencies"
    mkdir -p "$site"
    for wheel in "$wheels"/*.whl; do "$PYTHON" -m zipfile -e "$wheel" "$site"; done
    rm -rf "$wheels"
fi

# The package as an installed one lays it out (pyproject's package-dir): the runtime with the other folders inside.
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
mkdir -p "$build/edgevqa"
ln -s "$repo"/runtime/* "$build/edgevqa/"
for folder in kernels export calib bench; do ln -s "$repo/$folder" "$build/edgevqa/$folder"; done

# setup.py's own flags (read from its source), warnings as errors.
flags=$("$PYTHON" - "$repo/setup.py" <<'EOF'
import ast, sys
for node in ast.parse(open(sys.argv[1]).read()).body:
    if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "UNIX_FLAGS" for t in node.targets):
        print(" ".join(ast.literal_eval(node.value)))
EOF
)
library="$build/_native.cpython-311-aarch64-linux-gnu.so"
deinterlace_library="$build/_deinterlace.cpython-311-aarch64-linux-gnu.so"
tonemap_library="$build/_tonemap.cpython-311-aarch64-linux-gnu.so"
for pair in "kernels/_native.c:$library" "kernels/_deinterlace.c:$deinterlace_library" \
            "kernels/_tonemap.c:$tonemap_library"; do
    # shellcheck disable=SC2086
    aarch64-linux-gnu-gcc $flags -Werror -shared -fPIC -I"$sysroot/usr/include/python3.11" -I"$sysroot/usr/include" \
        "${pair%%:*}" -o "${pair#*:}" -lm
done

unset EDGEVQA_NATIVE_SCALAR
arm=(env PYTHONPATH="$build:$site" EDGEVQA_NATIVE_LIBRARY="$library" EDGEVQA_DEINTERLACE_LIBRARY="$deinterlace_library"
     EDGEVQA_TONEMAP_LIBRARY="$tonemap_library" PYTHONDONTWRITEBYTECODE=1 "$launcher")
rows=$("${arm[@]}" -c "import platform, edgevqa.kernels.native as n
print(platform.machine(), n._native.vector_rows())")
echo "aarch64 build: $rows ($library)"
[ "$rows" = "aarch64 neon" ] || { echo "expected the NEON rows on aarch64, got: $rows"; exit 1; }
"${arm[@]}" -c "import edgevqa.deinterlace as d; assert d._compiled.__file__ == '$deinterlace_library', d._compiled"
"${arm[@]}" -c "import edgevqa.tonemap as t; assert t._compiled.__file__ == '$tonemap_library', t._compiled"
"${arm[@]}" -m pytest -q -p no:cacheprovider tests/kernels/test_native.py tests/kernels/test_native_fuzz.py \
    tests/kernels/test_native_paths.py tests/runtime/test_deinterlace.py tests/runtime/test_tonemap.py "$@"

# End to end on aarch64: decode (PyAV), sample (NEON rows), infer (ONNX Runtime's aarch64 kernels) with the
# default model, against this machine's install of the same checkout. ONNX Runtime's float arithmetic differs
# between the two processors in the last bits, so the scores must agree to 1e-3 points, not bit for bit.
clip="$build/sample.mp4"
"$PYTHON" -m edgevqa.cli make-sample "$clip" >/dev/null
host_scores=$("$PYTHON" -m edgevqa.cli score "$clip" --json)
arm_scores=$("${arm[@]}" -m edgevqa.cli score "$clip" --json)
"$PYTHON" - "$host_scores" "$arm_scores" <<'EOF'
import json, sys
host, arm = (json.loads(text) for text in sys.argv[1:3])
gaps = {k: abs(host["scores"][k] - arm["scores"][k]) for k in host["scores"]}
print("default model on the sample clip, aarch64 (gap to x86):",
      ", ".join(f"{k} {arm['scores'][k]:.3f} ({gap:.1e})" for k, gap in gaps.items()))
if host["error"] or arm["error"] or max(gaps.values()) > 1e-3:
    sys.exit(f"aarch64 scores differ from x86: {gaps}, errors {host['error']!r} {arm['error']!r}")
EOF
