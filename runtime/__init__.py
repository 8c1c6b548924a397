"""edgevqa: a fast inference runtime for no-reference video quality assessment models.

``import edgevqa`` needs only the base dependencies (numpy, onnx, onnxruntime, av) and no GPU.
"""

from .errors import (BackendUnavailableError, EdgeVQAError, KernelError, ManifestError, ModelError, PlanError,
                     VideoDecodeError)
from .manifest import ModelManifest, ViewSpec

__version__ = "0.1.0"

__all__ = ["BackendUnavailableError", "EdgeVQAError", "KernelError", "ManifestError", "ModelError", "PlanError",
           "VideoDecodeError", "ModelManifest", "ViewSpec", "__version__"]
