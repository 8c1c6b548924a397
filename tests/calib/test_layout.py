"""The graph passes keep the model's function: compared on random inputs with the unmodified model."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgevqa.calib.layout import float_graph_outputs, relu_as_leaky_relu, split_shared_quantizers


def _qdq_fanout_model():
    """x -> Q -> DQ -> (Conv a, Relu b, graph output c through Q/DQ)."""
    rng = np.random.default_rng(7)
    scale = numpy_helper.from_array(np.array(0.05, np.float32), "s")
    zero = numpy_helper.from_array(np.array(0, np.int8), "z")
    w = numpy_helper.from_array(rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8), "w_q")
    ws = numpy_helper.from_array(np.full(4, 0.01, np.float32), "ws")
    wz = numpy_helper.from_array(np.zeros(4, np.int8), "wz")
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq"),
        helper.make_node("DequantizeLinear", ["w_q", "ws", "wz"], ["w"], name="wdq", axis=0),
        helper.make_node("Conv", ["xd", "w"], ["a"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["xd"], ["b"], name="relu"),
        helper.make_node("Abs", ["xd"], ["c0"], name="abs"),
        helper.make_node("QuantizeLinear", ["c0", "s", "z"], ["cq"], name="q_out"),
        helper.make_node("DequantizeLinear", ["cq", "s", "z"], ["c"], name="dq_out"),
    ]
    graph = helper.make_graph(nodes, "fanout", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 9, 7])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("a", "b", "c")],
                              [scale, zero, w, ws, wz])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _run(model, feed):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def _off_tie_input(seed: int) -> dict:
    """Random inputs at least 0.1 quantisation step (0.05) away from a rounding tie, so that how a runtime
    computes x / scale (a division, or a product with the reciprocal) cannot move a value to the other step."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(-60, 61, (1, 3, 9, 7)) + rng.uniform(-0.4, 0.4, (1, 3, 9, 7))
    return {"x": (steps * 0.05).astype(np.float32)}


def test_split_shared_quantizers_gives_each_consumer_its_pair():
    model = _qdq_fanout_model()
    # Each copy's scale is one ulp above the original, so an input within an ulp of a rounding tie may land one
    # step over: a legitimate difference, not a fault of the pass.
    feed = _off_tie_input(11)
    before = _run(model, feed)
    split = onnx.ModelProto()
    split.CopyFrom(model)
    assert split_shared_quantizers(split) == 2

    readers = {}
    for node in split.graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    for node in split.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and node.name != "wdq":
            assert readers.get(node.output[0], 0) <= 1, node.name
    scales = sorted(float(numpy_helper.to_array(i)) for i in split.graph.initializer if i.name.startswith("s"))
    assert len(set(scales)) == len(scales)  # copies differ, so no pass can merge them back
    after = _run(split, feed)
    for a, b in zip(before, after):
        np.testing.assert_allclose(a, b, rtol=0, atol=0.05 * 1e-6 * 255)


def test_float_graph_outputs_drops_output_rounding():
    model = _qdq_fanout_model()
    feed = _off_tie_input(12)
    assert float_graph_outputs(model) == 1

    a, b, c = _run(model, feed)
    xd = np.clip(np.rint(feed["x"] / 0.05), -128, 127) * 0.05
    np.testing.assert_allclose(c, np.abs(xd), rtol=1e-6)  # exact: no second rounding to int8


def test_relu_as_leaky_relu_is_the_same_function():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 11])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "r", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    feed = {"x": np.random.default_rng().normal(0, 3, (5, 11)).astype(np.float32)}
    expected = np.maximum(feed["x"], 0)
    assert relu_as_leaky_relu(model) == 1
    assert model.graph.node[0].op_type == "LeakyRelu"
    np.testing.assert_array_equal(_run(model, feed)[0], expected)
