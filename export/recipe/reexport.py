"""Export the current default net's graph with the trained weights of an earlier default model.

    python -m edgevqa.export.recipe.reexport --weights runtime/data/default.onnx --out new.onnx

For a change to what the exported graph computes from trained weights (how scores are bounded, say) that
leaves training alone: the recipe would train the same weights again, on the machine that made them. Training
is not bit-reproducible across processors (a 2-core Intel Xeon VM trained other weights than the AMD VMs that
made 2.6, from measurements whose training means differed by 2e-5), so re-exporting the weights is how such a
change reaches the shipped file without changing its weights. Only the learnt tensors (the heads and the
measurements' standardisation) are read from ``--weights``; the fixed measurement filters come from the code.
The manifest keeps the training facts of the source model (seed, samples, steps, held-out correlations) and
records where the weights came from.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from typing import Sequence

from edgevqa.errors import ModelError

from . import content as content_mod
from . import train

# What training sets: everything else in the net's state is fixed by its construction.
LEARNT_BUFFERS = ("feature_mean", "feature_std")
CARRIED_METADATA = ("seed", "train_samples", "steps", "heldout_srcc")
ONNX_PREFIX = "net."  # `train._TupleOutputs` wraps the net as the attribute `net`


def learnt_tensors(model) -> list[str]:
    """Names in ``model.state_dict()`` that training sets: parameters and the standardisation buffers."""
    return [name for name, _ in model.named_parameters()] + [b for b in LEARNT_BUFFERS if hasattr(model, b)]


def load_trained_weights(model, onnx_path: str) -> None:
    """Copy the learnt tensors of an exported default model into ``model`` (same net and head shapes)."""
    import onnx
    import torch
    from onnx import numpy_helper

    try:
        proto = onnx.load(onnx_path)
    except Exception as exc:  # onnx raises DecodeError, OSError, ... for a file that is not a model
        raise ModelError(f"{onnx_path}: not a readable ONNX model ({exc})") from exc
    stored = {init.name[len(ONNX_PREFIX):]: init for init in proto.graph.initializer
              if init.name.startswith(ONNX_PREFIX)}
    state = model.state_dict()
    missing = [name for name in learnt_tensors(model) if name not in stored]
    if missing:
        raise ModelError(f"{onnx_path}: has no trained tensor {missing[0]!r} ({len(missing)} missing): not an "
                         f"export of this net")
    weights = {}
    for name in learnt_tensors(model):
        value = torch.from_numpy(numpy_helper.to_array(stored[name]).copy())
        if tuple(value.shape) != tuple(state[name].shape):
            raise ModelError(f"{onnx_path}: {name} has shape {tuple(value.shape)}, this net's is "
                             f"{tuple(state[name].shape)}")
        weights[name] = value.to(state[name].dtype)
    model.load_state_dict(weights, strict=False)


def reexport(weights_from: str, out: str, config: train.RecipeConfig = train.RecipeConfig(),
             overwrite: bool = False) -> str:
    """Export ``config``'s net with the trained weights of ``weights_from``; returns ``out``."""
    from edgevqa.manifest import load_manifest

    if os.path.exists(out) and not overwrite:
        raise FileExistsError(f"{out}: already exists; pass --overwrite to replace it")
    if os.path.abspath(out) == os.path.abspath(weights_from):
        raise ValueError(f"{out}: is also --weights; write the new model elsewhere, then replace the old one")
    source = load_manifest(weights_from)
    model, manifest = train.build_model(config)
    if not hasattr(model, "head_outputs"):
        raise ModelError(f"{config.model}: only nets of fixed measurements and learnt heads can be re-exported")
    load_trained_weights(model, weights_from)
    meta = dict(source.metadata)
    carried = {k: meta[k] for k in CARRIED_METADATA if k in meta}
    manifest = replace(manifest, description=source.description,
                       metadata={**dict(manifest.metadata), "recipe": "edgevqa.export.recipe",
                                 "recipe_hash": train.recipe_hash(config, content_mod.default_content()),
                                 **carried,
                                 "weights_from": f"{source.name} {source.version} (recipe hash "
                                                 f"{meta.get('recipe_hash', 'unknown')})"})
    return train.export_default(model, manifest, out, overwrite)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgevqa.export.recipe.reexport",
                                     description=__doc__.strip().split("\n")[0])
    parser.add_argument("--weights", required=True, help="an exported default model (ONNX) to take the weights of")
    parser.add_argument("--out", required=True, help="where to write the new ONNX model")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)
    try:
        print(reexport(args.weights, args.out, overwrite=args.overwrite))
    except (ModelError, FileExistsError, ValueError) as exc:
        print(f"reexport: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
