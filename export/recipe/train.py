"""Train and export edgevqa's shipped default model (``runtime/data/default.onnx``) with one seeded command.

    python -m edgevqa.export.recipe.train --out runtime/data/default.onnx --seed 0 --work /tmp/edgevqa-recipe

The default net is the zoo's ``lowlevel_mlp`` (`edgevqa.export.models.lowlevel`: TLVQM-style fixed quality
measurements on the fragments, one small MLP head per quality dimension, the overall score combined from the
dimension scores with the targets' own formula). Only the heads learn, so the recipe fits a 2-core CPU: the
measurements of every sample are computed once (and cached beside the samples), then the heads train on them
in seconds. The loss is ATHQA's 0.7 MSE + 0.3 pairwise rank, plus a rank loss over pairs of the same content
and an invariance loss over same-content pairs with equal targets (another fragment plan, or the clip encoded
once more at a visually lossless CRF: `dataset.SampleConfig.reencode_crf`). Data: the synthetic distortions of
`edgevqa.export.recipe.distortions` applied to the content of `edgevqa.export.recipe.content` and sampled
exactly as inference samples (`edgevqa.export.recipe.dataset`).

Nets that learn end to end (``--model athqa_tiny``, the zoo's ATHQA-style CNN) train with the same loss on
random sub-mosaics of the fragments; that needs a GPU to be useful (`train_model`):

- the default view reads two snippets of four consecutive frames (``segments_per_clip=2``,
  ``frame_interval=1``) instead of the zoo's eight frames one segment apart, so frame-level temporal
  distortions (freezes, stutter, shake, flicker) are visible to the temporal branch;
- training batches are random 2x2-fragment sub-mosaics of the 7x7 mosaic (the net is fully convolutional
  over fragments and averages its quality map, so a sub-mosaic is a smaller sample of the same input), which
  costs about a twelfth of the full mosaic, so many more steps fit; export uses the full 7x7 view.

Targets are learnt as ``(score - 50) / 25``; the manifest's rescale ``(25, 50)`` maps them back to 0..100.

Reproducibility: every random draw comes from generators seeded by ``--seed`` (torch's global generator is
seeded inside ``torch.random.fork_rng`` so nothing leaks out); the manifest records the recipe hash (the
sources of this package plus the configuration), the seed and held-out correlations. On x86 the command caps
torch's CPU code at AVX2 (`pin_cpu_code_paths`) and the encodes cap libx264's (`dataset.x264_cpu_override`):
their float rounding follows the code path, so without the caps a processor with AVX-512 made other bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from . import content as content_mod
from . import dataset as ds
from . import distortions as dist

log = logging.getLogger("edgevqa.recipe")

# torch's CPU kernels (ATen), oneDNN and MKL pick their code by instruction set, and their float results differ
# between AVX2 and AVX-512 code: on an AVX-512 processor (AMD Zen 5, 2026-11-29) the same samples gave other
# measurements and other weights. Each setting is a ceiling, so processors with less keep their own code.
CPU_CODE_CEILING = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def pin_cpu_code_paths() -> bool:
    """Cap torch's CPU code at AVX2 on x86 (`CPU_CODE_CEILING`; a value the user already set is kept), so the
    recipe makes the same bytes on processors with and without AVX-512. Takes effect only before torch is
    imported: returns False (and logs why) when it came too late."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return True
    if "torch" in sys.modules:
        log.warning("torch was imported before the recipe capped its CPU code at AVX2: on a processor with "
                    "AVX-512 the model's bytes may differ from the shipped file's")
        return False
    for name, value in CPU_CODE_CEILING.items():
        os.environ.setdefault(name, value)
    return True

MODEL_NAME = "edgevqa-default"
MODEL_VERSION = "2.11"
TARGET_CENTRE = 50.0
TARGET_SCALE = 25.0
MAX_ONNX_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class RecipeConfig:
    """Everything that decides the shipped model besides the seed and the content list."""

    model: str = "lowlevel_mlp"
    view_changes: dict = field(default_factory=lambda: {"clip_len": 8, "segments_per_clip": 2, "frame_interval": 1,
                                                        "aligned": 8})
    clips_per_source: int = 12
    heldout_clips_per_source: int = 1
    sample: ds.SampleConfig = ds.SampleConfig()
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 4e-3
    weight_decay: float = 1e-4
    crop_cells: int = 2  # training sub-mosaic, in fragments per side
    # A net with fixed measurements and a learnt head (`lowlevel_mlp`) trains its head alone, on the
    # measurements of every sample computed once: these settings, not the epochs / batches above.
    head_steps: int = 2000
    head_batch_size: int = 256
    head_learning_rate: float = 3e-3
    head_weight_decay: float = 1e-2
    content_rank_weight: float = 0.5  # head training only: rank loss over pairs of the same content
    invariance_weight: float = 0.5  # head training only: |score gap| over same-content pairs with equal targets
    mse_weight: float = 0.7
    rank_weight: float = 0.3
    threads: int = 2
    jobs: int = 2

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sample"] = self.sample.to_dict()
        return d


def net_source(model_name: str) -> bytes:
    """The source file of the module that builds zoo model ``model_name``."""
    import importlib

    from edgevqa.export.models import model_entry

    module = importlib.import_module(model_entry(model_name).build.__module__)
    with open(module.__file__, "rb") as fh:
        return fh.read()


def recipe_hash(config: RecipeConfig, sources: Sequence[content_mod.ContentSource]) -> str:
    """sha256 of this package's source files, the configuration and the content list (first 16 hex digits);
    independent of where the content files live and of ``jobs`` / ``threads``."""
    digest = hashlib.sha256()
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("content.py", "dataset.py", "distortions.py", "train.py"):
        with open(os.path.join(here, name), "rb") as fh:
            digest.update(fh.read())
    # The trained net's own source: for a net of fixed measurements it decides what the head learns from.
    digest.update(net_source(config.model))
    # Worker and thread counts do not change the samples or the draws: left out, like file locations.
    settings = {k: v for k, v in config.to_dict().items() if k not in ("jobs", "threads")}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    digest.update(json.dumps([s.identity() for s in sources], sort_keys=True, default=list).encode())
    return digest.hexdigest()[:16]


# ------------------------------------------------------------------------------------------ model


def build_model(config: RecipeConfig, seed: int = 0):
    """The untrained net (initialised from ``seed``) and the default model's manifest (the zoo's, with the
    recipe's view)."""
    import torch

    from edgevqa.export.models import create_model

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = create_model(config.model)
    zoo = model.manifest
    views = tuple(replace(v, **config.view_changes) for v in zoo.views)
    weights = getattr(sys.modules.get(type(model).__module__), "OVERALL_WEIGHT", None)
    if weights is not None and weights != dist.OVERALL_WEIGHT:
        raise ValueError(f"{config.model} combines the overall score with {weights}, the recipe's targets with "
                         f"{dist.OVERALL_WEIGHT}")
    missing = [n for n in zoo.outputs if n not in dist.OUTPUT_NAMES]
    if missing:
        raise ValueError(f"{config.model} has outputs {missing} that the recipe has no targets for")
    # Every sample is 8-bit H.264 (yuv420p), so the model learnt that precision's rounding as part of a clean
    # picture: without rounding deeper video to it, the same frames scored up to 30 points lower at 10 bits
    # than at 8 (quality bench, 2.8).
    # Its temporal measurements read two snippets of four consecutive frames, and no training clip holds a cut
    # between shots: inside a snippet a cut reads as a severe temporal flaw (a shared clip: temporal 17.6 with its
    # cut in a snippet, 98.1 with the snippet moved off it), so the runtime moves snippets off cuts
    # (`edgevqa.scenecuts`).
    # Those snippets learnt the motion between frames of 24 and 25 fps clips (every training clip is encoded at
    # 24 fps from such content, or from scenes moved a few pixels a frame): a 24 fps clip delivered at 48 fps by
    # showing each frame twice read as a stutter (temporal 80 against 99), so faster video is read at a stride
    # that brings it near 25 fps (`edgevqa.sampling.frame_stride`).
    manifest = replace(zoo, name=MODEL_NAME, version=MODEL_VERSION, views=views,
                       rescale={n: (TARGET_SCALE, TARGET_CENTRE) for n in zoo.outputs}, score_range=(0.0, 100.0),
                       sample_bit_depth=8, scene_cuts="avoid", frame_rate=25.0)
    return model, manifest


def rank_loss(pred, target, same=None):
    """Mean over ordered pairs of ``relu(|dt| - sign(dt) * dp)``: the predicted gap must follow the target gap.
    ``same`` (bool ``[B, B]``) keeps only those pairs, e.g. pairs of samples of the same content."""
    import torch

    dp = pred[:, None] - pred[None, :]
    dt = target[:, None] - target[None, :]
    mask = dt.abs() > 1e-6
    if same is not None:
        mask = mask & same
    if not bool(mask.any()):
        return pred.sum() * 0.0
    return torch.relu(dt.abs() - torch.sign(dt) * dp)[mask].mean()


def recipe_loss(outputs: dict, targets, names: Sequence[str], config: RecipeConfig, groups=None):
    """0.7 MSE + 0.3 pairwise rank per output; with ``groups`` (content id per sample) also the rank loss over
    pairs of the same content, weighted by ``config.content_rank_weight``: a clip must score below its own
    less distorted versions, whatever other content scores."""
    import torch

    total = 0.0
    same = None if groups is None else groups[:, None] == groups[None, :]
    for k, name in enumerate(names):
        pred = outputs[name].reshape(-1)
        y = targets[:, k]
        total = total + config.mse_weight * torch.mean((pred - y) ** 2) + config.rank_weight * rank_loss(pred, y)
        if same is not None:
            total = total + config.content_rank_weight * rank_loss(pred, y, same)
            # Same content, same targets (another plan, or the clip encoded once more): the same score.
            tie = same & ((y[:, None] - y[None, :]).abs() <= 1e-6)
            tie.fill_diagonal_(False)
            if bool(tie.any()):
                total = total + config.invariance_weight * (pred[:, None] - pred[None, :]).abs()[tie].mean()
    return total / len(names)


def _crop_window(view, rng: np.random.Generator, crop_cells: int | None):
    """A random ``crop_cells``-square sub-mosaic of the fragments as (row slice, column slice); None when the
    whole mosaic is kept (no draw is made then)."""
    if crop_cells is None or crop_cells >= view.grid[0]:
        return None
    ph, pw = view.patch
    gy = int(rng.integers(0, view.grid[0] - crop_cells + 1))
    gx = int(rng.integers(0, view.grid[1] - crop_cells + 1))
    return slice(gy * ph, (gy + crop_cells) * ph), slice(gx * pw, (gx + crop_cells) * pw)


def _batch_input(x_u8: np.ndarray, view, rng: np.random.Generator, crop_cells: int | None):
    """uint8 samples [B, 1, 3, T, H, W] -> float32 model input [B, 3, T, h, w] (random sub-mosaic, flip)."""
    x = x_u8[:, 0]
    window = _crop_window(view, rng, crop_cells)
    if window is not None:
        x = x[..., window[0], window[1]]
    if rng.random() < 0.5:
        x = x[..., ::-1]
    return ds.normalise(np.ascontiguousarray(x), view)


def _device_batches(data_x: np.ndarray, view, device: str):
    """A batch maker equal to `_batch_input` that keeps the samples on ``device`` (uint8) and normalises there
    with the runtime's table: the same random draws, the same values."""
    import torch

    from edgevqa import kernels

    x_all = torch.from_numpy(data_x).to(device)
    table = torch.from_numpy(kernels.normalisation_table(view.mean, view.std, view.dtype)).to(device)

    def make(idx: np.ndarray, rng: np.random.Generator, crop_cells: int | None):
        x = x_all[torch.from_numpy(idx).to(device), 0]
        window = _crop_window(view, rng, crop_cells)
        if window is not None:
            x = x[..., window[0], window[1]]
        if rng.random() < 0.5:
            x = torch.flip(x, dims=(-1,))
        x = x.long()
        return torch.stack([table[c][x[:, c]] for c in range(3)], dim=1)

    return make


def train_model(model, manifest, data: dict[str, np.ndarray], config: RecipeConfig, seed: int,
                max_steps: int | None = None, device: str = "cpu", time_budget_s: float | None = None) -> list[float]:
    """Train ``model`` in place on ``data`` (`dataset.concatenate_groups` of `dataset.load_group`); returns the
    loss of every step.

    ``time_budget_s`` stops training early (logged) when the wall time runs out: a safety net for leased
    machines, not part of the recipe.

    ``device`` other than "cpu" (e.g. "cuda") trains there; the random draws are the same, the arithmetic
    of the device's kernels differs in rounding."""
    import torch

    view = manifest.views[0]
    names = list(manifest.outputs)
    columns = [dist.OUTPUT_NAMES.index(n) for n in names]
    targets = (data["targets"][:, columns] - TARGET_CENTRE) / TARGET_SCALE
    n = len(targets)
    rng = np.random.default_rng([seed, 1])
    steps_per_epoch = max(1, n // config.batch_size)
    total_steps = steps_per_epoch * config.epochs if max_steps is None else max_steps
    losses: list[float] = []
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    on_host = device == "cpu"
    device_batch = None if on_host else _device_batches(data["x"], view, device)
    model.to(device)
    try:
        with torch.random.fork_rng(devices=[] if on_host else None):
            torch.manual_seed(seed)
            model.train()
            optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate,
                                          weight_decay=config.weight_decay)
            schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.learning_rate,
                                                           total_steps=total_steps, pct_start=0.15)
            step = 0
            start = time.perf_counter()
            while step < total_steps:
                order = rng.permutation(n)
                for b in range(steps_per_epoch):
                    if step >= total_steps:
                        break
                    idx = np.sort(order[b * config.batch_size:(b + 1) * config.batch_size])
                    if on_host:
                        x = torch.from_numpy(_batch_input(data["x"][idx], view, rng, config.crop_cells))
                    else:
                        x = device_batch(idx, rng, config.crop_cells)
                    y = torch.from_numpy(targets[idx].astype(np.float32)).to(device)
                    loss = recipe_loss(model(x), y, names, config)
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    schedule.step()
                    losses.append(float(loss.detach()))
                    step += 1
                    if time_budget_s is not None and time.perf_counter() - start > time_budget_s:
                        log.warning("time budget of %.0f s spent: stopping at step %d of %d", time_budget_s, step,
                                    total_steps)
                        total_steps = step
                        break
                    if step % 20 == 0 or step == total_steps:
                        log.info("step %d/%d  loss %.4f (mean of last 20 %.4f)  %.0f s", step, total_steps,
                                 losses[-1], float(np.mean(losses[-20:])), time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous_threads)
        model.eval()
        model.cpu()
    return losses


def sample_features(model, manifest, x_u8: np.ndarray, batch_size: int = 16, threads: int | None = None) -> np.ndarray:
    """The fixed measurements (`model.features`) of uint8 samples on the full view, ``[N, F]`` float32."""
    import torch

    view = manifest.views[0]
    out = []
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            for b in range(0, len(x_u8), batch_size):
                x = torch.from_numpy(ds.normalise(np.ascontiguousarray(x_u8[b:b + batch_size, 0]), view))
                out.append(model.features(x).numpy())
    finally:
        torch.set_num_threads(previous_threads)
    return np.concatenate(out).astype(np.float32)


def train_head(model, manifest, data: dict[str, np.ndarray], config: RecipeConfig, seed: int,
               max_steps: int | None = None, features: np.ndarray | None = None) -> list[float]:
    """Train the learnt head of a fixed-measurement net (`lowlevel_mlp`) in place; returns the loss of every step
    (of every member of the heads' ensemble, one after the other).

    The measurements of every sample are computed once (they have no parameters); their training-set mean and
    std become the net's standardisation; then each member of the heads' ensemble is fitted on its own random
    mini-batches of them with the recipe's loss (AdamW, cosine schedule)."""
    import torch

    names = list(manifest.outputs)
    columns = [dist.OUTPUT_NAMES.index(n) for n in names]
    started = time.perf_counter()
    if features is None:
        features = sample_features(model, manifest, data["x"], threads=config.threads)
        log.info("measurements of %d samples in %.0f s", len(features), time.perf_counter() - started)
    features = torch.from_numpy(np.asarray(features, dtype=np.float32))
    if not torch.isfinite(features).all():
        raise RuntimeError("a training sample gave a non-finite measurement")
    targets = torch.from_numpy(((data["targets"][:, columns] - TARGET_CENTRE) / TARGET_SCALE).astype(np.float32))
    total_steps = config.head_steps if max_steps is None else max_steps
    rng = np.random.default_rng([seed, 2])
    group_ids = data["group"] if "group" in data else np.arange(len(features))
    groups = torch.from_numpy(np.asarray(group_ids, dtype=np.int64))
    group_members = [np.flatnonzero(group_ids == g) for g in np.unique(group_ids)]
    group_batch = max(1, config.head_batch_size * len(group_members) // len(features))
    losses: list[float] = []
    members = getattr(model, "head_members", 1)
    model.set_feature_statistics(features)
    with torch.random.fork_rng(devices=[]):
        # Each member of the heads' ensemble is trained alone, from its own initialisation and batches.
        for member in range(members):
            member_rng = rng if member == 0 else np.random.default_rng([seed, 2, member])
            torch.manual_seed(seed if member == 0 else seed * 1000 + member)
            model.active_member = member if members > 1 else None
            parameters = [p for head in model.heads.values() for p in head.members[member].parameters()]
            for head in model.heads.values():
                for layer in head.members[member].modules():
                    if hasattr(layer, "reset_parameters"):
                        layer.reset_parameters()
            model.train()
            optimiser = torch.optim.AdamW(parameters, lr=config.head_learning_rate,
                                          weight_decay=config.head_weight_decay)
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(total_steps, 1))
            for step in range(total_steps):
                # Whole groups (every distortion of a few clips), so the batch holds same-content pairs.
                picked = member_rng.choice(len(group_members), min(group_batch, len(group_members)), replace=False)
                idx = torch.from_numpy(np.concatenate([group_members[i] for i in picked]))
                loss = recipe_loss(model.head_outputs(features[idx]), targets[idx], names, config, groups[idx])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                losses.append(float(loss.detach()))
                if (step + 1) % 500 == 0:
                    log.info("head member %d/%d step %d/%d  loss %.4f", member + 1, members, step + 1, total_steps,
                             float(np.mean(losses[-50:])))
    model.active_member = None
    model.eval()
    return losses


def measured_groups(paths: Sequence[str], model, manifest, key: str, threads: int | None) -> dict[str, np.ndarray]:
    """The cached groups at ``paths`` as one dataset whose pixels are replaced by ``features``, the net's
    measurements. The pixels are needed only for those, so each group is measured as it is loaded; the
    measurements are cached beside it as ``<group>.measured-<key>.npy`` (``key``: from the net's source, which
    defines them)."""
    groups = []
    for path in paths:
        cached = f"{path[:-len('.npz')]}.measured-{key}.npy"
        with np.load(path) as group:
            kept = {k: group[k] for k in group.files if k != "x"}
            if os.path.exists(cached):
                kept["features"] = np.load(cached)
            else:
                kept["features"] = sample_features(model, manifest, group["x"], threads=threads)
                np.save(cached + ".tmp.npy", kept["features"])
                os.replace(cached + ".tmp.npy", cached)
        groups.append(kept)
    return ds.concatenate_groups(groups)


def predict(model, manifest, x_u8: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Scores (0..100, manifest outputs order) of uint8 samples with the torch model on the full view."""
    import torch

    view = manifest.views[0]
    out = []
    model.eval()
    with torch.no_grad():
        for b in range(0, len(x_u8), batch_size):
            x = torch.from_numpy(ds.normalise(np.ascontiguousarray(x_u8[b:b + batch_size, 0]), view))
            result = model(x)
            out.append(np.stack([result[name].reshape(-1).numpy() for name in manifest.outputs], axis=1))
    raw = np.concatenate(out)
    return raw * TARGET_SCALE + TARGET_CENTRE


def heldout_correlations(pred: np.ndarray, data: dict[str, np.ndarray], names: Sequence[str]) -> dict[str, float]:
    """Spearman correlation of predicted and target scores per output, on held-out samples."""
    from scipy.stats import spearmanr

    result = {}
    for k, name in enumerate(names):
        target = data["targets"][:, dist.OUTPUT_NAMES.index(name)]
        value = spearmanr(pred[:, k], target).statistic if np.ptp(target) > 0 and np.ptp(pred[:, k]) > 0 else None
        result[name] = None if value is None or not np.isfinite(value) else float(value)
    return result


# ------------------------------------------------------------------------------------------ export


class _TupleOutputs:
    """Wraps the net so the exported graph's outputs follow the manifest's order (ONNX wants a tuple)."""

    def __new__(cls, model, names):
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = model

            def forward(self, video):
                out = self.net(video)
                return tuple(out[n] for n in names)

        return Wrapped()


def export_default(model, manifest, out_path: str, overwrite: bool = False) -> str:
    """Fuse BatchNorms, export FP32 ONNX with the manifest embedded, check it; returns ``out_path``."""
    import onnx
    import torch

    from edgevqa.manifest import embed_in_onnx

    if os.path.exists(out_path) and not overwrite:
        raise FileExistsError(f"{out_path}: already exists; pass --overwrite to replace it")
    model.eval()
    model.fuse()
    view = manifest.views[0]
    example = torch.zeros(view.input_shape(1), dtype=torch.float32)
    names = list(manifest.outputs)
    tmp = out_path + ".tmp"
    torch.onnx.export(_TupleOutputs(model, names), (example,), tmp, input_names=[view.name], output_names=names,
                      dynamic_axes={view.name: {0: "clips"}, **{n: {0: "clips"} for n in names}},
                      opset_version=17, dynamo=False)
    proto = onnx.load(tmp)
    embed_in_onnx(proto, manifest)
    onnx.checker.check_model(proto)
    if any(node.op_type == "BatchNormalization" for node in proto.graph.node):
        raise RuntimeError("the exported graph still has a BatchNormalization node: fusion failed")
    onnx.save(proto, tmp)
    size = os.path.getsize(tmp)
    if size > MAX_ONNX_BYTES:
        os.remove(tmp)
        raise RuntimeError(f"{out_path}: the exported model is {size} bytes, over the {MAX_ONNX_BYTES} limit")
    os.replace(tmp, out_path)
    return out_path


# ------------------------------------------------------------------------------------------ command


def run_recipe(out: str, seed: int, work: str, config: RecipeConfig = RecipeConfig(),
               sources: Sequence[content_mod.ContentSource] | None = None, overwrite: bool = False,
               max_steps: int | None = None, device: str = "cpu",
               time_budget_s: float | None = None, training_seed: int | None = None) -> dict[str, Any]:
    """Build the data, train, evaluate on held-out content, export; returns a summary (also in the manifest).

    ``training_seed`` (default: ``seed``) seeds the training alone (initialisation, batches); the samples are
    still ``seed``'s. Runs that differ only in it show how far a model moves from training run to training run
    on the same data, the yardstick for any change to the recipe."""
    if os.path.exists(out) and not overwrite:  # before the work, not after it
        raise FileExistsError(f"{out}: already exists; pass --overwrite to replace it")
    sources = list(sources) if sources is not None else content_mod.default_content()
    train_sources = content_mod.split(sources, "train")
    heldout_sources = content_mod.split(sources, "heldout")
    if not train_sources:
        raise ValueError("the content list has no 'train' source")
    training_seed = seed if training_seed is None else int(training_seed)
    model, manifest = build_model(config, training_seed)
    view = manifest.views[0]
    hash_of_recipe = recipe_hash(config, sources)
    started = time.perf_counter()
    log.info("making training samples from %d sources (cached under %s)", len(train_sources), work)
    train_paths = ds.group_paths(train_sources, view, config.clips_per_source, seed, work, config.sample, config.jobs)
    heldout_paths = []
    if heldout_sources and config.heldout_clips_per_source:
        heldout_config = replace(config.sample, plans_per_video=1)
        heldout_paths = ds.group_paths(heldout_sources, view, config.heldout_clips_per_source, seed + 10_000, work,
                                       heldout_config, config.jobs)
    data_seconds = time.perf_counter() - started
    fixed_measurements = hasattr(model, "head_outputs")
    if fixed_measurements:
        measurement_key = hashlib.sha256(net_source(config.model)).hexdigest()[:12]
        train = measured_groups(train_paths, model, manifest, measurement_key, config.threads)
        heldout = measured_groups(heldout_paths, model, manifest, measurement_key, config.threads) \
            if heldout_paths else None
    else:
        train = ds.concatenate_groups([ds.load_group(p) for p in train_paths])
        heldout = ds.concatenate_groups([ds.load_group(p) for p in heldout_paths]) if heldout_paths else None
    log.info("%d training samples in %.0f s (making them), %.0f s in all", len(train["targets"]), data_seconds,
             time.perf_counter() - started)
    t0 = time.perf_counter()
    if fixed_measurements:
        losses = train_head(model, manifest, train, config, training_seed, max_steps, features=train["features"])
    else:
        losses = train_model(model, manifest, train, config, training_seed, max_steps, device, time_budget_s)
    train_seconds = time.perf_counter() - t0
    summary: dict[str, Any] = {
        "recipe_hash": hash_of_recipe, "seed": seed, "train_samples": int(len(train["targets"])),
        **({"training_seed": training_seed} if training_seed != seed else {}),
        "train_sources": [s.name for s in train_sources], "heldout_sources": [s.name for s in heldout_sources],
        "steps": len(losses), "first_loss": round(float(np.mean(losses[:10])), 4),
        "last_loss": round(float(np.mean(losses[-10:])), 4), "data_seconds": round(data_seconds, 1),
        "train_seconds": round(train_seconds, 1), "config": config.to_dict(), "device": device,
        "targets": "score_d = 100 (1 - s_d); overall = 100 prod_d (1 - w_d s_d), w = " +
                   json.dumps(dist.OVERALL_WEIGHT, sort_keys=True),
    }
    if heldout is not None:
        if fixed_measurements:
            import torch

            with torch.no_grad():
                scores = model.head_outputs(torch.from_numpy(heldout["features"]))
            pred = np.stack([scores[n].numpy().reshape(-1) for n in manifest.outputs], 1) * TARGET_SCALE + TARGET_CENTRE
        else:
            pred = predict(model, manifest, heldout["x"])
        summary["heldout_samples"] = int(len(heldout["targets"]))
        summary["heldout_srcc"] = {k: None if v is None else round(v, 4) for k, v in
                                   heldout_correlations(pred, heldout, manifest.outputs).items()}
        log.info("held-out Spearman vs targets: %s", summary["heldout_srcc"])
    manifest = replace(manifest, description=f"edgevqa's default model: {config.model} trained on synthetic "
                                             "distortions (export/recipe); scores 0..100, higher is better",
                       metadata={**dict(manifest.metadata), "recipe": "edgevqa.export.recipe",
                                 **{k: summary[k] for k in ("recipe_hash", "seed", "training_seed", "train_samples",
                                                            "steps", "heldout_srcc") if k in summary}})
    import torch

    # The unfused weights, so the model can be re-exported or evaluated in torch without retraining.
    trained_by = f"seed{seed}" if training_seed == seed else f"seed{seed}-training{training_seed}"
    checkpoint = os.path.join(work, f"checkpoint-{trained_by}-{hash_of_recipe}.pt")
    torch.save({"state_dict": model.state_dict(), "manifest": manifest.to_dict()}, checkpoint)
    summary["checkpoint"] = checkpoint
    export_default(model, manifest, out, overwrite)
    summary["out"] = out
    summary["bytes"] = os.path.getsize(out)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgevqa.export.recipe.train", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="where to write the ONNX model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--training-seed", type=int, default=None,
                        help="seed of the training alone (default: --seed); the samples stay --seed's")
    parser.add_argument("--work", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "edgevqa-recipe"),
                        help="work directory for the sample cache (reused between runs)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--model", default=None, help="zoo model to train (default: lowlevel_mlp)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--clips-per-source", type=int, default=None)
    parser.add_argument("--crop-cells", type=int, default=None, help="training sub-mosaic size in fragments")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=None, help="processes making samples")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for training")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (smoke runs)")
    parser.add_argument("--device", default="cpu", help="torch device for training, e.g. cuda (default: cpu)")
    parser.add_argument("--time-budget", type=float, default=None, help="stop training after this many seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    pin_cpu_code_paths()
    changes = {k: v for k, v in (("model", args.model), ("epochs", args.epochs),
                                 ("clips_per_source", args.clips_per_source), ("jobs", args.jobs),
                                 ("threads", args.threads), ("crop_cells", args.crop_cells),
                                 ("batch_size", args.batch_size)) if v is not None}
    config = replace(RecipeConfig(), **changes)
    summary = run_recipe(args.out, args.seed, args.work, config, overwrite=args.overwrite, max_steps=args.max_steps,
                         device=args.device, time_budget_s=args.time_budget, training_seed=args.training_seed)
    json.dump(summary, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
