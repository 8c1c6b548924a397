"""What every benchmark report carries: the machine, library versions, memory, and safe output files.

Reports are versioned JSON documents (``schema`` and ``schema_version`` inside), so scripts need not scrape
text, a complaint users of trtexec and onnxruntime_perf_test raise often.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import sys
from typing import Any

from edgevqa.errors import EdgeVQAError

MODEL_SCHEMA = ("edgevqa.bench.model", 1)
PIPELINE_SCHEMA = ("edgevqa.bench.pipeline", 1)
EVAL_SCHEMA = ("edgevqa.eval", 1)
COMPARE_SCHEMA = ("edgevqa.eval.compare", 1)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def library_versions(*extra: str) -> dict[str, str | None]:
    """Versions of edgevqa, Python, NumPy and the named modules already importable (None when absent)."""
    from importlib import metadata

    import numpy

    import edgevqa

    versions: dict[str, str | None] = {"edgevqa": edgevqa.__version__, "python": platform.python_version(),
                                       "numpy": numpy.__version__}
    for name in extra:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment(*libraries: str) -> dict[str, Any]:
    return {"cpu": cpu_model(), "cpu_count": usable_cpu_count(), "platform": platform.platform(),
            "libraries": library_versions(*libraries)}


# ----------------------------------------------------------------------------------------------- memory

def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def current_rss_mib() -> float | None:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024.0


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS counter for this process (Linux >= 4.0); False where that is impossible.

    Without it the peak would include whatever the process did before the benchmark (a test runner, say).
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float | None:
    """Peak resident set size: /proc's VmHWM, else getrusage's ru_maxrss (never reset; KiB on Linux)."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib / 1024.0
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (1024.0 * 1024.0) if sys.platform == "darwin" else maxrss / 1024.0


# ----------------------------------------------------------------------------------------------- output

def json_safe(value: Any) -> Any:
    """Replace NaN and infinities (not valid JSON) by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(json_safe(report), indent=2, allow_nan=False)


def check_output_path(path: str, flag: str, force: bool) -> None:
    """Refuse to replace an existing file unless ``force`` (checked before any long run)."""
    if os.path.isdir(path):
        raise EdgeVQAError(f"{flag} {path}: is a directory")
    if os.path.exists(path) and not force:
        raise EdgeVQAError(f"{flag} {path}: already exists; add --force to replace it")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise EdgeVQAError(f"{flag} {path}: folder {parent} does not exist")


def write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
