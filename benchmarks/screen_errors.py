"""Screening's error path: how fast an archive full of unreadable files is screened.

200 good brain MRI test PNGs (``../shared/data/brain_tumor``; synthetic PNGs when it is
absent) are listed together with N bad files - a quarter each missing (listed, not on
disk), zero bytes, random bytes named .png, and text files - shuffled among the good ones
with a fixed seed. ``ddad_rt.screen.screen`` runs with the default split; the good files
alone are timed in the same round, so the rate of bad files is
N / (wall with them - wall without them).

    python benchmarks/screen_errors.py --bad 20000 100000 --rounds 2

Run on a quiet machine. Writes benchmarks/results/screen/errors.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from screen_throughput import images  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "screen"
KINDS = ("missing", "empty", "corrupt", "not_an_image")


def bad_files(folder: Path, n: int) -> list[Path]:
    """``n`` bad files, a quarter of each kind (missing ones are only listed)."""
    folder.mkdir(parents=True)
    rng = random.Random(n)
    out = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        path = folder / f"{kind}_{i:07d}.{'txt' if kind == 'not_an_image' else 'png'}"
        if kind == "empty":
            path.write_bytes(b"")
        elif kind == "corrupt":
            path.write_bytes(b"\x89PNG\r\n\x1a\n" + rng.randbytes(200))
        elif kind == "not_an_image":
            path.write_text("study notes, not an image\n")
        out.append(path)
    return out


def run_once(bundle: Path, files: list[Path], work: Path, name: str, threshold: float) -> dict:
    from ddad_rt.screen import ScreenOptions, screen

    listing = work / f"{name}.txt"
    listing.write_text("".join(f"{p}\n" for p in files))
    out = work / f"out-{name}"
    opts = ScreenOptions(threshold=threshold, device="cpu", overlays="none")
    t0 = time.perf_counter()
    s = screen(bundle, [listing], out, opts, progress=False)
    wall = time.perf_counter() - t0
    shutil.rmtree(out)
    return {"wall_s": wall, "images": s.images, "errors": s.errors,
            "errors_by_reason": s.errors_by_reason}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bad", type=int, nargs="+", default=[20000, 100000])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS))
    a = ap.parse_args()

    import ddad_rt
    import numpy as np
    from ddad_rt.preprocess import load_images
    from ddad_rt.screen import default_split
    from ddad_train.bench.inference import prepare

    work = Path(tempfile.mkdtemp(prefix="ddad-screen-errors-"))
    results: dict[str, list[dict]] = {}
    try:
        good, source = images(work)
        good = good[:200]
        imgs = load_images(good, 64)
        bundle = prepare(work / "bench", imgs[:64]) / "bundle"
        scores = ddad_rt.Engine(bundle, device="cpu").score(imgs).score
        threshold = float(np.quantile(scores, 0.95))
        archives = {"good": list(good)}
        for n in a.bad:
            mixed = list(good) + bad_files(work / f"bad{n}", n)
            random.Random(0).shuffle(mixed)
            archives[f"good+{n}"] = mixed
        for rnd in range(a.rounds):
            for name, files in archives.items():
                r = run_once(bundle, files, work, name, threshold)
                results.setdefault(name, []).append(r)
                print(f"round {rnd} {name}: {r['wall_s']:.2f} s, {r['images']} images, "
                      f"{r['errors']} errors", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    good_s = statistics.median(r["wall_s"] for r in results["good"])
    good_per_file = good_s / 200
    rows = []
    for n in a.bad:
        runs = results[f"good+{n}"]
        assert all(r["errors"] == n and r["images"] == 200 for r in runs), runs
        wall = statistics.median(r["wall_s"] for r in runs)
        per_bad = (wall - good_s) / n
        rows.append({"bad": n, "wall_s": wall, "bad_per_s": 1 / per_bad if per_bad > 0 else None,
                     "ms_per_bad": 1000 * per_bad, "errors_by_reason": runs[0]["errors_by_reason"]})
    report = {"command": "python benchmarks/screen_errors.py " + " ".join(sys.argv[1:]),
              "source": source, "cores": len(os.sched_getaffinity(0)),
              "cpu": platform.processor() or platform.machine(),
              "default_split": default_split(), "rounds": a.rounds, "good_wall_s": good_s,
              "good_ms_per_file": 1000 * good_per_file, "rows": rows, "runs": results,
              "date": time.strftime("%Y-%m-%d")}
    lines = [f"# Screening an archive full of unreadable files ({report['date']})", "",
             (f"`{report['command']}` on {report['cores']} cores (quiet machine), default split "
              f"{report['default_split'][0]} decode workers / {report['default_split'][1]} engine "
              f"threads, overlays off; 200 good PNGs ({source}) alone: {good_s:.2f} s "
              f"({1000 * good_per_file:.1f} ms per good file, start-up and report included); "
              f"medians of {a.rounds} rounds."), "",
             "| bad files | wall s | bad files/s | ms per bad file |", "|---:|---:|---:|---:|"]
    for r in rows:
        rate = f"{r['bad_per_s']:.0f}" if r["bad_per_s"] else "-"
        lines.append(f"| {r['bad']:,} | {r['wall_s']:.1f} | {rate} | {r['ms_per_bad']:.3f} |")
    lines += ["", "Bad files: a quarter each missing, empty, random bytes named .png, text; "
              "shuffled among the good ones. Rate = bad files / (wall - wall of the good files "
              "alone)."]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "errors.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "errors.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
