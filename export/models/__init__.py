"""The model zoo: named variants of the ATHQA-style net, the low-level-feature net and SimpleVQA, each knowing its manifest.

Importing this package imports torch (it is the torch side of edgevqa; install the ``export`` extra).
"""

from . import athqa, lowlevel, simplevqa  # noqa: F401  (importing registers the variants)
from .layers import count_parameters, fold_batchnorm, fuse_model
from .registry import ModelEntry, create_model, get_manifest, list_models, model_entry, register_model

__all__ = ["ModelEntry", "count_parameters", "create_model", "fold_batchnorm", "fuse_model", "get_manifest",
           "list_models", "model_entry", "register_model"]
