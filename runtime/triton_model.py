"""The model of an edgevqa Triton repository (`edgevqa.triton_repo`): copied there as ``model.py`` and run by
Triton Inference Server's Python backend. Each request carries one video's encoded bytes (``VIDEO``,
TYPE_STRING); the response carries one score per model output (TYPE_FP64) and the whole `Result` as JSON
(``RESULT``), warnings included. A video that cannot be scored gets an error response naming the problem;
the other requests of the batch are still answered.

Triton's ``model.py`` must import without edgevqa on the path (the repository's ``python_path`` parameter adds
it in `initialize`), so edgevqa and NumPy are imported there, and the backend's own module inside the methods.
"""

from __future__ import annotations

import json
import os
import site
import sys
from typing import Any

VIDEO_INPUT = "VIDEO"
RESULT_OUTPUT = "RESULT"


class TritonPythonModel:
    """One `edgevqa.pipeline.Pipeline` per model instance, built from the repository's parameters."""

    def initialize(self, args: dict[str, Any]) -> None:
        config = json.loads(args["model_config"])
        parameters = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        # The folders of edgevqa and its libraries go first, as site directories (their .pth files count: an
        # editable install is found through one), ahead of whatever the backend's interpreter found by itself.
        before = list(sys.path)
        for path in [p for p in parameters.get("python_path", "").split(os.pathsep) if p]:
            site.addsitedir(path)
        added = [p for p in sys.path if p not in before]
        sys.path[:] = added + [p for p in sys.path if p not in added]
        from edgevqa.pipeline import Pipeline

        folder = os.path.join(args["model_repository"], args["model_version"])
        threads = int(parameters.get("threads") or 1)
        self.pipeline = Pipeline(os.path.join(folder, parameters.get("model_file") or "model.onnx"), threads=threads,
                                 decode_threads=threads, deinterlace=parameters.get("deinterlace") or "auto",
                                 tone_map=parameters.get("tone_map") or "auto",
                                 crop_bars=parameters.get("crop_bars") or "auto")
        self.pipeline.activate()  # load the model now, not on the first request
        self.outputs = list(self.pipeline.manifest.outputs)

    def execute(self, requests: list[Any]) -> list[Any]:
        import numpy as np
        import triton_python_backend_utils as pb_utils

        from edgevqa.errors import EdgeVQAError

        responses = []
        for request in requests:
            video = pb_utils.get_input_tensor_by_name(request, VIDEO_INPUT).as_numpy().reshape(-1)
            if video.size != 1:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                    f"{VIDEO_INPUT} must hold one video's bytes, got {video.size} elements")))
                continue
            data = video[0]
            data = data.encode() if isinstance(data, str) else bytes(data)
            try:
                result = self.pipeline.score(data)
            except EdgeVQAError as exc:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
                continue
            tensors = [pb_utils.Tensor(name, np.array([result.scores[name]], dtype=np.float64))
                       for name in self.outputs]
            tensors.append(pb_utils.Tensor(RESULT_OUTPUT, np.array([json.dumps(result.to_dict()).encode()],
                                                                   dtype=np.object_)))
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

    def finalize(self) -> None:
        self.pipeline.close()
