"""The authors' synthetic anomalies, and the ensemble's maps of images that carry them.

The refiners are trained, their batch norm recalibrated and their quality checked on the
frozen ensemble's maps of known-normal images, half of them given a synthetic anomaly.
"""

from __future__ import annotations

import numpy as np
from ddad_rt.errors import InputError


def synthetic_anomaly(images: np.ndarray, index: int, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The authors' synthetic anomaly (anomaly_data.SelfAnomalyDataset.generate_anomaly).

    A square patch with centre uniform in the central 80% of the image and half-width a
    uniform integer in [round(0.05 W), round(0.2 W)) is blended with the same patch of
    another random image: x' = (1 - m) x + m x_src, m = alpha ~ U(0, 1) inside the patch.

    Args:
        images: float32 [M, H, W] in [0, 1] (blending commutes with the affine normalisation).
        index: the image to corrupt; the source is any other image.
        rng: the random stream.

    Returns:
        (image float32 [H, W], pixel label uint8 [H, W]: 1 inside the patch).
    """
    if len(images) < 2:
        msg = "synthetic anomalies need at least 2 normal images (the patch comes from another one)"
        raise InputError(msg)
    h, w = images.shape[1:]
    dims = np.array([h, w], dtype=np.float64)
    core, offset = 0.8 * dims, 0.1 * dims
    lo, hi = offset.astype(int), (offset + core).astype(int)  # as np.random.randint truncates
    centre = np.array([rng.integers(lo[0], hi[0]), rng.integers(lo[1], hi[1])])
    half = int(rng.integers(round(0.05 * w), round(0.2 * w)))
    c0 = np.clip(centre - half, 0, [h, w])
    c1 = np.clip(centre + half, 0, [h, w])
    alpha = np.float32(rng.random())
    src = int(rng.integers(0, len(images) - 1))
    src += src >= index  # uniform over the other images
    mask = np.zeros((h, w), np.float32)
    mask[c0[0]:c1[0], c0[1]:c1[1]] = alpha
    out = (1 - mask) * images[index] + mask * images[src]
    return out.astype(np.float32), (mask > 0).astype(np.uint8)


def intensity_anomaly(images: np.ndarray, index: int, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray]:
    """A local intensity change: a soft-edged ellipse made brighter or darker.

    The authors' patches teach a refiner what a pasted square looks like in the maps; lesions
    are mostly round, smooth-edged changes of intensity (enhancing or necrotic tumour, cyst,
    consolidation). The ellipse's centre is uniform in the central 80% of the image and its
    semi-axes uniform in [0.05, 0.2) of the image size (the patches' range); inside, the
    intensity moves by a ~ +-U(0.15, 0.5) of full scale with a raised-cosine edge over the
    outer 40% of the radius, clipped to [0, 1].

    Returns:
        (image float32 [H, W], pixel label uint8 [H, W]: 1 where the intensity changed by
        at least half the peak, after clipping).
    """
    h, w = images.shape[1:]
    cy, cx = rng.uniform(0.1 * h, 0.9 * h), rng.uniform(0.1 * w, 0.9 * w)
    ry, rx = rng.uniform(0.05 * h, 0.2 * h), rng.uniform(0.05 * w, 0.2 * w)
    amplitude = np.float32(rng.uniform(0.15, 0.5) * rng.choice([-1.0, 1.0]))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + np.float32(0.5)
    d = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    ramp = np.clip((1.0 - d) / 0.4, 0.0, 1.0)
    mask = (0.5 - 0.5 * np.cos(np.pi * ramp)).astype(np.float32)
    out = np.clip(images[index] + amplitude * mask, 0.0, 1.0).astype(np.float32)
    # Labelled where the image really changed by half the peak: darkening the black
    # background, clipped away, is no anomaly.
    changed = np.abs(out - images[index]) >= 0.5 * abs(amplitude)
    return out, changed.astype(np.uint8)


#: The synthetic anomaly kinds a refinement can train on (TrainConfig.refine_anomalies).
ANOMALY_KINDS = {"patch": synthetic_anomaly, "intensity": intensity_anomaly}


def synthetic_batch(images: np.ndarray, idx: np.ndarray, rng: np.random.Generator,
                    kinds: tuple[str, ...] = ("patch",)) -> tuple[np.ndarray, np.ndarray]:
    """A training batch: each image gets a synthetic anomaly with probability 0.5, of a kind
    drawn uniformly from ``kinds`` (only the authors' patch: the authors' random stream)."""
    xs, ys = [], []
    for i in idx:
        if rng.random() > 0.5:
            kind = kinds[0] if len(kinds) == 1 else kinds[int(rng.integers(len(kinds)))]
            x, y = ANOMALY_KINDS[kind](images, int(i), rng)
        else:
            x, y = images[i], np.zeros(images.shape[1:], np.uint8)
        xs.append(x)
        ys.append(y)
    return np.stack(xs), np.stack(ys)


def ensemble_maps(engine, images: np.ndarray) -> dict[str, np.ndarray]:
    """A_inter and A_intra (float32 [N, H, W]) of ``images`` from the frozen ensemble.

    Only the maps: a bundle that already has refiners (`ddad-rt refine` of a full bundle)
    would otherwise run them too, for nothing.
    """
    return engine.score(images, maps=True, scores=("inter", "intra")).maps


def synthetic_maps(engine, images: np.ndarray, count: int, rng: np.random.Generator,
                   batch: int, kinds: tuple[str, ...] = ("patch",)
                   ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The maps of ``count`` distinct images drawn from ``images`` (float32 [M, H, W] in
    [0, 1]), each given a synthetic anomaly with probability 0.5, and their pixel labels.

    Returns:
        ({"inter": [count, H, W], "intra": [count, H, W]}, labels uint8 [count, H, W]).
    """
    idx = rng.permutation(len(images))[:count]
    parts: dict[str, list[np.ndarray]] = {"inter": [], "intra": []}
    labels = []
    for start in range(0, len(idx), batch):
        x, y = synthetic_batch(images, idx[start:start + batch], rng, kinds)
        maps = ensemble_maps(engine, x)
        for key, part in parts.items():
            part.append(maps[key])
        labels.append(y)
    return {k: np.concatenate(v) for k, v in parts.items()}, np.concatenate(labels)
