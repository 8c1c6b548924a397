"""Small ONNX models built with `onnx.helper`, for tests and examples that need no torch.

`make_probe_model` writes a model that reads a view's input and predicts each quality dimension as a fixed
linear function of the per-clip mean of each colour channel: cheap, deterministic, and sensitive to the
sampled pixels, so pipeline tests can check real data flow end to end.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from .manifest import ModelManifest, ViewSpec, embed_in_onnx


def default_probe_manifest(outputs: Sequence[str] = ("overall", "color", "noise", "artifact", "blur", "temporal"),
                           view: ViewSpec | None = None, name: str = "probe") -> ModelManifest:
    view = view or ViewSpec(name="video", kind="fragments", num_clips=1, clip_len=8, frame_interval=2,
                            aligned=8)
    return ModelManifest(name=name, version="test", views=(view,), outputs=tuple(outputs),
                         rescale={o: (10.0, 50.0) for o in outputs})


def probe_model_proto(manifest: ModelManifest, input_shape: Sequence | None = None, opset: int = 17,
                      embed_manifest: bool = True):
    """The `onnx.ModelProto` of a probe model for ``manifest`` (its first view only, for other views too)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inputs, initializers, outputs = [], [], [], []
    channel_axis = {}
    for view in manifest.views:
        shape = list(input_shape) if input_shape is not None else ["clips"] + list(view.input_shape()[1:])
        elem = TensorProto.FLOAT if view.dtype == "float32" else TensorProto.FLOAT16
        inputs.append(helper.make_tensor_value_info(view.name, elem, shape))
        channel_axis[view.name] = 1 if view.layout == "NCTHW" else 2
    rng = np.random.default_rng(1234)
    feats = []
    for view in manifest.views:
        x = view.name
        if view.dtype == "float16":
            nodes.append(helper.make_node("Cast", [x], [f"{x}_f32"], to=TensorProto.FLOAT))
            x = f"{x}_f32"
        axes = [a for a in (1, 2, 3, 4) if a != channel_axis[view.name]]
        nodes.append(helper.make_node("ReduceMean", [x], [f"{view.name}_feat"], axes=axes, keepdims=0))
        feats.append(f"{view.name}_feat")
    if len(feats) > 1:
        nodes.append(helper.make_node("Concat", feats, ["feat"], axis=1))
        feat, width = "feat", 3 * len(feats)
    else:
        feat, width = feats[0], 3
    for k, name in enumerate(manifest.outputs):
        w = rng.normal(0, 1, size=(width, 1)).astype(np.float32)
        b = np.array([0.1 * k], dtype=np.float32)
        initializers += [numpy_helper.from_array(w, f"w_{k}"), numpy_helper.from_array(b, f"b_{k}")]
        nodes.append(helper.make_node("Gemm", [feat, f"w_{k}", f"b_{k}"], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["clips", 1]))
    graph = helper.make_graph(nodes, "probe", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    if embed_manifest:
        embed_in_onnx(model, manifest)
    return model


def make_probe_model(path: str | os.PathLike, manifest: ModelManifest | None = None, **kwargs) -> str:
    """Write a probe model for ``manifest`` (default: six outputs on a small fragments view) to ``path``."""
    import onnx

    manifest = manifest or default_probe_manifest()
    onnx.save(probe_model_proto(manifest, **kwargs), os.fspath(path))
    return os.fspath(path)


def remux_clip(source: str | os.PathLike, out: str | os.PathLike, container_format: str,
               options: dict[str, str] | None = None) -> str:
    """The video stream of ``source`` in another container (``mpegts``, ``h264``, ``matroska``, ...), packets as
    they are: the same frames, carried the way a pipe or a live stream carries them. ``options`` go to the muxer
    (``{"movflags": "faststart"}``: an MP4 indexed before its media)."""
    import av

    with av.open(os.fspath(source)) as src, av.open(os.fspath(out), mode="w", format=container_format,
                                                    options=dict(options or {})) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is None:  # the demuxer's flush packet
                continue
            packet.stream = stream
            dst.mux(packet)
    return os.fspath(out)
