"""A built-in synthetic dataset: procedurally generated brain-slice-like images with lesions.

Seeded and fast, it stands in for real data in the demo and the tests. Each image is an
axial-slice-like head: a bright skull ring, brain tissue with smooth texture and folds,
dark ventricles and a midline, under random pose, size and global brightness. Abnormal
images add one lesion - a bright, dark or ring-enhancing blob inside the brain. Brightness
varies far more between images than a lesion moves the image mean, so the mean intensity
alone does not separate normal from abnormal (checked by the tests).

The dataset is written in the Med-AD layout (``images/`` + ``data.json``) as 8-bit PNGs at
128x128, like ``../shared/data``, so it goes through exactly the same loading path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

SOURCE_SIZE = 128
#: Lesion appearances: 0 bright (enhancing), 1 dark (necrotic / cystic), 2 ring-enhancing.
#: The default, bright lesions, is what a few minutes of CPU training learns to detect;
#: the others make harder variants.
LESION_KINDS = (0,)
#: Lesion radius range in pixels of the 128x128 source image.
LESION_RADIUS = (14.0, 22.0)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth random field in about [-1, 1]: coarse noise upsampled bicubically."""
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    img = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
    return np.asarray(img, dtype=np.float32) / 1.5


def _soft_mask(d: np.ndarray, edge: float) -> np.ndarray:
    """1 inside (d < 1), 0 outside, a smooth ramp of relative width ``edge``."""
    return np.clip((1.0 - d) / edge, 0.0, 1.0)


def make_image(rng: np.random.Generator, abnormal: bool, size: int = SOURCE_SIZE,
               lesion_kinds: tuple[int, ...] = LESION_KINDS,
               lesion_radius: tuple[float, float] = LESION_RADIUS) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic slice: (uint8 image [size, size], bool lesion mask)."""
    s = size / 128.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # Scans are roughly registered: small shifts, rotations and size changes.
    cy = size / 2 + rng.uniform(-1, 1) * s
    cx = size / 2 + rng.uniform(-1, 1) * s
    a = rng.uniform(46, 50) * s  # semi-axis, vertical
    b = a * rng.uniform(0.8, 0.87)
    th = rng.uniform(-0.06, 0.06)
    ct, st = np.cos(th), np.sin(th)
    u = ((xx - cx) * ct + (yy - cy) * st)
    v = (-(xx - cx) * st + (yy - cy) * ct)
    r_head = np.sqrt((u / b) ** 2 + (v / a) ** 2)

    gain = rng.uniform(0.45, 1.0)  # global brightness: scanner/protocol variation
    tissue = rng.uniform(0.42, 0.58)
    img = np.zeros((size, size), np.float32)

    skull_t = rng.uniform(0.07, 0.085)
    head = _soft_mask(r_head, 0.03)
    brain = _soft_mask(r_head / (1 - skull_t), 0.04)
    skull = np.clip(head - brain, 0, 1)
    img += skull * rng.uniform(0.7, 0.8)

    # Tissue with smooth texture and cortical folds (sinusoids warped by noise).
    texture = 0.03 * _smooth_noise(rng, size, 6)
    warp = 2.5 * _smooth_noise(rng, size, 5)
    folds = 0.03 * np.sin(r_head * rng.uniform(26, 34) + warp + rng.uniform(0, 2 * np.pi))
    folds *= np.clip((r_head - 0.45) / 0.3, 0, 1)  # folds near the cortex only
    img += brain * (tissue + texture + folds)

    # Ventricles: two dark lobes beside the midline, and the midline itself.
    vw = rng.uniform(0.1, 0.16)
    vh = rng.uniform(0.22, 0.32)
    vs = rng.uniform(0.1, 0.15)
    vy = rng.uniform(-0.1, 0.05)
    for side in (-1, 1):
        d = np.sqrt(((u / b - side * vs) / vw) ** 2 + ((v / a - vy) / vh) ** 2)
        img -= brain * _soft_mask(d, 0.35) * tissue * rng.uniform(0.6, 0.8)
    midline = np.exp(-((u / b) ** 2) / (2 * 0.008**2)) * (np.abs(v / a) < 0.8)
    img -= brain * midline * 0.12

    mask = np.zeros((size, size), bool)
    if abnormal:
        # A lesion inside the brain, away from the skull.
        for _ in range(100):
            ly, lx = rng.uniform(-0.6, 0.6, size=2)
            if lx * lx + ly * ly < 0.45:
                break
        lr = rng.uniform(lesion_radius[0], lesion_radius[1]) * s
        ly_px = cy + (lx * b * st + ly * a * ct)
        lx_px = cx + (lx * b * ct - ly * a * st)
        e = rng.uniform(0.75, 1.0)
        phi = rng.uniform(0, np.pi)
        du = (xx - lx_px) * np.cos(phi) + (yy - ly_px) * np.sin(phi)
        dv = -(xx - lx_px) * np.sin(phi) + (yy - ly_px) * np.cos(phi)
        wobble = 1 + 0.15 * _smooth_noise(rng, size, 4)
        d = np.sqrt((du / lr) ** 2 + (dv / (lr * e)) ** 2) / wobble
        core = _soft_mask(d, 0.35)
        kind = int(rng.choice(lesion_kinds))
        if kind == 0:  # bright (enhancing) lesion
            lesion = core * rng.uniform(0.35, 0.5)
        elif kind == 1:  # dark (necrotic / cystic) lesion
            lesion = -core * tissue * rng.uniform(0.65, 0.9)
        else:  # ring-enhancing: bright rim, dark core
            rim = np.exp(-((d - 0.8) ** 2) / (2 * 0.12**2))
            lesion = rim * rng.uniform(0.35, 0.5) - _soft_mask(d / 0.6, 0.4) * tissue * 0.6
        img += brain * lesion
        mask = (core > 0.5) & (brain > 0.5)

    img = img * gain + rng.normal(0, 0.015, size=img.shape).astype(np.float32) * head
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8), mask


def make_dataset(root: str | Path, seed: int = 0, n_normal: int = 600, n_unlabeled: int = 600,
                 anomaly_rate: float = 0.5, n_test: int = 400, progress: bool = False) -> Path:
    """Writes a synthetic Med-AD dataset to ``root`` and returns it.

    The unlabeled pool is listed as train/unlabeled/0 (normal) and /1 (abnormal), so the
    paper's pool rule applies; ``n_test`` images are split evenly into test/0 and test/1.

    Example:
        >>> make_dataset("/tmp/synth", seed=0, n_normal=10, n_unlabeled=10, n_test=10)  # doctest: +SKIP
    """
    root = Path(root)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_unl_abn = round(n_unlabeled * anomaly_rate)
    plan = (
        [("train_normal", False)] * n_normal
        + [("unl_normal", False)] * (n_unlabeled - n_unl_abn)
        + [("unl_abnormal", True)] * n_unl_abn
        + [("test_normal", False)] * (n_test // 2)
        + [("test_abnormal", True)] * (n_test - n_test // 2)
    )
    lists: dict[str, list[str]] = {k: [] for k in
                                   ("train_normal", "unl_normal", "unl_abnormal", "test_normal", "test_abnormal")}
    it = enumerate(plan)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, total=len(plan), desc="synthetic data", unit="img", leave=False)
    for i, (group, abnormal) in it:
        img, _ = make_image(rng, abnormal)
        name = f"{group}_{i:05d}.png"
        Image.fromarray(img).save(images / name)
        lists[group].append(name)
    data = {
        "train": {"0": lists["train_normal"],
                  "unlabeled": {"0": lists["unl_normal"], "1": lists["unl_abnormal"]}},
        "test": {"0": lists["test_normal"], "1": lists["test_abnormal"]},
    }
    tmp = root / "data.json.tmp"
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(root / "data.json")
    return root
