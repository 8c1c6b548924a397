"""A Triton Inference Server model repository that scores videos with an edgevqa model (``edgevqa triton``).

    REPO/NAME/config.pbtxt    Python backend; input VIDEO (one video's bytes), outputs: a score per model output
                              (FP64) and RESULT (the whole result as JSON)
    REPO/NAME/1/model.py      `edgevqa.triton_model`: a Pipeline per instance (decode, sample, infer on the CPU)
    REPO/NAME/1/model.onnx    the model, its manifest inside

Clients send encoded video (MP4, MKV, MPEG-TS, ...) and get scores back; nothing about sampling is left to
them. The server's Python must import edgevqa: installed where Triton runs (a container with ``pip install
edgevqa``), or named with ``python_path`` (written by default as the folders this edgevqa and its libraries come
from, right for a server on this machine). Triton's Python backend is built against NumPy 1: that Python needs
``numpy<2``.
"""

from __future__ import annotations

import os
import shutil
import site
from importlib import resources

from .bars import crop_bars_mode
from .deinterlace import deinterlace_mode
from .tonemap import tone_map_mode
from .errors import EdgeVQAError
from .manifest import load_manifest
from .triton_model import RESULT_OUTPUT, VIDEO_INPUT


def default_python_path() -> str:
    """The folders this edgevqa and its libraries are imported from, as a ``python_path`` parameter."""
    import edgevqa

    package = os.path.dirname(os.path.abspath(edgevqa.__file__))
    folders = [os.path.dirname(package)] if os.path.basename(package) == "edgevqa" else []
    # site-packages too: the libraries, and for an editable install the finder that lays out the package
    folders += [p for p in site.getsitepackages() + [site.getusersitepackages()] if os.path.isdir(p)]
    unique: list[str] = []
    for folder in folders:
        if folder not in unique:
            unique.append(folder)
    return os.pathsep.join(unique)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_text(name: str, outputs: list[str], instances: int, threads: int, python_path: str,
                deinterlace: bool | str = "auto", tone_map: bool | str = "auto", crop_bars: bool | str = "auto") -> str:
    """The repository's ``config.pbtxt`` (protobuf text format)."""
    tensors = ",\n".join(f"  {{ name: {_quoted(o)} data_type: TYPE_FP64 dims: [ 1 ] }}" for o in outputs)
    parameters = {"model_file": "model.onnx", "threads": str(threads), "python_path": python_path,
                  "deinterlace": deinterlace_mode(deinterlace), "tone_map": tone_map_mode(tone_map),
                  "crop_bars": crop_bars_mode(crop_bars)}
    params = ",\n".join(f"  {{ key: {_quoted(k)} value: {{ string_value: {_quoted(v)} }} }}"
                        for k, v in parameters.items())
    return (f"name: {_quoted(name)}\n"
            'backend: "python"\n'
            "max_batch_size: 0\n"
            f"input [\n  {{ name: {_quoted(VIDEO_INPUT)} data_type: TYPE_STRING dims: [ 1 ] }}\n]\n"
            f"output [\n{tensors},\n  {{ name: {_quoted(RESULT_OUTPUT)} data_type: TYPE_STRING dims: [ 1 ] }}\n]\n"
            f"instance_group [\n  {{ count: {instances} kind: KIND_CPU }}\n]\n"
            f"parameters [\n{params}\n]\n")


def write_repository(model: str, repository: str, name: str = "edgevqa", instances: int = 1, threads: int = 1,
                     python_path: str | None = None, deinterlace: bool | str = "auto", tone_map: bool | str = "auto",
                     force: bool = False, crop_bars: bool | str = "auto") -> str:
    """Write ``repository/name`` for ``model`` (an .onnx file with a manifest); returns that folder. An existing
    model folder is refused unless ``force`` (then replaced); other models in the repository are left alone."""
    manifest = load_manifest(model)  # a clear error for a file that is not an edgevqa model
    deinterlace, tone_map, crop_bars = deinterlace_mode(deinterlace), tone_map_mode(tone_map), crop_bars_mode(crop_bars)
    if not name or any(c in name for c in "/\\") or name in (".", ".."):
        raise EdgeVQAError(f"triton: {name!r} cannot be a model name (a folder name without slashes)")
    if instances < 1 or threads < 1:
        raise EdgeVQAError(f"triton: --instances and --threads must be at least 1, got {instances} and {threads}")
    bad = [o for o in manifest.outputs if o in (VIDEO_INPUT, RESULT_OUTPUT)]
    if bad:
        raise EdgeVQAError(f"triton: the model's outputs {bad} clash with the repository's tensor names")
    if os.path.exists(repository) and not os.path.isdir(repository):
        raise EdgeVQAError(f"triton: {repository} exists and is not a directory")
    folder = os.path.join(repository, name)
    if os.path.exists(folder):
        if not force:
            raise EdgeVQAError(f"triton: {folder} already exists; add --force to replace it")
        shutil.rmtree(folder)
    version = os.path.join(folder, "1")
    os.makedirs(version)
    shutil.copyfile(model, os.path.join(version, "model.onnx"))
    sidecar = model + ".manifest.json"
    if os.path.isfile(sidecar):  # a manifest beside the model, not inside it: it travels along
        shutil.copyfile(sidecar, os.path.join(version, "model.onnx.manifest.json"))
    script = resources.files("edgevqa").joinpath("triton_model.py").read_text(encoding="utf-8")
    with open(os.path.join(version, "model.py"), "w", encoding="utf-8") as fh:
        fh.write(script)
    with open(os.path.join(folder, "config.pbtxt"), "w", encoding="utf-8") as fh:
        fh.write(config_text(name, list(manifest.outputs), instances, threads,
                             default_python_path() if python_path is None else python_path, deinterlace,
                             tone_map, crop_bars))
    return folder
