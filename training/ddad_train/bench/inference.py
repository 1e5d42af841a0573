"""The inference benchmark: the same bundle and images scored by every contender, each in its
own process, alternating (A B C D A B C D ...) so that a noisy machine hurts all alike.

The bench directory holds one bundle of the paper's architecture (AE, K=3, 64x64, R_dual)
exported from PyTorch members whose weights are kept beside it (``weights.pt``) for the
reference loop, the same bundle without its refiner (``bundle_maps``, for the A-maps-only
path) and with both refiners (``bundle_default``, what ``ddad-rt train`` writes), and the
images (``images.npy``, uint8 [N, 64, 64]).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from ddad_train.bench.worker import CONTENDERS, PATHS, REFERENCE_PATHS

IMAGE_SIZE = 64
K = 3
N_IMAGES = 64


def bench_images(data: str | Path | None, n: int = N_IMAGES, seed: int = 0) -> tuple[np.ndarray, str]:
    """uint8 [n, 64, 64] test images: half normal, half abnormal from ``data`` (a dataset
    with a test split), else from the built-in synthetic generator. Returns (images, source)."""
    from ddad_rt.preprocess import load_images

    if data is not None:
        from ddad_rt import datasets

        test = datasets.test_set(data)
        paths = np.asarray(test.paths, dtype=object)
        pick = np.concatenate([np.flatnonzero(test.labels == 0)[: n // 2],
                               np.flatnonzero(test.labels == 1)[: n - n // 2]])
        return load_images(list(paths[pick]), IMAGE_SIZE), str(data)
    from ddad_rt.preprocess import to_model_input
    from ddad_rt.synthetic import make_image

    rng = np.random.default_rng(seed)
    raw = [make_image(rng, abnormal=bool(i % 2))[0] for i in range(n)]
    return np.stack([to_model_input(r, IMAGE_SIZE) for r in raw]), "synthetic"


def prepare(bench_dir: str | Path, images: np.ndarray, seed: int = 0) -> Path:
    """Builds the bench directory: PyTorch members of the paper's architecture (seeded
    initialisation, BatchNorm statistics calibrated on ``images`` so activations have
    realistic ranges), their bundle with R_dual, without refiners and with both, and the
    weights."""
    import torch

    from ddad_train.config import TrainConfig
    from ddad_train.export import add_refiners, export_bundle
    from ddad_train.models import AE, BatchedAE, RefineNet

    bench_dir = Path(bench_dir)
    bench_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    x = torch.from_numpy((images.astype(np.float32) / 255 - 0.5) / 0.5).unsqueeze(1)

    def calibrated(module: torch.nn.Module, inputs: torch.Tensor) -> torch.nn.Module:
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = None  # cumulative average: the statistics of `inputs`
                m.reset_running_stats()
        module.train()
        with torch.no_grad():
            module(inputs)
        return module.eval()

    cfg = {"latent_size": 16, "mp": 1.0, "image_size": IMAGE_SIZE}
    members = [calibrated(AE(**cfg), x) for _ in range(2 * K)]
    udm = BatchedAE.from_members(members[:K], **cfg)
    ndm = BatchedAE.from_members(members[K:], **cfg)
    with torch.no_grad():
        ra = torch.cat([m(x) for m in members[:K]], dim=1)
        rb = torch.cat([m(x) for m in members[K:]], dim=1)
        maps = torch.stack([(ra.mean(1) - rb.mean(1)).abs(), rb.std(1)], dim=1)
    refine = calibrated(RefineNet(2), maps)
    refine_intra = calibrated(RefineNet(1), maps[:, 1:])

    train_cfg = TrainConfig(image_size=IMAGE_SIZE, k=K, refiners=["dual"], seed=seed).to_dict()
    training = {"seed": seed, "note": "benchmark bundle: initialised, not trained"}
    for name in ("bundle", "bundle_maps", "bundle_default"):
        if (bench_dir / name).exists():
            shutil.rmtree(bench_dir / name)
    export_bundle(udm, ndm, bench_dir / "bundle_maps", config=train_cfg, training=training)
    add_refiners(bench_dir / "bundle_maps", bench_dir / "bundle", {"dual": refine},
                 config=train_cfg, training={})
    # What `ddad-rt train` writes by default: both refiners.
    both_cfg = TrainConfig(image_size=IMAGE_SIZE, k=K, refiners=["dual", "intra"], seed=seed).to_dict()
    add_refiners(bench_dir / "bundle_maps", bench_dir / "bundle_default",
                 {"dual": refine, "intra": refine_intra}, config=both_cfg, training={})
    torch.save({"config": cfg, "udm": [m.state_dict() for m in members[:K]],
                "ndm": [m.state_dict() for m in members[K:]],
                "refine_dual": refine.state_dict()}, bench_dir / "weights.pt")
    np.save(bench_dir / "images.npy", images)
    return bench_dir


#: Set on some machines to pin OpenBLAS to an older kernel (less than half the sgemm speed
#: here); the GEMM-peak measurement runs without them so that the peak is the real one.
OPENBLAS_PINS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def worker_env(threads: int, unpin_blas: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    if unpin_blas:
        for var in OPENBLAS_PINS:
            env.pop(var, None)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    return env


def run_worker(spec: dict, timeout: float = 900) -> dict:
    """Runs one contender in a fresh process and returns its measurements."""
    proc = subprocess.run([sys.executable, "-m", "ddad_train.bench.worker", json.dumps(spec)],
                          capture_output=True, text=True,
                          env=worker_env(spec["threads"], unpin_blas=spec["contender"] == "sgemm"),
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        msg = (f"benchmark worker {spec['contender']} ({spec['path']}, {spec['threads']} threads) "
               f"failed with exit code {proc.returncode}:\n{proc.stderr[-3000:]}")
        raise RuntimeError(msg)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_rounds(bench_dir: str | Path, threads: list[int], rounds: int,
               contenders: tuple[str, ...] = CONTENDERS, paths: tuple[str, ...] = tuple(PATHS),
               min_seconds: float = 2.0, latency_images: int = N_IMAGES,
               progress: bool = True, device: str = "cpu", batch: int = 64) -> list[dict]:
    """All (contender, path) measurements, ``rounds`` times each per thread count, in
    alternating order (the authors' loop only on REFERENCE_PATHS)."""
    from tqdm.auto import tqdm

    jobs = [(t, r, c, p) for t in threads for r in range(rounds) for c in contenders for p in paths
            if c != "reference" or p in REFERENCE_PATHS]
    results = []
    bar = tqdm(jobs, desc="inference bench", unit="run", disable=not progress)
    for t, r, c, p in bar:
        bar.set_postfix_str(f"{t} thr, round {r + 1}, {c}, {p}")
        res = run_worker({"contender": c, "path": p, "threads": t, "bench_dir": str(bench_dir),
                          "min_seconds": min_seconds, "latency_images": latency_images,
                          "device": device, "batch": batch})
        res["round"] = r
        results.append(res)
    return results
