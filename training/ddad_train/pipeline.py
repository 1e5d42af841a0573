"""The whole training run: data -> NDM and UDM -> bundle."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np

from ddad_rt import datasets
from ddad_rt.preprocess import load_images
from ddad_train.config import TrainConfig
from ddad_train.export import export_bundle
from ddad_train.trainer import train_module


def load_training_images(cfg: TrainConfig, progress: bool = True
                         ) -> tuple[np.ndarray, np.ndarray, dict]:
    """(normal images, UDM images = normal + unlabeled pool, data summary), uint8 [M, H, W]."""
    ts = datasets.training_set(cfg.data, n=cfg.n, ar=cfg.ar)
    normal = load_images(ts.normal, cfg.image_size, progress=progress, desc="load normal")
    unlabeled = load_images(ts.unlabeled, cfg.image_size, progress=progress, desc="load unlabeled")
    udm_images = np.concatenate([normal, unlabeled]) if len(unlabeled) else normal
    summary = dict(ts.summary)
    summary["data"] = str(Path(cfg.data).resolve())
    return normal, udm_images, summary


def train(cfg: TrainConfig, progress: bool = True) -> Path:
    """Trains NDM and UDM as configured and writes the bundle to ``cfg.out``.

    Example:
        >>> from ddad_train import TrainConfig, train
        >>> train(TrainConfig(data="../shared/data/brain_tumor", out="bundle", epochs=250))  # doctest: +SKIP
    """
    import torch

    cfg.validate()
    if not cfg.out:
        msg = "TrainConfig.out (the bundle directory to write) is required"
        raise ValueError(msg)
    t0 = time.perf_counter()
    normal, udm_images, summary = load_training_images(cfg, progress)
    ndm = train_module(normal, cfg, "ndm", progress=progress)
    udm = train_module(udm_images, cfg, "udm", progress=progress)
    training = {
        "seed": cfg.seed,
        "data": summary,
        "losses": {"ndm": ndm.losses, "udm": udm.losses},
        "seconds": {"ndm": round(ndm.seconds, 1), "udm": round(udm.seconds, 1),
                    "total": round(time.perf_counter() - t0, 1)},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    return export_bundle(udm.model, ndm.model, cfg.out, config=cfg.to_dict(), training=training)
