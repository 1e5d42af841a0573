"""One engine, several Python threads: identical results, and the GIL is released; the
thread count is bounded by the CPUs this process may use."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ddad_rt
import numpy as np
import pytest


def test_concurrent_calls_equal_serial_calls(engine, rng):
    batches = [rng.integers(0, 256, (int(n), 32, 32), dtype=np.uint8) for n in rng.integers(1, 20, 12)]
    serial = [engine.score(b, maps=True) for b in batches]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda b: engine.score(b, maps=True), batches))
    for s, p in zip(serial, parallel):
        for k in s.scores:
            np.testing.assert_array_equal(s.scores[k], p.scores[k])
            np.testing.assert_array_equal(s.maps[k], p.maps[k])


def test_gil_is_released_while_scoring(engine, rng):
    images = rng.integers(0, 256, (256, 32, 32), dtype=np.uint8)
    engine.score(images[:8])  # warm up
    t0 = time.perf_counter()
    engine.score(images)
    alone = time.perf_counter() - t0

    ticks = 0
    stop = threading.Event()

    def count():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    worker = threading.Thread(target=count)
    worker.start()
    time.sleep(0.02)
    before = ticks
    engine.score(images)
    during = ticks - before
    stop.set()
    worker.join()
    # Holding the GIL for the whole call would freeze the counter; released, it keeps
    # ticking at ~1 kHz (bounded below loosely: this machine may be busy).
    assert during >= max(3, int(alone * 1000 * 0.1)), (during, alone)


def _threads_of_this_process() -> int:
    return int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("Threads:")))


def test_a_runaway_thread_count_is_refused_before_any_thread_starts(bundle):
    cpus = len(os.sched_getaffinity(0))
    before = _threads_of_this_process()
    with pytest.raises(ValueError, match=rf"num_threads=100000 is more than 4x the {cpus} CPUs"):
        ddad_rt.Engine(bundle, device="cpu", num_threads=100000)
    assert _threads_of_this_process() <= before + 2
    with pytest.raises(ValueError, match=f"at most {4 * cpus}"):
        ddad_rt.Engine(bundle, device="cpu", num_threads=4 * cpus + 1)
    assert ddad_rt.Engine(bundle, device="cpu", num_threads=4 * cpus).info["threads"] == str(4 * cpus)


def test_all_cores_means_the_cpus_this_process_may_run_on(bundle):
    """num_threads=0 under `taskset` (one CPU): one thread, not one per machine core."""
    one_cpu = min(os.sched_getaffinity(0))
    code = ("import os, sys, ddad_rt\n"
            f"os.sched_setaffinity(0, {{{one_cpu}}})\n"
            "e = ddad_rt.Engine(sys.argv[1], device='cpu')\n"
            "print(e.info['threads'])\n")
    out = subprocess.run([sys.executable, "-c", code, str(bundle)], capture_output=True,
                         text=True, check=True, timeout=120).stdout
    assert out.strip() == "1"
    assert ddad_rt.Engine(bundle, device="cpu").info["threads"] == str(len(os.sched_getaffinity(0)))


def test_screening_splits_the_cpus_this_process_may_use():
    """Decoders and engine threads are sized like the engine's "all cores": from the affinity
    mask and the cgroup quota, not the machine's core count."""
    one_cpu = min(os.sched_getaffinity(0))
    code = ("import os\n"
            f"os.sched_setaffinity(0, {{{one_cpu}}})\n"
            "from ddad_rt.screen import default_split\n"
            "print(default_split())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.strip() == "(1, 1)"
