"""Graph layout passes that let ONNX Runtime's CPU provider run a symmetric-int8 Q/DQ model in int8.

On x86, ONNX Runtime's CPU kernels are u8 x s8: before fusing ``DQ -> Conv -> Q`` into ``QLinearConv`` it
rewrites every int8 ``Q -> DQ`` pair to uint8 (zero point 128), but only a pair whose ``QuantizeLinear`` feeds
exactly one ``DequantizeLinear`` (``QDQS8ToU8Transformer``); ``DQ`` nodes shared by several consumers are
duplicated first, so a tensor read by two nodes (a residual input, a feature map feeding two branches) ends
as one ``Q`` feeding two ``DQ``s, stays int8, and its consumers then run in float between extra Q/DQ
conversions. Giving each consumer its own ``Q -> DQ`` pair avoids that, but the copies must differ, or the
common-subexpression pass merges them again; each copy's scale is one float32 ulp above the previous one
(relative change 1.2e-7, far below int8 resolution). TensorRT reads the result like any other Q/DQ graph.

The second pass writes ``Relu`` as ``LeakyRelu(alpha=0)`` before quantization: with zero point 0 a ``Relu``
cannot be folded into the preceding ``QuantizeLinear`` (only a zero point at the type's minimum makes it
redundant), but ONNX Runtime does run ``DQ -> LeakyRelu -> Q`` as one int8 ``QLinearLeakyRelu`` where it
would run ``DQ -> Relu -> Q`` as three float passes. The two are the same function on finite inputs.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np


def relu_as_leaky_relu(model: Any) -> int:
    """Rewrite every ``Relu`` node of ``model`` (in place) as ``LeakyRelu(alpha=0)``; returns how many."""
    from onnx import helper

    count = 0
    for node in model.graph.node:
        if node.op_type == "Relu" and node.domain in ("", "ai.onnx"):
            node.op_type = "LeakyRelu"
            del node.attribute[:]
            node.attribute.append(helper.make_attribute("alpha", 0.0))
            count += 1
    return count


def split_shared_quantizers(model: Any) -> int:
    """Give every consumer of a shared quantized tensor its own ``Q -> DQ`` pair (in place); returns the number
    of pairs added. Graph outputs and quantizers with non-constant scales are left alone."""
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    graph_outputs = {o.name for o in graph.output}
    consumers: dict[str, list[tuple[Any, int]]] = defaultdict(list)
    for node in graph.node:
        for index, name in enumerate(node.input):
            consumers[name].append((node, index))

    added: dict[int, list[Any]] = defaultdict(list)
    pairs = 0
    for q in list(graph.node):
        if q.op_type != "QuantizeLinear" or len(q.input) < 2 or q.input[1] not in initializers:
            continue
        if q.output[0] in graph_outputs:
            continue
        edges = []
        for dq, _ in consumers[q.output[0]]:
            if dq.op_type != "DequantizeLinear" or dq.output[0] in graph_outputs:
                edges = []
                break
            edges.extend((dq, user, index) for user, index in consumers[dq.output[0]])
        if len(edges) < 2:
            continue
        scale = numpy_helper.to_array(initializers[q.input[1]])
        for copy, (dq, user, index) in enumerate(edges[1:], start=1):
            scale = np.nextafter(scale, np.asarray(np.inf, dtype=scale.dtype)).astype(scale.dtype)
            scale_name = f"{q.input[1]}_copy{copy}"
            graph.initializer.append(numpy_helper.from_array(scale, scale_name))
            q_out, dq_out = f"{q.output[0]}_copy{copy}", f"{dq.output[0]}_copy{copy}"
            q_copy = helper.make_node("QuantizeLinear", [q.input[0], scale_name, *q.input[2:]], [q_out],
                                      name=f"{q.name}_copy{copy}", domain=q.domain)
            q_copy.attribute.extend(q.attribute)
            dq_copy = helper.make_node("DequantizeLinear", [q_out, scale_name, *dq.input[2:]], [dq_out],
                                       name=f"{dq.name}_copy{copy}", domain=dq.domain)
            dq_copy.attribute.extend(dq.attribute)
            added[id(q)].extend((q_copy, dq_copy))
            user.input[index] = dq_out
            pairs += 1
    if pairs:
        used = {name for node in graph.node for name in node.input} | {
            name for nodes in added.values() for node in nodes for name in node.input}
        ordered = []
        for node in graph.node:
            # A DQ whose every consumer moved to a copy has nothing left to feed.
            if node.op_type == "DequantizeLinear" and node.output[0] not in used | graph_outputs:
                continue
            ordered.append(node)
            ordered.extend(added.get(id(node), ()))
        del graph.node[:]
        graph.node.extend(ordered)
    return pairs


def float_graph_outputs(model: Any) -> int:
    """Let graph outputs leave the model in float (in place): a ``Q -> DQ`` pair that only rounds a graph output
    to int8 is replaced by an ``Identity``. Scores are compared and ranked at full precision, and nothing
    downstream of an output runs in int8. Returns the number of outputs changed."""
    from onnx import helper

    graph = model.graph
    outputs = {o.name for o in graph.output}
    producers = {o: n for n in graph.node for o in n.output}
    readers: dict[str, int] = defaultdict(int)
    for node in graph.node:
        for name in node.input:
            readers[name] += 1
    changed = 0
    nodes = []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.output[0] in outputs:
            quantizer = producers.get(node.input[0])
            if quantizer is not None and quantizer.op_type == "QuantizeLinear" and readers[quantizer.output[0]] == 1:
                nodes.append(helper.make_node("Identity", [quantizer.input[0]], [node.output[0]],
                                              name=f"{node.name}_float_output"))
                changed += 1
                continue
        nodes.append(node)
    if changed:
        used = {name for node in nodes for name in node.input}
        nodes = [n for n in nodes if not (n.op_type == "QuantizeLinear" and n.output[0] not in used | outputs)]
        del graph.node[:]
        graph.node.extend(nodes)
    return changed
