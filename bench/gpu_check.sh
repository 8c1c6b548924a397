#!/usr/bin/env bash
# All GPU checks of edgevqa in one device call: install what travelled, run the `gpu`-marked tests, print the
# GPU benchmark table (bench/gpu_bench.py) last. Sized for < 8 minutes on an H100.
#
# Modes:
#   bash bench/gpu_check.sh prepare        HERE (dev box, PyPI reachable): fetch the wheels that must travel.
#                                          .whl/      PyAV for CPython 3.12 (the GPU machine has none), 36 MB
#   bash bench/gpu_check.sh prepare-dali   HERE: DALI too (optional): .whl-dali/ holds nvidia-dali-cuda130 split
#                                          into 60 MiB parts + its three imported pure/small dependencies
#                                          (astunparse, gast, optree). The wheel (~200 MB) cannot travel in one
#                                          call (64 MiB per call): carry one part per call to the SAME warm
#                                          machine (files carried earlier stay there), run the check with the
#                                          last part. 2.4.0 makes 3 x 60 MiB + 10 MB parts: 4 calls in all.
#                                          Each extra call costs device time: skip DALI when short.
#   bash bench/gpu_check.sh                THERE (GPU machine): the check. Exits 0 with a message without a GPU.
#
# A call from the session (the device tool), PyAV only:
#   carry [".whl"]; command: OUT=$OUT bash bench/gpu_check.sh
# Everything it writes goes to $OUT (pytest log, gpu_bench.txt/.json); the table is also the output's tail.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MODE=${1:-check}
OUT_DIR=${OUT:-/tmp/edgevqa-gpu-check}
mkdir -p "$OUT_DIR"
PY=${PYTHON:-python3}

prepare_pyav() {
    local version
    version=$($PY -c 'import av; print(av.__version__)') || { echo "gpu_check: PyAV is not installed here" >&2; return 1; }
    mkdir -p .whl
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    $PY -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "av==$version"
    ls -l .whl
}

prepare_dali() {
    mkdir -p .whl-dali/deps
    grep -qx '/.whl-dali/' .git/info/exclude 2>/dev/null || echo '/.whl-dali/' >> .git/info/exclude
    local tmp
    tmp=$(mktemp -d)
    $PY -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$tmp" "nvidia-dali-cuda130==2.4.0"
    $PY -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl-dali/deps "astunparse==1.6.3" "gast==0.7.0" optree
    local wheel
    wheel=$(ls "$tmp"/nvidia_dali_cuda130-*.whl)
    basename "$wheel" > .whl-dali/NAME
    (cd "$tmp" && sha256sum "$(basename "$wheel")" | cut -d' ' -f1) > .whl-dali/SHA256
    split -b 60M -d -a 2 "$wheel" .whl-dali/part-
    rm -rf "$tmp"
    ls -l .whl-dali .whl-dali/deps
    echo "carry, one call each, to the same warm machine (60 MiB + the tree per call at most):"
    echo "  [.whl, .whl-dali/NAME, .whl-dali/SHA256, .whl-dali/deps, <the smallest part>] with command 'true',"
    echo "  then each remaining part alone; the call that carries the last part runs 'bash bench/gpu_check.sh'."
}

install_travelled() {
    local site=/tmp/edgevqa-site
    mkdir -p "$site"
    if ls .whl/*.whl >/dev/null 2>&1; then
        $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl \
            && echo "gpu_check: installed $(ls .whl | tr '\n' ' ')" || echo "gpu_check: wheel install FAILED"
    fi
    if [ -f .whl-dali/NAME ] && [ -f .whl-dali/SHA256 ]; then
        local name wheel
        name=$(cat .whl-dali/NAME)
        wheel=/tmp/$name
        cat .whl-dali/part-* > "$wheel" 2>/dev/null
        if [ "$(sha256sum "$wheel" | cut -d' ' -f1)" = "$(cat .whl-dali/SHA256)" ]; then
            $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
                "$wheel" .whl-dali/deps/*.whl && echo "gpu_check: installed DALI ($name)"
        else
            echo "gpu_check: DALI parts incomplete ($(ls .whl-dali | grep -c part-) parts here): DALI skipped"
        fi
        rm -f "$wheel"
    fi
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
}

install_edgevqa() {
    if $PY -m pip install -q --no-index --no-deps --no-build-isolation -e "$ROOT" >"$OUT_DIR/pip-edgevqa.log" 2>&1; then
        echo "gpu_check: edgevqa installed (editable, C kernel built)"
        return
    fi
    # No build: lay the package out by hand (the C kernel is then missing; the NumPy reference stands in).
    local tree=/tmp/edgevqa-tree/edgevqa
    rm -rf /tmp/edgevqa-tree && mkdir -p "$tree"
    for f in "$ROOT"/runtime/*; do ln -s "$f" "$tree/"; done
    for pkg in kernels export calib bench; do ln -s "$ROOT/$pkg" "$tree/$pkg"; done
    export PYTHONPATH="/tmp/edgevqa-tree${PYTHONPATH:+:$PYTHONPATH}"
    echo "gpu_check: editable install failed (see pip-edgevqa.log); using a symlinked tree without the C kernel"
}

check() {
    local start=$SECONDS
    if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
        echo "gpu_check: SKIPPED: no NVIDIA GPU here (nvidia-smi finds none)"
        return 0
    fi
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT_DIR/gpu.txt"
    install_travelled
    install_edgevqa
    $PY -c 'import edgevqa, av; print("gpu_check: edgevqa", edgevqa.__version__, "PyAV", av.__version__)' \
        || echo "gpu_check: PyAV missing: decoding tests and the pipeline row will fail (run prepare first)"
    export PYTHONUNBUFFERED=1

    echo "== pytest -m gpu ($(( SECONDS - start )) s)"
    timeout 240 $PY -m pytest -q -m gpu -p no:cacheprovider --continue-on-collection-errors -rs \
        tests/backends tests/kernels 2>&1 | tee "$OUT_DIR/pytest-gpu.log" | tail -25
    local pytest_rc=${PIPESTATUS[0]}

    if [ -f bench/sampling_speed.py ]; then
        echo "== sampling_speed --device cuda ($(( SECONDS - start )) s)"
        timeout 60 $PY -m edgevqa.bench.sampling_speed --device cuda 2>&1 | tee "$OUT_DIR/sampling_speed.txt" | tail -12
    fi

    echo "== gpu_bench ($(( SECONDS - start )) s)"
    timeout 300 $PY -m edgevqa.bench.gpu_bench --json "$OUT_DIR/gpu_bench.json" > "$OUT_DIR/gpu_bench.txt" \
        2> "$OUT_DIR/gpu_bench.err"
    local bench_rc=$?
    tail -5 "$OUT_DIR/gpu_bench.err"
    echo "== done in $(( SECONDS - start )) s: pytest rc=$pytest_rc, gpu_bench rc=$bench_rc"
    cat "$OUT_DIR/gpu_bench.txt"
    [ "$pytest_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
}

case "$MODE" in
    prepare) prepare_pyav ;;
    prepare-dali) prepare_pyav && prepare_dali ;;
    check) check ;;
    *) echo "usage: bash bench/gpu_check.sh [prepare|prepare-dali]" >&2; exit 2 ;;
esac
