"""The whole training run: data -> NDM and UDM -> ensemble graph -> ASR refiners -> bundle.

Every stage checkpoints into ``cfg.checkpoint_path()`` (default ``<out>.ckpt``): NDM and UDM
after every epoch, the exported ensemble once, the refiners after every epoch. ``resume=True``
continues a killed run from there; the finished bundle equals an uninterrupted run's. The
checkpoint folder is removed once the bundle is written.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
from ddad_rt import datasets
from ddad_rt.bundle import MANIFEST, image_hash
from ddad_rt.errors import InputError
from ddad_rt.preprocess import load_images

from ddad_train import checkpoint as ckpt
from ddad_train.config import TrainConfig
from ddad_train.export import check_out_dir, export_bundle
from ddad_train.refine import refine_bundle
from ddad_train.trainer import train_module

RUN_FILE = "run.json"
#: Fields that may differ between a run and its resumption (they do not change the result
#: at equal thread count, or only say where files go).
RESUMABLE_DIFFERENCES = {"threads", "checkpoint_dir", "out", "modality"}


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


def training_image_hashes(udm_images: np.ndarray) -> list[str]:
    """Hashes of every training image (the UDM's images include the NDM's)."""
    return [image_hash(img) for img in udm_images]


def _start_or_resume(cfg: TrainConfig, resume: bool) -> Path:
    ck = cfg.checkpoint_path()
    run_file = ck / RUN_FILE
    if run_file.is_file():
        if not resume:
            msg = (f"{ck} holds the checkpoints of an earlier, unfinished run: pass --resume "
                   "(resume=True) to continue it, or delete the folder to start over")
            raise FileExistsError(msg)
        saved = json.loads(run_file.read_text())["config"]
        mine = cfg.to_dict()
        # A field the checkpoint lacks was added later; the run used its default.
        defaults = TrainConfig().to_dict()
        saved = {k: saved.get(k, defaults[k]) for k in mine}
        diffs = [f"{k}: checkpoint {saved[k]!r}, now {mine[k]!r}"
                 for k in mine if k not in RESUMABLE_DIFFERENCES and saved[k] != mine[k]]
        if diffs:
            msg = (f"cannot resume {ck} with a different configuration ({'; '.join(diffs)}): "
                   "use the original settings, or delete the folder to start over")
            raise InputError(msg)
        if saved.get("threads") != mine["threads"]:
            print(f"note: resuming with threads={mine['threads']} (checkpoint: "
                  f"{saved.get('threads')}); results stay valid but may differ in the last bits")
    else:
        ckpt.atomic_write_text(json.dumps({"config": cfg.to_dict()}, indent=2) + "\n", run_file)
    return ck


#: What a training run writes into its checkpoint folder (and removes when it is done).
RUN_FILES = [RUN_FILE, "ndm.pt", "udm.pt", "refine.pt", "ensemble"]


def train(cfg: TrainConfig, progress: bool = True, resume: bool = False,
          force: bool = False) -> Path:
    """Trains NDM, UDM and the configured refiners, and writes the bundle to ``cfg.out``.

    Args:
        force: replace an existing bundle at ``cfg.out`` (refused otherwise: it may be
            calibrated or precision-checked, and a new model would silently take its place).

    Example:
        >>> from ddad_train import TrainConfig, train
        >>> cfg = TrainConfig.from_yaml("brain_tumor", data="../shared/data/brain_tumor", out="bundle")
        >>> train(cfg)  # doctest: +SKIP
    """
    import torch

    cfg.validate()
    if not cfg.data or not cfg.out:
        msg = "both data (the dataset folder, --data) and out (the bundle to write, --out) are required"
        raise InputError(msg)
    check_out_dir(cfg.out, force=force)  # fail now, not after hours of training
    normal, udm_images, summary = load_training_images(cfg, progress)
    ck = _start_or_resume(cfg, resume)
    ndm = train_module(normal, cfg, "ndm", progress=progress, checkpoint=ck / "ndm.pt")
    udm = train_module(udm_images, cfg, "udm", progress=progress, checkpoint=ck / "udm.pt")
    training = {
        "seed": cfg.seed,
        "data": summary,
        "losses": {"ndm": ndm.losses, "udm": udm.losses},
        "seconds": {"ndm": round(ndm.seconds, 1), "udm": round(udm.seconds, 1)},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    hashes = training_image_hashes(udm_images)
    if not cfg.refiners:
        out = export_bundle(udm.model, ndm.model, cfg.out, config=cfg.to_dict(), training=training,
                            image_hashes=hashes, force=force)
    else:
        ensemble = ck / "ensemble"
        if not (ensemble / MANIFEST).is_file():
            export_bundle(udm.model, ndm.model, ensemble, config=cfg.to_dict(), training=training,
                          image_hashes=hashes)
        out = refine_bundle(ensemble, cfg.out, normal, cfg, progress=progress,
                            checkpoint=ck / "refine.pt", force=force)
    ckpt.remove_run_files(ck, RUN_FILES)
    return out
