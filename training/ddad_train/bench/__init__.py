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
        run_worker,
    )
    from ddad_train.bench.report import markdown, summarize
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
    flops = {"maps": ens, "r_dual": ens + graph_flops(work / "bundle" / "refine_dual.onnx")["total"]}
    # The CPU's fp32 GEMM peak is the yardstick on the CPU only.
    sgemm = ({t: run_worker({"contender": "sgemm", "threads": t}) for t in threads}
             if device == "cpu" else {})
    results = run_rounds(work, list(threads), rounds, contenders or CONTENDERS,
                         min_seconds=min_seconds, latency_images=latency_images, progress=progress,
                         device=device, batch=batch)
    report = summarize(results, sgemm, flops, gates=device == "cpu")
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "k": K, "image_size": IMAGE_SIZE, "weights": "seeded initialisation, BatchNorm calibrated",
        "images": f"{len(images)} from {source}", "rounds": rounds, "flops": flops,
        "machine": platform.processor() or platform.machine(), "sgemm": sgemm,
        "device": device, "batch": batch, "notes": notes,
    }
    if device == "cuda":
        import ddad_rt

        meta["gpu"] = ddad_rt.cuda_status()["gpu"]
    (out_dir / "inference.json").write_text(json.dumps({"meta": meta, "report": report,
                                                        "raw": results}, indent=1))
    (out_dir / "inference.md").write_text(markdown(report, meta))
    return {"meta": meta, "report": report}
