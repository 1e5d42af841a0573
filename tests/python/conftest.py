"""Shared fixtures: a small trained bundle (seconds to train) and paths to ../shared/data."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"


#: Under CI (CI=true) a missing test dependency fails the test: a skip there would hide it.
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, why: str) -> None:
    """Skips a test whose dependency is missing - or, under CI, fails it."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {why}", pytrace=False)
    pytest.skip(why)


def shared_dataset(name: str) -> Path:
    """Path to ../shared/data/NAME; skips the test when it is absent (fails it under CI)."""
    path = SHARED_DATA / name
    require((path / "data.json").is_file(),
            f"{path} not found: real-image tests need ../shared/data beside the checkout")
    return path


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder that ``build(folder)`` fills once per test run. CI spreads the test files over
    processes (pytest-xdist): without this, each process would train every session bundle
    again (about 85 s of the 2 cores). The first process to ask builds under a file lock, the
    others wait for it and reuse the result; a build that failed is retried by the next."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    folder = root / f"built-once-{name}"
    with open(root / f"built-once-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".complete").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".complete").touch()
    return folder


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    from ddad_rt.synthetic import make_dataset

    def build(folder: Path) -> None:
        make_dataset(folder / "synth", seed=1, n_normal=64, n_unlabeled=64, anomaly_rate=0.5,
                     n_test=40)

    return built_once(tmp_path_factory, "synth", build) / "synth"


def build_bundle(data: Path, out: Path, backbone: str, refiners: list[str], seed: int):
    """(bundle path, udm BatchedAE, ndm BatchedAE, refiners) after 2 AE epochs and 2
    refinement epochs at 32x32, K=3: seconds of training, real graphs for parity tests."""
    from ddad_train.config import TrainConfig
    from ddad_train.export import add_refiners, export_bundle
    from ddad_train.pipeline import load_training_images, training_image_hashes
    from ddad_train.refine import train_refiners
    from ddad_train.trainer import train_module

    cfg = TrainConfig(data=str(data), backbone=backbone, k=3, image_size=32, epochs=2,
                      batch_size=16, refiners=refiners, refine_epochs=2, seed=seed)
    normal, udm_images, summary = load_training_images(cfg, progress=False)
    ndm = train_module(normal, cfg, "ndm", progress=False)
    udm = train_module(udm_images, cfg, "udm", progress=False)
    training = {"seed": cfg.seed, "data": summary,
                "losses": {"ndm": ndm.losses, "udm": udm.losses}}
    bundle = export_bundle(udm.model, ndm.model, out, config=cfg.to_dict(), training=training,
                           image_hashes=training_image_hashes(udm_images))
    nets = {}
    if refiners:
        result = train_refiners(normal, bundle, cfg, progress=False)
        nets = result.nets
        losses = {f"refine_{n}": v for n, v in result.losses.items()}
        add_refiners(bundle, bundle, nets, config=cfg.to_dict(), training={"losses": losses},
                     force=True)
    return bundle, udm.model, ndm.model, nets


def built_bundle(tmp_path_factory, name: str, data: Path, backbone: str, refiners: list[str],
                 seed: int):
    """build_bundle's result, built once per test run (built_once); the PyTorch models come
    back from the file the builder saved them to."""
    import torch

    def build(folder: Path) -> None:
        _, udm, ndm, nets = build_bundle(data, folder / "bundle", backbone, refiners, seed)
        torch.save({"udm": udm, "ndm": ndm, "nets": nets}, folder / "models.pt")

    folder = built_once(tmp_path_factory, name, build)
    models = torch.load(folder / "models.pt", weights_only=False)
    return folder / "bundle", models["udm"], models["ndm"], models["nets"]


@pytest.fixture(scope="session")
def trained(synth_data, tmp_path_factory):
    """AE bundle with R_dual and R_intra: (bundle, udm, ndm, refiners)."""
    return built_bundle(tmp_path_factory, "ae", synth_data, "ae", ["dual", "intra"], seed=3)


@pytest.fixture(scope="session")
def trained_aeu(synth_data, tmp_path_factory):
    """AE-U bundle with R_dual only: (bundle, udm, ndm, refiners)."""
    return built_bundle(tmp_path_factory, "aeu", synth_data, "ae-u", ["dual"], seed=4)


@pytest.fixture(scope="session")
def trained_memae(synth_data, tmp_path_factory):
    """MemAE bundle without refiners: (bundle, udm, ndm, {})."""
    return built_bundle(tmp_path_factory, "memae", synth_data, "memae", [], seed=5)


@pytest.fixture(scope="session")
def bundle(trained) -> Path:
    return trained[0]


@pytest.fixture(scope="session")
def engine(bundle):
    import ddad_rt

    return ddad_rt.Engine(bundle, device="cpu", max_batch=8)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


#: The files that take longest (minutes each on 2 cores), longest first. They run first, so
#: that the processes CI spreads the files over (`pytest -n 2 --dist loadfile
#: --no-loadscope-reorder`, which hands out whole files in this order) finish together
#: instead of one waiting on the demo at the end.
LONGEST_FILES = ("test_cli_demo.py", "test_ray.py", "test_bench.py", "test_resume.py",
                 "test_report.py", "test_screen.py")


def run_longest_files_first(items) -> None:
    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FILES.index(name) if name in LONGEST_FILES else len(LONGEST_FILES)

    items.sort(key=rank)  # stable: the other files, and each file's tests, keep their order


def pytest_collection_modifyitems(config, items):
    """The longest files first (LONGEST_FILES). Tests marked ``gpu`` run only where
    device="cuda" works; elsewhere they are skipped with the reasons (no GPU, no driver, no
    TensorRT backend or library)."""
    run_longest_files_first(items)
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    import ddad_rt

    status = ddad_rt.cuda_status()
    if status["usable"]:
        return
    skip = pytest.mark.skip(reason="no usable GPU here: " + "; ".join(status["problems"]))
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def brain_bundle(tmp_path_factory) -> Path:
    """An AE bundle trained briefly (32x32, 2 epochs) on the shared brain MRI data; tests
    that change it (calibration) work on a copy."""
    data = shared_dataset("brain_tumor")
    return built_bundle(tmp_path_factory, "brain", data, "ae", [], seed=0)[0]
