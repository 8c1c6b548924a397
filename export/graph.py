"""Facts read off an exported ONNX graph: operator set, TensorRT parser support, multiply-accumulate count.

The TensorRT operator list restates the support matrix of the ONNX-TensorRT parser
(``onnx/onnx-tensorrt``, ``docs/operators.md``, TensorRT 8.5 / opsets up to 17, the oldest parser we target;
TensorRT 10 supports opsets 9..20 and only adds operators). Only operators marked supported there are listed,
so a graph that passes this check parses on every TensorRT from 8.5 on.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

# Operators the ONNX-TensorRT parser documents as supported (docs/operators.md, TensorRT 8.5).
TENSORRT_SUPPORTED_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Celu Clip
Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div Dropout
Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gemm GlobalAveragePool
GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GRU HardSwish HardSigmoid Identity If ImageScaler
InstanceNormalization IsNaN LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool
MatMul Max MaxPool Mean MeanVarianceNormalization Min Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad
ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range
Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum
ReduceSumSquare Relu Reshape Resize ReverseSequence RNN RoiAlign Round ScaledTanh Scan Scatter ScatterElements
ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt
Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

# Documented restrictions we can check statically: convolution and pooling are 2-D or 3-D only; convolution
# weights, and the axes of Slice / Squeeze / Unsqueeze, must be constants (initializers or Constant outputs).
_SPATIAL_ONLY_2D_3D = frozenset({"Conv", "ConvTranspose", "AveragePool", "MaxPool"})
_CONSTANT_INPUTS = {"Conv": (1, "weights"), "ConvTranspose": (1, "weights"), "Slice": (3, "axes"),
                    "Squeeze": (1, "axes"), "Unsqueeze": (1, "axes")}


def op_types(model: Any) -> list[str]:
    """Sorted distinct operator types of the main graph and every subgraph (domain-qualified if not ONNX)."""
    found: set[str] = set()

    def walk(graph: Any) -> None:
        for node in graph.node:
            found.add(node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}")
            for attr in node.attribute:
                if attr.g.node:
                    walk(attr.g)
                for g in attr.graphs:
                    walk(g)

    walk(model.graph)
    return sorted(found)


def tensorrt_unsupported(model: Any) -> list[str]:
    """Human-readable reasons why TensorRT's ONNX parser would reject ``model``; empty when it would not."""
    problems = [f"operator {op} is not in the ONNX-TensorRT support matrix" for op in op_types(model)
                if op not in TENSORRT_SUPPORTED_OPS]
    initializers = {init.name for init in model.graph.initializer}
    constants = {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    weight_ranks = {init.name: len(init.dims) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in _SPATIAL_ONLY_2D_3D:
            kernel = next((len(a.ints) for a in node.attribute if a.name == "kernel_shape"), None)
            if kernel is None and node.op_type.startswith("Conv") and node.input[1] in weight_ranks:
                kernel = weight_ranks[node.input[1]] - 2
            if kernel is not None and kernel not in (2, 3):
                problems.append(f"{node.op_type} '{node.name}' is {kernel}-D; TensorRT takes 2-D or 3-D")
        if node.op_type in _CONSTANT_INPUTS:
            index, what = _CONSTANT_INPUTS[node.op_type]
            name = node.input[index] if len(node.input) > index else ""
            if name and name not in initializers and name not in constants:
                problems.append(f"{node.op_type} '{node.name}' has non-constant {what}")
    return problems


def _dims(value_info: Any) -> list[int | None]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]


def infer_static_shapes(model: Any, batch: int) -> dict[str, list[int | None]]:
    """Every tensor's shape with the dynamic batch axis of each input set to ``batch``.

    Uses ONNX Runtime's symbolic shape inference (it follows Shape->Reshape chains that plain ONNX inference
    loses) on a copy whose input batch dims are fixed.
    """
    import onnx

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for inp in fixed.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = batch
    for out in fixed.graph.output:
        dims = out.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = batch
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        inferred = SymbolicShapeInference.infer_shapes(fixed, auto_merge=True)
    except Exception:  # fall back to ONNX's own inference (less complete, never fatal)
        inferred = onnx.shape_inference.infer_shapes(fixed)
    shapes: dict[str, list[int | None]] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        shapes[vi.name] = _dims(vi)
    for init in inferred.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def count_macs(model: Any, batch: int) -> tuple[int, list[str]]:
    """Multiply-accumulates of Conv, ConvTranspose, Gemm and MatMul nodes for a batch of ``batch`` clips.

    Returns (MACs, names of nodes whose shapes could not be resolved; those are not counted).
    """
    shapes = infer_static_shapes(model, batch)
    total = 0
    unknown: list[str] = []
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        ins = [shapes.get(name) for name in node.input[:2]]
        out = shapes.get(node.output[0])
        if any(s is None or None in s for s in ins) or out is None or None in out:
            unknown.append(node.name or node.op_type)
            continue
        if node.op_type == "Conv":
            weight = ins[1]  # [M, C/group, k...]
            total += int(np.prod(out, dtype=np.int64)) * int(np.prod(weight[1:], dtype=np.int64))
        elif node.op_type == "ConvTranspose":
            weight = ins[1]  # [C, M/group, k...]
            total += int(np.prod(ins[0], dtype=np.int64)) * int(np.prod(weight[1:], dtype=np.int64))
        elif node.op_type == "Gemm":
            trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
            k = ins[0][0] if trans_a else ins[0][1]
            total += int(np.prod(out, dtype=np.int64)) * int(k)
        else:  # MatMul: out [..., M, N], K = last dim of A
            total += int(np.prod(out, dtype=np.int64)) * int(ins[0][-1])
    return total, unknown


def weight_count(model: Any, names: Iterable[str] | None = None) -> int:
    """Elements in the graph's floating-point initializers (the deployed weights)."""
    import onnx

    floating = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                onnx.TensorProto.BFLOAT16}
    wanted = None if names is None else set(names)
    return sum(int(np.prod(init.dims, dtype=np.int64)) for init in model.graph.initializer
               if init.data_type in floating and (wanted is None or init.name in wanted))
