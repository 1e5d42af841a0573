"""Accuracy on ../shared/data/brain_tumor against the authors' code (../shared/REFERENCE.md).

Trains one bundle per seed (the paper's BrainTumor AE config: 64x64, K=3, latent 16,
250 epochs, batch 64, Adam 5e-4), evaluates every score through the C++ engine, and
writes per-seed JSON plus a summary (mean, sd) next to the reference numbers.

    python benchmarks/accuracy_brain_tumor.py train --seed 0 --threads 1
    python benchmarks/accuracy_brain_tumor.py summary

Runs go to runs/brain_tumor/seedN/ (bundles are large and not committed); results to
benchmarks/results/brain_tumor_seedN.json and benchmarks/results/accuracy_brain_tumor.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "brain_tumor"
RUNS = ROOT / "runs" / "brain_tumor"
RESULTS = ROOT / "benchmarks" / "results"

# ../shared/REFERENCE.md, 250 AE epochs (AUC, AP).
REFERENCE = {"rec": (0.824, 0.744), "intra": (0.609, 0.570), "inter": (0.852, 0.785)}


def train(seed: int, threads: int, epochs: int) -> None:
    from ddad_rt.evaluate import evaluate
    from ddad_train import TrainConfig
    from ddad_train import train as train_bundle

    out = RUNS / f"seed{seed}"
    bundle = out / "bundle"
    cfg = TrainConfig(data=str(DATA), out=str(bundle), k=3, image_size=64, latent_size=16,
                      epochs=epochs, batch_size=64, lr=5e-4, seed=seed, threads=threads)
    t0 = time.time()
    if not (bundle / "manifest.json").is_file():
        train_bundle(cfg, progress=True)
    report = evaluate(bundle, DATA, num_threads=threads)
    report["seed"] = seed
    report["epochs"] = epochs
    report["threads"] = threads
    report["wall_seconds"] = round(time.time() - t0, 1)
    manifest = json.loads((bundle / "manifest.json").read_text())
    report["train_seconds"] = manifest["training"]["seconds"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"brain_tumor_seed{seed}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"auc": report["auc"], "ap": report["ap"]}, indent=2))


def summary() -> None:
    runs = sorted(RESULTS.glob("brain_tumor_seed*.json"))
    if not runs:
        sys.exit("no results yet: run the train command first")
    reports = [json.loads(p.read_text()) for p in runs]
    lines = [
        "# DDAD (AE, K=3) on brain_tumor, 250 epochs: ddad_rt vs the authors' code",
        "",
        f"Seeds: {', '.join(str(r['seed']) for r in reports)}; scores computed by the C++ engine "
        "(OpenVINO, fp32). Reference: ../shared/REFERENCE.md (authors' code, one unseeded run).",
        "",
        *([f"**Incomplete: {len(reports)} of 3 seeds (sd needs at least 2).**", ""]
          if len(reports) < 3 else []),
        "| score | AUC mean | AUC sd | ref AUC | AUC within max(0.03, 2 sd)? | AP mean | AP sd | ref AP | AP within? |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    out = {"seeds": [r["seed"] for r in reports], "scores": {}}
    for key, (ref_auc, ref_ap) in REFERENCE.items():
        row = [key]
        entry = {}
        for metric, ref in (("auc", ref_auc), ("ap", ref_ap)):
            vals = [r[metric][key] for r in reports]
            mean = statistics.fmean(vals)
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            ok = abs(mean - ref) <= max(0.03, 2 * sd)
            row += [f"{mean:.3f}", f"{sd:.3f}", f"{ref:.3f}", "yes" if ok else "**no**"]
            entry[metric] = {"values": vals, "mean": mean, "sd": sd, "reference": ref, "within": ok}
        out["scores"][key] = entry
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Per seed (AUC / AP):", ""]
    for r in reports:
        cells = ", ".join(f"{k} {r['auc'][k]:.3f} / {r['ap'][k]:.3f}" for k in REFERENCE)
        lines.append(f"- seed {r['seed']}: {cells}; train {r['train_seconds']['total']} s "
                     f"on {r['threads']} thread(s)")
    lines += ["", "Commands:", "", "```",
              *(f"python benchmarks/accuracy_brain_tumor.py train --seed {r['seed']} --threads {r['threads']}"
                for r in reports),
              "python benchmarks/accuracy_brain_tumor.py summary", "```", ""]
    (RESULTS / "accuracy_brain_tumor.md").write_text("\n".join(lines))
    (RESULTS / "accuracy_brain_tumor.json").write_text(json.dumps(out, indent=2) + "\n")
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--seed", type=int, required=True)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--epochs", type=int, default=250)
    sub.add_parser("summary")
    a = p.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} not found: this benchmark needs ../shared/data/brain_tumor")
    if a.cmd == "train":
        train(a.seed, a.threads, a.epochs)
    else:
        summary()


if __name__ == "__main__":
    main()
