"""Side-by-side CPU benchmark of the engine against what a user would otherwise run (the
authors' PyTorch loop, ONNX Runtime + NumPy), on the same bundle, images and thread count.
Run it as ``ddad-rt bench`` (needs the ``train`` and ``test`` extras: PyTorch, ONNX Runtime).
Timing is never asserted in tests; the committed report is the evidence."""

from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path


def run_inference_bench(out_dir: str | Path, *, threads: tuple[int, ...] = (1, 2), rounds: int = 5,
                        data: str | Path | None = None,
                        contenders: tuple[str, ...] | None = None, min_seconds: float = 2.0,
                        latency_images: int = 64, progress: bool = True,
                        command: str = "") -> dict:
    """Prepares the bench bundle, measures every contender ``rounds`` times per thread count,
    and writes ``inference.json`` and ``inference.md`` under ``out_dir``. Returns the report."""
    from ddad_rt.bench.flops import graph_flops
    from ddad_rt.bench.inference import (
        IMAGE_SIZE,
        K,
        bench_images,
        prepare,
        run_rounds,
        run_worker,
    )
    from ddad_rt.bench.report import markdown, summarize
    from ddad_rt.bench.worker import CONTENDERS

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images, source = bench_images(data)
    work = prepare(out_dir / "work", images)
    ens = graph_flops(work / "bundle" / "ensemble.onnx")["total"]
    flops = {"maps": ens, "r_dual": ens + graph_flops(work / "bundle" / "refine_dual.onnx")["total"]}
    sgemm = {t: run_worker({"contender": "sgemm", "threads": t}) for t in threads}
    results = run_rounds(work, list(threads), rounds, contenders or CONTENDERS,
                         min_seconds=min_seconds, latency_images=latency_images, progress=progress)
    report = summarize(results, sgemm, flops)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "k": K, "image_size": IMAGE_SIZE, "weights": "seeded initialisation, BatchNorm calibrated",
        "images": f"{len(images)} from {source}", "rounds": rounds, "flops": flops,
        "machine": platform.processor() or platform.machine(), "sgemm": sgemm,
    }
    (out_dir / "inference.json").write_text(json.dumps({"meta": meta, "report": report,
                                                        "raw": results}, indent=1))
    (out_dir / "inference.md").write_text(markdown(report, meta))
    return {"meta": meta, "report": report}
