"""Graph facts: MAC counting against hand counts, TensorRT parser checks on hand-built graphs."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgevqa.export.graph import TENSORRT_SUPPORTED_OPS, count_macs, op_types, tensorrt_unsupported  # noqa: E402


def _model(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_macs_of_conv_gemm_matmul_with_dynamic_batch():
    w_conv = numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w_conv")  # 3x3, 3 -> 4, stride 2
    w_group = numpy_helper.from_array(np.zeros((4, 1, 3, 3), np.float32), "w_group")  # depthwise
    w_gemm = numpy_helper.from_array(np.zeros((5, 64), np.float32), "w_gemm")
    w_mm = numpy_helper.from_array(np.zeros((5, 7), np.float32), "w_mm")
    shape = numpy_helper.from_array(np.array([-1, 64], np.int64), "shape")
    nodes = [
        helper.make_node("Conv", ["x", "w_conv"], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c1", "w_group"], ["c2"], group=4, pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["c2", "shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w_gemm"], ["g"], transB=1),
        helper.make_node("MatMul", ["g", "w_mm"], ["y"]),
    ]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["clips", 3, 8, 8])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["clips", 7])],
                   [w_conv, w_group, w_gemm, w_mm, shape])
    per_clip = (4 * 4 * 4) * 27 + (4 * 4 * 4) * 9 + 5 * 64 + 7 * 5
    macs, unresolved = count_macs(model, batch=3)
    assert unresolved == []
    assert macs == 3 * per_clip


def test_tensorrt_check_names_unsupported_ops_and_restrictions():
    w1d = numpy_helper.from_array(np.zeros((2, 2, 3), np.float32), "w1d")
    nodes = [helper.make_node("Conv", ["x", "w1d"], ["c"]),
             helper.make_node("Unique", ["c"], ["u"]),
             helper.make_node("Conv", ["x", "x_weights"], ["d"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 9]),
                           helper.make_tensor_value_info("x_weights", TensorProto.FLOAT, [2, 2, 3])],
                   [helper.make_tensor_value_info("u", TensorProto.FLOAT, None),
                    helper.make_tensor_value_info("d", TensorProto.FLOAT, None)], [w1d])
    problems = tensorrt_unsupported(model)
    assert any("Unique" in p for p in problems)
    assert any("non-constant weights" in p for p in problems)
    assert any("is 1-D" in p for p in problems)
    assert op_types(model) == ["Conv", "Unique"]
    assert {"Conv", "Gemm", "Relu", "ReduceMean", "Cast", "Gather"} <= TENSORRT_SUPPORTED_OPS
    assert not {"Unique", "Det", "StringNormalizer", "LayerNormalization"} & TENSORRT_SUPPORTED_OPS
