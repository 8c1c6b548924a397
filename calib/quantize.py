"""INT8 post-training quantization of an edgevqa model into one Q/DQ ONNX file that ONNX Runtime and TensorRT run.

The recipe is ONNX Runtime's static quantization (``onnxruntime.quantization.quantize_static`` with a
`CalibrationDataReader`) in QDQ format, with the choices TensorRT requires for explicit quantization
(TensorRT developer guide, "Working with Quantized Types"): signed int8 activations and weights, symmetric
ranges, so every zero point is 0. Weights may be quantized per output channel. Steps:

1. pre-process (``quant_pre_process``: shape inference and ORT's basic graph optimisations such as BN folding);
2. calibration inputs from videos, made by the inference pipeline itself (`edgevqa.calib.inputs`);
3. calibration (min/max, entropy or percentile ranges of every tensor), cached per method;
4. quantization, with ``--exclude`` nodes or op types kept in float;
5. the manifest carried over (plus a ``quantization`` record in its metadata);
6. the accuracy gate on held-out videos (`edgevqa.calib.gate`) and, on request or when the gate fails, the
   per-node sensitivity listing (`edgevqa.calib.sensitivity`).

A model that fails the gate is still written, but to ``<out>.gate-failed.onnx`` (never to ``--out``), so a
deployment step that picks up ``--out`` never gets a model that failed its check; the command exits with
`GATE_FAILED_EXIT`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import io
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from edgevqa.errors import EdgeVQAError, ModelError
from edgevqa.manifest import ModelManifest, embed_in_onnx, load_manifest, sidecar_path

from . import cache as calib_cache
from .gate import MIN_HOLDOUT_VIDEOS, GateResult, run_gate
from .inputs import CalibrationInputs, collect_inputs
from .videos import check_disjoint, resolve_video_set

METHODS = ("minmax", "entropy", "percentile")
DEFAULT_METHOD = "minmax"
DEFAULT_SAMPLES = 32
DEFAULT_MIN_SRCC = 0.99
DEFAULT_PERCENTILE = 99.999
DEFAULT_SENSITIVITY_TOP = 10
DEFAULT_SENSITIVITY_SAMPLES = 4
GATE_FAILED_EXIT = 3
GATE_FAILED_SUFFIX = ".gate-failed.onnx"
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


@dataclass
class QuantizeOptions:
    """Settings of one quantization run (the CLI flags of ``edgevqa quantize``)."""

    method: str = DEFAULT_METHOD
    per_channel: bool = False
    samples: int = DEFAULT_SAMPLES
    exclude: Sequence[str] = ()
    holdout: str | None = None
    min_srcc: float = DEFAULT_MIN_SRCC
    force: bool = False
    cache_dir: str | None = None
    use_cache: bool = True
    percentile: float = DEFAULT_PERCENTILE
    sensitivity: int | None = None  # None: list the worst DEFAULT_SENSITIVITY_TOP only when the gate fails
    sensitivity_samples: int = DEFAULT_SENSITIVITY_SAMPLES
    plan_mode: str = "default"
    threads: int | None = None
    cpu_layout: bool = True
    reduce_range: bool = False


@dataclass
class QuantizeReport:
    """What ``quantize_model`` did; ``written`` is the file written (``out``, or the gate-failed name)."""

    model: str
    out: str
    written: str
    options: dict[str, Any]
    calibration: dict[str, Any]
    qdq: dict[str, Any]
    excluded_nodes: list[str]
    gate: GateResult | None
    sensitivity: list[dict[str, Any]] | None
    seconds: dict[str, float]
    notes: list[str] = field(default_factory=list)

    @property
    def gate_passed(self) -> bool | None:
        return None if self.gate is None else self.gate.passed

    @property
    def exit_code(self) -> int:
        return GATE_FAILED_EXIT if self.gate_passed is False else 0

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "out": self.out, "written": self.written, "options": self.options,
                "calibration": self.calibration, "qdq": self.qdq, "excluded_nodes": self.excluded_nodes,
                "gate": self.gate.to_dict() if self.gate else None, "gate_passed": self.gate_passed,
                "sensitivity": self.sensitivity, "seconds": self.seconds, "notes": self.notes}

    def lines(self) -> list[str]:
        o = self.options
        weights = ("per-channel" if o["per_channel"] else "per-tensor") + (" 7-bit" if o["reduce_range"] else "")
        out = [f"quantized {self.model} -> {self.written}",
               f"  QDQ int8, symmetric (zero points 0), {weights} weights, {o['method']} calibration"]
        c = self.calibration
        inputs_state = "cache hit" if c["inputs_cache_hit"] else f"made in {c['inputs_seconds']:.1f} s"
        ranges_state = "cache hit" if c["ranges_cache_hit"] else "computed"
        out.append(f"  calibration: {c['samples']} sample(s) from {c['videos']} video(s) (inputs: {inputs_state}; "
                   f"ranges: {ranges_state})")
        q = self.qdq
        out.append(f"  graph: {q['quantized_nodes']} of {q['compute_nodes']} nodes quantized, "
                   f"{q['QuantizeLinear']} QuantizeLinear, {q['DequantizeLinear']} DequantizeLinear, zero points "
                   f"{'all 0' if q['zero_points_all_zero'] else 'NOT all 0'}")
        if self.excluded_nodes:
            shown = ", ".join(self.excluded_nodes[:8]) + (" ..." if len(self.excluded_nodes) > 8 else "")
            out.append(f"  kept in float (--exclude): {len(self.excluded_nodes)} node(s): {shown}")
        if self.gate is None:
            out.append("  accuracy gate: NOT RUN (give --holdout VIDEOS to compare INT8 with FP32 scores)")
        else:
            g = self.gate
            out.append(f"  accuracy gate on {len(g.videos)} held-out video(s), SRCC >= {g.min_srcc:g} per dimension:")
            for name in g.srcc:
                srcc = g.srcc[name]
                srcc_text = "undefined" if srcc != srcc else f"{srcc:.4f}"
                out.append(f"    {name:<12} SRCC {srcc_text}  max|diff| {g.max_abs_diff[name]:.4g}  "
                           f"mean|diff| {g.mean_abs_diff[name]:.4g}")
            out.append("  gate: PASSED" if g.passed else f"  gate: FAILED ({'; '.join(g.failures)})")
        if self.sensitivity:
            out.append(f"  sensitivity: worst {len(self.sensitivity)} node(s) when only that node is quantized "
                       f"(mean / max |score diff| over {self.calibration['sensitivity_samples']} calibration "
                       f"sample(s); keep one in float with --exclude NAME):")
            for rank, row in enumerate(self.sensitivity, start=1):
                out.append(f"    {rank:>2}. {row['node']} ({row['op_type']})  mean {row['mean_abs_score_diff']:.4g}  "
                           f"max {row['max_abs_score_diff']:.4g}")
        for note in self.notes:
            out.append(f"  note: {note}")
        if self.gate_passed is False:
            out.append(f"  NOT written to {self.out}: the model failed the accuracy gate; it was written to "
                       f"{self.written} for inspection")
        return out


# ------------------------------------------------------------------------------------------------- helpers


def cpu_has_vnni() -> bool:
    """Whether this (Linux, x86) CPU advertises VNNI; True when it cannot tell, so no hint is given blindly."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return "avx2" not in flags or bool(flags & {"avx512_vnni", "avx_vnni"})
    except OSError:
        pass
    return True


def file_sha256(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def gate_failed_path(out: str) -> str:
    """Where a model that failed the accuracy gate is written: ``x.int8.onnx`` -> ``x.int8.gate-failed.onnx``."""
    stem = out[:-5] if out.lower().endswith(".onnx") else out
    return stem + GATE_FAILED_SUFFIX


@contextlib.contextmanager
def _quiet_quantizer():
    """ONNX Runtime's quantization tools log through the root logger and print progress; keep our output to
    the report (errors still raise)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def preprocess(model_path: str, out_path: str, notes: list[str]) -> str:
    """``quant_pre_process`` into ``out_path``: symbolic shape inference when it works (it fails on some exported
    graphs), else ONNX shape inference only; returns the path of the model to calibrate."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    attempts = ({}, {"skip_symbolic_shape": True}, {"skip_symbolic_shape": True, "skip_optimization": True})
    last: Exception | None = None
    for extra in attempts:
        try:
            with _quiet_quantizer():
                quant_pre_process(model_path, out_path, **extra)
            if extra.get("skip_optimization"):
                notes.append("pre-processing ran without ONNX Runtime's graph optimisation (it failed on this graph)")
            return out_path
        except Exception as exc:  # the pre-processors raise assorted types on graphs they cannot handle
            last = exc
    notes.append(f"pre-processing failed ({type(last).__name__}: {str(last).splitlines()[0][:120] if str(last) else ''}); "
                 f"quantizing the model as exported")
    shutil.copyfile(model_path, out_path)
    return out_path


def _preprocessed(model_path: str, model_hash: str, cache_dir: str | None, work_dir: str, notes: list[str]) -> str:
    """The pre-processed model's path, from the cache when it holds one for these bytes."""
    import onnx
    import onnxruntime

    if cache_dir is None:
        return preprocess(model_path, os.path.join(work_dir, "preprocessed.onnx"), notes)
    key = calib_cache.cache_key("preprocessed", {"model": model_hash, "onnxruntime": onnxruntime.__version__,
                                                 "onnx": onnx.__version__})
    cached = os.path.join(cache_dir, f"preprocessed-{key}.onnx")
    if not os.path.isfile(cached):
        staged = preprocess(model_path, os.path.join(work_dir, "preprocessed.onnx"), notes)
        fd, tmp = tempfile.mkstemp(prefix=".preprocessed-", suffix=".onnx", dir=cache_dir)
        os.close(fd)
        shutil.copyfile(staged, tmp)
        os.replace(tmp, cached)
    return cached


def compute_nodes(model: Any) -> list[Any]:
    return [n for n in model.graph.node if n.op_type not in QDQ_OPS]


def resolve_exclusions(model: Any, items: Sequence[str]) -> list[str]:
    """Node names for ``--exclude`` items, each a node name or an op type of the (pre-processed) model."""
    nodes = compute_nodes(model)
    names = {n.name for n in nodes}
    op_types = sorted({n.op_type for n in nodes})
    excluded: list[str] = []
    for item in items:
        if item in names:
            chosen = [item]
        elif item in op_types:
            chosen = [n.name for n in nodes if n.op_type == item]
        else:
            raise EdgeVQAError(f"--exclude {item}: no node or op type of that name in the model (op types: "
                               f"{', '.join(op_types)}; node names are those the sensitivity listing prints)")
        excluded.extend(c for c in chosen if c not in excluded)
    return excluded


def qdq_summary(model: Any) -> dict[str, Any]:
    """Counts of Q/DQ nodes, which nodes read dequantized tensors, and whether every zero point is 0."""
    from onnx import numpy_helper

    initializers = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    counts = {op: 0 for op in QDQ_OPS}
    zero_points_zero = True
    quantized_types: set[str] = set()
    for node in model.graph.node:
        if node.op_type not in QDQ_OPS:
            continue
        counts[node.op_type] += 1
        quantized_input = node.input[0] if node.op_type == "DequantizeLinear" else node.output[0]
        if len(node.input) > 2 and node.input[2]:
            zp = initializers.get(node.input[2])
            if zp is None or np.any(numpy_helper.to_array(zp) != 0):
                zero_points_zero = False
            if zp is not None:
                quantized_types.add(numpy_helper.to_array(zp).dtype.name)
        elif quantized_input in initializers:
            quantized_types.add(numpy_helper.to_array(initializers[quantized_input]).dtype.name)
    quantized = [n for n in compute_nodes(model)
                 if any(producers.get(i) is not None and producers[i].op_type == "DequantizeLinear" for i in n.input)]
    return {
        "QuantizeLinear": counts["QuantizeLinear"], "DequantizeLinear": counts["DequantizeLinear"],
        "zero_points_all_zero": zero_points_zero, "quantized_types": sorted(quantized_types),
        "compute_nodes": len(compute_nodes(model)), "quantized_nodes": len(quantized),
        "quantized": [(n.name, n.op_type) for n in quantized],
    }


def _calibration_method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[name]


def quantize_static_qdq(pre_path: str, out_path: str, inputs: CalibrationInputs, options: QuantizeOptions,
                        ranges_path: str, nodes_to_quantize: Sequence[str] | None = None,
                        nodes_to_exclude: Sequence[str] | None = None) -> bool:
    """Run ``quantize_static`` (QDQ, symmetric int8 everywhere); returns True when the calibration ranges came
    from ``ranges_path`` instead of being computed (and stores them there when computed)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    extra_options: dict[str, Any] = {"ActivationSymmetric": True, "WeightSymmetric": True}
    if options.method == "percentile":
        extra_options["CalibPercentile"] = float(options.percentile)
    kwargs: dict[str, Any] = {}
    cache_supported = "calibration_cache_path" in inspect.signature(quantize_static).parameters
    hit = cache_supported and os.path.isfile(ranges_path)
    if cache_supported:
        kwargs["calibration_cache_path"] = ranges_path
    with _quiet_quantizer():
        quantize_static(pre_path, out_path, inputs.reader(), quant_format=QuantFormat.QDQ,
                        per_channel=bool(options.per_channel), reduce_range=bool(options.reduce_range),
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        nodes_to_quantize=list(nodes_to_quantize or []), nodes_to_exclude=list(nodes_to_exclude or []),
                        calibrate_method=_calibration_method(options.method), extra_options=extra_options, **kwargs)
    return hit


def _check_out_path(out: str, model_path: str, force: bool) -> None:
    if os.path.isdir(out):
        raise EdgeVQAError(f"--out {out}: is a folder; give the .onnx file to write")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise EdgeVQAError(f"--out {out}: the folder {parent} does not exist")
    same = os.path.abspath(out) == os.path.abspath(model_path) or (
        os.path.exists(out) and os.path.samefile(out, model_path))
    if same:
        raise EdgeVQAError(f"--out {out}: is the input model; the input is never overwritten, choose another name")
    for path in (out, gate_failed_path(out)):
        if os.path.exists(path) and not force:
            raise EdgeVQAError(f"{path}: exists; refusing to overwrite it (use --force)")


def _load_model_and_manifest(model_path: str) -> tuple[ModelManifest, str]:
    if not os.path.exists(model_path):
        raise ModelError(f"{model_path}: no such model file")
    if os.path.isdir(model_path):
        raise ModelError(f"{model_path}: is a folder, not a model file")
    if not model_path.lower().endswith(".onnx"):
        raise ModelError(f"{model_path}: not an .onnx file (quantize the FP32 ONNX export)")
    manifest = load_manifest(model_path)
    half = [v.name for v in manifest.views if v.dtype != "float32"]
    if half:
        raise ModelError(f"{model_path}: inputs {half} are {manifest.views[0].dtype}; quantize the FP32 export, "
                         f"not an FP16 one")
    return manifest, file_sha256(model_path)


def _save_atomic(model: Any, path: str, force: bool) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".edgevqa-quantize-", suffix=".onnx", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(model.SerializeToString())
        if os.path.exists(path) and not force:
            raise EdgeVQAError(f"{path}: appeared while quantizing; refusing to overwrite it (use --force)")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# ------------------------------------------------------------------------------------------------- entry point


def quantize_model(model: str | os.PathLike, calib: str | os.PathLike, out: str | os.PathLike,
                   options: QuantizeOptions | None = None) -> QuantizeReport:
    """Quantize ``model`` (FP32 ONNX with a manifest) to a Q/DQ INT8 ONNX at ``out``, calibrated on the videos
    ``calib`` names; see the module docstring. Raises `EdgeVQAError` on bad input; a failed accuracy gate is
    not an exception: the report says so (``report.exit_code``)."""
    import onnx

    options = options or QuantizeOptions()
    model_path, out_path = os.fspath(model), os.fspath(out)
    if options.method not in METHODS:
        raise EdgeVQAError(f"--method must be one of {', '.join(METHODS)}, got {options.method!r}")
    if options.samples < 1:
        raise EdgeVQAError(f"--samples must be at least 1, got {options.samples}")
    if options.method == "percentile" and not 50.0 < options.percentile <= 100.0:
        raise EdgeVQAError(f"--percentile must be in (50, 100], got {options.percentile}")
    seconds: dict[str, float] = {}
    notes: list[str] = []
    t_all = time.perf_counter()

    manifest, model_hash = _load_model_and_manifest(model_path)
    _check_out_path(out_path, model_path, options.force)
    calibration_videos = resolve_video_set(calib, "--calib")
    holdout_videos = None
    if options.holdout is not None:
        holdout_videos = resolve_video_set(options.holdout, "--holdout")
        check_disjoint(calibration_videos, holdout_videos)
        if len(holdout_videos) < MIN_HOLDOUT_VIDEOS:
            raise EdgeVQAError(f"--holdout {options.holdout}: the accuracy gate needs at least {MIN_HOLDOUT_VIDEOS} "
                               f"held-out videos (rank correlation over fewer says nothing), got {len(holdout_videos)}")
    if os.path.exists(sidecar_path(out_path)):
        notes.append(f"{sidecar_path(out_path)} exists and overrides the manifest embedded in {out_path}; remove it "
                     f"unless it is meant for the INT8 model")

    if options.per_channel and not options.reduce_range and not cpu_has_vnni():
        notes.append("this CPU has no VNNI: ONNX Runtime's int8 kernels add weight pairs in int16 and saturate with "
                     "full-range per-channel weights, so CPU scores can drift; add --reduce-range for CPU use")
    cache_dir = None
    if options.use_cache:
        cache_dir = calib_cache.ensure_cache_dir(options.cache_dir or calib_cache.default_cache_dir())
    work_dir = tempfile.mkdtemp(prefix="edgevqa-quantize-")
    try:
        t0 = time.perf_counter()
        pre_path = _preprocessed(model_path, model_hash, cache_dir, work_dir, notes)
        pre_model = onnx.load(pre_path)
        excluded = resolve_exclusions(pre_model, options.exclude)
        if options.cpu_layout:
            from .layout import relu_as_leaky_relu

            if relu_as_leaky_relu(pre_model):
                pre_path = os.path.join(work_dir, "preprocessed-cpu-layout.onnx")
                onnx.save(pre_model, pre_path)
        seconds["preprocess"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        inputs = collect_inputs(model_path, manifest, calibration_videos, options.samples, options.plan_mode,
                                cache_dir=cache_dir, work_dir=work_dir)
        notes.extend(inputs.notes)
        seconds["inputs"] = time.perf_counter() - t0

        import onnxruntime

        ranges_key = calib_cache.cache_key("calibration-ranges", {
            "model": model_hash, "inputs": inputs.key, "method": options.method,
            "percentile": options.percentile if options.method == "percentile" else None,
            "onnxruntime": onnxruntime.__version__, "cpu_layout": bool(options.cpu_layout),
        })
        ranges_path = os.path.join(cache_dir or work_dir, f"ranges-{ranges_key}.json")
        t0 = time.perf_counter()
        qdq_path = os.path.join(work_dir, "qdq.onnx")
        ranges_hit = quantize_static_qdq(pre_path, qdq_path, inputs, options, ranges_path, nodes_to_exclude=excluded)
        seconds["calibrate_quantize"] = time.perf_counter() - t0

        qdq_model = onnx.load(qdq_path)
        from .layout import float_graph_outputs

        float_graph_outputs(qdq_model)
        quantized_nodes = qdq_summary(qdq_model)["quantized"]
        unsplit_model = onnx.ModelProto()
        unsplit_model.CopyFrom(qdq_model)
        if options.cpu_layout:
            from .layout import split_shared_quantizers

            split_shared_quantizers(qdq_model)
        summary = qdq_summary(qdq_model)
        if not summary["zero_points_all_zero"]:
            raise RuntimeError("internal error: the quantizer produced non-zero zero points despite symmetric "
                               "settings")
        record = {"method": options.method, "per_channel": bool(options.per_channel),
                  "reduce_range": bool(options.reduce_range), "cpu_layout": bool(options.cpu_layout), "activations": "int8",
                  "weights": "int8", "symmetric": True, "samples": inputs.count,
                  "calibration_videos": len(calibration_videos), "excluded_nodes": excluded,
                  "source_sha256": model_hash}
        int8_manifest = dataclasses.replace(manifest, metadata={**dict(manifest.metadata), "quantization": record})
        embed_in_onnx(qdq_model, int8_manifest)
        staged = os.path.join(work_dir, "int8.onnx")
        onnx.save(qdq_model, staged)

        gate = None
        if holdout_videos is not None:
            t0 = time.perf_counter()
            gate = run_gate(model_path, staged, [v.path for v in holdout_videos], options.min_srcc,
                            threads=options.threads, plan_mode=options.plan_mode)
            seconds["gate"] = time.perf_counter() - t0
            record["gate"] = {"passed": gate.passed, "min_srcc": gate.min_srcc, "videos": len(gate.videos),
                              "srcc": {k: (None if v != v else round(v, 6)) for k, v in gate.srcc.items()},
                              "max_abs_diff": {k: round(v, 6) for k, v in gate.max_abs_diff.items()}}
            int8_manifest = dataclasses.replace(manifest, metadata={**dict(manifest.metadata), "quantization": record})
            embed_in_onnx(qdq_model, int8_manifest)

        sensitivity = None
        top = options.sensitivity
        if top is None and gate is not None and not gate.passed:
            top = DEFAULT_SENSITIVITY_TOP
        if top:
            from .sensitivity import node_sensitivity

            t0 = time.perf_counter()
            feeds = list(inputs.feeds(inputs.spread(options.sensitivity_samples)))
            sensitivity = node_sensitivity(unsplit_model, pre_model, quantized_nodes, manifest, feeds, top, excluded,
                                           options.threads)
            seconds["sensitivity"] = time.perf_counter() - t0

        written = out_path if gate is None or gate.passed else gate_failed_path(out_path)
        _save_atomic(qdq_model, written, options.force)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    seconds["total"] = time.perf_counter() - t_all

    summary.pop("quantized")
    calibration = {"videos": len(calibration_videos), "samples": inputs.count, "requested_samples": options.samples,
                   "inputs_cache_hit": inputs.cache_hit, "inputs_seconds": inputs.seconds,
                   "ranges_cache_hit": ranges_hit, "cache_dir": cache_dir,
                   "sensitivity_samples": len(inputs.spread(options.sensitivity_samples)),
                   "sources": inputs.sources}
    opts = {"method": options.method, "per_channel": bool(options.per_channel),
            "reduce_range": bool(options.reduce_range), "samples": options.samples,
            "exclude": list(options.exclude), "min_srcc": options.min_srcc, "cpu_layout": options.cpu_layout,
            "percentile": options.percentile if options.method == "percentile" else None}
    return QuantizeReport(model=model_path, out=out_path, written=written, options=opts, calibration=calibration,
                          qdq=summary, excluded_nodes=excluded, gate=gate, sensitivity=sensitivity, seconds=seconds,
                          notes=notes)
