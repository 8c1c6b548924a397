"""GPU benchmark table for the lent GPU machine: sampling kernel, torch FP16 + CUDA graphs, whole GPU pipeline.

Prints one table (and ``--json FILE``) with, measured in one run on one card:

1. **CUDA sampling kernel** (`edgevqa.kernels.device`): 32 NV12 1080p frames already on the GPU into one
   FAST-VQA fragment view (1, 3, 32, 224, 224) float16; CUDA events, median (issue 5's target: <= 20 us on an
   H100).
2. **torch model time per video**, random weights, inputs already on the device: FP32 eager vs FP16 +
   channels-last + CUDA graph (`TorchRunner`), for athqa_tiny, athqa_base (issue 8's target: <= 3 ms on an
   H100) and SimpleVQA; median wall time of `infer` (which ends in a device sync), and the FP16 output's
   largest relative difference from FP32.
3. **whole GPU pipeline** on a generated 8 s 1080p H.264 clip with athqa_base: decode (DALI NVDEC when DALI is
   installed, else PyAV on the host plus the upload), plan, sample (CUDA kernel; host kernel + upload when the
   CUDA kernel is unavailable), infer (FP16 graph); per stage, median of runs after a warm-up, and decode-only
   time of the same frames, so "decode-bound" is a measured statement.

Without a CUDA device it prints why and exits 0 (so one script can run everywhere). `gpu_score` runs the
same decode -> sample -> infer path on the CPU too (PyAV, host kernel, CPU torch); the tests use that.

Run: ``python -m edgevqa.bench.gpu_bench [--quick] [--json FILE] [--skip-simplevqa]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

MODELS = ("athqa_tiny", "athqa_base", "simplevqa")
PIPELINE_MODEL = "athqa_base"


# --------------------------------------------------------------------------------------------- helpers


def median_seconds(run: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``run`` (which must synchronise with the device itself before returning)."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def make_clip(path: str, seconds: float = 8.0, width: int = 1920, height: int = 1080, fps: int = 25) -> str:
    """An H.264 clip of the rendered test scene; one second is rendered and looped to keep generation short."""
    from edgevqa.samples import render_scene, write_clip

    loop = render_scene(width, height, fps, seed=1)
    count = int(round(seconds * fps))
    frames = loop[np.arange(count) % fps]
    return write_clip(path, fps=fps, frames=frames, overwrite=True)


@dataclass
class Table:
    """Rows of (section, item, value, note), printed aligned."""

    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, section: str, item: str, value: str, note: str = "") -> None:
        self.rows.append((section, item, value, note))

    def render(self) -> str:
        header = ("section", "item", "value", "note")
        widths = [max(len(header[i]), *(len(r[i]) for r in self.rows)) if self.rows else len(header[i])
                  for i in range(4)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(),
                 "  ".join("-" * w for w in widths)]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in self.rows]
        return "\n".join(lines)


def _device_sampler():
    """(sample_frame, None) for the CUDA kernel, or (None, reason) when it cannot be used."""
    try:
        from edgevqa.kernels import device
    except ImportError as exc:
        return None, f"edgevqa.kernels.device not importable ({exc})"
    try:
        if not device.cuda_available():
            return None, "CUDA kernel: no CUDA driver/device through cuda-python"
    except Exception as exc:  # a broken cuda-python install shows up here; report, do not crash the table
        return None, f"CUDA kernel unavailable ({type(exc).__name__}: {exc})"
    return device.sample_frame, None


# --------------------------------------------------------------------------------------------- pipeline


def gpu_score(video: str, runner: Any, manifest: Any, decoder: str = "dali", sampler: str = "device",
              device: str = "cuda:0") -> dict[str, Any]:
    """Score one video: decode -> plan -> sample -> infer, timing each stage (seconds, device-synchronised).

    ``decoder``: 'dali' (NVDEC, frames on the device; 'dali-cpu' for DALI's CPU decoder) or 'pyav' (host).
    ``sampler``: 'device' (CUDA kernel, output on the device) or 'host' (C/NumPy kernel, output uploaded when
    ``device`` is CUDA). ``runner`` is an activated Runner taking the feed (device tensors are bound in place).
    """
    from edgevqa import kernels
    from edgevqa.sampling import frames_needed, make_plans

    torch = None
    on_cuda = device.startswith("cuda")
    if on_cuda or sampler == "device":
        import torch
    sync = (lambda: torch.cuda.synchronize()) if on_cuda else (lambda: None)
    device_sample = None
    if sampler == "device":
        device_sample, reason = _device_sampler()
        if device_sample is None:
            raise RuntimeError(reason)

    timings = {"decode": 0.0, "plan": 0.0, "sample": 0.0, "infer": 0.0}
    t0 = time.perf_counter()
    if decoder.startswith("dali"):
        from edgevqa.decode_dali import DaliDecoder

        dec = DaliDecoder(video, device="cpu" if decoder == "dali-cpu" else "gpu",
                          device_id=int(device.split(":")[1]) if ":" in device else 0)
    else:
        from edgevqa.decode import PyAVDecoder

        dec = PyAVDecoder(video)
    with dec:
        info = dec.info
        t1 = time.perf_counter()
        plans = make_plans(manifest.views, info, None)
        needed = frames_needed(plans)
        slot_maps = [{int(f): s for s, f in enumerate(p.frame_indices)} for p in plans]
        if device_sample is not None:
            buffers = [torch.empty(p.output_shape, dtype=getattr(torch, p.view.dtype), device=device) for p in plans]
        else:
            buffers = [np.empty(p.output_shape, dtype=np.dtype(p.view.dtype)) for p in plans]
        filled = [np.zeros(len(p.frame_indices), dtype=bool) for p in plans]
        timings["plan"] = time.perf_counter() - t1
        conversion = None
        last = None
        stream = torch.cuda.current_stream() if device_sample is not None else None
        decode_start = time.perf_counter()
        for frame in dec.frames(needed):
            if conversion is None:
                conversion = kernels.conversion_for_frame(frame)
            planes = frame.planes
            if device_sample is not None and isinstance(planes[0], np.ndarray):
                # Host-decoded frame, device sampler: the upload belongs to decoding (NVDEC needs none).
                planes = tuple(torch.from_numpy(np.ascontiguousarray(p)).to(device) for p in planes)
            s0 = time.perf_counter()
            if device_sample is None and torch is not None and isinstance(planes[0], torch.Tensor):
                planes = tuple(p.cpu().numpy() for p in planes)  # host sampling of device frames: download
            for plan, slots, done, out in zip(plans, slot_maps, filled, buffers):
                slot = slots.get(frame.index)
                if slot is not None:
                    if device_sample is not None:
                        device_sample(planes, plan, slot, conversion, out, stream)
                    else:
                        kernels.sample_frame(planes, plan, slot, conversion, out)
                    done[slot] = True
            last = planes
            sync()  # attribute the asynchronous kernel's time to sampling, not to the next decode
            timings["sample"] += time.perf_counter() - s0
        if last is None:
            raise RuntimeError(f"{video}: no frame decoded")
        s0 = time.perf_counter()
        for plan, done, out in zip(plans, filled, buffers):
            for slot in np.nonzero(~done)[0]:
                if device_sample is not None:
                    device_sample(last, plan, int(slot), conversion, out, stream)
                else:
                    kernels.sample_frame(last, plan, int(slot), conversion, out)
        if device_sample is None and on_cuda:
            buffers = [torch.from_numpy(b).to(device) for b in buffers]  # the host-sampling upload
        sync()
        timings["sample"] += time.perf_counter() - s0
        timings["decode"] = (time.perf_counter() - decode_start) - timings["sample"] + (t1 - t0)
    feed = {plan.view.name: buf for plan, buf in zip(plans, buffers)}
    s0 = time.perf_counter()
    outputs = runner.infer(feed)
    timings["infer"] = time.perf_counter() - s0
    timings["total"] = sum(timings.values())
    scores = {name: float(manifest.score(name, float(np.asarray(outputs[name], np.float64).mean())))
              for name in manifest.outputs}
    return {"scores": scores, "timings": timings, "frames": int(len(needed)), "decoder": decoder,
            "sampler": "device" if device_sample is not None else "host"}


def decode_only_seconds(video: str, indices: Any, decoder: str, device: str = "cuda:0") -> float:
    """Time to open the video and decode just ``indices`` (device-synchronised), for the decode-bound check."""
    start = time.perf_counter()
    if decoder.startswith("dali"):
        from edgevqa.decode_dali import DaliDecoder

        with DaliDecoder(video, device="gpu") as dec:
            for _ in dec.frames(indices):
                pass
        import torch

        torch.cuda.synchronize()
    else:
        from edgevqa.decode import PyAVDecoder

        with PyAVDecoder(video) as dec:
            for _ in dec.frames(indices):
                pass
    return time.perf_counter() - start


# --------------------------------------------------------------------------------------------- sections


def bench_kernel(table: Table, torch: Any, repeats: int) -> None:
    sample_frame, reason = _device_sampler()
    if sample_frame is None:
        table.add("sampling kernel", "32 x 1080p NV12 -> fp16 (1,3,32,224,224)", "n/a", reason)
        return
    from edgevqa import kernels
    from edgevqa.kernels import device as device_kernels
    from edgevqa.manifest import ViewSpec
    from edgevqa.sampling import make_plan
    from edgevqa.video import VideoInfo

    view = ViewSpec(dtype="float16")  # FAST-VQA-B fragments: 7x7 cells of 32x32, 32 frames
    info = VideoInfo(path="synthetic", width=1920, height=1080, num_frames=64, fps=25.0, duration=2.56,
                     pix_fmt="nv12")
    plan = make_plan(view, info, None)
    gen = torch.Generator(device="cuda").manual_seed(0)
    frames = []
    for _ in range(len(plan.frame_indices)):
        luma = torch.randint(16, 236, (1080, 1920), dtype=torch.uint8, device="cuda", generator=gen)
        chroma = torch.randint(16, 241, (540, 1920), dtype=torch.uint8, device="cuda", generator=gen)
        frames.append((luma, chroma[:, 0::2], chroma[:, 1::2]))  # NV12: interleaved UV as two strided views
    out = torch.empty(plan.output_shape, dtype=torch.float16, device="cuda")
    conversion = kernels.yuv_to_rgb_conversion("bt709", "limited", 8)
    stream = torch.cuda.current_stream()
    sampler = device_kernels.CudaSampler(plan, conversion)
    prepared = sampler.prepare(list(enumerate(frames)), out, stream)
    for _ in range(5):
        sampler.run(prepared, stream)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeats):
        start.record(stream)
        sampler.run(prepared, stream)
        end.record(stream)
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000.0)
    us = float(np.median(times))
    host = np.empty(plan.output_shape, dtype=np.float16)
    kernels.sample([tuple(p.cpu().numpy() for p in f) for f in frames], plan, conversion, host)
    exact = bool(np.array_equal(out.cpu().numpy(), host))
    table.add("sampling kernel", "32 x 1080p NV12 -> fp16 (1,3,32,224,224)", f"{us:.1f} us",
              f"median of {repeats}, CUDA events; target <= 20 us; {'bit-exact' if exact else 'DIFFERS'} vs host")
    table.data["kernel_us"] = us
    table.data["kernel_exact"] = exact


def bench_models(table: Table, torch: Any, names: tuple[str, ...], repeats: int) -> None:
    from edgevqa.backends.torch_backend import TorchRunner
    from edgevqa.export.models import create_model, list_models

    for name in names:
        if name not in list_models():
            table.add("torch per video", name, "n/a", "not in this zoo")
            continue
        torch.manual_seed(0)
        model = create_model(name)
        manifest = model.manifest
        gen = torch.Generator(device="cuda").manual_seed(1)
        feed = {v.name: torch.randn(v.input_shape(), generator=gen, device="cuda", dtype=torch.float32)
                for v in manifest.views}
        shapes = " + ".join("x".join(str(d) for d in v.input_shape()) for v in manifest.views)
        try:
            with TorchRunner(model, device="cuda:0", precision="fp32", cuda_graphs=False) as fp32:
                reference = fp32.infer(feed)
                fp32_s = median_seconds(lambda: fp32.infer(feed), repeats)
            with TorchRunner(model, device="cuda:0") as fp16:
                got = fp16.infer(feed)
                fp16_s = median_seconds(lambda: fp16.infer(feed), repeats)
                described = fp16.describe()
        except torch.cuda.OutOfMemoryError as exc:
            table.add("torch per video", name, "OOM", str(exc).splitlines()[0][:80])
            continue
        worst = max(float(np.abs(got[k] - reference[k]).max()) / max(float(np.abs(reference[k]).max()), 1e-6)
                    for k in reference)
        mode = "graph" if described.get("cuda_graphs") else described.get("graph_fallback", "eager")
        table.add("torch per video", f"{name} [{shapes}] FP32 eager", f"{fp32_s * 1e3:.2f} ms", "")
        table.add("torch per video", f"{name} FP16 channels-last {mode}", f"{fp16_s * 1e3:.2f} ms",
                  f"{fp32_s / fp16_s:.1f}x vs FP32 eager; max rel diff {worst:.2g}"
                  + ("; target <= 3 ms" if name == "athqa_base" else ""))
        table.data[name] = {"fp32_eager_ms": fp32_s * 1e3, "fp16_graph_ms": fp16_s * 1e3, "max_rel_diff": worst,
                            "mode": mode}
        del model
        torch.cuda.empty_cache()


def bench_pipeline(table: Table, torch: Any, repeats: int, seconds: float) -> None:
    from edgevqa.backends.torch_backend import TorchRunner
    from edgevqa.export.models import create_model
    from edgevqa.sampling import frames_needed, make_plans

    try:
        import nvidia.dali  # noqa: F401
        decoder = "dali"
    except ImportError:
        decoder = "pyav"
    _, reason = _device_sampler()
    sampler = "device" if reason is None else "host"
    with tempfile.TemporaryDirectory(prefix="edgevqa-gpu-bench-") as folder:
        start = time.perf_counter()
        clip = make_clip(os.path.join(folder, "clip_1080p.mp4"), seconds=seconds)
        made = time.perf_counter() - start
        model = create_model(PIPELINE_MODEL)
        manifest = model.manifest
        with TorchRunner(model, device="cuda:0") as runner:
            first = gpu_score(clip, runner, manifest, decoder, sampler)
            runs = [gpu_score(clip, runner, manifest, decoder, sampler) for _ in range(repeats)]
        from edgevqa.decode import probe

        info = probe(clip)
        needed = frames_needed(make_plans(manifest.views, info, None))
        decode_only = float(np.median([decode_only_seconds(clip, needed, decoder) for _ in range(repeats)]))
    stages = {k: float(np.median([r["timings"][k] for r in runs])) for k in runs[0]["timings"]}
    label = f"{PIPELINE_MODEL}, {seconds:.0f} s 1080p H.264 ({len(needed)} frames used)"
    note = f"decode {'DALI NVDEC' if decoder == 'dali' else 'PyAV host (DALI not installed)'}, sample {sampler}"
    if reason and sampler == "host":
        note += f" ({reason})"
    table.add("GPU pipeline", label, f"{stages['total'] * 1e3:.1f} ms/video", note)
    for stage in ("decode", "plan", "sample", "infer"):
        table.add("GPU pipeline", f"  {stage}", f"{stages[stage] * 1e3:.2f} ms",
                  f"{100 * stages[stage] / stages['total']:.0f} % of total")
    table.add("GPU pipeline", "  decode only (same frames)", f"{decode_only * 1e3:.1f} ms",
              f"pipeline / decode-only = {stages['total'] / decode_only:.2f}; first video "
              f"{first['timings']['total'] * 1e3:.0f} ms (graph capture); clip made in {made:.0f} s")
    table.data["pipeline"] = {"stages_ms": {k: v * 1e3 for k, v in stages.items()}, "decode_only_ms": decode_only * 1e3,
                              "decoder": decoder, "sampler": sampler, "frames": len(needed)}


# --------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, a 2 s clip")
    parser.add_argument("--skip-simplevqa", action="store_true", help="leave SimpleVQA out (the slowest model)")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = parser.parse_args(argv)

    try:
        import torch
    except ImportError:
        print("gpu_bench: SKIPPED: torch is not installed", file=sys.stderr)
        return 0
    if not torch.cuda.is_available():
        print(f"gpu_bench: SKIPPED: torch {torch.__version__} sees no CUDA device", file=sys.stderr)
        return 0
    repeats = 5 if args.quick else 20
    table = Table()
    name = torch.cuda.get_device_name(0)
    table.data["device"] = name
    table.data["date"] = time.strftime("%Y-%m-%d")
    try:
        import nvidia.dali as dali

        dali_version = dali.__version__
    except ImportError:
        dali_version = "absent"
    table.add("machine", name, time.strftime("%Y-%m-%d"),
              f"torch {torch.__version__}, CUDA {torch.version.cuda}, DALI {dali_version}")
    sections = [("sampling kernel", lambda: bench_kernel(table, torch, repeats * 5)),
                ("torch per video", lambda: bench_models(table, torch, tuple(
                    m for m in MODELS if not (args.skip_simplevqa and m == "simplevqa")), repeats)),
                ("GPU pipeline", lambda: bench_pipeline(table, torch, 3 if args.quick else 5,
                                                        2.0 if args.quick else 8.0))]
    failed = 0
    for section, run in sections:
        started = time.perf_counter()
        try:
            run()
        except Exception as exc:  # one broken section must not hide the others' numbers
            failed += 1
            table.add(section, "FAILED", type(exc).__name__, str(exc).splitlines()[0][:120] if str(exc) else "")
        print(f"gpu_bench: {section} done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    print(table.render())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"rows": table.rows, **table.data}, fh, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
