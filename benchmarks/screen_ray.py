"""Screening on Ray against the local run, on this machine.

The paper's bundle (AE, K=3, 64x64, R_dual; seeded weights, as ``ddad-rt bench``) screens
the 1,200 brain MRI test PNGs (``../shared/data/brain_tumor``): locally (default split: 2
decoder processes, 2 engine threads on 2 cores), and on a local Ray instance with 2 CPUs
with 1 and with 2 scoring actors of 1 engine thread each (decoding in Ray tasks). Runs
alternate for ``--rounds`` rounds; medians. Ray's start-up (``ray.init``) is outside the
timings; actor start-up (each loads its Engine) is inside, as it is in every Ray run.

    python benchmarks/screen_ray.py --rounds 3

Run on a quiet machine. Writes benchmarks/results/screen/ray.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "brain_tumor"
RESULTS = ROOT / "benchmarks" / "results" / "screen"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS))
    a = ap.parse_args()

    import ddad_rt
    import numpy as np
    import ray
    from ddad_rt import datasets
    from ddad_rt.preprocess import load_images
    from ddad_rt.screen import ScreenOptions, screen
    from ddad_train.bench.inference import prepare

    if not (DATA / "data.json").is_file():
        raise SystemExit(f"{DATA} not found: this benchmark uses the shared brain MRI images")
    work = Path(tempfile.mkdtemp(prefix="ddad-ray-bench-"))
    contenders = {"local (2 decoders, 2 engine threads)": {},
                  "Ray, 1 actor x 1 thread": {"ray": "auto", "ray_actors": 1, "engine_threads": 1},
                  "Ray, 2 actors x 1 thread": {"ray": "auto", "ray_actors": 2, "engine_threads": 1}}
    runs: dict[str, list[dict]] = {k: [] for k in contenders}
    try:
        paths = list(datasets.test_set(DATA).paths)
        imgs = load_images(paths, 64)
        bundle = prepare(work / "bench", imgs[:64]) / "bundle"
        engine = ddad_rt.Engine(bundle, device="cpu")
        threshold = float(np.quantile(engine.score(imgs).score, 0.95))
        del engine
        listing = work / "inputs.txt"
        listing.write_text("".join(f"{p}\n" for p in paths))
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        for rnd in range(a.rounds):
            for name, extra in contenders.items():
                out = work / f"out-{len(runs[name])}-{rnd}"
                opts = ScreenOptions(threshold=threshold, device="cpu", **extra)
                t0 = time.perf_counter()
                s = screen(bundle, [listing], out, opts, progress=False)
                wall = time.perf_counter() - t0
                assert s.images == len(paths) and s.errors == 0
                runs[name].append({"images_per_s": s.images_per_second, "loop_s": s.seconds,
                                   "wall_s": wall})
                shutil.rmtree(out)
                print(f"round {rnd} {name}: {s.images_per_second:.0f} images/s "
                      f"(loop {s.seconds:.1f} s, wall {wall:.1f} s)", flush=True)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    med = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in runs.items()}
    local = med["local (2 decoders, 2 engine threads)"]
    report = {"command": "python benchmarks/screen_ray.py " + " ".join(sys.argv[1:]),
              "images": len(paths), "cores": os.cpu_count(), "ray": ray.__version__,
              "cpu": platform.processor() or platform.machine(), "rounds": a.rounds,
              "median": med, "runs": runs, "date": time.strftime("%Y-%m-%d")}
    lines = [f"# Screening on Ray vs locally ({report['date']})", "",
             (f"`{report['command']}` on {report['cores']} cores (quiet machine), Ray "
              f"{ray.__version__} local instance with 2 CPUs; {len(paths)} brain MRI test PNGs; "
              "bundle: AE K=3 64x64 + R_dual (seeded weights), OpenVINO fp32; "
              f"{a.rounds} rounds alternating, medians."), "",
             "| run | images/s | vs local | Ray overhead per image | screening loop s | wall s |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, m in med.items():
        over = ("" if m is local else
                f"{1000 / m['images_per_s'] - 1000 / local['images_per_s']:+.2f} ms")
        lines.append(f"| {name} | {m['images_per_s']:.0f} | {m['images_per_s'] / local['images_per_s']:.2f}x "
                     f"| {over} | {m['loop_s']:.1f} | {m['wall_s']:.1f} |")
    lines += ["", ("Overhead per image: 1000/(Ray images/s) - 1000/(local images/s). The loop "
               "time includes starting the actors (each loads its Engine) and Ray Data's "
               "planning; wall time adds listing, the engine the driver keeps for the report, "
               "studies.csv and report.html. One machine cannot show Ray's gain: it is for "
               "archives that outgrow one machine.")]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ray.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "ray.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
