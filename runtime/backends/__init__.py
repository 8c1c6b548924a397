"""Inference backends, one `Runner` subclass each; heavy libraries are imported inside the runners."""

from .base import Runner, TensorMeta

__all__ = ["Runner", "TensorMeta"]
