"""Loading a compiled extension of this package, or another build of it named by an environment variable
(``kernels/asan_check.sh`` runs the tests against AddressSanitizer builds that way)."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType


def load_extension(name: str, path_variable: str) -> ModuleType:
    """``edgevqa.kernels.<name>``, or the build at ``$path_variable`` loaded under that name. ImportError when
    neither can be loaded."""
    package = __package__
    full_name = f"{package}.{name}"
    path = os.environ.get(path_variable)
    if not path:
        return importlib.import_module(full_name)
    loader = importlib.machinery.ExtensionFileLoader(full_name, path)
    spec = importlib.util.spec_from_file_location(full_name, path, loader=loader)
    if spec is None:
        raise ImportError(f"{path_variable}={path} is not a loadable extension")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules[full_name] = module
    setattr(sys.modules[package], name, module)
    return module
