"""Long runs survive: a training run killed with SIGKILL (during the NDM and again during
refinement) and resumed ends with the same weights as the same run uninterrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

ARGS = ["--k", "2", "--image-size", "32", "--epochs", "6", "--batch-size", "8",
        "--refine-epochs", "3", "--refine-batch-size", "8", "--seed", "9", "--threads", "1"]


def train_cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ddad_rt.cli", "train", "--data", str(data), "--out", str(out),
            *ARGS, *extra]


def kill_when(cmd: list[str], ready: Path, delay: float, timeout: float = 300) -> None:
    """Starts cmd, waits until ``ready`` exists, lets it run ``delay`` s more, then SIGKILLs it."""
    log = ready.parent.with_name("log.txt")
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr,
                                start_new_session=True)
        t0 = time.monotonic()
        while not ready.exists():
            if proc.poll() is not None:
                pytest.fail(f"run ended before {ready.name} appeared: {log.read_text()[-2000:]}")
            if time.monotonic() - t0 > timeout:
                proc.kill()
                proc.wait()
                pytest.fail(f"{ready} did not appear within {timeout} s")
            time.sleep(0.02)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"


def weights(bundle: Path) -> dict[str, np.ndarray]:
    out = {}
    for graph in sorted(bundle.glob("*.onnx")):
        for init in onnx.load(str(graph)).graph.initializer:
            out[f"{graph.name}:{init.name}"] = numpy_helper.to_array(init)
    return out


@pytest.mark.slow
def test_killed_and_resumed_run_equals_uninterrupted_run(synth_data, tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(train_cmd(synth_data, reference), check=True, capture_output=True)

    resumed = tmp_path / "resumed"
    ckpt = tmp_path / "resumed.ckpt"
    # Killed mid-NDM (after its first checkpoint), then mid-refinement.
    kill_when(train_cmd(synth_data, resumed), ckpt / "ndm.pt", delay=0.15)
    assert not resumed.exists()
    # Without --resume the leftover checkpoint is not silently overwritten.
    r = subprocess.run(train_cmd(synth_data, resumed), capture_output=True, text=True)
    assert r.returncode == 2 and "--resume" in r.stderr
    # Resuming with other settings is refused, naming the difference.
    r = subprocess.run(train_cmd(synth_data, resumed, "--resume", "--epochs", "7"),
                       capture_output=True, text=True)
    assert r.returncode == 2 and "epochs" in r.stderr
    kill_when(train_cmd(synth_data, resumed, "--resume"), ckpt / "refine.pt", delay=0.3)
    assert not resumed.exists()
    subprocess.run(train_cmd(synth_data, resumed, "--resume"), check=True, capture_output=True)
    assert not ckpt.exists()  # cleaned up after success

    a, b = weights(reference), weights(resumed)
    assert a.keys() == b.keys() and any(k.startswith("refine_dual") for k in a)
    worst = max(float(np.max(np.abs(a[k] - b[k]))) if a[k].size else 0.0 for k in a)
    assert worst <= 1e-6, worst
    ma = json.loads((reference / "manifest.json").read_text())["training"]
    mb = json.loads((resumed / "manifest.json").read_text())["training"]
    assert ma["losses"] == mb["losses"] and len(ma["losses"]["ndm"]) == 6
    # The weight averages (SWA, the default) were resumed too: the same validation figures.
    for name, f in ma["refine_validation"]["refiners"].items():
        g = mb["refine_validation"]["refiners"][name]
        assert abs(f["pixel_auc"] - g["pixel_auc"]) <= 1e-4 and f["collapsed"] == g["collapsed"]
