"""Turns the benchmark's raw measurements into medians, ratios, gate verdicts and a
Markdown table."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

#: Gates of issue 17 (issue 4's, raised): (name, ratio key, comparison, threshold, the
#: thread counts it is judged at; None: every one). The others are reported as ratios.
GATES = (
    ("bf16 R_dual throughput (batch 64) vs the engine's fp32", "bf16_vs_fp32_b64", ">=", 1.5, None),
    ("fp32 R_dual throughput (batch 64) vs ONNX Runtime", "engine_vs_ort_b64", ">=", 2.2, (1,)),
    ("fp32 R_dual p50 latency (batch 1) vs ONNX Runtime", "engine_vs_ort_p50", "<=", 0.5, (1,)),
    ("fp32 peak memory (R_dual, batch 64) vs ONNX Runtime", "engine_vs_ort_rss", "<=", 1.0, None),
    ("fp32 R_dual throughput (batch 64) vs reference loop at batch 1", "engine_vs_reference_b1", ">=", 3.0, None),
)

#: Per path, the engine against each other way of doing the same work (batch-64 throughput).
PATH_RATIOS = (("engine-fp32", "onnxruntime"), ("engine-fp32", "openvino-fp32"),
               ("engine-bf16", "openvino-bf16"), ("engine-bf16", "engine-fp32"))


def _stats(runs: list[dict], flops_per_image: float, peak_gflops: float | None) -> dict:
    batch = runs[0]["batch"]
    calls = np.concatenate([r["batch_seconds"] for r in runs])
    lat = np.concatenate([r["latency_seconds"] for r in runs])
    ips = batch / float(np.median(calls))
    out = {
        "rounds": len(runs),
        "batch": batch,
        "b64_images_per_s": ips,  # at the bench batch (64 on the CPU, 256 on a GPU)
        "b1_p50_ms": 1e3 * float(np.percentile(lat, 50)),
        "b1_p99_ms": 1e3 * float(np.percentile(lat, 99)),
        "b1_images_per_s": len(lat) / float(lat.sum()),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "gflops_b64": flops_per_image * ips / 1e9,
    }
    if peak_gflops:
        out["fraction_of_sgemm_peak"] = out["gflops_b64"] / peak_gflops
    return out


def summarize(results: list[dict], sgemm: dict[int, dict], flops: dict[str, float],
              gates: bool = True) -> dict:
    """Per thread count: stats per contender and path, parity against the reference loop,
    the gate ratios and verdicts.

    Args:
        results: worker outputs (see ddad_train.bench.worker.measure).
        sgemm: thread count -> sgemm_peak output.
        flops: path -> nominal FLOPs per image.
        gates: judge the CPU gates of issue 4 (the GPU run reports ratios only).
    """
    grouped: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        grouped[(r["threads"], r["path"], r["contender"])].append(r)
    report: dict = {}
    for t in sorted({k[0] for k in grouped}):
        peak = sgemm.get(t, {}).get("gflops")
        section: dict = {"sgemm_gflops": peak, "paths": {}}
        for path in sorted({k[1] for k in grouped if k[0] == t}):
            per = {c: _stats(runs, flops[path], peak)
                   for (tt, p, c), runs in grouped.items() if tt == t and p == path}
            # Parity against the authors' loop where it ran, else against ONNX Runtime.
            ref = grouped.get((t, path, "reference")) or grouped.get((t, path, "onnxruntime"))
            if ref:
                base = ref[0]["scores"]
                for (tt, p, c), runs in grouped.items():
                    if tt == t and p == path:
                        # Over the scores both computed (default-r_dual: the engine only r_dual).
                        diff = max(float(np.max(np.abs(np.subtract(runs[0]["scores"][k], base[k]))))
                                   for k in base if k in runs[0]["scores"])
                        per[c]["max_abs_score_diff_vs_reference"] = diff
            section["paths"][path] = per
        rd = section["paths"].get("r_dual", {})
        ratios = {}
        if "engine-fp32" in rd and "onnxruntime" in rd:
            e, o = rd["engine-fp32"], rd["onnxruntime"]
            ratios["engine_vs_ort_b64"] = e["b64_images_per_s"] / o["b64_images_per_s"]
            ratios["engine_vs_ort_p50"] = e["b1_p50_ms"] / o["b1_p50_ms"]
            ratios["engine_vs_ort_rss"] = e["peak_rss_mb"] / o["peak_rss_mb"]
        if "engine-fp32" in rd and "reference" in rd:
            ratios["engine_vs_reference_b1"] = (rd["engine-fp32"]["b64_images_per_s"] /
                                                rd["reference"]["b1_images_per_s"])
            ratios["engine_vs_reference_b64"] = (rd["engine-fp32"]["b64_images_per_s"] /
                                                 rd["reference"]["b64_images_per_s"])
        if "engine-fp32" in rd and "engine-bf16" in rd:
            ratios["bf16_vs_fp32_b64"] = (rd["engine-bf16"]["b64_images_per_s"] /
                                          rd["engine-fp32"]["b64_images_per_s"])
        section["path_ratios"] = {
            path: {f"{a} / {b}": per[a]["b64_images_per_s"] / per[b]["b64_images_per_s"]
                   for a, b in PATH_RATIOS if a in per and b in per}
            for path, per in section["paths"].items()}
        for low in ("bf16", "fp16"):
            if f"engine-{low}" in rd and "onnxruntime" in rd:
                ratios[f"{low}_vs_ort_b64"] = (rd[f"engine-{low}"]["b64_images_per_s"] /
                                               rd["onnxruntime"]["b64_images_per_s"])
            if f"engine-{low}" in rd and "reference" in rd:
                ratios[f"{low}_vs_reference_b64"] = (rd[f"engine-{low}"]["b64_images_per_s"] /
                                                     rd["reference"]["b64_images_per_s"])
        section["ratios"] = ratios
        section["gates"] = [
            {"gate": name, "ratio": ratios[key], "target": f"{op} {thr}",
             "passed": ratios[key] >= thr if op == ">=" else ratios[key] <= thr}
            for name, key, op, thr, at in GATES
            if gates and key in ratios and (at is None or t in at)]
        report[str(t)] = section
    return report


def markdown(report: dict, meta: dict) -> str:
    """The report as Markdown: one table per thread count, then the gates."""
    about = (f"Bundles: AE, K={meta.get('k')}, {meta.get('image_size')}x{meta.get('image_size')} "
             f"({meta.get('weights')}); paths: maps = the bundle without refiners, r_dual = the "
             "bundle with R_dual only, default-all / default-r_dual = the bundle `ddad-rt train` "
             "writes (both refiners) scored for all its scores / for r_dual only. Images: "
             f"{meta.get('images')}; {meta.get('rounds')} rounds, contenders alternating, each in "
             "its own process. Nominal FLOPs per image: " +
             ", ".join(f"{p} {f / 1e9:.3f} GFLOP" for p, f in meta["flops"].items()) + ".")
    gpu = meta.get("device") == "cuda"
    batch = meta.get("batch", 64)
    where = f"GPU ({meta.get('gpu', '?')})" if gpu else "CPU"
    lines = [f"# ddad_rt {where} inference benchmark ({meta.get('date', '')})", "", about, "",
             f"Command: `{meta.get('command')}`", ""]
    if meta.get("cpu"):
        lines += [f"CPU: {meta['cpu']}", ""]
    lines += [f"Note: {n}" for n in meta.get("notes", [])]
    for t, sec in report.items():
        peak = sec.get("sgemm_gflops")
        lines += [f"## {t} thread(s)" + (f" - sgemm peak {peak:.0f} GFLOP/s" if peak else ""), "",
                  (f"| path | contender | img/s (batch {batch}) | GFLOP/s | % of sgemm | p50 ms (batch 1) "
                   "| p99 ms (batch 1) | peak RSS MB | max score diff vs reference (or ONNX Runtime) |"),
                  "|---|---|---|---|---|---|---|---|---|"]
        for path, per in sec["paths"].items():
            for c, s in per.items():
                frac = s.get("fraction_of_sgemm_peak")
                diff = s.get("max_abs_score_diff_vs_reference")
                lines.append(
                    f"| {path} | {c} | {s['b64_images_per_s']:.1f} | {s['gflops_b64']:.1f} | "
                    f"{'' if frac is None else f'{100 * frac:.0f}%'} | {s['b1_p50_ms']:.2f} | "
                    f"{s['b1_p99_ms']:.2f} | {s['peak_rss_mb']:.0f} | "
                    f"{'' if diff is None else f'{diff:.1e}'} |")
        if sec.get("path_ratios") and not gpu:
            pairs = [f"{a} / {b}" for a, b in PATH_RATIOS]
            lines += ["", "Throughput ratios, batch 64 (the same work on each row):", "",
                      "| path | " + " | ".join(pairs) + " |", "|---" * (len(pairs) + 1) + "|"]
            for path, r in sec["path_ratios"].items():
                lines.append(f"| {path} | " + " | ".join(
                    f"{r[p]:.2f}" if p in r else "" for p in pairs) + " |")
        if gpu:
            lines += ["", "| ratio | value |", "|---|---|"]
            lines += [f"| {k} | {v:.2f} |" for k, v in sec["ratios"].items()]
            lines.append("")
            continue
        lines += ["", "| gate | ratio | target | passed |", "|---|---|---|---|"]
        for g in sec["gates"]:
            lines.append(f"| {g['gate']} | {g['ratio']:.2f} | {g['target']} | "
                         f"{'yes' if g['passed'] else '**no**'} |")
        lines.append("")
    return "\n".join(lines)


def summary_markdown(inference: dict | None, precision: dict | None, training: dict | None,
                     command: str = "", earlier: list[str] | tuple = ()) -> str:
    """Every gate in one table: the inference gates per thread count, bf16's AUC check, and
    training against the authors' way (fp32, and bf16 where it ran). ``earlier`` names the
    parts taken from an earlier run's reports rather than measured by ``command``."""
    rows = []
    if inference is not None:
        for t, sec in inference["report"].items():
            for g in sec["gates"]:
                rows.append((g["gate"], t, f"{g['ratio']:.2f}", g["target"], g["passed"]))
    if precision is not None:
        worst = max(precision["auc"], key=lambda k: abs(precision["auc"][k] - precision["auc_fp32"][k]))
        rows.append((f"bf16 AUC of every score vs fp32 ({Path(precision['bundle']).name}, worst: {worst})",
                     "-", f"{precision['max_auc_delta']:.4f}", f"<= {precision['tolerance']}",
                     precision["passed"]))
    if training is not None:
        from ddad_train.bench_train import TRAINING_GATE

        for t, sec in training["report"].items():
            for c, label in (("ddad", "fp32"), ("ddad-bf16", "bf16 autocast")):
                if c in sec and "vs_authors" in sec[c]:
                    r = sec[c]["vs_authors"]
                    rows.append(((f"training a K={training['k']} module ({label}) vs the authors' way, "
                                 "wall time"), t, f"{r:.2f}", f"<= {TRAINING_GATE}", r <= TRAINING_GATE))
    runs = [f"Command: `{command}`"]
    if inference is not None and "inference" in earlier:
        runs.append(f"Inference (earlier run, {inference['meta'].get('date')}): "
                    f"`{inference['meta'].get('command')}`")
    if training is not None and "training" in earlier:
        runs.append(f"Training (earlier run): `{training.get('command')}`")
    if precision is not None and "precision" in earlier:
        runs.append("bf16 accuracy: from an earlier run's precision.json")
    lines = ["# ddad_rt CPU benchmark: the gates", "", *[r + "  " for r in runs], "",
             ("Details: inference.md (throughput, latency, memory, GFLOP/s), precision.json "
             "(bf16 AUCs), training.md (training wall times)."), "",
             "| gate | threads | measured | target | passed |", "|---|---|---|---|---|"]
    lines += [f"| {g} | {t} | {m} | {tgt} | {'yes' if ok else '**no**'} |" for g, t, m, tgt, ok in rows]
    return "\n".join(lines) + "\n"
