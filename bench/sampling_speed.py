"""Sampling speed: FAST-VQA fragments from 32 decoded 1080p frames, three ways, ratios measured in one run.

Host (``--device cpu``, the default):

- ``C from YUV``: `edgevqa.kernels.native.sample_frame` on the decoder's planes (only the kept pixels are
  converted, sampling.md section 5);
- ``NumPy reference``: `edgevqa.kernels.reference.sample_frame` (the specification);
- ``RGB convert + slice``: what FAST-VQA's own preprocessing amounts to: PyAV/libswscale converts the whole
  frame (``frame.to_ndarray('rgb24')``), then the 7x7 patches are cut out by fancy indexing and normalised
  in float32;

and the decode time of the same frames, so sampling can be quoted as a percentage of decoding. Also timed, as
the floor of any sampler on the machine: copying the output's bytes for each frame from a cache-warm source
into the same positions, during decode (nothing read from the frame, nothing converted). The clip is a
synthetic 1080p H.264 clip encoded in memory (or ``--video``). Targets (issue 5): C >= 20x faster than
RGB-convert-then-slice, C < 3 % of decode.

Device (``--device cuda``): the CUDA kernel on 32 synthetic 1080p NV12 frames already on the GPU, into fp16
(1, 3, 32, 224, 224) with one launch, against a plain-torch vectorised gather of the same cells; CUDA-event
timing, median of repeats. Skips with a message (exit 0) when there is no CUDA device.

Run: ``python -m edgevqa.bench.sampling_speed [--frames 32] [--video clip.mp4] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from typing import Callable

import numpy as np


# --------------------------------------------------------------------------------------------- inputs


def synthetic_clip(frames: int, width: int = 1920, height: int = 1080, seed: int = 0) -> bytes:
    """An in-memory H.264 (yuv420p) clip of moving gradients with mild noise, like camera content."""
    import av

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for i in range(frames):
            img = np.stack([(xx + 4 * i) % 256, (yy + 2 * i) % 256, (xx // 2 + yy // 2 + 8 * i) % 256], -1)
            img = np.clip(img + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def _open(source):
    from edgevqa.decode import PyAVDecoder

    return PyAVDecoder(io.BytesIO(source) if isinstance(source, bytes) else source)


def decode_only(source, count: int, cpu: list | None = None) -> tuple[float, object]:
    """Seconds to decode the first ``count`` frames (opening included), and the video's info. ``cpu``, when
    given, receives the process's CPU seconds meanwhile: every decoder thread's work."""
    start, start_cpu = time.perf_counter(), time.process_time()
    with _open(source) as decoder:
        info = decoder.info
        for _ in decoder.frames(range(count)):
            pass
    if cpu is not None:
        cpu.append(time.process_time() - start_cpu)
    return time.perf_counter() - start, info


def during_decode(source, count: int, method: Callable[[int, object], None], cpu: list | None = None) -> float:
    """Seconds spent in ``method(slot, frame)`` called on each frame as it comes out of the decoder, as the
    pipeline does (the frame is still warm in the caches); decoding itself is not counted.

    ``cpu``, when given, receives the CPU seconds of the calling thread in those calls: FFmpeg's frame threads
    keep decoding meanwhile and share the cores, so wall time also holds the time the sampler waited for a
    core; CPU time is the sampler's own work."""
    spent = used = 0.0
    with _open(source) as decoder:
        for slot, frame in enumerate(decoder.frames(range(count))):
            start, start_cpu = time.perf_counter(), time.thread_time()
            method(slot, frame)
            spent += time.perf_counter() - start
            used += time.thread_time() - start_cpu
    if cpu is not None:
        cpu.append(used)
    return spent


# --------------------------------------------------------------------------------------------- host


def rgb_then_slice(slot: int, raw, plan, out: np.ndarray) -> None:
    """The RGB way: convert the whole frame with libswscale, then cut and normalise the planned cells."""
    mean = np.asarray(plan.view.mean, np.float32)[:, None, None]
    std = np.asarray(plan.view.std, np.float32)[:, None, None]
    rgb = raw.to_ndarray(format="rgb24")
    for n, t in plan.uses_of_slot(slot):
        g = int(plan.tap_group[n, t])
        rows = plan.luma_rows.index[g, :, :, :, 0]  # [gh, gw, th]
        cols = plan.luma_cols.index[g, :, :, :, 0]  # [gh, gw, tw]
        cells = rgb[rows[:, :, :, None], cols[:, :, None, :]]  # [gh, gw, th, tw, 3]
        gh, gw, th, tw, _ = cells.shape
        image = cells.transpose(4, 0, 2, 1, 3).reshape(3, gh * th, gw * tw)
        out[n, :, t] = (image.astype(np.float32) - mean) / std


def run_host(args) -> int:
    from edgevqa.kernels import conversion_for_frame, reference
    from edgevqa.manifest import ViewSpec
    from edgevqa.sampling import make_plan

    try:
        from edgevqa.kernels import native
    except ImportError as exc:
        print(f"the C kernel is not built ({exc}); nothing to compare", file=sys.stderr)
        return 1

    if args.video:
        source, label = args.video, args.video
    else:
        started = time.perf_counter()
        source = synthetic_clip(args.frames)
        label = f"synthetic 1920x1080 H.264 ({args.frames} frames, encoded in {time.perf_counter() - started:.1f} s)"
    decode_cpu: list[float] = []
    decode_s, info = min(decode_only(source, args.frames, decode_cpu) for _ in range(args.repeat))
    count = min(args.frames, info.num_frames)
    view = ViewSpec(dtype=args.dtype)  # FAST-VQA-B fragments: 7x7 cells of 32x32, 32 frames aligned 32
    plan = make_plan(view, info.__class__(**{**info.to_dict(), "num_frames": count}))
    if len(plan.frame_indices) != count or plan.luma_rows.num_taps != 1:
        print(f"the plan does not read each of the {count} frames once with identity taps", file=sys.stderr)
        return 1
    with _open(source) as decoder:
        frames = list(decoder.frames(range(count)))
    conversion = conversion_for_frame(frames[0])
    out_c = np.zeros(plan.output_shape, view.dtype)
    out_ref = np.zeros_like(out_c)
    out_rgb = np.zeros(plan.output_shape, np.float32)

    c_cpu: list[float] = []
    c_s = min(during_decode(source, count, lambda slot, f: native.sample_frame(f.planes, plan, slot, conversion,
                                                                                out_c), c_cpu) for _ in range(args.repeat))
    ref_s = during_decode(source, count, lambda slot, f: reference.sample_frame(f.planes, plan, slot, conversion,
                                                                                 out_ref))
    rgb_s = min(during_decode(source, count, lambda slot, f: rgb_then_slice(slot, f.owner, plan, out_rgb))
                for _ in range(max(1, args.repeat // 2)))

    # The floor any sampler pays for this output: the same bytes per frame copied into the same positions from
    # a cache-warm source, with no reading or converting of pixels (on a 2-core Intel VM this alone took about
    # 2.9 % of decode, session 13).
    warm_output = np.ones(plan.output_shape[1:2] + plan.output_shape[3:], view.dtype)
    out_floor = np.zeros_like(out_c)
    uses = [plan.uses_of_slot(slot) for slot in range(count)]

    def write_only(slot: int, frame) -> None:
        for n, t in uses[slot]:
            np.copyto(out_floor[n, :, t], warm_output)

    floor_s = min(during_decode(source, count, write_only) for _ in range(args.repeat))
    # The same stored (cache-cold) frames while the decoder runs: what decoding alongside costs the sampler,
    # apart from the frame just decoded being partly in cache.
    stored_during_s = min(during_decode(source, count, lambda slot, f: native.sample_frame(
        frames[slot].planes, plan, slot, conversion, out_c)) for _ in range(args.repeat))

    def c_on_stored_frames():
        for slot, frame in enumerate(frames):
            native.sample_frame(frame.planes, plan, slot, conversion, out_c)

    cold_s = best_of(args.repeat, c_on_stored_frames)
    exact = np.array_equal(out_c.view(np.uint8), out_ref.view(np.uint8))
    levels = _level_difference(frames, plan, conversion, [f.owner for f in frames])
    ms = lambda s: f"{1e3 * s / count:8.3f} ms/frame"  # noqa: E731
    print(f"clip: {label}; {count} frames of {info.width}x{info.height} {info.pix_fmt} "
          f"({info.color_matrix}, {info.color_range}); view: fragments 7x7x32 {view.dtype} {view.layout}; "
          f"C rows: {native._native.vector_rows()}")
    print("each method runs on every frame as it leaves the decoder (the pipeline's pattern); best of "
          f"{args.repeat} passes for C, 1 for the reference, {max(1, args.repeat // 2)} for RGB")
    print(f"decode (PyAV, {count} frames)      {ms(decode_s)}")
    print(f"C from YUV                         {ms(c_s)}")
    print(f"NumPy reference                    {ms(ref_s)}")
    print(f"RGB convert (swscale) + slice      {ms(rgb_s)}")
    print(f"C vs RGB convert + slice           {rgb_s / c_s:8.1f} x faster   (target >= 20 x)")
    print(f"C vs NumPy reference               {ref_s / c_s:8.1f} x faster")
    print(f"C sampling / decode                {100 * c_s / decode_s:8.2f} %        (target < 3 %)")
    print(f"decode CPU time (all its threads)  {ms(min(decode_cpu))}  (not a target: FFmpeg decodes on several "
          "threads, the sampler runs on one)")
    print(f"C CPU time / decode CPU time       {100 * min(c_cpu) / min(decode_cpu):8.2f} %        (not a target: the "
          "sampler's share of the work)")
    print(f"C CPU time (thread) during decode  {ms(min(c_cpu))}  ({100 * min(c_cpu) / decode_s:.2f} % of decode; "
          "wall time above also holds waits for a core)")
    print(f"C on {count} stored (cache-cold) frames {ms(cold_s)}  ({100 * cold_s / decode_s:.2f} % of decode)")
    print(f"C on stored frames during decode   {ms(stored_during_s)}  ({100 * stored_during_s / decode_s:.2f} % of "
          "decode: another frame than the one just decoded)")
    print(f"output bytes alone (warm copy)     {ms(floor_s)}  ({100 * floor_s / decode_s:.2f} % of decode: "
          "writing the output, nothing read or converted)")
    print(f"C == reference bit for bit: {exact}; kept pixels vs swscale rgb24: max {levels[0]} levels, "
          f"mean {levels[1]:.3f}")
    if hasattr(os, "getloadavg"):  # other processes on the cores stretch decode and sampling unevenly
        print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0 if exact else 1


def best_of(repeats: int, run: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _level_difference(frames, plan, conversion, raw_frames) -> tuple[int, float]:
    """8-bit RGB of the kept pixels, ours vs libswscale's, over every frame: (max, mean) absolute levels."""
    from edgevqa.kernels import sample_frame_rgb8

    worst, total, n = 0, 0.0, 0
    rows = plan.luma_rows.index[0, :, :, :, 0]
    cols = plan.luma_cols.index[0, :, :, :, 0]
    for frame, raw in zip(frames, raw_frames):
        ours = sample_frame_rgb8(frame.planes, plan, 0, conversion).astype(np.int16)
        cells = raw.to_ndarray(format="rgb24")[rows[:, :, :, None], cols[:, :, None, :]]
        gh, gw, th, tw, _ = cells.shape
        theirs = cells.transpose(4, 0, 2, 1, 3).reshape(3, gh * th, gw * tw).astype(np.int16)
        diff = np.abs(ours - theirs)
        worst, total, n = max(worst, int(diff.max())), total + float(diff.sum()), n + diff.size
    return worst, total / n


# --------------------------------------------------------------------------------------------- device


def run_device(args) -> int:
    try:
        import torch
    except ImportError:
        print("skipped: --device cuda needs torch with CUDA on the GPU machine", file=sys.stderr)
        return 0
    if not torch.cuda.is_available():
        print("skipped: no CUDA device", file=sys.stderr)
        return 0
    from edgevqa.kernels import device, reference, yuv_to_rgb_conversion
    from edgevqa.manifest import ViewSpec
    from edgevqa.sampling import make_plan
    from edgevqa.video import VideoInfo

    count, height, width = args.frames, 1080, 1920
    view = ViewSpec(dtype="float16")
    info = VideoInfo(path="synthetic", width=width, height=height, num_frames=count, fps=25.0, duration=count / 25)
    plan = make_plan(view, info)
    conversion = yuv_to_rgb_conversion("bt709", "limited", 8)
    torch.cuda.init()
    gen = torch.Generator(device="cuda").manual_seed(0)
    luma = torch.randint(0, 256, (count, height, width), dtype=torch.uint8, device="cuda", generator=gen)
    chroma = torch.randint(0, 256, (count, height // 2, width), dtype=torch.uint8, device="cuda", generator=gen)
    frames = [(luma[k], chroma[k][:, 0::2], chroma[k][:, 1::2]) for k in range(count)]  # NV12 views
    out = torch.empty(plan.output_shape, dtype=torch.float16, device="cuda")
    stream = torch.cuda.current_stream()
    sampler = device.CudaSampler(plan, conversion)
    started = time.perf_counter()
    sampler.sample(frames, out, stream=stream)  # first use: NVRTC compile (or disk cache), plan upload
    torch.cuda.synchronize()
    first_s = time.perf_counter() - started
    prepared = sampler.prepare(list(enumerate(frames)), out, stream=stream)
    launches = len(prepared[1])

    def gpu_time(run: Callable[[], None], per_sample: int = 20) -> float:
        """Median GPU time of one ``run``: a sleeping kernel first keeps the queue full, so host-side launch
        overhead never shows up as idle GPU time between the events."""
        times = []
        for _ in range(args.repeat):
            torch.cuda._sleep(50_000_000)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(stream)
            for _ in range(per_sample):
                run()
            end.record(stream)
            end.synchronize()
            times.append(start.elapsed_time(end) * 1e-3 / per_sample)
        return float(np.median(times))

    kernel_s = gpu_time(lambda: sampler.run(prepared, stream=stream))
    variants = {}
    for pixels in args.pixels_per_thread:
        other = device.CudaSampler(plan, conversion, pixels_per_thread=pixels)
        other_prepared = other.prepare(list(enumerate(frames)), out, stream=stream)
        variants[pixels] = gpu_time(lambda: other.run(other_prepared, stream=stream))
    torch_gather = _torch_gather(plan, conversion, luma, chroma, torch)
    torch_s = gpu_time(torch_gather)
    spare = torch.empty_like(out)
    copy_s = gpu_time(lambda: spare.copy_(out))  # the floor: writing the output once (and reading a copy)
    host = []
    for _ in range(args.repeat):
        torch.cuda.synchronize()
        started = time.perf_counter()
        sampler.sample(frames, out, stream=stream)
        host.append(time.perf_counter() - started)
    torch.cuda.synchronize()

    # Bit-exactness on two frames against the reference (the full check is tests/kernels, marked gpu).
    ok = True
    for slot in (0, count - 1):
        planes = [p.cpu().numpy() for p in frames[slot]]
        want = np.zeros(plan.output_shape, np.float16)
        reference.sample_frame(planes, plan, slot, conversion, want)
        got = out.cpu().numpy()
        ok &= bool(np.array_equal(got[:, :, slot].view(np.uint16), want[:, :, slot].view(np.uint16)))
    name = torch.cuda.get_device_name()
    print(f"device: {name}; {count} NV12 1920x1080 frames -> fp16 {plan.output_shape}, {launches} launch(es)")
    print(f"first call (compile or cache, upload) {first_s * 1e3:6.1f} ms")
    print(f"host time of sample() (describe 3x{count} planes, pack, launch) {np.median(host) * 1e6:9.1f} us")
    print(f"CUDA kernel (GPU time)             {kernel_s * 1e6:9.1f} us   (target <= 20 us on an H100; "
          f"{device.PIXELS_PER_THREAD} pixels per thread)")
    for pixels, seconds in variants.items():
        print(f"  variant: {pixels} pixels per thread  {seconds * 1e6:9.1f} us")
    print(f"torch vectorised gather            {torch_s * 1e6:9.1f} us")
    print(f"torch copy of one output tensor    {copy_s * 1e6:9.1f} us   (bandwidth floor for comparison)")
    print(f"CUDA kernel vs torch gather        {torch_s / kernel_s:9.1f} x faster")
    print(f"CUDA == reference bit for bit (2 frames): {ok}")
    return 0 if ok else 1


def _torch_gather(plan, conversion, luma, chroma, torch):
    """Plain torch: gather the cells of every frame at once, convert in int32, normalise through the table."""
    from edgevqa.kernels import normalisation_table

    dev = luma.device
    rows = torch.as_tensor(plan.luma_rows.index[0, :, :, :, 0], device=dev).long()  # [gh, gw, th]
    cols = torch.as_tensor(plan.luma_cols.index[0, :, :, :, 0], device=dev).long()
    gh, gw, th = rows.shape
    tw = cols.shape[-1]
    r_img = rows[:, 0, :].reshape(-1)[:, None].expand(gh * th, gw * tw)  # same row offsets across a grid row
    c_img = cols.permute(1, 0, 2)[:, 0, :].reshape(-1)[None, :].expand(gh * th, gw * tw)
    coef = [int(v) for v in conversion.coefficients]
    table = torch.as_tensor(normalisation_table(plan.view.mean, plan.view.std, "float16"), device=dev)

    def run():
        y = luma[:, r_img, c_img].int() - coef[0]
        u = chroma[:, r_img >> 1, (c_img >> 1) * 2].int() - coef[1]
        v = chroma[:, r_img >> 1, (c_img >> 1) * 2 + 1].int() - coef[1]
        r = ((coef[2] * y + coef[3] * v + 32768) >> 16).clamp_(0, 255)
        g = ((coef[2] * y - coef[4] * u - coef[5] * v + 32768) >> 16).clamp_(0, 255)
        b = ((coef[2] * y + coef[6] * u + 32768) >> 16).clamp_(0, 255)
        return torch.stack([table[0][r.long()], table[1][g.long()], table[2][b.long()]], 0)

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--video", help="a real clip instead of the synthetic 1080p one (host mode)")
    parser.add_argument("--repeat", type=int, default=3, help="timed repeats; the best (host) or median (device)")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="host output dtype")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--pixels-per-thread", type=int, nargs="*", default=[],
                        help="device mode: also time these kernel variants (output pixels per thread)")
    args = parser.parse_args(argv)
    return run_device(args) if args.device == "cuda" else run_host(args)


if __name__ == "__main__":
    sys.exit(main())
