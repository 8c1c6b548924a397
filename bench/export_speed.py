"""Exported models on ONNX Runtime CPU (FP32 and FP16 graphs) vs torch eager FP32, time per video, one run.

For each model (default: athqa_tiny, athqa_base, simplevqa at their manifests' real input shapes: one video =
the manifest's clips), the model is exported with `edgevqa.export.export_onnx` (FP32, and FP16 with FP32
inputs/outputs), then torch eager FP32, ORT FP32 and ORT FP16 each run ``--repeats`` times after one warm-up,
interleaved so machine load hits them alike; the table shows medians and ratios. Inputs are random (model time
does not depend on pixel values); weights are the random initialisation.

    python bench/export_speed.py [--models athqa_tiny,athqa_base,simplevqa] [--repeats 3] [--threads 2]

Absolute times depend on the machine and its load; compare the ratios measured in the same run. ONNX Runtime's
CPU provider has few FP16 kernels on x86: it inserts casts around FP32 kernels, so the FP16 column shows what an
FP16 graph costs on a CPU (the format is meant for GPUs / TensorRT), not FP16 arithmetic speed.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np


def _time(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def bench_model(name: str, folder: str, repeats: int, threads: int, fp16: bool) -> dict:
    import onnxruntime as ort
    import torch

    from edgevqa.export import create_model, export_onnx

    model = create_model(name)
    manifest = model.manifest
    reports = {"fp32": export_onnx(model, os.path.join(folder, f"{name}.onnx"), parity_clips=1, force=True)}
    if fp16:
        reports["fp16"] = export_onnx(model, os.path.join(folder, f"{name}_fp16.onnx"), fp16=True, parity_clips=1,
                                      force=True)
    rng = np.random.default_rng(0)
    feed = {v.name: rng.standard_normal(v.input_shape(), dtype=np.float32) for v in manifest.views}
    tensors = [torch.from_numpy(feed[v.name]) for v in manifest.views]

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    sessions = {label: ort.InferenceSession(report.path, sess_options=options, providers=["CPUExecutionProvider"])
                for label, report in reports.items()}

    def run_torch():
        with torch.inference_mode():
            model(*tensors)

    runners = {"torch_fp32": run_torch}
    for label, session in sessions.items():
        runners[f"ort_{label}"] = (lambda s=session: s.run(None, feed))
    for run in runners.values():  # warm-up: first-call allocations and kernel selection
        run()
    times: dict[str, list[float]] = {key: [] for key in runners}
    for _ in range(repeats):
        for key, run in runners.items():
            times[key] += _time(run, 1)
    result = {key: statistics.median(values) for key, values in times.items()}
    result["gmacs"] = reports["fp32"].gmacs_per_video
    result["params_m"] = reports["fp32"].parameters / 1e6
    result["shapes"] = ", ".join(f"{v.name} {list(v.input_shape())}" for v in manifest.views)
    result["parity"] = {label: max(r.relative_error for r in report.parity) for label, report in reports.items()}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="athqa_tiny,athqa_base,simplevqa")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads")
    parser.add_argument("--no-fp16", action="store_true", help="skip the FP16 graph")
    parser.add_argument("--keep", default=None, help="folder to keep the exported .onnx files in")
    args = parser.parse_args(argv)

    import onnxruntime
    import torch

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs; threads "
          f"{args.threads}; torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; "
          f"median of {args.repeats} after 1 warm-up; one video = the manifest's clips")
    folder = args.keep or tempfile.mkdtemp(prefix="edgevqa-export-speed-")
    os.makedirs(folder, exist_ok=True)
    rows = []
    for name in args.models.split(","):
        start = time.perf_counter()
        r = bench_model(name.strip(), folder, args.repeats, args.threads, not args.no_fp16)
        rows.append((name, r))
        print(f"  {name}: {r['shapes']}; {r['params_m']:.1f} M params, {r['gmacs']:.1f} GMACs/video; parity "
              + ", ".join(f"{k} {v:.2g}" for k, v in r["parity"].items())
              + f" (bench {time.perf_counter() - start:.0f} s)", flush=True)
    header = f"{'model':<14}{'torch FP32 s':>13}{'ORT FP32 s':>12}{'ORT FP16 s':>12}{'torch/ORT32':>13}{'ORT16/ORT32':>13}"
    print(header)
    print("-" * len(header))
    for name, r in rows:
        fp16 = r.get("ort_fp16")
        fp16_time = f"{fp16:.3f}" if fp16 else "-"
        fp16_ratio = f"{fp16 / r['ort_fp32']:.2f}" if fp16 else "-"
        print(f"{name:<14}{r['torch_fp32']:>13.3f}{r['ort_fp32']:>12.3f}{fp16_time:>12}"
              f"{r['torch_fp32'] / r['ort_fp32']:>13.2f}{fp16_ratio:>13}")
    if not args.keep:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
