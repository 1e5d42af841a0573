"""Where training and test images are listed: the Med-AD ``data.json`` layout and plain folders.

Only file lists live here (no pixels, no torch): ``ddad_train`` and ``ddad-rt eval`` share
them, so both read the same images in the same order.

Med-AD layout (the DDAD-ASR benchmarks, ``../shared/data``)::

    ROOT/images/...   ROOT/data.json = {"train": {"0": [...], "unlabeled": {"0": [...], "1": [...]}},
                                        "test": {"0": [...], "1": [...]}}

Plain folders (your own data)::

    ROOT/normal/        known-normal training images
    ROOT/unlabeled/     the unlabeled pool (normal and abnormal mixed)
    ROOT/test/normal/   optional, for ``ddad-rt eval``
    ROOT/test/abnormal/
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ddad_rt.errors import InputError

#: Suffixes taken as images when listing a plain folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom")


@dataclass
class TrainingSet:
    """Images for the two modules: NDM trains on ``normal``, UDM on ``normal + unlabeled``."""

    normal: list[Path]
    unlabeled: list[Path]
    #: Facts about the pool for the manifest (sizes; the anomaly rate when the source knows it).
    summary: dict = field(default_factory=dict)


@dataclass
class TestSet:
    """Labelled test images (0 normal, 1 abnormal)."""

    paths: list[Path]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)


def is_medad(root: str | Path) -> bool:
    """True when ``root`` holds a Med-AD ``data.json``."""
    return (Path(root) / "data.json").is_file()


def _read_medad(root: Path) -> dict:
    try:
        with open(root / "data.json") as f:
            d = json.load(f)
    except json.JSONDecodeError as e:
        msg = f"{root / 'data.json'} is not valid JSON: {e}"
        raise InputError(msg) from e
    try:
        d["train"]["0"], d["train"]["unlabeled"]["0"], d["train"]["unlabeled"]["1"]
        d["test"]["0"], d["test"]["1"]
    except (KeyError, TypeError) as e:
        msg = (f"{root / 'data.json'} lacks the Med-AD keys train/0, train/unlabeled/{{0,1}}, "
               f"test/{{0,1}} (missing {e})")
        raise InputError(msg) from None
    return d


def _require_dir(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        msg = f"dataset folder not found: {root}"
        raise FileNotFoundError(msg)
    return root


def _list_folder(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def medad_pool(unlabeled_normal: list, unlabeled_abnormal: list, n: int | None, ar: float | None
               ) -> tuple[list, int, int]:
    """The paper's unlabeled-pool rule: the first ``round(n * ar)`` abnormal and the first
    ``n - round(n * ar)`` normal entries. Defaults: the whole pool at its own anomaly rate.

    Returns (pool, normal_count, abnormal_count).
    """
    total = len(unlabeled_normal) + len(unlabeled_abnormal)
    if n is None:
        n = total
    if ar is None:
        ar = len(unlabeled_abnormal) / total if total else 0.0
    if n < 0 or not 0.0 <= ar <= 1.0:
        msg = f"need n >= 0 and 0 <= ar <= 1, got n={n}, ar={ar}"
        raise InputError(msg)
    n_abnormal = round(n * ar)
    n_normal = n - n_abnormal
    if n_abnormal > len(unlabeled_abnormal) or n_normal > len(unlabeled_normal):
        msg = (f"unlabeled pool of n={n} at ar={ar} needs {n_normal} normal and {n_abnormal} "
               f"abnormal images, but the data has {len(unlabeled_normal)} and "
               f"{len(unlabeled_abnormal)}: lower n or change ar")
        raise InputError(msg)
    return list(unlabeled_normal[:n_normal]) + list(unlabeled_abnormal[:n_abnormal]), n_normal, n_abnormal


def training_set(root: str | Path, n: int | None = None, ar: float | None = None) -> TrainingSet:
    """Lists the training images of a Med-AD folder or a plain folder.

    Args:
        root: dataset folder.
        n: unlabeled pool size (Med-AD only; default: the whole pool).
        ar: anomaly rate of the pool (Med-AD only; default: the pool's own).
    """
    root = _require_dir(root)
    if is_medad(root):
        d = _read_medad(root)
        images = root / "images"
        pool, n_normal, n_abnormal = medad_pool(d["train"]["unlabeled"]["0"],
                                                 d["train"]["unlabeled"]["1"], n, ar)
        normal = [images / f for f in d["train"]["0"]]
        summary = {"layout": "medad", "normal": len(normal), "unlabeled": len(pool),
                   "unlabeled_normal": n_normal, "unlabeled_abnormal": n_abnormal,
                   "anomaly_rate": (n_abnormal / len(pool)) if pool else 0.0}
        return TrainingSet(normal, [images / f for f in pool], summary)
    if n is not None or ar is not None:
        msg = "n and ar select from a labelled Med-AD pool; a plain folder's unlabeled/ is used whole"
        raise InputError(msg)
    if not (root / "normal").is_dir():
        msg = (f"{root} is neither a Med-AD dataset (data.json) nor a plain folder with "
               "normal/ and unlabeled/ subfolders")
        raise InputError(msg)
    normal = _list_folder(root / "normal")
    unlabeled = _list_folder(root / "unlabeled") if (root / "unlabeled").is_dir() else []
    if not normal:
        msg = f"no images found in {root / 'normal'} (looked for {', '.join(IMAGE_SUFFIXES)})"
        raise InputError(msg)
    summary = {"layout": "folder", "normal": len(normal), "unlabeled": len(unlabeled)}
    return TrainingSet(normal, unlabeled, summary)


def test_set(root: str | Path) -> TestSet:
    """Lists labelled test images: Med-AD test/0 + test/1, or ``test/normal`` + ``test/abnormal``
    (or ``normal/`` + ``abnormal/``) of a plain folder."""
    root = _require_dir(root)
    if is_medad(root):
        d = _read_medad(root)
        normal = [root / "images" / f for f in d["test"]["0"]]
        abnormal = [root / "images" / f for f in d["test"]["1"]]
    else:
        base = root / "test" if (root / "test").is_dir() else root
        if not (base / "normal").is_dir() or not (base / "abnormal").is_dir():
            msg = (f"{root} has no test split: expected data.json (Med-AD), test/normal + "
                   "test/abnormal, or normal + abnormal subfolders")
            raise InputError(msg)
        normal = _list_folder(base / "normal")
        abnormal = _list_folder(base / "abnormal")
    if not normal or not abnormal:
        msg = f"the test split of {root} needs both normal and abnormal images"
        raise InputError(msg)
    labels = np.array([0] * len(normal) + [1] * len(abnormal), dtype=np.int8)
    return TestSet(normal + abnormal, labels)
