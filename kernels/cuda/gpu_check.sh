#!/usr/bin/env bash
# The GPU checks of the CUDA sampling kernel, as one run on the lent GPU machine (see shared/design/gpu.md):
# install edgevqa there without dependencies, run the tests marked gpu and the NVRTC compile test, then the
# device benchmark. Prints a short summary last. Usage (repository root): bash kernels/cuda/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . >/tmp/edgevqa_install.log 2>&1 \
    || { tail -20 /tmp/edgevqa_install.log; exit 1; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 - <<'PY'
import edgevqa.kernels as k, edgevqa.kernels.device as d
print("host kernels:", k.IMPLEMENTATION, "| cuda available:", d.cuda_available())
PY
EDGEVQA_CUDA_SYNC=1 python3 -m pytest -q -p no:cacheprovider -rs tests/kernels/test_device_gpu.py \
    tests/kernels/test_cuda_compile.py 2>&1 | tail -25
tests_rc=${PIPESTATUS[0]}
python3 -m edgevqa.bench.sampling_speed --device cuda --repeat 7 --pixels-per-thread 1 4
bench_rc=$?
echo "date: $(date -u +%Y-%m-%dT%H:%MZ); gpu tests rc=${tests_rc}; device bench rc=${bench_rc}"
exit $(( tests_rc || bench_rc ))
