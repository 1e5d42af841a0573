"""Engine create/score/destroy cycles must not leak: resident memory after warm-up grows by
less than 5 MB over the cycles (issue 15). Prints the figure; exit 1 above the limit.

    python tests/reliability/leak_check.py BUNDLE [--cycles 1000]

Without help, RSS after a destroyed engine is bimodal (about 140 or 155 MB for the tiny
bundle, in runs of many cycles): glibc raises its mmap threshold when a large mmapped block
is freed, so the next engine's 16 MB ensemble.onnx buffer comes from an arena heap, and
whether that heap gives the pages back depends on what else sits in it. One CI run read
+14.5 MB that way with no leak. The check therefore runs itself with a fixed mmap threshold
(MALLOC_MMAP_THRESHOLD_, which turns the dynamic one off: large blocks are mapped and
unmapped every time), and compares floors - the lowest RSS over a window of cycles right
after warm-up against the lowest over the last window - so that a leak, which raises the
floor, is what it measures.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time

import numpy as np

LIMIT_MB = 5.0
MMAP_THRESHOLD = "131072"  # glibc's default; setting it disables the dynamic threshold


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
    ap.add_argument("--window", type=int, default=50,
                    help="cycles whose lowest RSS is one floor reading")
    a = ap.parse_args()
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") != MMAP_THRESHOLD:
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    if a.cycles < a.warm_up + 2 * a.window:
        ap.error("--cycles must cover --warm-up and two --window")
    import ddad_rt

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    after = []  # RSS after each post-warm-up cycle's engine is gone
    for i in range(a.cycles):
        engine = ddad_rt.Engine(a.bundle, device="cpu", max_batch=1, num_threads=1)
        images = rng.integers(0, 256, (3, *engine.image_size), dtype=np.uint8)
        engine.score(images, maps=i % 2 == 0)
        del engine
        if i >= a.warm_up:
            gc.collect()
            after.append(rss_mb())
    first, last = min(after[:a.window]), min(after[-a.window:])
    growth = last - first
    ok = growth < LIMIT_MB
    print(f"leak check: {a.cycles} create/score/destroy cycles in {time.perf_counter() - t0:.0f} s; "
          f"lowest RSS over the {a.window} cycles after {a.warm_up} warm-up cycles {first:.1f} MB, "
          f"over the last {a.window} {last:.1f} MB (single readings ranged {min(after):.1f}-"
          f"{max(after):.1f}): growth {growth:+.2f} MB (limit {LIMIT_MB} MB): "
          f"{'passed' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
