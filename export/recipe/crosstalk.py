"""Which measurements each head reads that follow other dimensions' distortions more than its own.

    python -m edgevqa.export.recipe.crosstalk --work /tmp/edgevqa-recipe [--heads artifact noise]

A head that reads a measurement which moves with another dimension's distortion lets that distortion move its
score: the artifact score rose and fell with noise and blur through the full-resolution diagonal MSCN products
until 2.8 left them out of its family (`lowlevel.FEATURE_GROUPS`). For every measurement in a head's family this
prints the Spearman correlation, over the recipe's training samples with one distorted dimension or none, between
the measurement and each dimension's severity (the samples where that dimension is the distorted one, and the
pristine ones). Reads the recipe's cached samples and measurements in ``--work``, making what is missing as the
recipe does (the seed selects the samples, as in `train`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import numpy as np


def severity_correlations(features: np.ndarray, severity: np.ndarray) -> np.ndarray:
    """``[F, D]`` Spearman correlations of each measurement (``features`` ``[N, F]``) with each dimension's
    severity (``severity`` ``[N, D]``), each over the samples whose other dimensions are all 0; NaN where a
    measurement or a severity is constant there."""
    from scipy.stats import spearmanr

    features = np.asarray(features, dtype=np.float64)
    severity = np.asarray(severity, dtype=np.float64)
    out = np.full((features.shape[1], severity.shape[1]), np.nan)
    for d in range(severity.shape[1]):
        others = np.delete(severity, d, axis=1)
        alone = np.all(others == 0, axis=1)
        sev = severity[alone, d]
        if alone.sum() < 3 or np.ptp(sev) == 0:
            continue
        for f in range(features.shape[1]):
            column = features[alone, f]
            if np.ptp(column) > 0:
                out[f, d] = spearmanr(column, sev).statistic
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from . import train

    train.pin_cpu_code_paths()  # the measurements as the recipe makes them (cached ones are reused)
    from . import content as content_mod
    from . import dataset as ds
    from . import distortions as dist

    parser = argparse.ArgumentParser(prog="python -m edgevqa.export.recipe.crosstalk",
                                      description=__doc__.split("\n")[0])
    parser.add_argument("--work", required=True, help="the recipe's work directory (its sample cache)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--heads", nargs="*", default=None, help="heads to list (default: every head)")
    args = parser.parse_args(argv)

    import hashlib

    config = train.RecipeConfig()
    model, manifest = train.build_model(config)
    groups = getattr(sys.modules[type(model).__module__], "FEATURE_GROUPS", None)
    names = getattr(sys.modules[type(model).__module__], "FEATURE_NAMES", None)
    if groups is None or names is None:
        print(f"{config.model}: not a net of fixed measurements with per-head families", file=sys.stderr)
        return 1
    heads = args.heads or list(groups)
    unknown = [h for h in heads if h not in groups]
    if unknown:
        print(f"unknown head(s) {unknown}; the heads are {list(groups)}", file=sys.stderr)
        return 1
    sources = content_mod.split(content_mod.default_content(), "train")
    paths = ds.group_paths(sources, manifest.views[0], config.clips_per_source, args.seed, args.work, config.sample,
                           config.jobs)
    key = hashlib.sha256(train.net_source(config.model)).hexdigest()[:12]
    data = train.measured_groups(paths, model, manifest, key, config.threads)
    table = severity_correlations(data["features"], data["severity"])
    dims = list(dist.DIMENSIONS)
    print(f"{len(data['features'])} training samples; Spearman with each dimension's severity, over the samples "
          "where it is the only distorted dimension or none is")
    for head in heads:
        print(f"{head}:")
        print(f"  {'measurement':20s}" + "".join(f"{d:>10s}" for d in dims))
        for name in groups[head]:
            row = table[list(names).index(name)]
            print(f"  {name:20s}" + "".join(f"{v:+10.2f}" for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
