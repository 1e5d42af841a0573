"""Training speed, side by side: one K=3 module trained batched by ddad_train against the
authors' way - three separate runs of one member each - on the same images, epochs and
thread count, every run in its own process.

Contenders:
- ``ddad``: ``ddad_train.trainer.train_module`` (K members as one batched model), fp32;
- ``ddad-bf16``: the same with ``precision="bf16"`` (bf16 autocast), on CPUs with native bf16;
- ``plain``: the authors' training loop on one plain AE (Adam 5e-4, betas (0.5, 0.999),
  batch 64 drop-last, MSE), fed from memory - the authors' way without their per-image
  file decoding, so a stricter baseline than their code; run three times;
- ``authors``: the authors' own code (a checkout of caiyu6666/DDAD-ASR, run unchanged by
  benchmarks/authors_code/run_cpu.py), three members, when its path is given.

    python -m ddad_train.bench_train worker SPEC_JSON     (one run; prints a JSON line)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

#: benchmarks/authors_code/run_cpu.py of a checkout of this repository.
AUTHORS_RUNNER = Path(__file__).resolve().parents[2] / "benchmarks" / "authors_code" / "run_cpu.py"


def forward_flops_per_image(image_size: int = 64) -> float:
    """Forward FLOPs of one paper AE (64x64, mp 1) per image; training counts 3x (forward,
    backward for activations and for weights)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ddad_train.models import AE

    model = AE(image_size=image_size).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 1, image_size, image_size))
    return float(counter.get_total_flops())


def _images(data: str, n: int | None) -> np.ndarray:
    from ddad_train.config import TrainConfig
    from ddad_train.pipeline import load_training_images

    cfg = TrainConfig(data=data, image_size=64)
    _, udm_images, _ = load_training_images(cfg, progress=False)
    return udm_images[:n] if n else udm_images


def native_bf16() -> bool:
    """True if this CPU computes bf16 natively (AVX512_BF16 or AMX), as bf16 training needs to
    be fast rather than emulated."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def run_ddad(spec: dict) -> dict:
    """The batched K-member module; final_loss is the last epoch's mean over steps and members."""
    from ddad_train.config import TrainConfig
    from ddad_train.trainer import train_module

    images = _images(spec["data"], spec.get("n"))
    cfg = TrainConfig(data=spec["data"], image_size=64, k=spec["k"], epochs=spec["epochs"],
                      threads=spec["threads"], seed=spec.get("seed", 0),
                      precision="bf16" if spec["contender"] == "ddad-bf16" else "fp32")
    t = time.perf_counter()
    result = train_module(images, cfg, "udm", progress=False)
    return {"seconds": time.perf_counter() - t, "images": len(images), "members": cfg.k,
            "final_loss": float(np.mean(result.losses[-1]))}


def run_plain(spec: dict) -> dict:
    """One plain member; final_loss is the last epoch's mean over steps."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from ddad_train.models import AE

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec.get("seed", 0))
    images = _images(spec["data"], spec.get("n"))
    x = (torch.from_numpy(images).float() / 255 - 0.5) / 0.5
    loader = DataLoader(TensorDataset(x.unsqueeze(1)), batch_size=64, shuffle=True, drop_last=True)
    model = AE(image_size=64).train()
    opt = torch.optim.Adam(model.parameters(), lr=5e-4, betas=(0.5, 0.999))
    t = time.perf_counter()
    for _ in range(spec["epochs"]):
        total = 0.0
        for (b,) in loader:
            loss = torch.mean((model(b) - b) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()  # the authors' loop logs every step's loss too
    return {"seconds": time.perf_counter() - t, "images": len(images), "members": 1,
            "final_loss": total / len(loader)}


def run_authors(spec: dict) -> dict:
    """One member of the authors' code: their BraTumor AE config with ``epochs`` epochs,
    module A (the UDM: known normal + unlabeled pool, 2,000 images)."""
    authors = Path(spec["authors_code"])
    runner = Path(spec["runner"])
    out = Path(spec["work"]) / f"authors_{spec['threads']}t_{spec['round']}"
    src = (authors / "cfgs" / "BraTumor_AE.yaml").read_text()
    cfg = re.sub(r"output/AE/BraTumor/", f"{out}/", src)
    cfg = re.sub(r"gpu: \d+", "gpu: 0", cfg)
    # The first num_epoch is the Solver's (the AE's); RefineSolver's follows it.
    cfg = re.sub(r"num_epoch:\s*\d+", f"num_epoch: {spec['epochs']}", cfg, count=1)
    cfg_path = authors / "cfgs" / f"ddad_bench_{spec['threads']}t_{spec['round']}.yaml"
    cfg_path.write_text(cfg)
    env = {**os.environ, "AUTHORS_CODE": str(authors), "OMP_NUM_THREADS": str(spec["threads"])}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, str(runner), "--config", str(cfg_path), "--mode", "a"],
                          env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t
    cfg_path.unlink(missing_ok=True)
    if proc.returncode != 0:
        msg = f"the authors' code failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        raise RuntimeError(msg)
    return {"seconds": seconds, "members": 1, "note": "wall time of the whole run, incl. start-up"}


def worker(spec: dict) -> dict:
    run = {"ddad": run_ddad, "ddad-bf16": run_ddad, "plain": run_plain,
           "authors": run_authors}[spec["contender"]]
    from ddad_train.bench.worker import peak_rss_mb

    out = run(spec)
    out.update({k: spec[k] for k in ("contender", "threads", "epochs")})
    if spec["contender"] == "authors":  # their process, a child of this small wrapper
        import resource

        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    else:
        out["peak_rss_mb"] = peak_rss_mb()
    return out


def run_training_bench(data: str | Path, *, threads: tuple[int, ...] = (1, 2), epochs: int = 40,
                       k: int = 3, authors_code: str | Path | None = None,
                       runner: str | Path | None = None, work: str | Path = "bench_work",
                       n: int | None = None, plain: bool = False, bf16: bool | None = None,
                       progress: bool = True, command: str = "") -> dict:
    """For each thread count: one batched K-member run (fp32, and bf16 where the CPU has it)
    against K runs of one member (the authors' code if given, the plain loop if asked),
    interleaved. Every run's wall time is measured around its whole process (start-up and
    image loading included, as for the authors' code); the gate compares those.
    Returns the report dict."""
    from tqdm.auto import tqdm

    from ddad_train.bench.inference import worker_env

    if authors_code is not None:
        runner = Path(runner) if runner else AUTHORS_RUNNER
        if not runner.is_file() or not (Path(authors_code) / "main.py").is_file():
            msg = (f"timing the authors' code needs their checkout ({authors_code}, with main.py) "
                   f"and this repository's runner ({runner}); see benchmarks/authors_code/README.md")
            raise FileNotFoundError(msg)
    fwd = forward_flops_per_image()
    base = {"data": str(Path(data).resolve()), "epochs": epochs, "k": k, "n": n,
            "work": str(Path(work).resolve())}
    if bf16 is None:
        bf16 = native_bf16()
    mine = ["ddad"] + (["ddad-bf16"] if bf16 else [])
    jobs = []
    for t in threads:
        for r in range(k):
            if plain:
                jobs.append({**base, "contender": "plain", "threads": t, "round": r, "seed": r})
            if authors_code is not None:
                jobs.append({**base, "contender": "authors", "threads": t, "round": r,
                             "authors_code": str(authors_code), "runner": str(runner)})
            if r < len(mine):
                jobs.append({**base, "contender": mine[r], "threads": t, "round": 0})
    Path(work).mkdir(parents=True, exist_ok=True)
    raw = []
    for spec in tqdm(jobs, desc="training bench", unit="run", disable=not progress):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "ddad_train.bench_train", "worker",
                               json.dumps(spec)], capture_output=True, text=True,
                              env=worker_env(spec["threads"]), check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            msg = f"training bench run {spec['contender']} failed:\n{proc.stderr[-3000:]}"
            raise RuntimeError(msg)
        raw.append({**json.loads(proc.stdout.strip().splitlines()[-1]), "wall_seconds": wall})
    images = next(r["images"] for r in raw if r["contender"] == "ddad")
    steps_images = (images // 64) * 64 * epochs  # batches drop the remainder
    report = {}
    for t in threads:
        runs_t = [r for r in raw if r["threads"] == t]
        sec = {}
        for c in ("ddad", "ddad-bf16", "plain", "authors"):
            runs = [r for r in runs_t if r["contender"] == c]
            if not runs:
                continue
            members = sum(r["members"] for r in runs)
            wall = sum(r["wall_seconds"] for r in runs)
            sec[c] = {"runs": len(runs), "members": members, "wall_seconds": wall,
                      "gflops": 3 * fwd * steps_images * members / wall / 1e9}
            if c.startswith("ddad"):
                sec[c]["loop_seconds"] = runs[0]["seconds"]
        for c in ("ddad", "ddad-bf16"):
            for base_c in ("plain", "authors"):
                if c in sec and base_c in sec:
                    sec[c][f"vs_{base_c}"] = sec[c]["wall_seconds"] / sec[base_c]["wall_seconds"]
        report[str(t)] = sec
    return {"forward_flops_per_image": fwd, "images": images, "epochs": epochs,
            "k": k, "data": base["data"], "command": command, "report": report, "raw": raw}


#: Gate of issue 4: the batched K=3 module in at most this fraction of the authors' way's time.
TRAINING_GATE = 0.5


def training_markdown(res: dict) -> str:
    k = res["k"]
    about = (f"UDM images of {res['data']} ({res['images']} images, batch 64 drop-last), "
             f"{res['epochs']} epochs, paper AE 64x64 ({res['forward_flops_per_image'] / 1e6:.1f} "
             "MFLOP forward per image; training counted as 3x forward). Wall time of each whole "
             "process (start-up and image loading included); GFLOP/s are the training FLOPs "
             "over that wall time.")
    labels = {"ddad": f"ddad_train, K={k} batched, fp32 (one run)",
              "ddad-bf16": f"ddad_train, K={k} batched, bf16 autocast (one run)",
              "plain": f"plain PyTorch loop on preloaded images, 1 member x {k} runs",
              "authors": f"authors' code, 1 member x {k} runs"}
    lines = [f"# Training speed: one batched K={k} module vs the authors' way ({k} runs of one member)", "",
             about, "",
             f"Command: `{res['command']}`", "",
             f"| threads | contender | wall s | loop s | GFLOP/s | / authors' way | gate <= {TRAINING_GATE} |",
             "|---|---|---|---|---|---|---|"]
    for t, sec in res["report"].items():
        for c, label in labels.items():
            if c not in sec:
                continue
            r = sec[c]
            loop = f"{r['loop_seconds']:.1f}" if "loop_seconds" in r else ""
            ratio = f"{r['vs_authors']:.2f}" if "vs_authors" in r else ""
            gate = ("yes" if r["vs_authors"] <= TRAINING_GATE else "**no**") if "vs_authors" in r else ""
            lines.append(f"| {t} | {label} | {r['wall_seconds']:.1f} | {loop} | {r['gflops']:.1f} | "
                         f"{ratio} | {gate} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] != "worker":
        raise SystemExit("usage: python -m ddad_train.bench_train worker SPEC_JSON")
    print(json.dumps(worker(json.loads(sys.argv[2]))))


if __name__ == "__main__":
    main()
