"""ASR: self-supervised training of the refinement networks (R_dual, R_intra).

The NDM and UDM are frozen: their maps come from the shipped C++ engine running the exported
ensemble, so the refiners learn from exactly the maps they will see in deployment. Training
uses known-normal images only; with probability 0.5 an image gets a synthetic anomaly (a
square patch of another normal image, blended in), and the refiners learn to segment it with
the focal loss. R_dual and R_intra are separate networks with their own optimisers; they see
the same synthetic batches, which costs one ensemble pass per batch instead of two.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from ddad_rt.errors import InputError

from ddad_train import checkpoint as ckpt
from ddad_train.config import TrainConfig
from ddad_train.models import RefineNet, focal_loss
from ddad_train.models.refine import REFINER_INPUTS
from ddad_train.refine_average import WeightAverage, averaged_refiner
from ddad_train.refine_validation import (
    VALIDATION_IMAGES,
    collapse_warnings,
    refiner_input,
    validation_figures,
)
from ddad_train.synthetic_anomaly import (
    ensemble_maps,
    synthetic_anomaly,
    synthetic_batch,
    synthetic_maps,
)
from ddad_train.trainer import autocast, make_adam, member_seed, setup_torch

__all__ = ["REFINER_INPUTS", "RefineResult", "refine_bundle", "refine_existing",
           "synthetic_anomaly", "synthetic_batch", "train_refiners"]

log = logging.getLogger("ddad_train.refine")

#: Images whose maps recalibrate the averaged refiners' batch norm (SWA mode): 128 images
#: are 128 x H x W values per channel, plenty for a mean and a variance.
BATCH_NORM_IMAGES = 128
#: Random streams of the refinement beyond member_seed's 0-2 (init, order, anomalies).
BATCH_NORM_STREAM, VALIDATION_STREAM = 3, 4


@dataclass
class RefineResult:
    nets: dict[str, RefineNet]  #: the refiners to export (eval mode)
    losses: dict[str, list[float]] = field(default_factory=dict)  #: per refiner, per epoch
    seconds: float = 0.0
    validation: dict = field(default_factory=dict)  #: refine_validation.validation_figures


@dataclass
class _RefineRun:
    """Everything a refinement checkpoint holds: resuming from it gives the same weights."""

    nets: dict[str, RefineNet]
    opts: dict[str, torch.optim.Optimizer]
    averages: dict[str, WeightAverage]
    order: torch.Generator
    rng: np.random.Generator
    losses: dict[str, list[float]]
    epoch: int = 0
    seconds: float = 0.0


def _new_run(names: list[str], cfg: TrainConfig) -> _RefineRun:
    nets, opts = {}, {}
    for i, name in enumerate(names):
        torch.manual_seed(member_seed(cfg.seed, "refine", i, 0))
        nets[name] = RefineNet(len(REFINER_INPUTS[name])).train()
        opts[name] = make_adam(nets[name].parameters(), cfg.refine_lr, cfg.refine_weight_decay)
    return _RefineRun(nets, opts, {n: WeightAverage() for n in names},
                      torch.Generator().manual_seed(member_seed(cfg.seed, "refine", 0, 1)),
                      np.random.default_rng(member_seed(cfg.seed, "refine", 0, 2)),
                      {n: [] for n in names})


def _checkpoint_state(run: _RefineRun, names: list[str], cfg: TrainConfig, m_total: int) -> dict:
    return {"refiners": names, "num_images": m_total, "refine_mode": cfg.refine_mode,
            "epoch": run.epoch, "nets": {n: run.nets[n].state_dict() for n in names},
            "optimizers": {n: run.opts[n].state_dict() for n in names},
            "averages": {n: run.averages[n].state_dict() for n in names},
            "order": run.order.get_state(), "anomalies": ckpt.generator_state(run.rng),
            "global_rng": ckpt.global_rng_state(), "losses": run.losses,
            "seconds": run.seconds}


def _resume(run: _RefineRun, checkpoint: Path, names: list[str], cfg: TrainConfig,
            m_total: int) -> None:
    state = ckpt.load(checkpoint)
    mode = state.get("refine_mode", "paper")
    if state["refiners"] != names or state["num_images"] != m_total or mode != cfg.refine_mode:
        msg = (f"checkpoint {checkpoint} belongs to another run (refiners {state['refiners']}, "
               f"{state['num_images']} images, refine_mode {mode}): delete it or choose "
               "another checkpoint_dir")
        raise InputError(msg)
    for n in names:
        run.nets[n].load_state_dict(state["nets"][n])
        run.opts[n].load_state_dict(state["optimizers"][n])
        if "averages" in state:
            run.averages[n].load_state_dict(state["averages"][n])
    run.order.set_state(state["order"])
    ckpt.set_generator_state(run.rng, state["anomalies"])
    ckpt.set_global_rng_state(state["global_rng"])
    run.losses = {n: list(v) for n, v in state["losses"].items()}
    run.epoch, run.seconds = state["epoch"], state["seconds"]


def _train_epoch(run: _RefineRun, engine, data: np.ndarray, cfg: TrainConfig) -> None:
    """One pass over the normal images; appends each refiner's mean loss to run.losses."""
    names = list(run.nets)
    steps = len(data) // cfg.refine_batch_size
    perm = torch.randperm(len(data), generator=run.order).numpy()
    sums = dict.fromkeys(names, 0.0)
    for s in range(steps):
        idx = perm[s * cfg.refine_batch_size:(s + 1) * cfg.refine_batch_size]
        x, label = synthetic_batch(data, idx, run.rng, cfg.anomaly_kinds())
        maps = ensemble_maps(engine, x)
        target = torch.from_numpy(label)
        for n in names:
            with autocast(cfg):
                logits = run.nets[n](refiner_input(maps, n))
            loss = focal_loss(torch.softmax(logits.float(), dim=1), target)
            run.opts[n].zero_grad(set_to_none=True)
            loss.backward()
            run.opts[n].step()
            sums[n] += loss.item()
    run.epoch += 1
    for n in names:
        run.losses[n].append(sums[n] / steps)
        if not np.isfinite(run.losses[n][-1]):
            msg = f"R_{n} loss became {run.losses[n][-1]} at epoch {run.epoch}: lower refine_lr"
            raise FloatingPointError(msg)
        if cfg.refine_mode == "swa":  # "paper" exports the last epoch: nothing to average
            run.averages[n].update(run.nets[n])


class _Exported:
    """The refiners as they would be exported after the current epoch: the last epoch's
    nets ("paper" mode) or the weight averages with recalibrated batch norm ("swa")."""

    def __init__(self, run: _RefineRun, engine, data: np.ndarray, cfg: TrainConfig) -> None:
        self.run, self.engine, self.data, self.cfg = run, engine, data, cfg
        self._batches: dict[str, list[torch.Tensor]] | None = None

    def batch_norm_batches(self) -> dict[str, list[torch.Tensor]]:
        """Fixed maps to recalibrate with (a stream of their own: the same every epoch, and
        drawing them leaves the training's random streams untouched)."""
        if self._batches is None:
            rng = np.random.default_rng(member_seed(self.cfg.seed, "refine", 0, BATCH_NORM_STREAM))
            maps, _ = synthetic_maps(self.engine, self.data, min(len(self.data), BATCH_NORM_IMAGES),
                                     rng, self.cfg.refine_batch_size, self.cfg.anomaly_kinds())
            self._batches = {n: list(refiner_input(maps, n).split(32)) for n in self.run.nets}
        return self._batches

    def __call__(self) -> dict[str, RefineNet]:
        if self.cfg.refine_mode == "paper":
            return self.run.nets
        batches = self.batch_norm_batches()
        return {n: averaged_refiner(self.run.averages[n], net, batches[n])
                for n, net in self.run.nets.items()}


def train_refiners(images: np.ndarray, ensemble_bundle: str | Path, cfg: TrainConfig,
                   progress: bool = True, checkpoint: str | Path | None = None,
                   on_epoch: Callable[[int, Callable[[], dict[str, RefineNet]]], None] | None = None
                   ) -> RefineResult:
    """Trains the configured refiners on normal images (uint8 [M, H, W]) with the maps of
    ``ensemble_bundle`` (a bundle holding the trained, frozen NDM and UDM).

    ``cfg.refine_mode`` "swa" exports the average of the weights after every epoch, batch
    norm recalibrated; "paper" exports the last epoch's weights, as the authors do. Then the
    label-free validation figures are measured (``RefineResult.validation``).

    Checkpointed after every epoch like ``train_module``; resuming gives the same weights.
    ``on_epoch(epoch, exported)``, if given, is called after each epoch; ``exported()``
    returns the refiners as they would be exported now (benchmarks/refine_stability.py
    follows the test AUC with it). In "paper" mode those are the nets in training, in
    training mode: a callback must leave them so.
    """
    from ddad_rt.engine import Engine

    names = list(cfg.refiners)
    if not names:
        msg = "cfg.refiners is empty: nothing to train"
        raise InputError(msg)
    m_total = len(images)
    if m_total < max(2, cfg.refine_batch_size):
        msg = (f"refinement needs at least max(2, refine_batch_size={cfg.refine_batch_size}) "
               f"normal images, got {m_total}")
        raise InputError(msg)
    setup_torch(cfg.threads)
    engine = Engine(ensemble_bundle, device="cpu", max_batch=cfg.refine_batch_size,
                    num_threads=cfg.threads)
    run = _new_run(names, cfg)
    if checkpoint is not None and Path(checkpoint).is_file():
        _resume(run, Path(checkpoint), names, cfg, m_total)
    data = images.astype(np.float32) / np.float32(255.0)
    exported = _Exported(run, engine, data, cfg)
    saver = ckpt.Checkpointer(checkpoint) if checkpoint is not None else None
    t0, seconds_before = time.perf_counter(), run.seconds
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.refine_epochs, initial=run.epoch,
                   desc=f"train ASR ({', '.join('R_' + n for n in names)})", unit="epoch")
    while run.epoch < cfg.refine_epochs:
        _train_epoch(run, engine, data, cfg)
        run.seconds = seconds_before + time.perf_counter() - t0
        if saver is not None:
            saver.save(_checkpoint_state(run, names, cfg, m_total))
        if on_epoch is not None:
            on_epoch(run.epoch, exported)
        if bar is not None:
            bar.set_postfix({f"R_{n}": f"{run.losses[n][-1]:.4f}" for n in names})
            bar.update(1)
    if bar is not None:
        bar.close()
    if saver is not None:
        saver.wait()
    nets = {n: net.eval() for n, net in exported().items()}
    rng = np.random.default_rng(member_seed(cfg.seed, "refine", 0, VALIDATION_STREAM))
    maps, labels = synthetic_maps(engine, data, min(m_total, VALIDATION_IMAGES), rng,
                                  cfg.refine_batch_size, cfg.anomaly_kinds())
    return RefineResult(nets, run.losses, seconds_before + time.perf_counter() - t0,
                        validation_figures(nets, maps, labels))


def refine_bundle(src: str | Path, out: str | Path, images: np.ndarray, cfg: TrainConfig,
                  progress: bool = True, checkpoint: str | Path | None = None,
                  force: bool = False) -> Path:
    """Trains ``cfg.refiners`` on the maps of bundle ``src`` and writes ``out`` = ``src`` plus
    the refinement graphs (``src``'s ensemble graph is kept byte for byte).

    Args:
        src: a bundle with trained NDM and UDM.
        out: the bundle to write.
        images: known-normal training images, uint8 [M, H, W] at the model size.
        cfg: refinement settings (refiners, refine_*), seed and threads.
        progress: show a progress bar.
        checkpoint: per-epoch checkpoint file (resumed from if it exists).
        force: replace an existing bundle at ``out``.
    """
    from ddad_train.export import add_refiners

    result = train_refiners(images, src, cfg, progress=progress, checkpoint=checkpoint)
    training = {"losses": {f"refine_{n}": v for n, v in result.losses.items()},
                "seconds": {"refine": round(result.seconds, 1)},
                "refine_validation": result.validation}
    for message in collapse_warnings(result.validation):
        # On stderr at the end of training (logging's last-resort handler, when the
        # application configured none), and recorded in the manifest for `ddad-rt info`.
        log.warning(message)
    from ddad_rt.bundle import image_hash

    return add_refiners(src, out, result.nets, config=cfg.to_dict(), training=training,
                        image_hashes=[image_hash(img) for img in images], force=force)


def refine_existing(src: str | Path, out: str | Path, data: str | Path, overrides: dict,
                    progress: bool = True, resume: bool = False, force: bool = False) -> Path:
    """Adds refiners to an existing bundle: ``ddad-rt refine``.

    The settings are the bundle's own training config with ``overrides`` applied (e.g.
    refiners, refine_epochs, seed, threads); the normal images are ``data``'s known-normal
    split. Checkpoints go to ``<out>.ckpt/`` (not the source bundle's stored checkpoint
    folder) and are removed when the bundle is written. Replacing an existing bundle at
    ``out`` (``src`` itself included) needs ``force``.
    """
    from ddad_rt import datasets
    from ddad_rt.bundle import read_manifest
    from ddad_rt.preprocess import load_images

    manifest = read_manifest(src, verify=True)
    base = dict(manifest.get("training", {}).get("config", {}))
    # checkpoint_dir is the source run's folder, not this run's: never inherit it.
    cfg = TrainConfig.from_yaml_values({**base, **overrides, "data": str(data), "out": str(out),
                                        "checkpoint_dir": overrides.get("checkpoint_dir", "")})
    cfg.validate()
    if cfg.image_size != manifest["image_size"][0]:
        msg = f"image_size {cfg.image_size} differs from the bundle's {manifest['image_size'][0]}"
        raise InputError(msg)
    from ddad_train.export import check_out_dir

    check_out_dir(out, force=force)
    ck = cfg.checkpoint_path()
    if (ck / "refine.pt").is_file() and not resume:
        msg = (f"{ck} holds the checkpoint of an earlier, unfinished refinement: pass --resume "
               "to continue it, or delete the folder to start over")
        raise FileExistsError(msg)
    normal = load_images(datasets.training_set(cfg.data).normal, cfg.image_size,
                         progress=progress, desc="load normal")
    result = refine_bundle(src, out, normal, cfg, progress=progress, checkpoint=ck / "refine.pt",
                           force=force)
    ckpt.remove_run_files(ck, ["refine.pt"])
    return result
