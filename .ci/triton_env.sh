#!/usr/bin/env bash
# A Python environment that can host edgevqa inside Triton Inference Server, for the Triton repository test:
# NumPy 1 (Triton's Python backend stub is built against it), PyTriton (whose wheel carries a real tritonserver
# and the backend stubs) and edgevqa from this checkout. Prints the environment's python; the test runs when
# EDGEVQA_TRITON_PYTHON names it:
#     export EDGEVQA_TRITON_PYTHON=$(bash .ci/triton_env.sh)
# The environment lives in $EDGEVQA_TRITON_VENV (default ~/.cache/edgevqa-triton) and is reused; about a minute
# to make (a 55 MB wheel). Exits 1 with the reason on stderr where it cannot be made.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${EDGEVQA_TRITON_VENV:-$HOME/.cache/edgevqa-triton}
PYTHON=${PYTHON:-python}
if [ ! -x "$venv/bin/python" ]; then
    "$PYTHON" -m venv "$venv" >&2
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip >&2
"$venv/bin/python" -m pip install --quiet "numpy>=1.26,<2" "nvidia-pytriton==0.7.0" . >&2
"$venv/bin/python" -c "import numpy, pytriton, edgevqa; assert numpy.__version__ < '2', numpy.__version__" >&2
echo "$venv/bin/python"
