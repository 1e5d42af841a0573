"""Training one module (NDM or UDM): K members as one batched model.

Each member has its own initialisation and its own data order, both derived from the run's
seed, and its own optimiser state (Adam is elementwise, so one Adam over the packed
parameters is K independent Adams). One forward/backward per step trains all K.

With a checkpoint path, the module's whole state (weights, BatchNorm statistics, Adam
moments, every random stream, per-epoch losses) is saved atomically after every epoch, and a
later call with the same path continues from it: the result equals an uninterrupted run.
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
from ddad_train.models import AE, BatchedAE, attention_entropy

#: Distinguishes the modules' random streams.
MODULE_IDS = {"ndm": 1, "udm": 2, "refine": 3}


def member_seed(seed: int, module: str, member: int, stream: int) -> int:
    """A 63-bit seed for (run seed, module, member, stream: 0 = init, 1 = data order,
    2 = synthetic anomalies)."""
    ss = np.random.SeedSequence([seed, MODULE_IDS[module], member, stream])
    return int(ss.generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def model_kwargs(cfg: TrainConfig) -> dict:
    """Constructor arguments of one member for the configured backbone."""
    return {"latent_size": cfg.latent_size, "mp": cfg.mp, "image_size": cfg.image_size,
            "out_channels": 2 if cfg.backbone == "ae-u" else 1,
            "mem_slots": cfg.mem_slots if cfg.backbone == "memae" else None}


def init_members(cfg: TrainConfig, module: str) -> list[AE]:
    """K plain members, each initialised from its own seed (PyTorch's default initialisation)."""
    members = []
    for m in range(cfg.k):
        torch.manual_seed(member_seed(cfg.seed, module, m, 0))
        members.append(AE(**model_kwargs(cfg)))
    return members


def to_network_units(u8: torch.Tensor) -> torch.Tensor:
    """uint8 -> (x / 255 - 0.5) / 0.5, the same float32 arithmetic as the engine."""
    return (u8.float() / 255.0 - 0.5) / 0.5


def member_losses(model: BatchedAE, x: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Per-member training loss [K] on x [B, K, H, W] (member g reconstructs channel g).

    AE: mean (x_hat - x)^2. AE-U: mean(exp(-s) (mu - x)^2) + mean(s). MemAE: mean (x_hat -
    x)^2 + entropy_weight * entropy of the memory attention. As the authors' trainers.
    """
    dims = (0, 2, 3)
    if cfg.backbone == "memae":
        out, att = model(x, return_attention=True)
        return ((out - x) ** 2).mean(dim=dims) + cfg.entropy_weight * attention_entropy(att)
    out = model(x)
    if cfg.backbone == "ae-u":
        b, _, h, w = out.shape
        out = out.view(b, cfg.k, 2, h, w)
        mu, s = out[:, :, 0], out[:, :, 1]
        return (torch.exp(-s) * (mu - x) ** 2).mean(dim=dims) + s.mean(dim=dims)
    return ((out - x) ** 2).mean(dim=dims)


def make_adam(params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    kwargs = {"lr": lr, "betas": (0.5, 0.999), "weight_decay": weight_decay}
    try:
        return torch.optim.Adam(params, fused=True, **kwargs)
    except (RuntimeError, TypeError):  # fused CPU Adam needs torch >= 2.4
        return torch.optim.Adam(params, **kwargs)


def autocast(cfg: TrainConfig):
    """The training arithmetic of ``cfg.precision``: bf16 autocast, or nothing for fp32."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.precision == "bf16")


def setup_torch(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)
    # Denormal gradients in Adam's second moments slow the CPU by several times.
    torch.set_flush_denormal(True)


@dataclass
class ModuleResult:
    model: BatchedAE
    losses: list[list[float]] = field(default_factory=list)  #: per epoch, per member
    seconds: float = 0.0


def train_module(images: np.ndarray, cfg: TrainConfig, module: str,
                 progress: bool = True,
                 on_epoch: Callable[[int, list[float]], None] | None = None,
                 checkpoint: str | Path | None = None) -> ModuleResult:
    """Trains the K members of one module on ``images`` (uint8 [M, H, W]).

    Args:
        images: training images at the model size.
        cfg: run configuration (backbone, k, epochs, batch size, optimiser, seed).
        module: "ndm" or "udm" (selects the members' random streams).
        progress: show a progress bar.
        on_epoch: called after each epoch with (epoch, per-member mean loss).
        checkpoint: file to save the state to after every epoch and to resume from if it
            exists (a finished module's checkpoint returns at once).
    """
    if module not in ("ndm", "udm"):
        msg = f"module must be 'ndm' or 'udm', got {module!r}"
        raise InputError(msg)
    m_total = images.shape[0]
    if m_total < cfg.batch_size:
        msg = (f"{module.upper()} has {m_total} training images, fewer than one batch of "
               f"{cfg.batch_size} (batches drop the remainder): add images or lower batch_size")
        raise InputError(msg)
    setup_torch(cfg.threads)

    members = init_members(cfg, module)
    # Channels-last: oneDNN's grouped (de)convolutions, forward and backward, run about 1.4x
    # faster on it than on NCHW (measured side by side, K=3, batch 64, 64x64, 1 thread).
    model = BatchedAE.from_members(members, **model_kwargs(cfg)).to(memory_format=torch.channels_last)
    model.train()
    optimizer = make_adam(model.parameters(), cfg.lr, cfg.weight_decay)
    data = torch.from_numpy(np.ascontiguousarray(images))
    gens = [torch.Generator().manual_seed(member_seed(cfg.seed, module, m, 1)) for m in range(cfg.k)]
    steps = m_total // cfg.batch_size
    result = ModuleResult(model)
    first_epoch, seconds_before = 1, 0.0
    if checkpoint is not None and Path(checkpoint).is_file():
        state = ckpt.load(checkpoint)
        if state["module"] != module or state["num_images"] != m_total:
            msg = (f"checkpoint {checkpoint} belongs to another run ({state['module']}, "
                   f"{state['num_images']} images): delete it or choose another checkpoint_dir")
            raise InputError(msg)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for g, s in zip(gens, state["generators"], strict=True):
            g.set_state(s)
        ckpt.set_global_rng_state(state["global_rng"])
        result.losses = [list(v) for v in state["losses"]]
        first_epoch, seconds_before = state["epoch"] + 1, state["seconds"]
    saver = ckpt.Checkpointer(checkpoint) if checkpoint is not None else None
    t0 = time.perf_counter()

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.epochs, initial=first_epoch - 1, desc=f"train {module.upper()} (K={cfg.k})",
                   unit="epoch")
    for epoch in range(first_epoch, cfg.epochs + 1):
        perms = torch.stack([torch.randperm(m_total, generator=g) for g in gens])  # [K, M]
        loss_sum = torch.zeros(cfg.k, dtype=torch.float64)
        for s in range(steps):
            idx = perms[:, s * cfg.batch_size:(s + 1) * cfg.batch_size]  # [K, B]
            x = to_network_units(data[idx]).transpose(0, 1)  # [B, K, H, W]
            x = x.contiguous(memory_format=torch.channels_last)
            with autocast(cfg):
                per_member = member_losses(model, x, cfg).float()
            optimizer.zero_grad(set_to_none=True)
            per_member.sum().backward()
            optimizer.step()
            loss_sum += per_member.detach().double()
        epoch_losses = (loss_sum / steps).tolist()
        if not np.all(np.isfinite(epoch_losses)):
            msg = (f"{module.upper()} loss became {epoch_losses} at epoch {epoch}: lower lr "
                   f"(now {cfg.lr}) or check the data")
            raise FloatingPointError(msg)
        result.losses.append(epoch_losses)
        if saver is not None:
            saver.save({
                "module": module, "num_images": m_total, "epoch": epoch,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "generators": [g.get_state() for g in gens],
                "global_rng": ckpt.global_rng_state(), "losses": result.losses,
                "seconds": seconds_before + time.perf_counter() - t0,
            })
        if on_epoch is not None:
            on_epoch(epoch, epoch_losses)
        if bar is not None:
            bar.set_postfix(loss=f"{np.mean(epoch_losses):.4f}")
            bar.update(1)
    if bar is not None:
        bar.close()
    if saver is not None:
        saver.wait()
    result.seconds = seconds_before + time.perf_counter() - t0
    model.to(memory_format=torch.contiguous_format).eval()
    return result
