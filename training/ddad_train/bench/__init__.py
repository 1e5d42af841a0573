"""Side-by-side benchmark of the engine against what a user would otherwise run (the
authors' PyTorch loop, ONNX Runtime + NumPy), on the same bundle, images and thread count:
on the CPU (``ddad-rt bench``), or on an NVIDIA GPU (``ddad-rt bench --device cuda``: PyTorch
on CUDA, ONNX Runtime's CUDA provider when installed, the TensorRT engine at fp32 and fp16;
throughput at batch 256, latency at batch 1). Needs the ``train`` and ``bench`` extras.
Timing is never asserted in tests; the committed report is the evidence."""

from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path

from ddad_rt.errors import InputError


def gpu_problems() -> list[str]:
    """Why the GPU benchmark cannot run here (empty when it can): the engine's device="cuda"
    needs, and a CUDA build of PyTorch for the reference loop."""
    import ddad_rt

    problems = list(ddad_rt.cuda_status()["problems"])
    try:
        import torch

        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            problems.append(f"PyTorch {torch.__version__} ({build}) sees no GPU: the reference "
                            "loop runs in PyTorch on the GPU; install a CUDA build of torch")
    except ImportError:
        problems.append("PyTorch is not installed: pip install 'ddad-rt[train,bench]'")
    return problems


def onnxruntime_has_cuda() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


#: The CPU features that decide which kernels run (AVX-512 for the native fp32 refiner,
#: AVX512_BF16 / AMX for bf16).
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "avx512_fp16")


def cpu_description() -> str:
    """The CPU's model name and which of CPU_FLAGS it has, from /proc/cpuinfo (Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    have = [f for f in CPU_FLAGS if f in flags]
    return f"{fields.get('model name', '?')}; flags: {' '.join(have) or 'none of ' + ', '.join(CPU_FLAGS)}"


def run_inference_bench(out_dir: str | Path, *, threads: tuple[int, ...] = (1, 2), rounds: int = 5,
                        data: str | Path | None = None,
                        contenders: tuple[str, ...] | None = None, min_seconds: float = 2.0,
                        latency_images: int = 64, progress: bool = True,
                        command: str = "", device: str = "cpu", batch: int | None = None) -> dict:
    """Prepares the bench bundle, measures every contender ``rounds`` times per thread count,
    and writes ``inference.json`` and ``inference.md`` under ``out_dir``. Returns the report.

    Args:
        device: "cpu", or "cuda" (raises RuntimeError listing what is missing when there is
            no usable GPU, before anything is written).
        batch: the throughput batch (default: 64 on the CPU, 256 on a GPU).
    """
    from ddad_train.bench.flops import graph_flops
    from ddad_train.bench.inference import (
        IMAGE_SIZE,
        K,
        bench_images,
        prepare,
        run_rounds,
    )
    from ddad_train.bench.report import markdown, summarize
    from ddad_train.bench.stages import stages_markdown
    from ddad_train.bench.worker import CONTENDERS, GPU_CONTENDERS

    if device not in ("cpu", "cuda"):
        msg = f"device must be 'cpu' or 'cuda', got {device!r}"
        raise InputError(msg)
    notes = []
    if device == "cuda":
        problems = gpu_problems()
        if problems:
            msg = "the GPU benchmark needs a usable NVIDIA GPU: " + "; ".join(problems)
            raise RuntimeError(msg)
        if contenders is None:
            contenders = GPU_CONTENDERS
            if not onnxruntime_has_cuda():
                contenders = tuple(c for c in contenders if c != "onnxruntime")
                notes.append("ONNX Runtime left out: its CUDA provider is not installed "
                             "(pip install onnxruntime-gpu)")
    batch = batch or (256 if device == "cuda" else 64)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images, source = bench_images(data)
    work = prepare(out_dir / "work", images)
    ens = graph_flops(work / "bundle" / "ensemble.onnx")["total"]
    dual = graph_flops(work / "bundle" / "refine_dual.onnx")["total"]
    intra = graph_flops(work / "bundle_default" / "refine_intra.onnx")["total"]
    flops = {"maps": ens, "r_dual": ens + dual, "default-all": ens + dual + intra,
             "default-r_dual": ens + dual}
    # The CPU's GEMM peaks and memory bandwidth are the yardsticks on the CPU only.
    peaks = best_peaks(threads, rounds) if device == "cpu" else {}
    results = run_rounds(work, list(threads), rounds, contenders or CONTENDERS,
                         min_seconds=min_seconds, latency_images=latency_images, progress=progress,
                         device=device, batch=batch)
    stages = (profile_stages(work, list(threads), rounds, peaks, min_seconds)
              if device == "cpu" else [])
    report = summarize(results, peaks, flops, gates=device == "cpu")
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "k": K, "image_size": IMAGE_SIZE, "weights": "seeded initialisation, BatchNorm calibrated",
        "images": f"{len(images)} from {source}", "rounds": rounds, "flops": flops,
        "machine": platform.processor() or platform.machine(), "cpu": cpu_description(),
        "peaks": peaks,
        "device": device, "batch": batch, "notes": notes,
    }
    if device == "cuda":
        import ddad_rt

        meta["gpu"] = ddad_rt.cuda_status()["gpu"]
    (out_dir / "inference.json").write_text(json.dumps({"meta": meta, "report": report,
                                                        "stages": stages, "raw": results}, indent=1))
    text = markdown(report, meta)
    if stages:
        text += "\n" + stages_markdown(stages)
    (out_dir / "inference.md").write_text(text)
    return {"meta": meta, "report": report, "stages": stages}


def best_peaks(threads: tuple[int, ...], rounds: int) -> dict[int, dict]:
    """The yardsticks (fp32 and bf16 GEMM peaks, memory bandwidth, weight read rate) per thread count, each the
    best of ``rounds`` fresh processes: a peak is what the machine can do, and a shared VM's
    noise only ever pushes a measurement down (one 1-thread sgemm came out at half its
    usual rate)."""
    from ddad_train.bench.inference import run_worker

    best: dict[int, dict] = {}
    for _ in range(rounds):
        for t in threads:
            p = run_worker({"contender": "peaks", "threads": t})
            if t not in best:
                best[t] = p
                continue
            for key in ("gflops", "bf16_gflops", "bandwidth_gbs", "read_gbs"):
                best[t][key] = max(best[t][key], p[key])
    return best


def profile_stages(work: Path, threads: list[int], rounds: int, peaks: dict[int, dict],
                   min_seconds: float) -> list[dict]:
    """The engine's per-stage times at batch 64 and one image at a time, fp32 and bf16 (where
    this CPU has it), each the median of ``rounds`` runs in fresh processes, beside each
    stage's limit."""
    import numpy as np

    from ddad_train.bench.inference import run_worker
    from ddad_train.bench.stages import stage_limits, stage_rows

    precisions = ["fp32"] + (["bf16"] if any(p.get("bf16_gflops") for p in peaks.values()) else [])
    sections = []
    for batch in (64, 1):
        for t in threads:
            for precision in precisions:
                runs = [run_worker({"contender": "stages", "path": "default-all", "threads": t,
                                    "precision": precision, "bench_dir": str(work),
                                    "min_seconds": min_seconds, "batch": batch})
                        for _ in range(rounds)]
                profile = dict(runs[0])
                profile["seconds_per_image"] = {
                    k: float(np.median([r["seconds_per_image"][k] for r in runs]))
                    for k in runs[0]["seconds_per_image"]}
                profile["wall_seconds_per_image"] = float(
                    np.median([r["wall_seconds_per_image"] for r in runs]))
                limits = stage_limits(work / "bundle_default", peaks[t], precision,
                                      profile["refine_impl"], batch)
                sections.append({"threads": t, "peaks": peaks[t], "profile": profile,
                                 "rows": stage_rows(profile, limits), "runs": runs})
    return sections
