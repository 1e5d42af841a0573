"""One contender of the inference benchmark, run in its own process so that its thread pool,
warm caches and peak memory are its own:

    python -m ddad_train.bench.worker SPEC_JSON

SPEC_JSON names the contender, the path ("maps": A_rec/A_intra/A_inter only; "r_dual": up to
the refined score), the bench directory (bundles, PyTorch weights, images), the thread count,
the device ("cpu" or "cuda") and the batch. The worker scores a batch (64 on the CPU, 256 on a
GPU) repeatedly (throughput), then single images (latency),
and prints one JSON line: per-call seconds, latencies, the batch's scores (so the parent can
check that every contender computes the same thing) and the process's peak resident memory.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
from ddad_rt.errors import InputError

CONTENDERS = ("reference", "onnxruntime", "engine-fp32", "engine-bf16")
#: On a GPU: the authors' loop in PyTorch on CUDA, ONNX Runtime's CUDA provider, the engine
#: (TensorRT) at fp32 and fp16.
GPU_CONTENDERS = ("reference", "onnxruntime", "engine-fp32", "engine-fp16")
PATHS = ("maps", "r_dual")


def _unit_to_net(images_u8: np.ndarray) -> np.ndarray:
    # The engine's normalisation (DESIGN.md section 2 step 4): uint8 -> [-1, 1].
    return (images_u8.astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)


class Reference:
    """The authors' evaluation loop: PyTorch eager, the 2K members called one after another
    on each batch, maps in torch, then the refinement network."""

    def __init__(self, bench_dir: Path, path: str, threads: int, device: str = "cpu") -> None:
        import torch

        from ddad_train.models import AE, RefineNet

        torch.set_num_threads(threads)
        self.torch = torch
        self.device = torch.device(device)
        state = torch.load(bench_dir / "weights.pt", weights_only=True)
        cfg = state["config"]

        def ae(sd):
            m = AE(cfg["latent_size"], cfg["mp"], cfg["image_size"])
            m.load_state_dict(sd)
            return m.eval().to(self.device)

        self.udm = [ae(sd) for sd in state["udm"]]
        self.ndm = [ae(sd) for sd in state["ndm"]]
        self.refine = None
        if path == "r_dual":
            self.refine = RefineNet(2)
            self.refine.load_state_dict(state["refine_dual"])
            self.refine.eval().to(self.device)

    def __call__(self, images_u8: np.ndarray) -> dict[str, np.ndarray]:
        torch = self.torch
        with torch.no_grad():
            x = torch.from_numpy(_unit_to_net(images_u8)).unsqueeze(1).to(self.device)
            ra = torch.cat([m(x) for m in self.udm], dim=1)
            rb = torch.cat([m(x) for m in self.ndm], dim=1)
            mu_a, mu_b = ra.mean(dim=1, keepdim=True), rb.mean(dim=1, keepdim=True)
            a_rec = (x - mu_b) ** 2
            a_intra = rb.std(dim=1, keepdim=True)
            a_inter = (mu_a - mu_b).abs()
            scores = {"rec": a_rec.mean(dim=(1, 2, 3)), "intra": a_intra.mean(dim=(1, 2, 3)),
                      "inter": a_inter.mean(dim=(1, 2, 3))}
            if self.refine is not None:
                prob = torch.softmax(self.refine(torch.cat([a_inter, a_intra], dim=1)), dim=1)
                scores["r_dual"] = prob[:, 1].mean(dim=(1, 2))
        return {k: v.cpu().numpy() for k, v in scores.items()}  # .cpu() waits for the GPU


class OnnxRuntime:
    """The bundle's graphs in ONNX Runtime (its CUDA provider on a GPU), maps, softmax and
    scores in NumPy."""

    def __init__(self, bench_dir: Path, path: str, threads: int, device: str = "cpu") -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        bundle = bench_dir / ("bundle" if path == "r_dual" else "bundle_maps")
        providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        self.ensemble = ort.InferenceSession(str(bundle / "ensemble.onnx"), opts, providers=providers)
        self.refine = (ort.InferenceSession(str(bundle / "refine_dual.onnx"), opts, providers=providers)
                       if path == "r_dual" else None)

    def __call__(self, images_u8: np.ndarray) -> dict[str, np.ndarray]:
        x = _unit_to_net(images_u8)[:, None]
        udm, ndm = self.ensemble.run(["udm", "ndm"], {"images": x})
        mu_a, mu_b = udm.mean(axis=1), ndm.mean(axis=1)
        a_rec = (x[:, 0] - mu_b) ** 2
        a_intra = ndm.std(axis=1, ddof=1)
        a_inter = np.abs(mu_a - mu_b)
        scores = {"rec": a_rec.mean(axis=(1, 2)), "intra": a_intra.mean(axis=(1, 2)),
                  "inter": a_inter.mean(axis=(1, 2))}
        if self.refine is not None:
            logits = self.refine.run(["logits"], {"maps": np.stack([a_inter, a_intra], axis=1)})[0]
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            scores["r_dual"] = (e[:, 1] / e.sum(axis=1)).mean(axis=(1, 2))
        return scores


class EngineContender:
    """ddad_rt.Engine.score end to end (uint8 in, scores out)."""

    def __init__(self, bench_dir: Path, path: str, threads: int, precision: str,
                 device: str = "cpu", max_batch: int = 64) -> None:
        from ddad_rt import Engine

        bundle = bench_dir / ("bundle" if path == "r_dual" else "bundle_maps")
        # On a GPU the engines are built once into the bench folder's cache, not timed.
        self.engine = Engine(bundle, device=device, precision=precision, num_threads=threads,
                             max_batch=max_batch, cache_dir=bench_dir / "trt_cache")

    def __call__(self, images_u8: np.ndarray) -> dict[str, np.ndarray]:
        return self.engine.score(images_u8).scores


def make(contender: str, bench_dir: Path, path: str, threads: int, device: str = "cpu",
         batch: int = 64):
    if contender == "reference":
        return Reference(bench_dir, path, threads, device)
    if contender == "onnxruntime":
        return OnnxRuntime(bench_dir, path, threads, device)
    if contender.startswith("engine-"):
        return EngineContender(bench_dir, path, threads, contender.removeprefix("engine-"),
                               device, max_batch=batch)
    msg = f"unknown contender {contender!r}; expected one of {CONTENDERS + GPU_CONTENDERS}"
    raise InputError(msg)


def measure(spec: dict) -> dict:
    bench_dir = Path(spec["bench_dir"])
    images = np.load(bench_dir / "images.npy")
    size = spec.get("batch", 64)
    batch = np.resize(images, (size, *images.shape[1:]))  # the images repeated up to `size`
    t0 = time.perf_counter()
    run = make(spec["contender"], bench_dir, spec["path"], spec["threads"],
               spec.get("device", "cpu"), size)
    load_s = time.perf_counter() - t0

    scores = run(batch)  # warm-up; also the scores the parent compares
    run(batch)
    calls = []
    start = time.perf_counter()
    while len(calls) < spec.get("min_calls", 3) or time.perf_counter() - start < spec.get("min_seconds", 2.0):
        t = time.perf_counter()
        run(batch)
        calls.append(time.perf_counter() - t)

    singles = images[: spec.get("latency_images", 64)]
    for i in range(min(3, len(images))):
        run(images[i: i + 1])
    latencies = []
    for i in range(len(singles)):
        t = time.perf_counter()
        run(singles[i: i + 1])
        latencies.append(time.perf_counter() - t)

    return {
        "contender": spec["contender"], "path": spec["path"], "threads": spec["threads"],
        "device": spec.get("device", "cpu"), "batch": len(batch), "load_seconds": load_s, "batch_seconds": calls,
        "latency_seconds": latencies,
        "scores": {k: np.asarray(v, np.float64).tolist() for k, v in scores.items()},
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: the kernel's high-water mark of its own
    address space (VmHWM). Not getrusage's ru_maxrss: Linux carries that across fork and exec,
    so a worker started by a large parent reports at least the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no procfs (not Linux)


def sgemm_peak(threads: int, n: int = 2048, min_seconds: float = 2.0) -> dict:
    """fp32 GEMM throughput of NumPy's BLAS on ``threads`` threads (the machine's practical
    fp32 ceiling), with the BLAS library and kernel threadpoolctl reports."""
    from threadpoolctl import threadpool_info, threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    with threadpool_limits(limits=threads):
        a @ b
        times = []
        start = time.perf_counter()
        while len(times) < 5 or time.perf_counter() - start < min_seconds:
            t = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t)
    blas = [{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for i in threadpool_info() if i.get("user_api") == "blas"]
    return {"contender": "sgemm", "threads": threads, "n": n,
            "gflops": 2 * n**3 / float(np.median(times)) / 1e9, "blas": blas}


def main() -> None:
    # The parent sets OMP_NUM_THREADS / OPENBLAS_NUM_THREADS to the thread count too, since
    # those pools read the environment when they load.
    spec = json.loads(sys.argv[1])
    result = sgemm_peak(spec["threads"]) if spec["contender"] == "sgemm" else measure(spec)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
