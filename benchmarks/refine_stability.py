"""How much the refined scores depend on luck: the refinement repeated seed by seed (issue 18).

The NDM and UDM are trained once (an existing bundle; its refiners, if any, are ignored) and
only the refinement is repeated, one seed after another. Along the epochs each seed's R_dual
and R_intra are evaluated on the test split: the frozen ensemble's test maps are computed once
by the engine, and the refiners in training run on them in PyTorch (eval mode), as the engine
would run the exported graphs. Adam has no schedule here, so epoch 10 of a 100-epoch run is
the result of a 10-epoch run with the same seed: one run per seed gives every setting.

    python benchmarks/refine_stability.py --bundle BUNDLE --data DIR --seeds 0 1 2 3 4 \\
        --refine-epochs 100 --report-epochs 10 100 --out benchmarks/results/refine_stability/NAME

Writes into --out: results.json (every seed's AUC, AP and losses per epoch, the maps' own
AUCs, the command), summary.md (mean, sd and min per refiner at each reported epoch, beside
A_inter and A_intra) and auc_by_epoch.svg (one line per seed and refiner). Partial results are
written after every seed, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from ddad_rt import datasets
from ddad_rt.bundle import read_manifest
from ddad_rt.engine import Engine
from ddad_rt.metrics import average_precision, roc_auc
from ddad_rt.preprocess import load_images
from ddad_train.config import REFINE_MODES, TrainConfig
from ddad_train.refine import train_refiners
from ddad_train.refine_validation import anomaly_probability, refiner_input

REFINERS = ("dual", "intra")


def refine_config(bundle: Path, data: Path, seed: int, epochs: int, threads: int, mode: str,
                  anomalies: str) -> TrainConfig:
    """The bundle's own training settings with only the refinement seed, length, mode and
    synthetic anomalies changed."""
    base = dict(read_manifest(bundle, verify=True).get("training", {}).get("config", {}))
    cfg = TrainConfig.from_yaml_values({**base, "data": str(data), "refiners": list(REFINERS),
                                        "refine_epochs": epochs, "seed": seed,
                                        "refine_mode": mode, "refine_anomalies": anomalies,
                                        "threads": threads,
                                        "checkpoint_dir": ""})
    cfg.validate()
    return cfg


def test_maps(bundle: Path, data: Path, image_size: int, threads: int
              ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A_inter and A_intra of every test image (the frozen ensemble's), and the labels."""
    test = datasets.test_set(data)
    images = load_images(test.paths, image_size, progress=False)
    engine = Engine(bundle, device="cpu", max_batch=64, num_threads=threads)
    maps: dict[str, list[np.ndarray]] = {"inter": [], "intra": []}
    for i in range(0, len(images), 64):
        out = engine.score(images[i:i + 64], maps=True, scores=("inter", "intra")).maps
        for key, parts in maps.items():
            parts.append(out[key])
    return {k: np.concatenate(v) for k, v in maps.items()}, np.asarray(test.labels)


def refined_scores(net: torch.nn.Module, inputs: torch.Tensor) -> np.ndarray:
    """Image scores of one refiner: the spatial mean of its anomaly probability."""
    return anomaly_probability(net, inputs).mean(axis=(1, 2))


def run_seed(bundle: Path, data: Path, normal: np.ndarray, maps: dict[str, np.ndarray],
             labels: np.ndarray, seed: int, epochs: int, threads: int, measured: set[int],
             mode: str, anomalies: str) -> dict:
    """One refinement run: per refiner, the test AUC / AP after the `measured` epochs, the
    losses of every epoch and the label-free validation figures at the end."""
    cfg = refine_config(bundle, data, seed, epochs, threads, mode, anomalies)
    inputs = {n: refiner_input(maps, n) for n in REFINERS}
    curve: dict[str, dict[str, list]] = {n: {"epoch": [], "auc": [], "ap": []} for n in REFINERS}

    def measure(epoch: int, exported) -> None:
        if epoch not in measured:
            return
        nets = exported()
        for n in REFINERS:
            s = refined_scores(nets[n], inputs[n])
            curve[n]["epoch"].append(epoch)
            curve[n]["auc"].append(roc_auc(labels, s))
            curve[n]["ap"].append(average_precision(labels, s))

    t0 = time.perf_counter()
    result = train_refiners(normal, bundle, cfg, progress=True, on_epoch=measure)
    return {"seed": seed, "seconds": round(time.perf_counter() - t0, 1),
            "refiners": {n: {**curve[n], "loss": result.losses[n]} for n in REFINERS},
            "validation": result.validation}


def at_epoch(run: dict, refiner: str, metric: str, epoch: int) -> float:
    curve = run["refiners"][refiner]
    return curve[metric][curve["epoch"].index(epoch)]


def statistics(runs: list[dict], epoch: int) -> dict[str, dict[str, float]]:
    """Per refiner and metric at `epoch`: mean, sd (n - 1), min and max over the seeds."""
    out: dict[str, dict[str, float]] = {}
    for n in REFINERS:
        for metric in ("auc", "ap"):
            v = np.array([at_epoch(r, n, metric, epoch) for r in runs])
            sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
            out[f"r_{n} {metric}"] = {"mean": float(v.mean()), "sd": sd, "min": float(v.min()),
                                      "max": float(v.max())}
    return out


def summary_markdown(meta: dict, runs: list[dict], report_epochs: list[int]) -> str:
    lines = [f"# Refinement stability: {meta['name']}", "",
             f"Command: `{meta['command']}`  ", (f"Bundle: {meta['bundle']} (NDM/UDM trained once); "
             f"data: {meta['data']}; seeds: {', '.join(str(r['seed']) for r in runs)}; "
             f"refine mode: {meta.get('refine_mode', 'paper')}; synthetic anomalies: "
             f"{meta.get('refine_anomalies', 'patch')}; threads: {meta['threads']}."), "",
             (f"Without refinement: A_inter AUC {meta['maps_auc']['inter']:.3f}, "
             f"A_intra AUC {meta['maps_auc']['intra']:.3f} (no seed involved)."), ""]
    for epoch in report_epochs:
        if any(epoch not in r["refiners"]["dual"]["epoch"] for r in runs):
            continue
        lines += [f"## After {epoch} refinement epochs", "",
                  "| score | mean | sd | min | max | per seed |", "|---|---|---|---|---|---|"]
        for key, s in statistics(runs, epoch).items():
            n, metric = key.split()
            per = ", ".join(f"{at_epoch(r, n[2:], metric, epoch):.3f}" for r in runs)
            lines.append(f"| {key} | {s['mean']:.3f} | {s['sd']:.3f} | "
                         f"{s['min']:.3f} | {s['max']:.3f} | {per} |")
        lines.append("")
    lines += validation_markdown(runs)
    lines += ["Test AUC along the epochs, one line per seed: `auc_by_epoch.svg`.", ""]
    return "\n".join(lines)


def validation_markdown(runs: list[dict]) -> list[str]:
    """Per seed, the label-free validation figures the bundle would record (pixel AUROC on
    fresh synthetic anomalies of the training normals) beside the test AUC at the end:
    whether the label-free figure tells a good refiner from a poor one."""
    runs = [r for r in runs if r.get("validation")]
    if not runs:
        return []
    lines = ["## Label-free validation (synthetic anomalies on training normals) vs test AUC", "",
             ("| seed | A_inter pixel | A_intra pixel | R_dual pixel | R_dual test AUC | "
              "R_intra pixel | R_intra test AUC | flagged collapsed |"),
             "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        v = r["validation"]
        ref = v["refiners"]
        flagged = ", ".join(f"R_{n}" for n, f in ref.items() if f["collapsed"]) or "none"
        lines.append(f"| {r['seed']} | {v['maps']['inter']['pixel_auc']:.3f} | "
                     f"{v['maps']['intra']['pixel_auc']:.3f} | {ref['dual']['pixel_auc']:.3f} | "
                     f"{r['refiners']['dual']['auc'][-1]:.3f} | {ref['intra']['pixel_auc']:.3f} | "
                     f"{r['refiners']['intra']['auc'][-1]:.3f} | {flagged} |")
    return [*lines, ""]


def auc_svg(runs: list[dict], maps_auc: dict[str, float], width: int = 720, height: int = 300
            ) -> str:
    """Test AUC per epoch, one panel per refiner, one line per seed; A_intra / A_inter dashed."""
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]
    panel_w, top, bottom, left = width // 2, 30, 40, 45
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'font-family="sans-serif" font-size="11">')]
    for p, n in enumerate(REFINERS):
        x0, plot_w, plot_h = p * panel_w + left, panel_w - left - 15, height - top - bottom
        epochs = max(r["refiners"][n]["epoch"][-1] for r in runs)

        def xy(epoch: int, auc: float, x0: int = x0, w: int = plot_w, h: int = plot_h,
               e: int = epochs) -> str:
            x = x0 + (epoch - 1) / max(e - 1, 1) * w
            y = top + (1 - (auc - 0.4) / 0.6) * h  # AUC 0.4 .. 1.0
            return f"{x:.1f},{min(max(y, top), top + h):.1f}"

        parts.append(f'<text x="{x0}" y="18" font-weight="bold">R_{n}: test AUC by epoch</text>')
        parts.append(f'<rect x="{x0}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
                     'stroke="#888"/>')
        for auc in (0.5, 0.7, 0.9):
            parts.append(f'<text x="{x0 - 30}" y="{xy(1, auc).split(",")[1]}">{auc:.1f}</text>')
        ref = maps_auc["intra" if n == "intra" else "inter"]
        parts.append(f'<polyline points="{xy(1, ref)} {xy(epochs, ref)}" stroke="#444" '
                     'stroke-dasharray="4 3" fill="none"/>')
        for i, r in enumerate(runs):
            curve = r["refiners"][n]
            pts = " ".join(xy(e, a) for e, a in zip(curve["epoch"], curve["auc"], strict=True))
            parts.append(f'<polyline points="{pts}" stroke="{colours[i % len(colours)]}" '
                         'fill="none" stroke-width="1.5">'
                         f'<title>seed {r["seed"]}</title></polyline>')
        parts.append(f'<text x="{x0}" y="{height - 12}">epoch 1 .. {epochs}; dashed: '
                     f'A_{"intra" if n == "intra" else "inter"} without refinement</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def write_outputs(out: Path, meta: dict, runs: list[dict], report_epochs: list[int]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=1))
    (out / "summary.md").write_text(summary_markdown(meta, runs, report_epochs))
    (out / "auc_by_epoch.svg").write_text(auc_svg(runs, meta["maps_auc"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, required=True, help="a bundle with trained NDM/UDM")
    ap.add_argument("--data", type=Path, required=True, help="the dataset it was trained on")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--refine-epochs", type=int, default=100)
    ap.add_argument("--report-epochs", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--eval-every", type=int, default=1,
                    help="epochs between test evaluations (the reported ones are always made)")
    ap.add_argument("--refine-mode", choices=REFINE_MODES, default="swa",
                    help="which weights are evaluated: the running weight average (swa) or the "
                         "last epoch's (paper)")
    ap.add_argument("--refine-anomalies", default="patch",
                    help="synthetic anomaly kinds, comma-separated: patch, intensity")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    manifest = read_manifest(a.bundle, verify=True)
    size = manifest["image_size"][0]
    normal = load_images(datasets.training_set(a.data).normal, size, progress=False)
    maps, labels = test_maps(a.bundle, a.data, size, a.threads)
    meta = {"name": a.out.name, "bundle": str(a.bundle), "data": str(a.data),
            "threads": a.threads, "refine_epochs": a.refine_epochs,
            "refine_mode": a.refine_mode,
            "refine_anomalies": a.refine_anomalies,
            "command": shlex.join(["python", "benchmarks/refine_stability.py",
                                   *(argv or sys.argv[1:])]),
            "maps_auc": {k: roc_auc(labels, v.mean(axis=(1, 2))) for k, v in maps.items()}}
    measured = {e for e in range(1, a.refine_epochs + 1) if e % a.eval_every == 0}
    measured |= {e for e in a.report_epochs if e <= a.refine_epochs} | {1, a.refine_epochs}
    runs: list[dict] = []
    for seed in a.seeds:
        runs.append(run_seed(a.bundle, a.data, normal, maps, labels, seed, a.refine_epochs,
                             a.threads, measured, a.refine_mode, a.refine_anomalies))
        write_outputs(a.out, meta, runs, a.report_epochs)
        last = {n: runs[-1]["refiners"][n]["auc"][-1] for n in REFINERS}
        print(f"seed {seed}: R_dual AUC {last['dual']:.3f}, R_intra AUC {last['intra']:.3f} "
              f"({runs[-1]['seconds']:.0f} s)", flush=True)
    print(summary_markdown(meta, runs, a.report_epochs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
