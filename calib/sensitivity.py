"""Which quantized nodes hurt the scores most: quantize one node (or one op type) at a time, measure the scores.

For each candidate, a model is derived from the full INT8 model in which only that node reads quantized
inputs (every other node is rewired to the float tensors and float weights it read before quantization), and
scores a few calibration samples; its error is the absolute difference from the FP32 model's scores, averaged
and maximised over the samples and quality dimensions. Candidates are every quantized node that has weights
(Conv, ConvTranspose, Gemm, MatMul) one by one, and every other quantized op type as a group. The worst ones
are what ``--exclude`` should keep in float. This is the per-layer sensitivity analysis of NVIDIA's
quantization toolkit documentation, measured on scores rather than on activations.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Sequence

import numpy as np

from edgevqa.manifest import ModelManifest

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def scores_from_outputs(manifest: ModelManifest, outputs: dict[str, np.ndarray]) -> np.ndarray:
    """Per-dimension scores as `edgevqa.pipeline.Pipeline` computes them (mean over every axis, then rescale)."""
    return np.array([manifest.score(name, float(np.asarray(outputs[name], dtype=np.float64).mean()))
                     for name in manifest.outputs])


def _prune(model: Any) -> None:
    """Drop nodes whose outputs nothing reads, then initializers nothing reads (in place)."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    while True:
        used = {name for node in graph.node for name in node.input} | outputs
        keep = [n for n in graph.node if any(o in used for o in n.output)]
        if len(keep) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(keep)
    used = {name for node in graph.node for name in node.input} | outputs
    initializers = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(initializers)


def only_quantized(qdq_model: Any, float_model: Any, keep: Iterable[str]) -> Any:
    """A copy of ``qdq_model`` in which only the nodes named in ``keep`` read dequantized inputs; every other
    node reads what it read in ``float_model`` (the model that was quantized), graph outputs included."""
    import onnx
    from onnx import helper

    keep = set(keep)
    model = onnx.ModelProto()
    model.CopyFrom(qdq_model)
    graph = model.graph
    float_nodes = {n.name: n for n in float_model.graph.node if n.name}
    float_initializers = {i.name: i for i in float_model.graph.initializer}
    present = {i.name for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    available = set(producers) | {i.name for i in graph.input} | present

    for node in graph.node:
        if node.op_type in QDQ_OPS or node.name in keep:
            continue
        original = float_nodes.get(node.name)
        if original is None or len(original.input) != len(node.input):
            continue
        for index, name in enumerate(node.input):
            producer = producers.get(name)
            if producer is None or producer.op_type != "DequantizeLinear":
                continue
            source = original.input[index]
            if source in float_initializers:
                # The quantizer may have given a dequantized bias the float initializer's name.
                float_name = source if source not in producers else f"{source}_float"
                if float_name not in present:
                    initializer = graph.initializer.add()
                    initializer.CopyFrom(float_initializers[source])
                    initializer.name = float_name
                    present.add(float_name)
                    available.add(float_name)
                source = float_name
            if source in available:
                node.input[index] = source
    # Graph outputs quantized at the end read their float value directly, unless a kept node produced it.
    replaced = []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.output[0] in {o.name for o in graph.output}:
            quantizer = producers.get(node.input[0])
            if quantizer is not None and quantizer.op_type == "QuantizeLinear":
                source = producers.get(quantizer.input[0])
                if source is None or source.name not in keep:
                    replaced.append(helper.make_node("Identity", [quantizer.input[0]], [node.output[0]],
                                                     name=f"{node.name}_float"))
                    continue
        replaced.append(node)
    del graph.node[:]
    graph.node.extend(replaced)
    _prune(model)
    return model


def candidates(quantized: Sequence[tuple[str, str]], excluded: Sequence[str] = ()) -> list[tuple[str, str, list[str]]]:
    """(label, op type, node names) to try: weighted nodes one by one, other op types as one group each."""
    rows: list[tuple[str, str, list[str]]] = []
    groups: dict[str, list[str]] = defaultdict(list)
    for name, op_type in quantized:
        if name in excluded:
            continue
        if op_type in WEIGHTED_OPS:
            rows.append((name, op_type, [name]))
        else:
            groups[op_type].append(name)
    for op_type, names in sorted(groups.items()):
        rows.append((f"all {op_type} ({len(names)})", op_type, names))
    return rows


def _scores(model_bytes: bytes, manifest: ModelManifest, feeds: Sequence[dict[str, np.ndarray]],
            threads: int | None) -> np.ndarray:
    from edgevqa.backends.onnxrt import OrtRunner

    with OrtRunner(model_bytes, threads=threads) as runner:
        return np.stack([scores_from_outputs(manifest, runner.infer(feed)) for feed in feeds])


def node_sensitivity(qdq_model: Any, float_model: Any, quantized: Sequence[tuple[str, str]],
                     manifest: ModelManifest, feeds: Sequence[dict[str, np.ndarray]], top: int,
                     excluded: Sequence[str] = (), threads: int | None = None) -> list[dict[str, Any]]:
    """The ``top`` candidates whose quantization alone moves the scores most on ``feeds``, worst first."""
    reference = _scores(float_model.SerializeToString(), manifest, feeds, threads)
    rows = []
    for label, op_type, names in candidates(quantized, excluded):
        model = only_quantized(qdq_model, float_model, names)
        error = np.abs(_scores(model.SerializeToString(), manifest, feeds, threads) - reference)
        rows.append({"node": label, "op_type": op_type, "nodes": names,
                     "mean_abs_score_diff": float(error.mean()), "max_abs_score_diff": float(error.max())})
    rows.sort(key=lambda r: (-r["mean_abs_score_diff"], r["node"]))
    return rows[:top]
