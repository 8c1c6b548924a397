"""Model-mode benchmark: trtexec's measurement loop and report on any edgevqa backend.

Follows TensorRT's trtexec (samples/common/sampleInference.cpp and sampleReporting.cpp): queries run until
both a minimum iteration count and a minimum duration (after the warm-up) are met; queries whose compute
starts inside the warm-up are dropped; latency = H2D + compute + D2H, enqueue time reported beside it.

On a host backend (ort-cpu) there are no transfers: H2D and D2H are 0 and the report says so. "Compute" is
the backend's own run time (ONNX Runtime's ``session.run``), "enqueue" the runtime's host work before the
backend starts, and the runtime's overhead the whole ``Runner.infer`` call minus the backend's run.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from edgevqa.errors import EdgeVQAError, ManifestError, ModelError

from . import report as rpt
from .stats import DEFAULT_PERCENTILES, ENQUEUE_BOUND_FRACTION, UNSTABLE_COV_PERCENT, fmt, summarize

HOST_BACKENDS = ("ort-cpu",)
DEFAULT_INPUT_SEED = 1


@dataclass
class ModelBenchOptions:
    model_path: str
    backend: str = "ort-cpu"
    threads: int | None = None
    device: str = "cpu"
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    load_inputs: dict[str, str] = field(default_factory=dict)
    warmup_ms: float = 200.0
    duration_s: float = 3.0
    iterations: int = 10
    avg_runs: int = 10
    percentiles: Sequence[float] = DEFAULT_PERCENTILES
    inf_streams: int = 1
    use_cuda_graph: bool = False
    no_data_transfers: bool = False
    export_times: str | None = None
    export_profile: str | None = None
    dump_profile: bool = False
    verbose: bool = False
    seed: int = DEFAULT_INPUT_SEED
    command: str = "edgevqa bench"


@dataclass
class QueryTrace:
    """One query's host-clock timestamps in ms since the loop started (trtexec's InferenceTrace)."""

    stream: int
    enq_start: float
    enq_end: float
    h2d_start: float
    h2d_end: float
    compute_start: float
    compute_end: float
    d2h_start: float
    d2h_end: float
    call_end: float

    @property
    def enqueue(self) -> float:
        return self.enq_end - self.enq_start

    @property
    def h2d(self) -> float:
        return self.h2d_end - self.h2d_start

    @property
    def compute(self) -> float:
        return self.compute_end - self.compute_start

    @property
    def d2h(self) -> float:
        return self.d2h_end - self.d2h_start

    @property
    def latency(self) -> float:
        return self.h2d + self.compute + self.d2h

    @property
    def call(self) -> float:
        return self.call_end - self.enq_start

    def export(self, index: int) -> dict[str, Any]:
        """trtexec's --exportTimes keys, then ours (query, stream, endCallMs, callMs, overheadMs)."""
        return {"startEnqMs": self.enq_start, "endEnqMs": self.enq_end, "startH2dMs": self.h2d_start,
                "endH2dMs": self.h2d_end, "startComputeMs": self.compute_start, "endComputeMs": self.compute_end,
                "startD2hMs": self.d2h_start, "endD2hMs": self.d2h_end, "h2dMs": self.h2d, "computeMs": self.compute,
                "d2hMs": self.d2h, "latencyMs": self.latency, "query": index, "stream": self.stream,
                "endCallMs": self.call_end, "callMs": self.call, "overheadMs": self.call - self.compute}


# ----------------------------------------------------------------------------------------------- backend clock

class _SessionClock:
    """Stands in for an ONNX Runtime session and records, per thread, when its ``run`` (or
    ``run_with_iobinding``) started and ended."""

    def __init__(self, session: Any):
        self._session = session
        self._local = threading.local()

    def _timed(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            self._local.span = (start, time.perf_counter())

    def run(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed(self._session.run, *args, **kwargs)

    def run_with_iobinding(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed(self._session.run_with_iobinding, *args, **kwargs)

    def take_span(self) -> tuple[float, float] | None:
        span = getattr(self._local, "span", None)
        self._local.span = None
        return span

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def attach_backend_clock(runner: Any) -> Callable[[], tuple[float, float] | None] | None:
    """A function giving the backend's own (start, end) of the last run on this thread; None when the
    runner exposes no ONNX Runtime session to time (then the phases inside its call are not measured)."""
    session = getattr(runner, "session", None)
    if session is None or not callable(getattr(session, "run", None)):
        return None
    clock = session if isinstance(session, _SessionClock) else _SessionClock(session)
    runner.session = clock
    return clock.take_span


# How the four timestamps of a call (start, backend start, backend end, end) map onto trtexec's phases:
# - "host": a host backend; the runtime's work before the backend is enqueue time, no transfers exist.
# - "device": ONNX Runtime with I/O binding on a GPU; copying inputs to the device (and binding them) happens
#   before the run, copying outputs back after it: those are H2D and D2H, measured on the host clock.
# - "opaque": the backend gives no look inside its call; all of it is compute (transfers included on a GPU).
PHASE_MODES = ("host", "device", "opaque")
MEASURED = {"host": {"enqueue", "overhead"}, "device": {"h2d", "d2h"}, "opaque": set()}


def make_trace(mode: str, stream: int, t0: float, t1: float, t2: float, t3: float) -> "QueryTrace":
    """The trace of one call from its timestamps (ms), by phase mode (see PHASE_MODES)."""
    if mode == "host":
        return QueryTrace(stream, t0, t1, t1, t1, t1, t2, t2, t2, t3)
    if mode == "device":
        return QueryTrace(stream, t0, t0, t0, t1, t1, t2, t2, t3, t3)
    return QueryTrace(stream, t0, t0, t0, t0, t0, t3, t3, t3, t3)


# ----------------------------------------------------------------------------------------------- inputs

def parse_shapes(text: str) -> dict[str, tuple[int, ...]]:
    """``"video:1x3x32x224x224,other:2x8"`` -> {name: shape}. Raises EdgeVQAError on bad syntax."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, sep, dims = item.rpartition(":")
        if not sep or not name:
            raise EdgeVQAError(f"--shapes: {item!r} is not NAME:DxDx... (e.g. video:1x3x32x224x224)")
        try:
            shape = tuple(int(d) for d in dims.split("x")) if dims not in ("", "scalar") else ()
        except ValueError:
            raise EdgeVQAError(f"--shapes: {item!r} has a dimension that is not an integer "
                               "(e.g. video:1x3x32x224x224)") from None
        if any(d < 0 for d in shape):
            raise EdgeVQAError(f"--shapes: {item!r} has a negative dimension")
        if name in shapes:
            raise EdgeVQAError(f"--shapes: input '{name}' is given twice")
        shapes[name] = shape
    if not shapes:
        raise EdgeVQAError("--shapes: empty; give NAME:DxDx... (e.g. video:1x3x32x224x224)")
    return shapes


def parse_load_inputs(text: str) -> dict[str, str]:
    """``"video:in.bin,other:b.bin"`` -> {name: path}."""
    out: dict[str, str] = {}
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, sep, path = item.partition(":")
        if not sep or not name or not path:
            raise EdgeVQAError(f"--loadInputs: {item!r} is not NAME:FILE (e.g. video:input.bin)")
        out[name] = path
    if not out:
        raise EdgeVQAError("--loadInputs: empty; give NAME:FILE")
    return out


def _manifest_or_none(model_path: str):
    from edgevqa.manifest import load_manifest

    try:
        return load_manifest(model_path)
    except ManifestError:
        return None


def resolve_input_shapes(model_path: str, inputs: Sequence[Any], shapes: dict[str, tuple[int, ...]],
                         manifest: Any) -> dict[str, tuple[int, ...]]:
    """Concrete shapes for every input: --shapes first, then the model's static shape, then the manifest's
    view of that name; a dynamic axis nobody fixes is an error that says which flag to add."""
    names = [m.name for m in inputs]
    unknown = sorted(set(shapes) - set(names))
    if unknown:
        raise EdgeVQAError(f"--shapes: {model_path} has no input named {', '.join(map(repr, unknown))} "
                           f"(inputs: {', '.join(names)})")
    views = {v.name: v for v in manifest.views} if manifest is not None else {}
    resolved: dict[str, tuple[int, ...]] = {}
    for meta in inputs:
        declared = tuple(meta.shape)
        static = [d if isinstance(d, int) and d >= 0 else None for d in declared]
        if meta.name in shapes:
            shape = shapes[meta.name]
            if len(shape) != len(declared):
                raise EdgeVQAError(f"--shapes: input '{meta.name}' of {model_path} has rank {len(declared)} "
                                   f"({_dims(declared)}), got {_dims(shape)}")
            clash = [i for i, (s, d) in enumerate(zip(shape, static)) if d is not None and s != d]
            if clash:
                raise EdgeVQAError(f"--shapes: input '{meta.name}' of {model_path} is fixed at {_dims(declared)}, "
                                   f"got {_dims(shape)}")
        elif all(d is not None for d in static):
            shape = tuple(static)
        elif meta.name in views and len(views[meta.name].input_shape()) == len(declared):
            from_view = views[meta.name].input_shape()
            shape = tuple(d if d is not None else v for d, v in zip(static, from_view))
        else:
            raise EdgeVQAError(f"{model_path}: input '{meta.name}' has dynamic shape {_dims(declared)}; give it "
                               f"with --shapes={meta.name}:" + "x".join(str(d or 1) for d in static))
        resolved[meta.name] = tuple(int(d) for d in shape)
    return resolved


def _dims(shape: Sequence[Any]) -> str:
    """``1x3x?x224x224`` (a dynamic axis, named or not, prints as ?)."""
    return "x".join(str(d) if isinstance(d, int) and d >= 0 else "?" for d in shape) or "scalar"


def make_inputs(model_path: str, inputs: Sequence[Any], shapes: dict[str, tuple[int, ...]],
                load_inputs: dict[str, str], seed: int) -> dict[str, np.ndarray]:
    """Input arrays: raw files for --loadInputs, else trtexec's rule (fixed seed, floats uniform in [-1, 1];
    integers uniform in {-1, 0, 1}, {0, 1} when unsigned)."""
    names = [m.name for m in inputs]
    unknown = sorted(set(load_inputs) - set(names))
    if unknown:
        raise EdgeVQAError(f"--loadInputs: {model_path} has no input named {', '.join(map(repr, unknown))} "
                           f"(inputs: {', '.join(names)})")
    rng = np.random.default_rng(seed)
    feed: dict[str, np.ndarray] = {}
    for meta in inputs:
        shape = shapes[meta.name]
        try:
            dtype = np.dtype(meta.dtype)
        except TypeError:
            raise ModelError(f"{model_path}: input '{meta.name}' has type {meta.dtype}, which bench cannot "
                             "fill") from None
        if meta.name in load_inputs:
            path = load_inputs[meta.name]
            try:
                raw = np.fromfile(path, dtype=dtype)
            except OSError as exc:
                raise EdgeVQAError(f"--loadInputs: {path}: cannot read ({exc.strerror or exc})") from None
            want = int(np.prod(shape, dtype=np.int64))
            if raw.size != want:
                raise EdgeVQAError(f"--loadInputs: {path} holds {raw.size * dtype.itemsize} bytes; input "
                                   f"'{meta.name}' ({meta.dtype} {_dims(shape)}) needs {want * dtype.itemsize}")
            feed[meta.name] = raw.reshape(shape)
        elif dtype.kind == "f":
            feed[meta.name] = rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
        elif dtype.kind in "iu":
            low = 0 if dtype.kind == "u" else -1
            feed[meta.name] = rng.integers(low, 2, size=shape).astype(dtype)
        elif dtype.kind == "b":
            feed[meta.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            raise ModelError(f"{model_path}: input '{meta.name}' has type {meta.dtype}, which bench cannot fill")
    return feed


# ----------------------------------------------------------------------------------------------- the model file

_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger",
              "QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul", "QGemm"}


def detect_precision(model_path: str) -> dict[str, Any]:
    """The precision an ONNX model computes in, read from its graph: 'int8' when it holds Q/DQ or integer
    ops, 'fp16' when most float weights are half, 'mixed' when both, else 'fp32'. Non-ONNX files: 'unknown'."""
    if not model_path.endswith(".onnx"):
        return {"precision": "unknown", "detail": {"note": "not an ONNX file"}}
    import onnx
    from onnx import TensorProto

    try:
        model = onnx.load(model_path, load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ... for broken files
        raise ModelError(f"{model_path}: not a readable ONNX model ({type(exc).__name__})") from exc
    ops = Counter(node.op_type for node in model.graph.node)
    quant = {op: n for op, n in ops.items() if op in _QUANT_OPS}
    elements: Counter = Counter()
    for init in model.graph.initializer:
        elements[TensorProto.DataType.Name(init.data_type).lower()] += int(np.prod(init.dims, dtype=np.int64))
    half = elements["float16"] + elements["bfloat16"]
    single = elements["float"]
    if quant:
        precision = "int8"
    elif half and single:
        precision = "fp16" if half >= 4 * single else "mixed"
    elif half:
        precision = "fp16"
    else:
        precision = "fp32"
    detail = {"quantization_ops": sum(quant.values()), "weights": dict(elements), "opset": max(
        (o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None)}
    return {"precision": precision, "detail": detail}


# ----------------------------------------------------------------------------------------------- profiling

def profile_layers(options: ModelBenchOptions, feed: dict[str, np.ndarray], queries: int) -> dict[str, Any] | None:
    """Per-node times from ONNX Runtime's profiler, in a separate session so the timed run carries no
    profiler overhead (trtexec also profiles in a separate pass). None for backends without a profiler."""
    if options.backend not in ("ort-cpu", "ort-cuda", "ort-trt"):
        return None
    from edgevqa.backends.onnxrt import OrtRunner, import_onnxruntime
    from edgevqa.pipeline import make_runner

    runner = make_runner(options.model_path, options.backend, options.threads, options.device)
    if not isinstance(runner, OrtRunner):
        return None
    ort = import_onnxruntime()
    with tempfile.TemporaryDirectory(prefix="edgevqa-profile-") as tmp:
        opts = ort.SessionOptions()
        opts.profile_file_prefix = os.path.join(tmp, "ort")
        runner.session_options = opts
        runner.enable_profiling = True
        with runner:
            for _ in range(queries + 1):
                runner.infer(feed)
            trace_path = runner.session.end_profiling()
        with open(trace_path, encoding="utf-8") as fh:
            events = json.load(fh)
    layers: dict[str, list[float]] = {}
    runs = 0
    for ev in events:
        if ev.get("cat") == "Session" and ev.get("name") == "model_run":
            runs += 1
        if ev.get("cat") != "Node" or not str(ev.get("name", "")).endswith("_kernel_time"):
            continue
        name = ev["name"][: -len("_kernel_time")]
        layers.setdefault(name, []).append(float(ev.get("dur", 0)) / 1000.0)
    # The first run (session warm-up) is dropped, as the timed loop drops its warm-up.
    per_layer = {name: times[1:] if len(times) > 1 else times for name, times in layers.items()}
    total = sum(sum(t) for t in per_layer.values()) or 1.0
    rows = []
    for name, times in per_layer.items():
        arr = np.sort(np.asarray(times))
        rows.append({"name": name, "timeMs": float(arr.sum()), "averageMs": float(arr.mean()),
                     "medianMs": float(np.median(arr)), "percentage": float(arr.sum() * 100.0 / total)})
    return {"count": max(runs - 1, 1), "layers": rows}


def format_profile(profile: dict[str, Any]) -> str:
    rows = profile["layers"]
    width = max([len("Layer")] + [len(r["name"]) + 1 for r in rows])
    head = ("Layer".rjust(width) + "   Time (ms)" + "   Avg. Time (ms)" + "   Median Time (ms)" + "   Time %")
    lines = ["", f"=== Profile ({profile['count']} iterations ) ===", head]
    for r in sorted(rows, key=lambda r: -r["timeMs"]):
        lines.append(f"{r['name'].rjust(width)}{fmt(r['timeMs']):>12}{fmt(r['averageMs']):>17}"
                     f"{fmt(r['medianMs']):>19}{fmt(r['percentage']):>9}")
    total = sum(r["timeMs"] for r in rows)
    lines.append(f"{'Total'.rjust(width)}{fmt(total):>12}{fmt(total / profile['count']):>17}"
                 f"{'':>19}{fmt(100.0):>9}")
    return "\n".join(lines)


def export_profile_json(profile: dict[str, Any]) -> list[dict[str, Any]]:
    """trtexec's --exportProfile shape: ``[{"count": N}, {"name", "timeMs", "averageMs", "medianMs",
    "percentage"}, ...]``."""
    return [{"count": profile["count"]}] + [dict(r) for r in profile["layers"]]


# ----------------------------------------------------------------------------------------------- the loop

def run_loop(query: Callable[[int], tuple[float, float, float, float]], streams: int, warmup_ms: float,
             duration_s: float, iterations: int, pool: ThreadPoolExecutor | None = None,
             clock: Callable[[], float] = time.perf_counter, mode: str = "host") -> list[QueryTrace]:
    """trtexec's inference loop. ``query(stream)`` runs one inference and returns perf_counter seconds
    (call start, backend start, backend end, call end). Runs while fewer than ``iterations`` iterations
    finished after the warm-up OR less than warm-up + duration has passed; returns every trace.

    As in trtexec, an iteration counts as warm-up when it ends inside the warm-up, while the report drops
    queries that start inside it (`split_warmup`), so the report can hold one query fewer than asked.
    """
    traces: list[QueryTrace] = []
    max_ms = warmup_ms + duration_s * 1000.0
    origin = clock()
    elapsed_ms = 0.0
    skipped = 0
    i = 0
    while i < iterations + skipped or elapsed_ms < max_ms:
        if streams == 1:
            spans = [query(0)]
        else:
            spans = list(pool.map(query, range(streams)))
        for stream, (t0, t1, t2, t3) in enumerate(spans):
            ms = [(t - origin) * 1000.0 for t in (t0, t1, t2, t3)]
            traces.append(make_trace(mode, stream, *ms))
            elapsed_ms = max(elapsed_ms, ms[3])
        if elapsed_ms < warmup_ms:
            skipped += 1
        i += 1
    return traces


def split_warmup(traces: Sequence[QueryTrace], warmup_ms: float) -> tuple[int, list[QueryTrace]]:
    """trtexec's rule: everything from the first query whose compute starts at or after the warm-up is timed."""
    for k, t in enumerate(traces):
        if t.compute_start >= warmup_ms:
            return k, list(traces[k:])
    return len(traces), []


# ----------------------------------------------------------------------------------------------- the benchmark

def is_host_backend(backend: str, device: str) -> bool:
    return backend in HOST_BACKENDS or (backend == "torch" and (device or "cpu").strip().lower() == "cpu")


class DeviceMemoryProbe:
    """Device memory a run takes: the torch allocator's peak for the torch backend, else the drop in the
    device's free memory (cudaMemGetInfo) sampled before the session, after the first inference and after the
    loop. Every figure is None where it cannot be read (no GPU, no cuda-python)."""

    def __init__(self, backend: str, device: str):
        self.backend, self.device = backend, device
        self.kind: str | None = None
        self._free: list[int] = []
        self._torch: Any = None
        self._index = 0

    def start(self) -> None:
        try:
            from edgevqa.backends.cuda_runtime import parse_cuda_device

            self._index = parse_cuda_device(self.device)
            if self.backend == "torch":
                import torch

                self._torch, self.kind = torch, "torch allocator peak"
                if torch.cuda.is_initialized():  # a fresh process has no peak to clear yet
                    torch.cuda.reset_peak_memory_stats(self._index)
                return
            self.kind = "drop in free device memory (cudaMemGetInfo, sampled)"
            self.sample()
        except Exception:  # no CUDA, no bindings, no device: the report says 'not available'
            self.kind = None

    def sample(self) -> None:
        if self.kind is None or self._torch is not None:
            return
        try:
            from edgevqa.backends.cuda_runtime import check, import_cudart

            cudart = import_cudart()
            check(cudart, cudart.cudaSetDevice(self._index), "cudaSetDevice")
            free, _total = check(cudart, cudart.cudaMemGetInfo(), "cudaMemGetInfo")
            self._free.append(int(free))
        except Exception:
            self.kind = None

    def result_mib(self) -> float | None:
        try:
            if self._torch is not None:
                return self._torch.cuda.max_memory_allocated(self._index) / 2 ** 20
            if self.kind and len(self._free) > 1:
                return (self._free[0] - min(self._free[1:])) / 2 ** 20
        except Exception:
            return None
        return None


def run_model_benchmark(options: ModelBenchOptions) -> dict[str, Any]:
    """Run the benchmark and return the versioned report (see ``format_model_report`` for the text form)."""
    from edgevqa.pipeline import make_runner

    path = options.model_path
    zoo_name = options.backend == "torch" and not os.path.exists(path)  # the torch backend also takes zoo names
    if not zoo_name and not os.path.exists(path):
        raise ModelError(f"{path}: no such model file")
    if os.path.isdir(path):
        raise ModelError(f"{path}: is a directory, not a model file")
    for flag, value in (("--iterations", options.iterations), ("--avgRuns", options.avg_runs),
                        ("--infStreams", options.inf_streams)):
        if value < 1:
            raise EdgeVQAError(f"{flag} must be at least 1, got {value}")
    if options.warmup_ms < 0 or options.duration_s < 0:
        raise EdgeVQAError("--warmUp and --duration must not be negative")
    if options.threads is not None and options.threads < 1:
        raise EdgeVQAError(f"--threads must be at least 1, got {options.threads}")
    precision = detect_precision(path) if not zoo_name else {"precision": "unknown", "detail": {}}
    manifest = _manifest_or_none(path) if not zoo_name else None
    host = is_host_backend(options.backend, options.device)
    notes: list[str] = []
    if host and options.use_cuda_graph:
        notes.append(f"--useCudaGraph has no effect on the host backend {options.backend}")
    if host and options.no_data_transfers:
        notes.append(f"--noDataTransfers: the host backend {options.backend} makes no transfers anyway")
    if not host and (options.use_cuda_graph or options.no_data_transfers):
        notes.append("--useCudaGraph / --noDataTransfers are not passed to edgevqa's GPU runners; the settings the "
                     "runner reports (below) are the ones in effect")

    rss_scoped = rpt.reset_peak_rss()
    rss_before = rpt.current_rss_mib()
    device_memory = DeviceMemoryProbe(options.backend, options.device) if not host else None
    runner = make_runner(path, options.backend, options.threads, options.device)
    if device_memory is not None:
        device_memory.start()
    t0 = time.perf_counter()
    runner.activate()
    session_seconds = time.perf_counter() - t0
    try:
        manifest = manifest or getattr(runner, "manifest", None)
        inputs = runner.get_input_metadata()
        outputs = runner.get_output_metadata()
        shapes = resolve_input_shapes(path, inputs, options.shapes, manifest)
        feed = make_inputs(path, inputs, shapes, options.load_inputs, options.seed)
        backend_span = attach_backend_clock(runner)
        mode = "opaque" if backend_span is None else ("host" if host else "device")
        feeds = [feed] + [{k: v.copy() for k, v in feed.items()} for _ in range(options.inf_streams - 1)]

        def query(stream: int) -> tuple[float, float, float, float]:
            start = time.perf_counter()
            runner.infer(feeds[stream])
            end = time.perf_counter()
            span = backend_span() if backend_span is not None else None
            return (start, span[0], span[1], end) if span else (start, start, end, end)

        t0 = time.perf_counter()
        first = runner.infer(feed)
        first_seconds = time.perf_counter() - t0
        if backend_span is not None:
            backend_span()
        if device_memory is not None:
            device_memory.sample()
        nonfinite = sorted(name for name, value in first.items()
                           if np.asarray(value).dtype.kind == "f" and not np.all(np.isfinite(value)))
        pool = ThreadPoolExecutor(max_workers=options.inf_streams) if options.inf_streams > 1 else None
        try:
            t_loop = time.perf_counter()
            traces = run_loop(query, options.inf_streams, options.warmup_ms, options.duration_s, options.iterations,
                              pool, mode=mode)
            loop_seconds = time.perf_counter() - t_loop
        finally:
            if pool is not None:
                pool.shutdown()
        if device_memory is not None:
            device_memory.sample()
        describe = runner.describe()
    finally:
        runner.deactivate()
    peak_rss = rpt.peak_rss_mib()
    if precision["precision"] == "unknown" and describe.get("precision"):
        precision = {"precision": str(describe["precision"]), "detail": {"note": "as the runner reports it"}}

    warmups, timed = split_warmup(traces, options.warmup_ms)
    if not timed:  # a warm-up longer than the run leaves nothing; trtexec cannot get here either
        raise EdgeVQAError("no query finished after the warm-up; lower --warmUp or raise --duration")
    percentiles = tuple(options.percentiles)
    metrics = {
        "latency": summarize([t.latency for t in timed], percentiles),
        "enqueue": summarize([t.enqueue for t in timed], percentiles),
        "h2d": summarize([t.h2d for t in timed], percentiles),
        "compute": summarize([t.compute for t in timed], percentiles),
        "d2h": summarize([t.d2h for t in timed], percentiles),
        "call": summarize([t.call for t in timed], percentiles),
    }
    measured = MEASURED[mode]
    walltime_ms = max(t.call_end for t in timed) - min(t.enq_start for t in timed)
    throughput = len(timed) / walltime_ms * 1000.0 if walltime_ms > 0 else float("inf")
    overheads = np.asarray([t.call - t.compute for t in timed])
    has_overhead = "overhead" in measured

    warnings = _bound_warnings(metrics, host, measured, options.inf_streams)
    if nonfinite:
        warnings.append(("non-finite-output", f"* The first inference gave NaN or infinite values in "
                                              f"{', '.join(nonfinite)} (an FP16 overflow?)."))
    profile = None
    if options.dump_profile or options.export_profile:
        profile = profile_layers(options, feed, max(options.iterations, 10))
        if profile is None:
            notes.append(f"per-layer profiling is not available for backend {options.backend}")

    averages = []
    for k in range(0, len(timed) - options.avg_runs + 1, options.avg_runs):
        group = timed[k:k + options.avg_runs]
        averages.append({"compute": float(np.mean([t.compute for t in group])),
                         "latency": float(np.mean([t.latency for t in group])),
                         "enqueue": float(np.mean([t.enqueue for t in group]))})

    if host:
        transfers = "none (host backend: inputs stay in host memory)"
    elif mode == "device":
        transfers = ("on: H2D = host time before the backend's run (input copies and binding), D2H = host time "
                     "after it (output copies)")
    else:
        transfers = f"inside Compute Time (backend {options.backend} exposes no per-phase timing)"

    def phase(name: str) -> dict[str, Any] | None:
        return metrics[name].to_dict() if name in measured else None

    schema, version = rpt.MODEL_SCHEMA
    report: dict[str, Any] = {
        "schema": schema, "schema_version": version, "command": options.command, "passed": True,
        "model": {"path": path, "precision": precision["precision"], "precision_detail": precision["detail"],
                  "manifest": None if manifest is None else {"name": manifest.name, "version": manifest.version},
                  "inputs": [{"name": m.name, "dtype": m.dtype, "declared_shape": [_jsonable_dim(d) for d in m.shape],
                              "shape": list(shapes[m.name]),
                              "source": f"file {options.load_inputs[m.name]}" if m.name in options.load_inputs
                              else f"random uniform [-1, 1], seed {options.seed}"} for m in inputs],
                  "outputs": [{"name": m.name, "dtype": m.dtype, "shape": [_jsonable_dim(d) for d in m.shape]}
                              for m in outputs]},
        "settings": {"backend": options.backend, "device": "host CPU" if host else options.device,
                     "providers": describe.get("providers"), "threads": options.threads,
                     "threads_effective": options.threads or f"backend default ({rpt.usable_cpu_count()} cores)",
                     "runner": describe, "inf_streams": options.inf_streams, "warm_up_ms": options.warmup_ms,
                     "duration_s": options.duration_s, "iterations": options.iterations,
                     "avg_runs": options.avg_runs, "percentiles": list(percentiles),
                     "phase_timing": mode, "data_transfers": transfers,
                     "cuda_graphs": "not applicable (host backend)" if host else describe.get("cuda_graphs",
                                                                                               "not reported"),
                     "first_inference": "run once before the loop and reported separately, not in the trace"},
        "environment": rpt.environment("onnxruntime", "onnx", "av", "torch", "tensorrt"),
        "cold": {"session_creation_ms": session_seconds * 1000.0, "first_inference_ms": first_seconds * 1000.0},
        "memory": {"rss_before_session_mib": rss_before, "peak_rss_mib": peak_rss,
                   "peak_rss_scope": "since the benchmark started" if rss_scoped else "process lifetime",
                   "peak_device_mib": device_memory.result_mib() if device_memory is not None else None,
                   "device_memory_measure": device_memory.kind if device_memory is not None else "none (host)"},
        "warmup": {"queries": warmups, "ms": options.warmup_ms},
        "timing": {"queries": len(timed), "walltime_s": walltime_ms / 1000.0, "loop_s": loop_seconds,
                   "throughput_qps": throughput,
                   "latency": metrics["latency"].to_dict(), "enqueue": phase("enqueue"), "h2d": phase("h2d"),
                   "compute": metrics["compute"].to_dict(), "d2h": phase("d2h"), "call": metrics["call"].to_dict(),
                   "total_compute_s": metrics["compute"].mean * len(timed) / 1000.0,
                   "averages": {"runs": options.avg_runs, "groups": averages}},
        "overhead": {"measured": has_overhead,
                     "definition": "Runner.infer call time minus the backend's own run time (session.run)",
                     "median_ms": float(np.median(overheads)) if has_overhead else None,
                     "mean_ms": float(np.mean(overheads)) if has_overhead else None,
                     "percent_of_compute": float(np.median(overheads) / metrics["compute"].median * 100.0)
                     if has_overhead and metrics["compute"].median > 0 else None},
        "warnings": [{"kind": kind, "message": message} for kind, message in warnings],
        "notes": notes,
        "profile": profile,
    }
    report["_traces"] = timed
    report["_metrics"] = metrics
    return report


def _jsonable_dim(d: Any) -> Any:
    return d if isinstance(d, (int, str)) or d is None else str(d)


def _bound_warnings(metrics: dict[str, Any], host: bool, measured: set[str], streams: int) -> list[tuple[str, str]]:
    """trtexec's warnings, for the phases this backend measures, worded for where it runs."""
    out = []
    compute = metrics["compute"]
    if "enqueue" in measured and metrics["enqueue"].median > ENQUEUE_BOUND_FRACTION * compute.median:
        hint = ("  If not already in use, --useCudaGraph (utilize CUDA graphs where possible) may increase the "
                "throughput." if not host else "  The runtime's own host work before the backend starts dominates.")
        out.append(("enqueue-bound", "* Throughput may be bound by Enqueue Time rather than Compute"
                                     + (" and the GPU may be under-utilized." if not host else ".") + "\n" + hint))
    if "h2d" in measured and metrics["h2d"].median >= compute.median:
        out.append(("h2d-bound", "* Throughput may be bound by host-to-device transfers for the inputs rather than "
                                 "GPU Compute and the GPU may be under-utilized."))
    if "d2h" in measured and metrics["d2h"].median >= compute.median:
        out.append(("d2h-bound", "* Throughput may be bound by device-to-host transfers for the outputs rather than "
                                 "GPU Compute and the GPU may be under-utilized."))
    if compute.cov_percent > UNSTABLE_COV_PERCENT:
        hint = ("  If not already in use, locking GPU clock frequency may improve the stability." if not host else
                "  Other processes on the CPU, frequency scaling or more threads than cores may cause it; compare "
                "with --threads.")
        out.append(("unstable", f"* {'GPU compute' if not host else 'Compute'} time is unstable, with coefficient "
                                f"of variance = {fmt(compute.cov_percent)}%.\n{hint}"))
    if streams > 1:
        out.append(("multi-stream", "* Multiple inference streams are used. Latencies may not be accurate since "
                                    "inferences may run in parallel. Please use \"Throughput\" as the performance "
                                    "metric instead."))
    return out


# ----------------------------------------------------------------------------------------------- output

def public_report(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if not k.startswith("_")}


def export_times(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [t.export(i) for i, t in enumerate(report["_traces"])]


def format_model_report(report: dict[str, Any], verbose: bool = False) -> str:
    """The text report: our settings block, then trtexec's prolog, trace averages and summary."""
    s, m, t, env = report["settings"], report["model"], report["timing"], report["environment"]
    metrics = report["_metrics"]
    host = s["device"] == "host CPU"
    gpu = "" if host else "GPU "
    mode = s["phase_timing"]
    detail = m["precision_detail"]
    weights = ", ".join(f"{k} {v}" for k, v in sorted(detail.get("weights", {}).items()))
    lines = ["=== Model ===", f"Model: {m['path']}",
             f"Precision (read from the model): {m['precision']} ({detail.get('quantization_ops', 0)} quantization "
             f"ops; weight elements: {weights or 'none'})" if "weights" in detail else f"Precision: {m['precision']}"]
    if m["manifest"]:
        lines.append(f"Manifest: {m['manifest']['name']} {m['manifest']['version']}")
    for i in m["inputs"]:
        lines.append(f"Input '{i['name']}': {i['dtype']} {_dims(i['shape'])} ({i['source']})")
    lines.append("Outputs: " + ", ".join(f"{o['name']} {o['dtype']}" for o in m["outputs"]))
    lines += ["=== Settings in effect ===",
              f"Backend: {s['backend']} on {s['device']}; providers: {', '.join(s['providers'] or ['n/a'])}; "
              f"threads: {s['threads_effective']}; streams: {s['inf_streams']}",
              f"Warm-up: {fmt(s['warm_up_ms'])} ms; duration: {fmt(s['duration_s'])} s; iterations: "
              f"{s['iterations']}; average runs: {s['avg_runs']}; percentiles: "
              + ",".join(f"{p:g}" for p in s["percentiles"]),
              f"Data transfers: {s['data_transfers']}", f"CUDA graphs: {s['cuda_graphs']}",
              f"Phase timing: {mode} (host clock around the backend's own run)" if mode != "opaque" else
              "Phase timing: opaque (host clock around the whole call)",
              f"CPU: {env['cpu']} ({env['cpu_count']} usable cores)",
              "Libraries: " + ", ".join(f"{k} {v}" for k, v in env["libraries"].items() if v)]
    lines += [f"Note: {n}" for n in report["notes"]]
    cold, mem = report["cold"], report["memory"]
    lines += ["=== Cold start and memory ===",
              f"Session creation: {fmt(cold['session_creation_ms'])} ms",
              f"First inference: {fmt(cold['first_inference_ms'])} ms",
              f"Peak RSS: {fmt(mem['peak_rss_mib'])} MiB ({mem['peak_rss_scope']}); RSS before the session: "
              f"{fmt(mem['rss_before_session_mib'])} MiB; device memory: none (host backend)" if host else
              f"Peak RSS: {fmt(mem['peak_rss_mib'])} MiB ({mem['peak_rss_scope']}); device memory: "
              + (f"{fmt(mem['peak_device_mib'])} MiB ({mem['device_memory_measure']})"
                 if mem["peak_device_mib"] is not None else "not available"),
              "",
              f"Warmup completed {report['warmup']['queries']} queries over {fmt(report['warmup']['ms'])} ms",
              f"Timing trace has {t['queries']} queries over {fmt(t['walltime_s'])} s", "",
              "=== Trace details ===", f"Trace averages of {t['averages']['runs']} runs:"]
    for g in t["averages"]["groups"]:
        enqueue = f"{fmt(g['enqueue'])} ms" if t["enqueue"] is not None else "not measured"
        lines.append(f"Average on {t['averages']['runs']} runs - {gpu or 'compute '}latency: {fmt(g['compute'])} ms"
                     f" - Host latency: {fmt(g['latency'])} ms (enqueue {enqueue})")
    def phase_line(label: str, name: str) -> str:
        if t[name] is not None:
            return f"{label}: {metrics[name].format()}"
        if host and name in ("h2d", "d2h"):
            return f"{label}: {metrics[name].format()} (no transfers on the host)"
        where = "Compute Time" if name != "enqueue" else "the call"
        return f"{label}: not measured separately by backend {s['backend']} (inside {where})"

    lines += ["", "=== Performance summary ===",
              f"Throughput: {fmt(t['throughput_qps'])} qps",
              f"Latency: {metrics['latency'].format()}",
              phase_line("Enqueue Time", "enqueue"),
              phase_line("H2D Latency", "h2d"),
              f"{gpu}Compute Time: {metrics['compute'].format()}"
              + (" (includes transfers)" if mode == "opaque" and not host else ""),
              phase_line("D2H Latency", "d2h"),
              f"Total Host Walltime: {fmt(t['walltime_s'])} s",
              f"Total {gpu}Compute Time: {fmt(t['total_compute_s'])} s"]
    o = report["overhead"]
    if o["measured"]:
        lines.append(f"Runtime overhead: median = {fmt(o['median_ms'])} ms, mean = {fmt(o['mean_ms'])} ms per query "
                     f"({fmt(o['percent_of_compute'])}% of median compute; {o['definition']})")
    else:
        lines.append("Runtime overhead: not measured separately (this backend's timing has no separate run time)")
    lines.append(f"Runner.infer call: {metrics['call'].format()}")
    for w in report["warnings"]:
        lines += ["[W] " + part for part in w["message"].split("\n")]
    if verbose:
        lines += ["", "=== Explanations of the performance metrics ===",
                  "Total Host Walltime: from when the first query after the warm-up starts to when the last one ends.",
                  f"{gpu}Compute Time: the backend's own time to run a query"
                  + (" (ONNX Runtime's session.run)." if host else "."),
                  "Throughput: queries divided by Total Host Walltime.",
                  "Enqueue Time: host time the runtime spends on a query before the backend starts it.",
                  "H2D / D2H Latency: input / output transfers between host and device for one query"
                  + (" (none on a host backend)." if host else "."),
                  "Latency: H2D Latency + Compute Time + D2H Latency, the latency to infer a single query.",
                  "Runtime overhead: the Runner.infer call minus the backend's own time.",
                  "Runner: " + json.dumps(s["runner"], sort_keys=True)]
    return "\n".join(lines)


def passed_line(passed: bool, command: str) -> str:
    import edgevqa

    return f"&&&& {'PASSED' if passed else 'FAILED'} edgevqa.bench [edgevqa v{edgevqa.__version__}] # {command}"
