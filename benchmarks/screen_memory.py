"""The screening driver's memory does not grow with the archive.

Lists of N files (10^4, 10^5, 10^6 by default; the files need not exist: a missing file is
an error row, the run's worst case for bookkeeping) are screened, each run in a fresh
process, locally and with ``--ray`` (a local Ray instance), and the driver process's peak
resident memory (VmHWM) is read at the end of the run. The same run's wall time is shown.

    python benchmarks/screen_memory.py --files 10000 100000 1000000

Writes benchmarks/results/screen/memory.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "screen"

# Runs in a fresh process: screen, then report this process's peak RSS.
CHILD = r"""
import json, sys, time
from ddad_rt.screen import ScreenOptions, screen
bundle, listing, out, ray = sys.argv[1:5]
t0 = time.perf_counter()
s = screen(bundle, [listing], out, ScreenOptions(threshold=1.0, device="cpu", overlays="none",
                                                 ray=ray or None, engine_threads=1 if ray else None),
           progress=False)
status = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
print(json.dumps({"files": s.files, "errors": s.errors, "wall_s": time.perf_counter() - t0,
                  "vmhwm_mb": int(status["VmHWM"].split()[0]) / 1024}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--modes", nargs="+", default=["local", "ray"], choices=["local", "ray"])
    ap.add_argument("--out", default=str(RESULTS))
    a = ap.parse_args()

    import numpy as np
    from ddad_rt.synthetic import make_image
    from ddad_train.bench.inference import prepare

    work = Path(tempfile.mkdtemp(prefix="ddad-screen-memory-"))
    rng = np.random.default_rng(0)
    imgs = np.stack([make_image(rng, abnormal=False, size=64)[0] for _ in range(64)])
    bundle = prepare(work / "bench", imgs) / "bundle"
    runs = []
    for mode in a.modes:
        for n in a.files:
            listing = work / f"list_{n}.txt"
            if not listing.exists():
                with open(listing, "w") as f:
                    for i in range(n):
                        f.write(f"{work}/archive/{i // 1000:05d}/image_{i:08d}.dcm\n")
            out = work / f"out_{mode}_{n}"
            env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
            r = subprocess.run([sys.executable, "-c", CHILD, str(bundle), str(listing), str(out),
                                "auto" if mode == "ray" else ""], capture_output=True,
                               text=True, env=env, check=False)
            if r.returncode != 0:
                print(r.stdout[-3000:], r.stderr[-3000:], file=sys.stderr)
                return 1
            result = json.loads(r.stdout.strip().splitlines()[-1])
            assert result["files"] == n and result["errors"] == n, result
            runs.append({"mode": mode, "n": n, **result})
            print(f"{mode} {n:>9,} files: driver peak RSS {result['vmhwm_mb']:.0f} MB, "
                  f"{result['wall_s']:.0f} s", flush=True)
            subprocess.run(["rm", "-rf", str(out)], check=False)
    report = {"command": "python benchmarks/screen_memory.py " + " ".join(sys.argv[1:]),
              "cores": len(os.sched_getaffinity(0)), "cpu": platform.processor() or platform.machine(),
              "date": time.strftime("%Y-%m-%d"), "runs": runs}
    lines = [f"# Screening driver memory by archive size ({report['date']})", "",
             (f"`{report['command']}` on {report['cores']} cores: lists of N files that do not "
              "exist (each an error row), screened in a fresh process; the driver's peak RSS "
              "(VmHWM) at the end. --ray: a local Ray instance, 1 engine thread per actor."), "",
             "| mode | files | driver peak RSS, MB | vs smallest | wall s |",
             "|---|---:|---:|---:|---:|"]
    for mode in a.modes:
        mine = [r for r in runs if r["mode"] == mode]
        base = mine[0]["vmhwm_mb"]
        for r in mine:
            lines.append(f"| {mode} | {r['n']:,} | {r['vmhwm_mb']:.0f} | "
                         f"{r['vmhwm_mb'] - base:+.0f} | {r['wall_s']:.0f} |")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "memory.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    subprocess.run(["rm", "-rf", str(work)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
