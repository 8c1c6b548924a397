#!/usr/bin/env bash
# Runs the C kernels' tests once against AddressSanitizer + UndefinedBehaviorSanitizer builds of
# kernels/_native.c, kernels/_deinterlace.c and kernels/_tonemap.c (built into a temporary folder; the installed builds
# are left alone).
# CI: `bash kernels/asan_check.sh` from the repository root (needs gcc or clang with libasan; about a minute).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
CC=${CC:-gcc}
PYTHON=${PYTHON:-python}
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
include=$("$PYTHON" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
suffix=$("$PYTHON" -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
sanitized() {  # sanitized SOURCE LIBRARY
    "$CC" -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -std=gnu11 \
        -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -shared -fPIC -I"$include" \
        "$1" -o "$2" -lm
}
library="$build/_native$suffix"
deinterlace_library="$build/_deinterlace$suffix"
tonemap_library="$build/_tonemap$suffix"
sanitized kernels/_native.c "$library"
sanitized kernels/_deinterlace.c "$deinterlace_library"
sanitized kernels/_tonemap.c "$tonemap_library"
libasan=$("$CC" -print-file-name=libasan.so)
export EDGEVQA_NATIVE_LIBRARY="$library" EDGEVQA_DEINTERLACE_LIBRARY="$deinterlace_library"
export EDGEVQA_TONEMAP_LIBRARY="$tonemap_library" LD_PRELOAD="$libasan"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
"$PYTHON" -c "import edgevqa.kernels.native as n; assert n._native.__file__ == '$library', n._native.__file__; print('sanitized build:', n._native.__file__)"
"$PYTHON" -c "import edgevqa.deinterlace as d; assert d._compiled.__file__ == '$deinterlace_library', d._compiled; print('sanitized build:', d._compiled.__file__)"
"$PYTHON" -c "import edgevqa.tonemap as t; assert t._compiled.__file__ == '$tonemap_library', t._compiled; print('sanitized build:', t._compiled.__file__)"
"$PYTHON" -m pytest -q -p no:cacheprovider tests/kernels/test_native.py tests/kernels/test_native_fuzz.py \
    tests/kernels/test_native_paths.py tests/runtime/test_deinterlace.py tests/runtime/test_tonemap.py "$@"
