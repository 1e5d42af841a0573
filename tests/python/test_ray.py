"""Screening on Ray: a local Ray cluster on this machine (2 CPUs) screens the shared brain
MRI test images with the same result as a local run, survives a killed actor and resumes
after a killed driver."""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import require, shared_dataset

try:
    import ray
except ImportError:  # the ray extra; .ci/run installs it, so under CI its absence fails
    ray = None


def ray_cli() -> str:
    exe = Path(sys.executable).with_name("ray")
    return str(exe) if exe.is_file() else (shutil.which("ray") or "ray")


def _log_tail(path: Path, lines: int = 40) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A Ray head with 2 CPUs, as `ray start --head` on a cluster's head node."""
    require(ray is not None, "needs the ray extra: pip install 'ddad-rt[ray]'")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = tmp_path_factory.mktemp("ray")
    home = tmp / "home"
    home.mkdir()
    log = tmp / "head.log"
    with pytest.MonkeyPatch.context() as mp:
        # Token authentication, as README's cluster set-up has it, with a token of the test's
        # own in the environment (inherited by the head and by every screening subprocess) and
        # an empty home folder: nothing left in ~/.ray by earlier work may make this pass.
        mp.setenv("HOME", str(home))
        mp.setenv("RAY_AUTH_MODE", "token")
        mp.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
        mp.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        # --block: this cluster's processes end with this one (not `ray stop`, which would
        # stop every Ray cluster on the machine).
        with log.open("wb") as out:
            head = subprocess.Popen([ray_cli(), "start", "--head", "--block", "--num-cpus=2",
                                     "--num-gpus=0", f"--port={port}",
                                     "--include-dashboard=false", f"--temp-dir={tmp}"],
                                    stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while True:
                assert head.poll() is None, (
                    f"ray start --head exited with {head.returncode}:\n{_log_tail(log)}")
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                assert time.monotonic() < deadline, (
                    f"the Ray head did not come up in 120 s:\n{_log_tail(log)}")
                time.sleep(0.5)
            time.sleep(2)  # the raylet registers after the GCS listens
            yield f"127.0.0.1:{port}"
        finally:
            head.terminate()
            try:
                head.wait(timeout=120)
            except subprocess.TimeoutExpired:
                head.kill()


@pytest.fixture(scope="module")
def brain(brain_bundle, tmp_path_factory):
    """(bundle copy, list file of the 1,200 test images, local run's output folder)."""
    from ddad_rt import datasets
    from ddad_rt.screen import ScreenOptions, screen

    tmp = tmp_path_factory.mktemp("brain_ray")
    bundle = tmp / "bundle"
    shutil.copytree(brain_bundle, bundle)
    test = datasets.test_set(shared_dataset("brain_tumor"))
    broken = tmp / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    listing = tmp / "test_images.txt"
    listing.write_text("".join(f"{p}\n" for p in [*test.paths, broken, tmp / "missing.png"]))
    local = tmp / "local"
    screen(bundle, [listing], local, ScreenOptions(threshold=0.08, batch_size=16, all_scores=True),
           progress=False)
    return bundle, listing, local


def rows(out: Path) -> list[dict]:
    with open(out / "results.jsonl") as f:
        return [json.loads(line) for line in f]


def result_set(out: Path) -> list[tuple]:
    return sorted((r["path"], r["frame"], r["score"], r["score_rec"], r["score_intra"],
                   r["score_inter"], r["flag"]) for r in rows(out))


def cli(*args) -> list[str]:
    """`ddad-rt screen ARGS` writing every score, as the local run does."""
    return [sys.executable, "-m", "ddad_rt.cli", "screen", *map(str, args), "--all-scores",
            "--no-progress"]


def test_ray_run_equals_the_local_run(brain, cluster, tmp_path):
    bundle, listing, local = brain
    out = tmp_path / "ray"
    r = subprocess.run(cli(bundle, listing, "--out", out, "--threshold", "0.08",
                           "--batch-size", "16", "--ray", cluster, "--ray-actors", "2"),
                       capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 1, r.stdout + r.stderr  # the two bad files
    assert "1202 files: 1200 images" in r.stdout and "2 errors" in r.stdout
    assert "Ray: 2 scoring actor(s)" in (out / "report.html").read_text()
    assert result_set(out) == result_set(local)
    for name in ("studies.csv", "errors.csv"):
        assert (out / name).read_text() == (local / name).read_text()
    assert sorted(p.name for p in (out / "overlays").iterdir()) == \
        sorted(p.name for p in (local / "overlays").iterdir())


def scorer_actors() -> list[int]:
    """PIDs of the Ray actor processes that score (their process titles say so)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"RayScorer" in cmd:
                pids.append(int(proc.name))
    return pids


def wait_for_rows(out: Path, n: int, proc: subprocess.Popen, timeout: float = 300) -> bool:
    deadline = time.monotonic() + timeout
    journal = out / "results.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.is_file() and journal.read_bytes().count(b"\n") >= n:
            return True
        time.sleep(0.01)
    return False


@pytest.mark.skipif(sys.platform != "linux", reason="finds actor processes in /proc")
def test_a_killed_actor_is_replaced_and_nothing_is_lost_or_doubled(brain, cluster, tmp_path):
    bundle, listing, local = brain
    out = tmp_path / "actor_killed"
    proc = subprocess.Popen(cli(bundle, listing, "--out", out, "--threshold", "0.08",
                                "--batch-size", "8", "--ray", cluster, "--ray-actors", "2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for_rows(out, 100, proc), "the run ended before an actor could be killed"
    victims = scorer_actors()
    assert victims, "no scoring actor process found"
    os.kill(victims[0], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 1, stdout + stderr  # the two bad files
    keys = [(r["path"], r["frame"]) for r in rows(out)]
    assert len(keys) == len(set(keys)) == 1200
    assert result_set(out) == result_set(local)


def test_a_killed_driver_resumes_to_the_same_result(brain, cluster, tmp_path):
    bundle, listing, local = brain
    out = tmp_path / "driver_killed"
    args = cli(bundle, listing, "--out", out, "--threshold", "0.08", "--batch-size", "8",
               "--ray", cluster, "--ray-actors", "1")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for_rows(out, 150, proc), "the run ended before the driver could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    n_before = len(rows(out))
    assert 0 < n_before < 1200
    with open(out / "errors.csv", newline="") as f:
        errors_before = sum(1 for e in csv.DictReader(f) if e.get("reason"))
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 1, r.stdout + r.stderr  # the two bad files
    assert f"{n_before + errors_before} files were already done" in r.stdout, r.stdout
    assert result_set(out) == result_set(local)
    for name in ("studies.csv", "errors.csv"):
        assert (out / name).read_text() == (local / name).read_text()


def test_without_ray_the_cli_says_how_to_get_it(monkeypatch, capsys):
    from ddad_rt.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)
    # A usage error (2), not "some files failed" (1).
    assert main(["screen", "bundle", "in", "--out", "o", "--ray", "auto"]) == 2
    assert "pip install 'ddad-rt[ray]'" in capsys.readouterr().err
