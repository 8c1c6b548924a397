"""What deinterlacing costs: the C form (`edgevqa.kernels._deinterlace`) against its NumPy specification on
decoded interlaced frames, beside the time to decode them, in one run.

Generates an interlaced H.264 clip (a rendered scene that moves between the fields: fields taken from
consecutive frames of a clip at twice the rate, coded with field DCT and motion estimation, ``--size``
1920x1080 by default; kept in the work folder), decodes ``--frames`` frames, and times on every frame's planes
(median over ``--repeats`` passes): the C deinterlacer, the NumPy one, and decoding. Checks they agree bit
for bit and reports the share of samples replaced. The pipeline deinterlaces only the frames a model
samples (8 of a clip for the default model), so the share of a score's time is smaller still.

    python bench/deinterlace_speed.py [--size 1920x1080] [--frames 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np


def write_interlaced_clip(path: str, width: int, height: int, frames: int, seed: int = 5) -> str:
    """``frames`` interlaced frames woven from ``2 * frames`` rendered ones (top field first)."""
    from edgevqa.samples import render_scene, write_clip

    scene = render_scene(width, height, 2 * frames, seed=seed)
    woven = scene[0::2].copy()
    woven[:, 1::2] = scene[1::2, 1::2]  # the bottom field from the next instant
    return write_clip(path, frames=woven, fps=25, crf=18, options={"flags": "+ilme+ildct", "x264-params": "tff=1"},
                      overwrite=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "edgevqa-deinterlace-bench"))
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    os.makedirs(args.work, exist_ok=True)

    from edgevqa import deinterlace
    from edgevqa.decode import PyAVDecoder

    clip = os.path.join(args.work, f"interlaced_{width}x{height}_{args.frames}.mp4")
    if not os.path.exists(clip):
        write_interlaced_clip(clip + ".tmp.mp4", width, height, args.frames)
        os.replace(clip + ".tmp.mp4", clip)

    decode_s = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        with PyAVDecoder(clip, deinterlace=False) as decoder:
            count = sum(1 for _frame in decoder.frames(range(args.frames)))
        decode_s.append((time.perf_counter() - started) / count)
    with PyAVDecoder(clip, deinterlace=False) as decoder:
        planes = [[p.copy() for p in frame.planes] for frame in decoder.frames(range(args.frames))]
        interlaced = decoder.info.interlaced
        field = decoder.kept_field
    if deinterlace._compiled is None:
        print("the C deinterlacer is not built: nothing to compare")
        return 1

    def timed(function) -> tuple[float, list[list[np.ndarray]]]:
        times, out = [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            out = [[function(p, field, 8) for p in frame] for frame in planes]
            times.append((time.perf_counter() - started) / len(planes))
        return statistics.median(times), out

    c_s, c_out = timed(deinterlace.deinterlace_plane)
    ref_s, ref_out = timed(deinterlace.deinterlace_plane_reference)
    equal = all(np.array_equal(a, b) for fa, fb in zip(c_out, ref_out) for a, b in zip(fa, fb))
    replaced = np.mean([np.mean(a != p) for fa, fp in zip(c_out, planes) for a, p in zip(fa, fp)])
    decode = statistics.median(decode_s)
    ms = lambda s: f"{s * 1e3:8.3f} ms/frame"  # noqa: E731
    print(f"clip: {width}x{height} H.264, {len(planes)} frames, coded interlaced: {interlaced}, "
          f"field kept: {'top' if field == 0 else 'bottom'}")
    print(f"decode (PyAV)            {ms(decode)}")
    print(f"C deinterlace            {ms(c_s)}  ({100 * c_s / decode:.1f} % of decode)")
    print(f"NumPy deinterlace        {ms(ref_s)}  (C is {ref_s / c_s:.1f}x faster)")
    print(f"C == NumPy bit for bit: {equal}; samples replaced (combing): {100 * replaced:.1f} %")
    return 0 if equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
