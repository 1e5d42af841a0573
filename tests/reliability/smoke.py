"""Sanitizer smoke run of the Python module: load a bundle, score from 8 threads at once
(results bit-identical to serial calls), destroy the engine - under AddressSanitizer and
UndefinedBehaviorSanitizer (.ci/sanitizers runs it with the instrumented _core).

    python tests/reliability/smoke.py BUNDLE
"""

from __future__ import annotations

import gc
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np


def main(bundle: str) -> int:
    import ddad_rt

    print(f"module: {ddad_rt._core.__file__}", flush=True)
    rng = np.random.default_rng(0)
    for round_ in range(2):
        engine = ddad_rt.Engine(bundle, device="cpu", max_batch=8, num_threads=2)
        size = engine.image_size
        batches = [rng.integers(0, 256, (int(n), *size), dtype=np.uint8)
                   for n in rng.integers(1, 20, 16)]
        batches.append(rng.random((5, *size), dtype=np.float32))
        serial = [engine.score(b, maps=True) for b in batches]
        with ThreadPoolExecutor(max_workers=8) as pool:
            parallel = list(pool.map(partial(engine.score, maps=True), batches))
        for s, p in zip(serial, parallel):
            for k in s.scores:
                assert np.array_equal(s.scores[k], p.scores[k]), k
                assert np.array_equal(s.maps[k], p.maps[k]), k
        for bad in (np.zeros((0, *size), np.uint8), np.full((2, *size), 2.0, np.float32),
                    np.zeros((2, 7, 7), np.uint8)):
            try:
                engine.score(bad)
            except ValueError:
                pass
            else:
                raise AssertionError("a bad batch was accepted")
        del engine, serial, parallel
        gc.collect()
        print(f"round {round_}: {len(batches)} batches from 8 threads = serial", flush=True)
    print("sanitizer smoke: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
