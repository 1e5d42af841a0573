"""What score selection saves: the paper's AE bundle (K=3, 64x64) with both refiners scored
for r_dual alone, against the same ensemble and R_dual in a bundle without R_intra (issue 16:
at most 1.05x its time), and against scoring everything. Each measurement is a fresh process
(batch-64 throughput for a fixed time after a warm-up), the three alternating in every round
so that a noisy machine hurts all alike; medians of the rounds.

    python benchmarks/score_selection.py --out benchmarks/results/cpu/score_selection \
        [--threads 1 2] [--rounds 3] [--seconds 6] [--data ../shared/data/brain_tumor]

Writes score_selection.json and score_selection.md in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORKER = r"""
import sys, time, numpy as np, ddad_rt
bundle, threads, scores, seconds, images = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5]
x = np.load(images)
engine = ddad_rt.Engine(bundle, device="cpu", num_threads=threads, max_batch=len(x))
wanted = None if scores == "all" else scores.split(",")
for _ in range(3):
    engine.score(x, scores=wanted)
n, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < seconds:
    engine.score(x, scores=wanted)
    n += len(x)
print(n / (time.perf_counter() - t0))
"""

#: (name, bundle folder, scores asked for)
CASES = [
    ("both refiners, r_dual only", "bundle_both", "r_dual"),
    ("without R_intra, all scores", "bundle_dual", "all"),
    ("both refiners, all scores", "bundle_both", "all"),
]


def prepare(folder: Path, data: str | None) -> None:
    """The benchmark bundle of `ddad-rt bench` (R_dual) plus an untrained R_intra of the
    paper's form added to a copy: the same ensemble and R_dual in both bundles."""
    import numpy as np
    import torch
    from ddad_train.bench.inference import bench_images
    from ddad_train.bench.inference import prepare as prepare_bench
    from ddad_train.export import add_refiners
    from ddad_train.models import RefineNet

    images, _ = bench_images(data)
    prepare_bench(folder, images)
    torch.manual_seed(1)
    weights = torch.load(folder / "weights.pt")
    dual = RefineNet(2)
    dual.load_state_dict(weights["refine_dual"])
    for name in ("bundle_both", "bundle_dual"):
        if (folder / name).exists():
            shutil.rmtree(folder / name)
    shutil.copytree(folder / "bundle", folder / "bundle_dual")
    add_refiners(folder / "bundle_maps", folder / "bundle_both",
                 {"dual": dual.eval(), "intra": RefineNet(1).eval()}, config={}, training={})
    np.save(folder / "images.npy", images)


def measure(folder: Path, bundle: str, threads: int, scores: str, seconds: float) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", WORKER, str(folder / bundle), str(threads), scores,
                          str(seconds), str(folder / "images.npy")],
                         capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--data", default=None)
    a = p.parse_args()
    out = Path(a.out)
    work = out / "work"
    prepare(work, a.data)
    results = {t: {name: [] for name, _, _ in CASES} for t in a.threads}
    for t in a.threads:
        for r in range(a.rounds):
            for name, bundle, scores in CASES:
                ips = measure(work, bundle, t, scores, a.seconds)
                results[t][name].append(ips)
                print(f"{t} thread(s), round {r + 1}: {name}: {ips:.1f} img/s", flush=True)
    lines = ["# Score selection on the CPU: what asking for r_dual alone costs", "",
             f"`python benchmarks/score_selection.py --out {a.out} --threads "
             f"{' '.join(map(str, a.threads))} --rounds {a.rounds} --seconds {a.seconds:g}"
             + (f" --data {a.data}" if a.data else "") + "`",
             f"({time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} CPUs, nothing else running). The paper's AE, K=3, 64x64, fp32, "
             "batch 64, each measurement a fresh process; medians of the rounds.", "",
             "| threads | " + " | ".join(f"{n}, img/s" for n, _, _ in CASES)
             + " | r_dual only: time vs without R_intra (gate 1.05) | r_dual only: time vs all scores |",
             "|---|" + "---|" * (len(CASES) + 2)]
    summary = {}
    for t in a.threads:
        med = {n: statistics.median(v) for n, v in results[t].items()}
        vs_dual = med["without R_intra, all scores"] / med["both refiners, r_dual only"]
        vs_all = med["both refiners, all scores"] / med["both refiners, r_dual only"]
        summary[t] = {"median_img_per_s": med, "time_ratio_vs_without_r_intra": vs_dual,
                      "time_ratio_vs_all_scores": vs_all, "rounds": results[t]}
        lines.append(f"| {t} | " + " | ".join(f"{med[n]:.1f}" for n, _, _ in CASES)
                     + f" | **{vs_dual:.3f}** {'pass' if vs_dual <= 1.05 else 'FAIL'} | {vs_all:.3f} |")
    (out / "score_selection.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "score_selection.md").write_text("\n".join(lines) + "\n")
    shutil.rmtree(work)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
