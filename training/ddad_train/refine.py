"""ASR: self-supervised training of the refinement networks (R_dual, R_intra).

The NDM and UDM are frozen: their maps come from the shipped C++ engine running the exported
ensemble, so the refiners learn from exactly the maps they will see in deployment. Training
uses known-normal images only; with probability 0.5 an image gets a synthetic anomaly (a
square patch of another normal image, blended in), and the refiners learn to segment it with
the focal loss. R_dual and R_intra are separate networks with their own optimisers; they see
the same synthetic batches, which costs one ensemble pass per batch instead of two.
"""

from __future__ import annotations

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
from ddad_train.trainer import autocast, make_adam, member_seed, setup_torch

#: R_dual reads [A_inter, A_intra]; R_intra reads [A_intra].
REFINER_INPUTS = {"dual": ("inter", "intra"), "intra": ("intra",)}


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


def synthetic_batch(images: np.ndarray, idx: np.ndarray, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """A training batch: each image gets a synthetic anomaly with probability 0.5."""
    xs, ys = [], []
    for i in idx:
        if rng.random() > 0.5:
            x, y = synthetic_anomaly(images, int(i), rng)
        else:
            x, y = images[i], np.zeros(images.shape[1:], np.uint8)
        xs.append(x)
        ys.append(y)
    return np.stack(xs), np.stack(ys)


@dataclass
class RefineResult:
    nets: dict[str, RefineNet]
    losses: dict[str, list[float]] = field(default_factory=dict)  #: per refiner, per epoch
    seconds: float = 0.0


def train_refiners(images: np.ndarray, ensemble_bundle: str | Path, cfg: TrainConfig,
                   progress: bool = True, checkpoint: str | Path | None = None,
                   on_epoch: Callable[[int, dict[str, RefineNet]], None] | None = None
                   ) -> RefineResult:
    """Trains the configured refiners on normal images (uint8 [M, H, W]) with the maps of
    ``ensemble_bundle`` (a bundle holding the trained, frozen NDM and UDM).

    Checkpointed after every epoch like ``train_module``; resuming gives the same weights.
    ``on_epoch(epoch, nets)``, if given, is called after each epoch (e.g. to follow a
    measurement along the epochs, as benchmarks/refine_stability.py does); the nets are in
    training mode and must be left so.
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
    nets, opts = {}, {}
    for i, name in enumerate(names):
        torch.manual_seed(member_seed(cfg.seed, "refine", i, 0))
        nets[name] = RefineNet(len(REFINER_INPUTS[name])).train()
        opts[name] = make_adam(nets[name].parameters(), cfg.refine_lr, cfg.refine_weight_decay)
    order = torch.Generator().manual_seed(member_seed(cfg.seed, "refine", 0, 1))
    rng = np.random.default_rng(member_seed(cfg.seed, "refine", 0, 2))
    data = images.astype(np.float32) / np.float32(255.0)
    result = RefineResult(nets, {n: [] for n in names})
    first_epoch, seconds_before = 1, 0.0
    if checkpoint is not None and Path(checkpoint).is_file():
        state = ckpt.load(checkpoint)
        if state["refiners"] != names or state["num_images"] != m_total:
            msg = (f"checkpoint {checkpoint} belongs to another run (refiners {state['refiners']}, "
                   f"{state['num_images']} images): delete it or choose another checkpoint_dir")
            raise InputError(msg)
        for n in names:
            nets[n].load_state_dict(state["nets"][n])
            opts[n].load_state_dict(state["optimizers"][n])
        order.set_state(state["order"])
        ckpt.set_generator_state(rng, state["anomalies"])
        ckpt.set_global_rng_state(state["global_rng"])
        result.losses = {n: list(v) for n, v in state["losses"].items()}
        first_epoch, seconds_before = state["epoch"] + 1, state["seconds"]

    steps = m_total // cfg.refine_batch_size
    saver = ckpt.Checkpointer(checkpoint) if checkpoint is not None else None
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.refine_epochs, initial=first_epoch - 1,
                   desc=f"train ASR ({', '.join('R_' + n for n in names)})", unit="epoch")
    for epoch in range(first_epoch, cfg.refine_epochs + 1):
        perm = torch.randperm(m_total, generator=order).numpy()
        sums = dict.fromkeys(names, 0.0)
        for s in range(steps):
            idx = perm[s * cfg.refine_batch_size:(s + 1) * cfg.refine_batch_size]
            x, label = synthetic_batch(data, idx, rng)
            # The maps alone: a bundle that already has refiners (`ddad-rt refine` of a full
            # bundle) would otherwise run them too, for nothing.
            maps = engine.score(x, maps=True, scores=("inter", "intra")).maps
            target = torch.from_numpy(label)
            for n in names:
                net_in = torch.from_numpy(np.stack([maps[k] for k in REFINER_INPUTS[n]], axis=1))
                with autocast(cfg):
                    logits = nets[n](net_in)
                prob = torch.softmax(logits.float(), dim=1)
                loss = focal_loss(prob, target)
                opts[n].zero_grad(set_to_none=True)
                loss.backward()
                opts[n].step()
                sums[n] += loss.item()
        for n in names:
            result.losses[n].append(sums[n] / steps)
            if not np.isfinite(result.losses[n][-1]):
                msg = f"R_{n} loss became {result.losses[n][-1]} at epoch {epoch}: lower refine_lr"
                raise FloatingPointError(msg)
        if saver is not None:
            saver.save({
                "refiners": names, "num_images": m_total, "epoch": epoch,
                "nets": {n: nets[n].state_dict() for n in names},
                "optimizers": {n: opts[n].state_dict() for n in names},
                "order": order.get_state(), "anomalies": ckpt.generator_state(rng),
                "global_rng": ckpt.global_rng_state(), "losses": result.losses,
                "seconds": seconds_before + time.perf_counter() - t0,
            })
        if on_epoch is not None:
            on_epoch(epoch, nets)
        if bar is not None:
            bar.set_postfix({f"R_{n}": f"{result.losses[n][-1]:.4f}" for n in names})
            bar.update(1)
    if bar is not None:
        bar.close()
    if saver is not None:
        saver.wait()
    for net in nets.values():
        net.eval()
    result.seconds = seconds_before + time.perf_counter() - t0
    return result


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
                "seconds": {"refine": round(result.seconds, 1)}}
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
