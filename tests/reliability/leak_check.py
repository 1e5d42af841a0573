"""Engine create/score/destroy cycles must not leak: resident memory after warm-up grows by
less than 5 MB over the cycles (issue 15). Prints the figure; exit 1 above the limit.

    python tests/reliability/leak_check.py BUNDLE [--cycles 1000]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

import numpy as np

LIMIT_MB = 5.0


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--warm-up", type=int, default=100)
    a = ap.parse_args()
    import ddad_rt

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    base = None
    for i in range(a.cycles):
        engine = ddad_rt.Engine(a.bundle, device="cpu", max_batch=1, num_threads=1)
        images = rng.integers(0, 256, (3, *engine.image_size), dtype=np.uint8)
        engine.score(images, maps=i % 2 == 0)
        del engine
        if i + 1 == a.warm_up:
            gc.collect()
            base = rss_mb()
    gc.collect()
    growth = rss_mb() - base
    ok = growth < LIMIT_MB
    print(f"leak check: {a.cycles} create/score/destroy cycles in {time.perf_counter() - t0:.0f} s; "
          f"RSS after {a.warm_up} warm-up cycles {base:.1f} MB, growth over the other "
          f"{a.cycles - a.warm_up}: {growth:+.2f} MB (limit {LIMIT_MB} MB): "
          f"{'passed' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
