"""Training samples made the way inference makes model inputs: distort, encode, decode, plan, sample.

A pristine clip from `content` is distorted in the pixel domain (`distortions.apply`), encoded to a temporary
H.264 mp4 with PyAV's libx264 (so the artifact dimension is real compression and every sample went through a
codec, as every scored video has), then decoded with `edgevqa.decode.PyAVDecoder`, planned with
`edgevqa.sampling.make_plan` from the model's manifest view and sampled with `edgevqa.kernels.sample_frame`:
exactly the runtime's path, so training sees what inference sees.

Samples are stored as the sampler's 8-bit RGB (the normalisation table is inverted exactly: it is strictly
increasing per channel), which is four times smaller than float32; `normalise` turns them back into the
model's input with the same table the runtime uses. Groups of samples are cached as ``.npz`` files under the
work directory, keyed by a hash of everything that made them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zlib
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np

from edgevqa import kernels
from edgevqa.decode import PyAVDecoder
from edgevqa.feed import sample_plans
from edgevqa.manifest import ViewSpec
from edgevqa.sampling import make_plan

from . import distortions as dist
from .content import ContentSource

# 2: re-encoded copies; 3: no-op distortions labelled pristine; 4: single-threaded encodes; 5: libx264 capped at
# AVX2 code on AVX-512 processors (x264_cpu_override)
DATASET_VERSION = 5


@dataclass(frozen=True)
class SampleConfig:
    """How many samples are drawn per content clip, and how clips are encoded."""

    fps: int = 24
    distortions_per_clip: int = 4
    plans_per_video: int = 2  # plan seeds per encoded video: None (centred) first, then random offsets
    pristine: float = 0.12
    single: float = 0.48
    # Every encoded clip is also decoded and encoded once more at a visually lossless CRF drawn from this
    # range (None: not), and that copy is sampled with the first plan seed under the same targets: a score
    # must not move when a clip goes through one more high-quality encode.
    reencode_crf: tuple[int, int] | None = (8, 14)

    def to_dict(self) -> dict:
        return asdict(self)


def frames_for_view(view: ViewSpec, margin: int = 8, minimum: int = 24) -> int:
    """Clip length that lets every segment of ``view`` take its frames at the view's own stride."""
    span = view.frames_per_segment * view.frame_interval
    return max(minimum, view.num_clips * view.segments_per_clip * (span + margin))


# ------------------------------------------------------------------------------------------ codec


def x264_cpu_override() -> str | None:
    """libx264's `asm` setting for the recipe's encodes: "AVX2" on x86 processors with AVX-512, else None (its
    own detection). With its AVX-512 code (2026-11-29, PyAV 16 to 18 on an AMD Zen 5 VM) one single-threaded
    encode gave other bits than the same encode before it in the same process (20 in a row: up to 9 different
    files), so samples depended on what the process had done; with AVX2 code, or none, every encode was
    identical. libx264's code paths also differ in their bits (no asm, AVX2 and AVX-512 each gave another file),
    so capping at AVX2 also gives such machines the bits of AVX2-only ones."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        return None
    return "AVX2" if "avx512f" in flags and "avx2" in flags else None


def encode_clip(frames: np.ndarray, path: str, fps: int, settings: dist.EncodeSettings) -> str:
    """Encode uint8 RGB ``[T, H, W, 3]`` (H, W even) to an H.264 yuv420p mp4 at ``path``."""
    import av

    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"frames must have even sizes for yuv420p, got {w}x{h}")
    with av.open(path, mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        options = {"preset": settings.preset}
        if settings.crf is not None:
            options["crf"] = str(settings.crf)
        else:
            rate = settings.bit_rate(w, h, fps)
            stream.bit_rate = rate
            # A VBV buffer of one second keeps the rate near the target inside a short clip.
            options.update({"maxrate": str(rate), "bufsize": str(rate)})
        cpu = x264_cpu_override()
        if cpu:
            options["x264-params"] = f"asm={cpu}"
        stream.options = options
        # One encoder thread: libx264's output depends on its thread count (CRF mode: different bits for 1, 2,
        # 3 and 4 threads; bitrate mode with VBV: different bits from run to run with more than one), and its
        # default count follows the machine's cores, so the same seed made other samples, and another model,
        # on another machine. The recipe runs groups in parallel processes instead.
        stream.codec_context.thread_count = 1
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(t):
            frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def reencode_clip(src: str, dst: str, crf: int, preset: str = "veryfast") -> str:
    """Decode ``src`` (every frame, RGB) and encode it again with libx264 at ``crf``, the same frame rate."""
    import av

    with av.open(src) as container:
        stream = container.streams.video[0]
        fps = int(round(float(stream.average_rate or 24)))
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
    return encode_clip(frames, dst, fps, dist.EncodeSettings(crf=crf, preset=preset))


def sample_video(path: str, view: ViewSpec, seeds: Sequence[int | None]) -> list[np.ndarray]:
    """The view's model input for each plan seed, as 8-bit RGB in the view's layout (one decode for all)."""
    with PyAVDecoder(path) as decoder:
        plans = [make_plan(view, decoder.info, seed) for seed in seeds]
        outs = sample_plans(decoder, plans).arrays
    return [to_uint8(o, view) for o in outs]


def to_uint8(x: np.ndarray, view: ViewSpec) -> np.ndarray:
    """Invert the view's normalisation table: the sampler's 8-bit RGB values (any leading axes)."""
    axis = x.ndim - 4 if view.layout == "NCTHW" else x.ndim - 3
    shape = [1] * x.ndim
    shape[axis] = 3
    mean = np.asarray(view.mean, dtype=np.float64).reshape(shape)
    std = np.asarray(view.std, dtype=np.float64).reshape(shape)
    return np.clip(np.rint(x.astype(np.float64) * std + mean), 0, 255).astype(np.uint8)


def normalise(u8: np.ndarray, view: ViewSpec) -> np.ndarray:
    """8-bit RGB samples (any leading axes, the view's layout) -> the model's input, via the runtime's table."""
    table = kernels.normalisation_table(view.mean, view.std, view.dtype)
    axis = u8.ndim - 4 if view.layout == "NCTHW" else u8.ndim - 3
    out = np.empty(u8.shape, dtype=np.dtype(view.dtype))
    for c in range(3):
        index = [slice(None)] * u8.ndim
        index[axis] = c
        out[tuple(index)] = table[c][u8[tuple(index)]]
    return out


# ------------------------------------------------------------------------------------------ groups


def _group_key(source: ContentSource, clip_seed: int, view: ViewSpec, config: SampleConfig) -> str:
    blob = json.dumps({"v": DATASET_VERSION, "source": source.identity(), "clip_seed": clip_seed,
                       "view": view.to_dict(), "config": config.to_dict(),
                       "mapping": [dist.GAMMA, dist.OVERALL_WEIGHT, dist.PRISTINE_CRF]},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def make_group(source: ContentSource, clip_seed: int, view: ViewSpec, config: SampleConfig,
               distortion_list: Sequence[dist.Distortion] | None = None,
               plan_seeds: Sequence[int | None] | None = None) -> dict[str, np.ndarray]:
    """Samples from one pristine clip of ``source``: each distortion encoded once, sampled per plan seed.

    Returns ``x`` (uint8 [N, *view input shape]), ``targets`` (float32 [N, 6] in ``OUTPUT_NAMES`` order),
    ``severity`` (float32 [N, 5] in ``DIMENSIONS`` order) and ``distortion`` (JSON strings).
    """
    rng = np.random.default_rng(clip_seed)
    pristine = source.clip(rng, frames_for_view(view))
    if distortion_list is None:
        distortion_list = [dist.random_distortion(rng, config.pristine, config.single)
                           for _ in range(config.distortions_per_clip)]
    if plan_seeds is None:
        plan_seeds = [None] + [int(rng.integers(0, 2**31 - 1)) for _ in range(config.plans_per_video - 1)]
    xs, targets, severities, names = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="edgevqa-recipe-") as tmp:
        for k, d in enumerate(distortion_list):
            frames = dist.apply(pristine, d)
            path = encode_clip(frames, os.path.join(tmp, f"{k}.mp4"), config.fps, dist.encode_settings(d))
            d = dist.without_no_ops(pristine, d)  # the targets of what was done to the pixels
            t = d.targets()
            samples = sample_video(path, view, plan_seeds)
            if config.reencode_crf is not None:
                crf = int(rng.integers(config.reencode_crf[0], config.reencode_crf[1] + 1))
                again = reencode_clip(path, os.path.join(tmp, f"{k}-again.mp4"), crf)
                samples += sample_video(again, view, plan_seeds[:1])
            for x in samples:
                xs.append(x)
                targets.append([t[n] for n in dist.OUTPUT_NAMES])
                severities.append([d.level(n) for n in dist.DIMENSIONS])
                names.append(json.dumps(d.to_dict(), sort_keys=True))
    return {"x": np.stack(xs), "targets": np.asarray(targets, np.float32),
            "severity": np.asarray(severities, np.float32), "distortion": np.asarray(names)}


def cached_group_path(work_dir: str, source: ContentSource, clip_seed: int, view: ViewSpec,
                      config: SampleConfig) -> str:
    """`make_group`'s result saved as ``<work_dir>/samples/<key>.npz`` (made only when absent)."""
    folder = os.path.join(work_dir, "samples")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, _group_key(source, clip_seed, view, config) + ".npz")
    if not os.path.exists(path):
        group = make_group(source, clip_seed, view, config)
        tmp = path + f".{os.getpid()}.tmp.npz"
        np.savez(tmp, **group)
        os.replace(tmp, path)
    return path


def _group_job(args) -> str:
    return cached_group_path(*args)


def load_group(path: str) -> dict[str, np.ndarray]:
    """One cached group (``x``, ``targets``, ``severity``, ``distortion``)."""
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def concatenate_groups(groups: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Groups (from `load_group`) as one dataset, with ``group``: which pristine clip each sample comes from
    (samples of one group share their content)."""
    data = {k: np.concatenate([g[k] for g in groups]) for k in groups[0]}
    data["group"] = np.concatenate([np.full(len(g["targets"]), i, dtype=np.int32) for i, g in enumerate(groups)])
    return data


def group_paths(sources: Sequence[ContentSource], view: ViewSpec, clips_per_source: int, seed: int,
                work_dir: str, config: SampleConfig = SampleConfig(), jobs: int = 1) -> list[str]:
    """Make (or find in the cache) every source's ``clips_per_source`` groups; their ``.npz`` paths."""
    tasks = []
    for source in sources:
        for c in range(clips_per_source):
            clip_seed = int(np.random.default_rng([seed, zlib.crc32(source.name.encode()), c]).integers(0, 2**31 - 1))
            tasks.append((work_dir, source, clip_seed, view, config))
    if jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            paths = pool.map(_group_job, tasks, chunksize=1)
    else:
        paths = [_group_job(t) for t in tasks]
    return paths
