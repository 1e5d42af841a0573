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

#: On the CPU: the authors' loop (PyTorch eager), ONNX Runtime + NumPy, OpenVINO's Python API
#: + NumPy (what an anomalib user deploying with OpenVINO runs; fp32, and bf16 as OpenVINO
#: itself picks on CPUs that have it), the engine at fp32 and bf16.
CONTENDERS = ("reference", "onnxruntime", "openvino-fp32", "openvino-bf16", "engine-fp32", "engine-bf16")
#: On a GPU: the authors' loop in PyTorch on CUDA, ONNX Runtime's CUDA provider, the engine
#: (TensorRT) at fp32 and fp16.
GPU_CONTENDERS = ("reference", "onnxruntime", "engine-fp32", "engine-fp16")
#: What each path computes: the bench bundle it reads and the refined scores it asks for
#: (rec, intra and inter come with every path). "default" is the bundle `ddad-rt train`
#: writes, with both refiners: all its scores, or only r_dual (the screening default).
PATHS = {
    "maps": ("bundle_maps", ()),
    "r_dual": ("bundle", ("r_dual",)),
    "default-all": ("bundle_default", ("r_dual", "r_intra")),
    "default-r_dual": ("bundle_default", ("r_dual",)),
}
#: The authors' loop is the parity baseline on the paths it was measured on before; the
#: default-bundle paths are checked against ONNX Runtime.
REFERENCE_PATHS = ("maps", "r_dual")


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
        if "r_dual" in PATHS[path][1]:
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


def _numpy_scores(x: np.ndarray, udm: np.ndarray, ndm: np.ndarray, refine) -> dict[str, np.ndarray]:
    """The maps and scores in NumPy from the ensemble's reconstructions; ``refine(name,
    maps)`` runs a refinement graph ("dual" or "intra") and returns its logits."""
    mu_a, mu_b = udm.mean(axis=1), ndm.mean(axis=1)
    a_rec = (x[:, 0] - mu_b) ** 2
    a_intra = ndm.std(axis=1, ddof=1)
    a_inter = np.abs(mu_a - mu_b)
    scores = {"rec": a_rec.mean(axis=(1, 2)), "intra": a_intra.mean(axis=(1, 2)),
              "inter": a_inter.mean(axis=(1, 2))}
    for name, maps in (("dual", (a_inter, a_intra)), ("intra", (a_intra,))):
        logits = refine(name, np.stack(maps, axis=1))
        if logits is not None:
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            scores[f"r_{name}"] = (e[:, 1] / e.sum(axis=1)).mean(axis=(1, 2))
    return scores


class OnnxRuntime:
    """The bundle's graphs in ONNX Runtime (its CUDA provider on a GPU), maps, softmax and
    scores in NumPy."""

    def __init__(self, bench_dir: Path, path: str, threads: int, device: str = "cpu") -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        bundle_dir, refined = PATHS[path]
        bundle = bench_dir / bundle_dir
        providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        self.ensemble = ort.InferenceSession(str(bundle / "ensemble.onnx"), opts, providers=providers)
        self.refiners = {name: ort.InferenceSession(str(bundle / f"refine_{name}.onnx"), opts,
                                                    providers=providers)
                         for name in ("dual", "intra") if f"r_{name}" in refined}

    def _refine(self, name: str, maps: np.ndarray) -> np.ndarray | None:
        session = self.refiners.get(name)
        return None if session is None else session.run(["logits"], {"maps": maps})[0]

    def __call__(self, images_u8: np.ndarray) -> dict[str, np.ndarray]:
        x = _unit_to_net(images_u8)[:, None]
        udm, ndm = self.ensemble.run(["udm", "ndm"], {"images": x})
        return _numpy_scores(x, udm, ndm, self._refine)


class OpenVino:
    """The bundle's graphs compiled by OpenVINO's Python API (dynamic batch, the LATENCY
    hint, the thread count set), maps, softmax and scores in NumPy. ``precision`` "fp32"
    asks for f32; "bf16" is what OpenVINO picks by itself on CPUs with native bf16."""

    def __init__(self, bench_dir: Path, path: str, threads: int, precision: str) -> None:
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "f32" if precision == "fp32" else "bf16"}
        bundle_dir, refined = PATHS[path]
        bundle = bench_dir / bundle_dir

        def compiled(name: str):
            return core.compile_model(str(bundle / f"{name}.onnx"), "CPU", config).create_infer_request()

        self.ensemble = compiled("ensemble")
        self.refiners = {name: compiled(f"refine_{name}") for name in ("dual", "intra")
                         if f"r_{name}" in refined}

    def _refine(self, name: str, maps: np.ndarray) -> np.ndarray | None:
        request = self.refiners.get(name)
        return None if request is None else request.infer({"maps": maps})["logits"]

    def __call__(self, images_u8: np.ndarray) -> dict[str, np.ndarray]:
        x = _unit_to_net(images_u8)[:, None]
        out = self.ensemble.infer({"images": x})
        return _numpy_scores(x, out["udm"], out["ndm"], self._refine)


class EngineContender:
    """ddad_rt.Engine.score end to end (uint8 in, scores out)."""

    def __init__(self, bench_dir: Path, path: str, threads: int, precision: str,
                 device: str = "cpu", max_batch: int = 64) -> None:
        from ddad_rt import Engine

        bundle_dir, refined = PATHS[path]
        # On a GPU the engines are built once into the bench folder's cache, not timed.
        self.engine = Engine(bench_dir / bundle_dir, device=device, precision=precision,
                             num_threads=threads, max_batch=max_batch,
                             cache_dir=bench_dir / "trt_cache")
        # All of the bundle's scores, except where the path asks for fewer refined ones.
        has = [k for k in self.engine.info["scores"] if k.startswith("r_")]
        self.scores = None if set(has) == set(refined) else list(refined)

    def __call__(self, images_u8: np.ndarray) -> dict[str, np.ndarray]:
        return self.engine.score(images_u8, scores=self.scores).scores


def make(contender: str, bench_dir: Path, path: str, threads: int, device: str = "cpu",
         batch: int = 64):
    if contender == "reference":
        return Reference(bench_dir, path, threads, device)
    if contender == "onnxruntime":
        return OnnxRuntime(bench_dir, path, threads, device)
    if contender.startswith("openvino-") and device == "cpu":
        return OpenVino(bench_dir, path, threads, contender.removeprefix("openvino-"))
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


def bf16_gemm_peak(threads: int, n: int = 4096) -> float:
    """bf16 GEMM throughput (GFLOP/s) of OpenVINO's CPU plugin - the arithmetic its bf16
    networks use (AMX or AVX512_BF16) - on ``threads`` threads; 0 on CPUs without native
    bf16."""
    import openvino as ov
    import openvino.opset13 as ops

    core = ov.Core()
    if "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return 0.0
    x = ops.parameter([n, n], np.float32)
    w = ops.constant(np.random.default_rng(0).standard_normal((n, n), dtype=np.float32))
    model = ov.Model([ops.matmul(x, w, False, False)], [x])
    request = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16",
                                                "INFERENCE_NUM_THREADS": threads}).create_infer_request()
    a = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    request.infer({0: a})
    times = []
    for _ in range(3):
        t = time.perf_counter()
        request.infer({0: a})
        times.append(time.perf_counter() - t)
    return 2 * n**3 / min(times) / 1e9


def memory_bandwidth(threads: int, mb: int = 512) -> float:
    """Bytes moved per second (read + write, GB/s) copying a buffer far larger than the
    caches, split over ``threads`` threads (NumPy's copy releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    src = np.ones(mb * 2**20 // 4, np.float32)
    dst = np.empty_like(src)
    parts = np.array_split(np.arange(src.size), threads)
    bounds = [(p[0], p[-1] + 1) for p in parts]

    def copy(b: tuple[int, int]) -> None:
        np.copyto(dst[b[0]:b[1]], src[b[0]:b[1]])

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(copy, bounds))
        times = []
        for _ in range(5):
            t = time.perf_counter()
            list(pool.map(copy, bounds))
            times.append(time.perf_counter() - t)
    return 2 * src.nbytes / min(times) / 1e9


def weight_read_rate(mb: int = 512) -> float:
    """Bytes read per second (GB/s) by NumPy's BLAS matrix-vector product over a matrix far
    larger than the caches: how fast a dense layer can stream its weights for one image.
    The copy bandwidth counts read and write together (20 GB/s on one core of the Xeon VM,
    whose sgemv read 12-16 GB/s), so weights divided by it gave a limit lower than any
    single image can reach. Threads as the worker's BLAS is limited to."""
    a = np.ones((mb * 2**20 // 4 // 2048, 2048), np.float32)
    x = np.ones(2048, np.float32)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        a @ x
        times.append(time.perf_counter() - t)
    return a.nbytes / min(times) / 1e9


def peaks(threads: int) -> dict:
    """The yardsticks of the stage limits: fp32 GEMM (NumPy's BLAS), bf16 GEMM (OpenVINO),
    memory bandwidth and the matrix-vector weight read rate, all on ``threads`` threads."""
    out = sgemm_peak(threads)
    out["bf16_gflops"] = bf16_gemm_peak(threads)
    out["bandwidth_gbs"] = memory_bandwidth(threads)
    out["read_gbs"] = weight_read_rate()
    return out


def stage_profile(spec: dict) -> dict:
    """The engine's own per-stage times (Engine.stage_times) on the default bundle with all
    its scores, ``spec["batch"]`` images per call (64: throughput; 1: latency, one image
    after another): seconds per image for each stage, and which implementation ran the
    networks. The engine is built as the throughput contender is (max_batch 64)."""
    from ddad_rt import Engine

    bench_dir = Path(spec["bench_dir"])
    images = np.load(bench_dir / "images.npy")
    per_call = spec.get("batch", 64)
    calls_of = [np.resize(images, (per_call, *images.shape[1:]))] if per_call > 1 else \
        [images[i:i + 1] for i in range(len(images))]
    engine = Engine(bench_dir / PATHS["default-all"][0], device="cpu", precision=spec["precision"],
                    num_threads=spec["threads"], max_batch=64)
    for batch in calls_of[:2]:
        engine.score(batch)
    engine.stage_times(reset=True)
    start = time.perf_counter()
    images_scored = 0
    while images_scored < 3 * 64 or time.perf_counter() - start < spec.get("min_seconds", 2.0):
        for batch in calls_of:
            engine.score(batch)
            images_scored += len(batch)
    wall = time.perf_counter() - start
    times = engine.stage_times()
    stages = {k: v["seconds"] / images_scored for k, v in times.items()}
    info = engine.info
    return {"contender": "stages", "precision": spec["precision"], "threads": spec["threads"],
            "batch": per_call, "seconds_per_image": stages,
            "wall_seconds_per_image": wall / images_scored,
            "refine_impl": info["refine_impl"], "engine_precision": info["precision"]}


def main() -> None:
    # The parent sets OMP_NUM_THREADS / OPENBLAS_NUM_THREADS to the thread count too, since
    # those pools read the environment when they load.
    spec = json.loads(sys.argv[1])
    if spec["contender"] == "sgemm":
        result = sgemm_peak(spec["threads"])
    elif spec["contender"] == "peaks":
        result = peaks(spec["threads"])
    elif spec["contender"] == "stages":
        result = stage_profile(spec)
    else:
        result = measure(spec)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
