"""Decoding with NVIDIA DALI: NVDEC on the GPU (frames stay on the device), or DALI's CPU decoder for VP8/VP9.

Same contract as `edgevqa.decode.PyAVDecoder`: ``DaliDecoder(source, device=...)`` has ``info`` (a
`VideoInfo`, probed on the host with PyAV: container facts plus the first frame) and ``frames(indices)``
yielding `Frame` objects for the wanted indices in order, stopping after the last one. Differences, all from
DALI's ``fn.decoders.video`` operator (DALI 2.x; the ``frames=`` argument decodes just the listed indices):

- frames come out as interleaved RGB (DALI converts from YUV itself), so a `Frame` here holds R, G, B plane
  views (``is_rgb=True``, full range) of one ``[H, W, 3]`` uint8 array; the sampling kernels read them through
  the RGB pass-through conversion;
- ``device='gpu'`` (or ``'mixed'``: DALI's name for host input, device output) decodes with NVDEC; the planes
  are then CUDA tensors (torch views over a device copy of DALI's output), ready for the CUDA sampling
  kernels, which take any object with ``__cuda_array_interface__`` or DLPack. NVDEC handles H.264, HEVC,
  VP8, VP9, AV1, MPEG-4 and MJPEG;
- ``device='cpu'`` runs DALI's FFmpeg-based CPU decoder, which DALI builds for VP8, VP9 and MJPEG only: other
  codecs are refused with a `VideoDecodeError` that says to use the GPU or PyAV;
- ``Frame.pts`` is ``index / fps`` (the operator does not return timestamps);
- 8-bit output only; display rotation is applied as in PyAVDecoder.

Frames are decoded in chunks of ``max_frames_per_run`` so device memory stays bounded on long videos.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Iterator

import numpy as np

from .decode import PyAVDecoder
from .errors import BackendUnavailableError, EdgeVQAError, VideoDecodeError
from .video import Frame, VideoInfo

DALI_EXTRA = "dali"
CPU_CODECS = ("vp8", "vp9", "mjpeg", "libvpx", "libvpx-vp9")
DEVICES = ("cpu", "gpu", "mixed")


def import_dali():
    """``(nvidia.dali.fn, nvidia.dali.types, pipeline_def)`` or `BackendUnavailableError` naming the extra."""
    try:
        from nvidia.dali import fn, pipeline_def, types
    except ImportError as exc:
        raise BackendUnavailableError("dali-decode", "NVIDIA DALI (nvidia-dali-cuda130)", DALI_EXTRA,
                                      str(exc)) from exc
    return fn, types, pipeline_def


def _read_source(source: Any, name: str) -> np.ndarray:
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if "://" in path:
            raise VideoDecodeError(f"{path}: DaliDecoder reads local files or bytes, not URLs")
        if not os.path.exists(path):
            raise VideoDecodeError(f"{path}: no such file")
        if os.path.isdir(path):
            raise VideoDecodeError(f"{path}: is a directory, not a video file")
        with open(path, "rb") as fh:
            data = fh.read()
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        data = source.read()
    else:
        raise VideoDecodeError(f"{name}: DaliDecoder takes a path, bytes or a file object, "
                               f"got {type(source).__name__}")
    if not data:
        raise VideoDecodeError(f"{name}: file is empty")
    return np.frombuffer(data, dtype=np.uint8)


class DaliDecoder:
    """Decode one video with DALI. Use as a context manager; `info` is ready after construction."""

    def __init__(self, source: Any, device: str = "gpu", device_id: int = 0, num_threads: int = 2,
                 max_frames_per_run: int = 32):
        if device not in DEVICES:
            raise EdgeVQAError(f"DaliDecoder device must be one of {DEVICES}, got {device!r}")
        if max_frames_per_run < 1:
            raise EdgeVQAError(f"max_frames_per_run must be >= 1, got {max_frames_per_run}")
        self._fn, self._types, self._pipeline_def = import_dali()
        from .decode import describe_source

        self.name = describe_source(source)
        self.device = "cpu" if device == "cpu" else "mixed"
        self.device_id = int(device_id)
        self.num_threads = int(num_threads)
        self.max_frames_per_run = int(max_frames_per_run)
        self._encoded = _read_source(source, self.name)
        with PyAVDecoder(self._encoded.tobytes()) as probe:
            info = probe.info
        # Describe the frames this decoder yields (RGB, full range), so plans are made for their planes.
        self.source_pix_fmt = info.pix_fmt
        self.info: VideoInfo = VideoInfo(**{**info.to_dict(), "path": self.name, "pix_fmt": "rgb24", "bit_depth": 8,
                                            "chroma_shift": (0, 0), "is_rgb": True, "color_range": "full"})
        if self.device == "cpu" and self.info.codec not in CPU_CODECS:
            raise VideoDecodeError(f"{self.name}: DALI's CPU decoder reads VP8, VP9 and MJPEG only, this video is "
                                   f"{self.info.codec or 'of an unknown codec'}; decode it on the GPU "
                                   "(device='gpu') or with PyAVDecoder")
        self._torch: Any = None
        if self.device == "mixed":
            try:
                import torch
            except ImportError as exc:
                raise BackendUnavailableError("dali-decode", "torch (device frames are torch CUDA tensors)",
                                              "export", str(exc)) from exc
            if not torch.cuda.is_available():
                raise BackendUnavailableError("dali-decode", "a CUDA GPU for NVDEC", None,
                                              f"torch {torch.__version__} sees no CUDA device")
            self._torch = torch
        self._pipeline: Any = None
        self.decode_error: str | None = None

    # ------------------------------------------------------------------ DALI pipeline

    def _build(self) -> Any:
        fn, types = self._fn, self._types
        device = self.device

        @self._pipeline_def(batch_size=1, num_threads=self.num_threads,
                            device_id=None if device == "cpu" else self.device_id, prefetch_queue_depth=1)
        def video_pipeline():
            encoded = fn.external_source(name="encoded", dtype=types.UINT8, ndim=1)
            wanted = fn.external_source(name="wanted", dtype=types.INT32, ndim=1)
            # pad_mode='none': an index past the real end is an error, never a silently black frame.
            return fn.decoders.video(encoded, device=device, frames=wanted, pad_mode="none")

        pipeline = video_pipeline()
        pipeline.build()
        return pipeline

    def _decode_chunk(self, indices: np.ndarray) -> Any:
        if self._pipeline is None:
            self._pipeline = self._build()
        self._pipeline.feed_input("encoded", [self._encoded])
        self._pipeline.feed_input("wanted", [indices.astype(np.int32)])
        try:
            (output,) = self._pipeline.run()
        except RuntimeError as exc:
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            reason = next((ln for ln in reversed(lines) if "frame" in ln.lower() or "error" in ln.lower()),
                          lines[-1] if lines else type(exc).__name__)
            self._pipeline = None  # a failed DALI pipeline is not reusable
            raise VideoDecodeError(f"{self.name}: DALI could not decode frames {indices.tolist()[:4]}... "
                                   f"({reason[:300]})") from exc
        if self.device == "cpu":
            return np.array(output[0])  # own the pixels: DALI reuses its output buffers on the next run
        torch = self._torch
        tensor = output[0]
        view = torch.from_dlpack(tensor) if hasattr(tensor, "__dlpack__") else torch.as_tensor(
            tensor, device=f"cuda:{self.device_id}")
        torch.cuda.synchronize(self.device_id)  # DALI works on its own stream
        return view.clone()

    # ------------------------------------------------------------------ frames

    def frames(self, indices: Iterable[int] | None = None) -> Iterator[Frame]:
        """Yield frames with the given (sorted, distinct) indices; all frames when None. Indices at or past the
        stream's frame count are not yielded."""
        count = self.info.num_frames
        if indices is None:
            wanted = np.arange(count, dtype=np.int64)
        else:
            wanted = np.asarray(sorted(set(int(i) for i in indices)), dtype=np.int64)
            wanted = wanted[(wanted >= 0) & (wanted < count)]
        for start in range(0, wanted.size, self.max_frames_per_run):
            chunk = wanted[start:start + self.max_frames_per_run]
            pixels = self._decode_chunk(chunk)
            if len(pixels) != chunk.size:
                raise VideoDecodeError(f"{self.name}: DALI returned {len(pixels)} frames for {chunk.size} indices")
            for k, index in enumerate(chunk):
                yield self._to_frame(int(index), pixels[k])

    def _to_frame(self, index: int, rgb: Any) -> Frame:
        k = (self.info.rotation // 90) % 4
        if k:
            rgb = np.rot90(rgb, k) if isinstance(rgb, np.ndarray) else self._torch.rot90(rgb, k, dims=(0, 1))
        planes = (rgb[..., 0], rgb[..., 1], rgb[..., 2])
        fps = self.info.fps or 25.0
        return Frame(index=index, pts=index / fps, planes=planes, bit_depth=8, is_rgb=True, chroma_shift=(0, 0),
                     color_matrix=self.info.color_matrix, color_range="full", owner=rgb)

    def close(self) -> None:
        self._pipeline = None

    def __enter__(self) -> "DaliDecoder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
