"""Export a zoo model to one self-contained ONNX file (FP32 or FP16), checked for parity before it is written.

Steps: build or load the model -> fold every BatchNorm into its conv -> ``torch.onnx.export`` (the
``torch.export``-based exporter, dynamic clip axis) -> embed the manifest -> ``onnx.checker`` -> run the graph
in ONNX Runtime CPU on random and (optionally) real inputs and compare with the *unfused* torch FP32 model ->
write the file only when every output is within the gate.

FP16: the model is converted to half precision in torch before export, so the graph carries FP16 weights and
activations; numerically fragile parts (SimpleVQA's mean/std pooling) cast to FP32 inside the model code. Input
and output tensors stay FP32 (casts at the graph boundary) unless ``io_dtype='float16'``.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from edgevqa.errors import ModelError
from edgevqa.manifest import ModelManifest, embed_in_onnx

from .parity import FP16_GATE, FP32_GATE, ParityResult, compare_outputs, random_inputs, video_inputs

DEFAULT_OPSET = 18
_TWO_GB = 2 * 1024 ** 3


class ParityError(ModelError):
    """The exported graph's outputs differ from the torch model's by more than the gate."""


@dataclass
class ExportReport:
    """What an export produced and how well it matches the torch model."""

    path: str
    model_name: str
    manifest: ModelManifest
    fp16: bool
    io_dtype: str
    opset: int
    dynamic_clips: bool
    parameters: int
    graph_weights: int
    macs_per_video: int
    macs_unresolved: list[str]
    file_bytes: int
    ops: list[str]
    tensorrt_problems: list[str]
    parity: list[ParityResult]
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def gmacs_per_video(self) -> float:
        return self.macs_per_video / 1e9

    @property
    def parity_passed(self) -> bool:
        return all(r.passed for r in self.parity)

    def worst_parity(self) -> ParityResult | None:
        return max(self.parity, key=lambda r: r.relative_error, default=None)

    def summary_lines(self) -> list[str]:
        clips = self.manifest.views[0].num_clips
        lines = [
            f"exported {self.model_name} -> {self.path}",
            f"  precision {'FP16' if self.fp16 else 'FP32'} (inputs/outputs {self.io_dtype}), opset {self.opset}, "
            f"clip axis {'dynamic' if self.dynamic_clips else 'static'}",
            f"  parameters {self.parameters / 1e6:.2f} M (graph weights {self.graph_weights / 1e6:.2f} M), "
            f"file {self.file_bytes / 1e6:.1f} MB",
            f"  {self.gmacs_per_video:.2f} GMACs per video ({clips} clip(s); Conv/Gemm/MatMul counted from the graph)",
        ]
        for view in self.manifest.views:
            lines.append(f"  input '{view.name}': {list(view.input_shape())} {view.dtype} ({view.kind})")
        for r in self.parity:
            lines.append(f"  parity {r.inputs:<14} {r.output:<9} max|diff| {r.max_abs_error:.3g}  "
                         f"relative {r.relative_error:.3g} (gate {r.gate:g})  {'ok' if r.passed else 'FAILED'}")
        if self.tensorrt_problems:
            lines.append(f"  TensorRT parser: {len(self.tensorrt_problems)} problem(s): "
                         f"{'; '.join(self.tensorrt_problems[:3])}")
        else:
            lines.append("  TensorRT parser: every operator is in its support matrix")
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "model": self.model_name, "fp16": self.fp16, "io_dtype": self.io_dtype,
                "opset": self.opset, "dynamic_clips": self.dynamic_clips, "parameters": self.parameters,
                "graph_weights": self.graph_weights, "gmacs_per_video": self.gmacs_per_video,
                "file_bytes": self.file_bytes, "ops": self.ops, "tensorrt_problems": self.tensorrt_problems,
                "parity": [r.to_dict() for r in self.parity], "seconds": self.seconds, "warnings": self.warnings,
                "manifest": self.manifest.to_dict()}


# --------------------------------------------------------------------------------------------- helpers


def resolve_model(model_or_name: Any, model_kwargs: Mapping[str, Any] | None = None, frames: int | None = None,
                  arch: str | None = None, motion_weights: str | os.PathLike | None = None):
    """A zoo name, a checkpoint path or an ``nn.Module`` with a ``manifest`` -> (module in eval mode, manifest)."""
    from torch import nn

    from .checkpoint import load_checkpoint
    from .models import create_model, list_models

    kwargs = dict(model_kwargs or {})
    if frames is not None:
        kwargs["frames"] = int(frames)
    if isinstance(model_or_name, nn.Module):
        if kwargs or motion_weights is not None:
            raise ModelError("frames / model kwargs / motion weights apply to a model name or checkpoint, not to "
                             "a built module")
        manifest = getattr(model_or_name, "manifest", None)
        if not isinstance(manifest, ModelManifest):
            raise ModelError(f"{type(model_or_name).__name__} has no 'manifest' (ModelManifest) attribute; build "
                             "it with edgevqa.export.models.create_model or set one")
        return model_or_name.eval(), manifest
    text = os.fspath(model_or_name)
    if text in list_models():
        if motion_weights is not None:
            raise ModelError("motion weights go with an official SimpleVQA checkpoint, not with a bare model name")
        model = create_model(text, **kwargs)
    elif os.path.exists(text):
        model = load_checkpoint(text, arch, motion_weights, **kwargs)
    else:
        raise ModelError(f"'{text}' is neither a model name ({', '.join(list_models())}) nor an existing "
                         f"checkpoint file")
    return model.eval(), model.manifest


class _ExportWrapper:
    """Factory for the module actually traced: positional inputs in view order, a tuple of outputs in manifest
    order, dtype casts at the boundary."""

    @staticmethod
    def build(model: Any, manifest: ModelManifest, compute_dtype: Any, io_dtype: Any):
        import torch
        from torch import nn

        outputs = tuple(manifest.outputs)

        class ExportWrapper(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *inputs: torch.Tensor):
                result = self.model(*[x.to(compute_dtype) for x in inputs])
                return tuple(result[name].to(io_dtype) for name in outputs)

        return ExportWrapper().eval()


def _torch_outputs(model: Any, manifest: ModelManifest, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    import torch

    with torch.inference_mode():
        result = model(*[torch.from_numpy(np.ascontiguousarray(feed[v.name], dtype=np.float32))
                         for v in manifest.views])
    missing = [n for n in manifest.outputs if n not in result]
    if missing:
        raise ModelError(f"model '{manifest.name}' does not return outputs {missing} named by its manifest")
    return {name: result[name].float().numpy() for name in manifest.outputs}


def _ort_outputs(session: Any, manifest: ModelManifest, feed: Mapping[str, np.ndarray], io_dtype: str):
    values = session.run(list(manifest.outputs), {k: np.ascontiguousarray(v, dtype=io_dtype) for k, v in feed.items()})
    return dict(zip(manifest.outputs, values))


def _trace_to_onnx(wrapper: Any, example: Sequence[Any], manifest: ModelManifest, opset: int,
                   dynamic: bool) -> Any:
    import torch

    kwargs: dict[str, Any] = dict(input_names=[v.name for v in manifest.views], output_names=list(manifest.outputs),
                                  opset_version=opset, dynamo=True, external_data=False, verbose=False)
    if dynamic:
        clips = torch.export.Dim("clips", min=1, max=4096)
        # forward(*inputs): one positional parameter holding a tuple, hence the nesting.
        kwargs["dynamic_shapes"] = (tuple({0: clips} for _ in manifest.views),)
    with warnings.catch_warnings():
        # torch.export's internals emit deprecation chatter that says nothing about the user's model.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)  # e.g. "axis name clips shares constraints with clips"
        program = torch.onnx.export(wrapper, tuple(example), **kwargs)
    return program.model_proto


# --------------------------------------------------------------------------------------------- entry point


def export_onnx(model_or_name: Any, out_path: str | os.PathLike, *, fp16: bool = False, io_dtype: str | None = None,
                opset: int = DEFAULT_OPSET, frames: int | None = None, model_kwargs: Mapping[str, Any] | None = None,
                arch: str | None = None, motion_weights: str | os.PathLike | None = None,
                parity_video: str | os.PathLike | None = None,
                parity_clips: int | None = None, gate: float | None = None, seed: int = 0,
                force: bool = False, dynamic: bool = True, sample_bit_depth: int | None = None,
                frame_rate: float | None = None) -> ExportReport:
    """Export ``model_or_name`` (zoo name, checkpoint path, or ``nn.Module`` with a ``manifest``) to ``out_path``.

    ``frames`` and ``model_kwargs`` rebuild a named or checkpointed model for another input (``frames``: frames
    per clip for ATHQA, seconds for SimpleVQA); ``arch`` names the variant of a bare state dict;
    ``motion_weights`` is pytorchvideo's SlowFast checkpoint for an official SimpleVQA one.

    ``fp16`` writes an FP16 graph; ``io_dtype`` ('float32' default, or 'float16') sets its input/output type.
    Parity (ONNX Runtime CPU vs unfused torch FP32) runs on seeded random inputs with ``parity_clips`` clips
    (default: the manifest's) and, when ``parity_video`` is given, on that video's real inputs; a relative error
    above ``gate`` (default 1e-4 FP32, 5e-2 FP16) raises `ParityError` and nothing is written. An existing
    ``out_path`` raises `ModelError` unless ``force``. ``sample_bit_depth`` goes into the manifest: the sample
    precision the model was trained on (8 for a model that only saw 8-bit video), to which deeper video is
    rounded before sampling; so does ``frame_rate``: the rate whose motion between frames the model learnt, video
    at about k times it being read every k-th frame (`edgevqa.sampling.frame_stride`).
    """
    import onnx
    import onnxruntime as ort
    import torch

    from .graph import count_macs, op_types, tensorrt_unsupported, weight_count
    from .models.layers import count_parameters, fuse_model

    out_path = os.fspath(out_path)
    if os.path.isdir(out_path):
        raise ModelError(f"{out_path}: is a directory; give the .onnx file to write")
    if os.path.exists(out_path) and not force:
        raise ModelError(f"{out_path}: exists; refusing to overwrite it (use --force / force=True)")
    parent = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(parent):
        raise ModelError(f"{out_path}: the folder {parent} does not exist")
    io_dtype = io_dtype or "float32"
    if io_dtype not in ("float32", "float16"):
        raise ModelError(f"io_dtype must be 'float32' or 'float16', got {io_dtype!r}")
    if io_dtype == "float16" and not fp16:
        raise ModelError("FP16 inputs/outputs need an FP16 export (--fp16 / fp16=True)")
    if not 18 <= int(opset) <= 23:
        # torch's exporter writes opset 18 natively; converting down fails on ReduceMean's axes input.
        raise ModelError(f"opset {opset} is outside the range this exporter writes, 18..23 (TensorRT 10 parses "
                         f"opsets up to 20)")
    gate = float(gate) if gate is not None else (FP16_GATE if fp16 else FP32_GATE)

    seconds: dict[str, float] = {}
    notes: list[str] = []
    t0 = time.perf_counter()
    model, manifest = resolve_model(model_or_name, model_kwargs, frames, arch, motion_weights)
    model.eval()
    name = getattr(model, "model_name", manifest.name)
    out_manifest = manifest.with_views(dtype=io_dtype) if io_dtype != "float32" else manifest
    if sample_bit_depth is not None:
        out_manifest = replace(out_manifest, sample_bit_depth=sample_bit_depth)
    if frame_rate is not None:
        out_manifest = replace(out_manifest, frame_rate=frame_rate)
    parameters = count_parameters(model)

    deploy = fuse_model(copy.deepcopy(model)).eval()
    compute_dtype = torch.float16 if fp16 else torch.float32
    if fp16:
        deploy = deploy.half()
    wrapper = _ExportWrapper.build(deploy, manifest, compute_dtype,
                                   torch.float16 if io_dtype == "float16" else torch.float32)
    # Two example clips: the exporter specialises axes of size 1, which would defeat the dynamic clip axis.
    example_clips = 2 if dynamic else (parity_clips or manifest.views[0].num_clips)
    example = [torch.zeros(v.input_shape(example_clips), dtype=torch.float16 if io_dtype == "float16"
                           else torch.float32) for v in manifest.views]
    seconds["prepare"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    dynamic_clips = dynamic
    try:
        proto = _trace_to_onnx(wrapper, example, manifest, int(opset), dynamic)
    except Exception as exc:
        if not dynamic:
            raise
        # Some models fix the clip count (e.g. a reshape with a literal batch); export them static.
        notes.append(f"dynamic clip axis failed ({type(exc).__name__}); exported with a static one")
        dynamic_clips = False
        example = [torch.zeros(v.input_shape(parity_clips or v.num_clips), dtype=example[0].dtype)
                   for v in manifest.views]
        proto = _trace_to_onnx(wrapper, example, manifest, int(opset), False)
    seconds["export"] = time.perf_counter() - t0

    written = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if written != int(opset):
        raise ModelError(f"model '{name}': asked for opset {opset}, the exporter wrote {written}")
    if int(opset) > 20:
        notes.append(f"opset {opset}: TensorRT 10 parses opsets up to 20")
    proto.producer_name = "edgevqa"
    embed_in_onnx(proto, out_manifest)
    if proto.ByteSize() >= _TWO_GB:
        raise ModelError(f"model '{name}' is over 2 GB serialised; a single-file ONNX cannot hold it")
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"model '{name}': the exported graph fails onnx.checker ({str(exc).splitlines()[0]})") from exc
    batch_dims = [inp.type.tensor_type.shape.dim[0] for inp in proto.graph.input]
    dynamic_clips = dynamic_clips and all(d.HasField("dim_param") for d in batch_dims)
    data = proto.SerializeToString()

    t0 = time.perf_counter()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    clips = parity_clips or manifest.views[0].num_clips
    if not dynamic_clips and clips != example[0].shape[0]:
        clips = int(example[0].shape[0])
    feeds = [("random", random_inputs(manifest, clips, seed))]
    if parity_video is not None:
        feeds.append((f"video:{os.path.basename(os.fspath(parity_video))}",
                      video_inputs(manifest, parity_video, seed=None)))
    parity: list[ParityResult] = []
    for label, feed in feeds:
        if io_dtype == "float16":
            # Compare like with like: the torch reference sees the same rounded inputs as the FP16 graph.
            feed = {k: v.astype(np.float16).astype(np.float32) for k, v in feed.items()}
        reference = _torch_outputs(model, manifest, feed)
        candidate = _ort_outputs(session, manifest, feed, io_dtype)
        parity.extend(compare_outputs(label, reference, candidate, gate))
    seconds["parity"] = time.perf_counter() - t0

    macs, unresolved = count_macs(proto, manifest.views[0].num_clips)
    if unresolved:
        notes.append(f"{len(unresolved)} Conv/Gemm/MatMul node(s) have unresolved shapes and are not in the "
                        f"MAC count")
    report = ExportReport(path=out_path, model_name=name, manifest=out_manifest, fp16=fp16, io_dtype=io_dtype,
                          opset=int(opset), dynamic_clips=dynamic_clips, parameters=parameters,
                          graph_weights=weight_count(proto), macs_per_video=macs, macs_unresolved=unresolved,
                          file_bytes=len(data), ops=op_types(proto), tensorrt_problems=tensorrt_unsupported(proto),
                          parity=parity, seconds=seconds, warnings=notes)
    failed = [r for r in parity if not r.passed]
    if failed:
        worst = max(failed, key=lambda r: r.relative_error)
        raise ParityError(f"{out_path}: not written: ONNX Runtime disagrees with torch on output '{worst.output}' "
                          f"({worst.inputs} inputs): relative error {worst.relative_error:.3g} > gate {gate:g} "
                          f"(max|diff| {worst.max_abs_error:.3g}); {len(failed)} output(s) over the gate")

    fd, tmp = tempfile.mkstemp(prefix=".edgevqa-export-", suffix=".onnx", dir=parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if os.path.exists(out_path) and not force:
            raise ModelError(f"{out_path}: appeared while exporting; refusing to overwrite it")
        os.replace(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return report
