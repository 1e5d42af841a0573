"""Training one module (NDM or UDM): K members as one batched model.

Each member has its own initialisation and its own data order, both derived from the run's
seed, and its own optimiser state (Adam is elementwise, so one Adam over the packed
parameters is K independent Adams). One forward/backward per step trains all K.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ddad_train.config import TrainConfig
from ddad_train.models import AE, BatchedAE

#: Distinguishes the two modules' random streams.
MODULE_IDS = {"ndm": 1, "udm": 2}


def member_seed(seed: int, module: str, member: int, stream: int) -> int:
    """A 63-bit seed for (run seed, module, member, stream: 0 = init, 1 = data order)."""
    ss = np.random.SeedSequence([seed, MODULE_IDS[module], member, stream])
    return int(ss.generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def init_members(cfg: TrainConfig, module: str) -> list[AE]:
    """K plain AEs, each initialised from its own seed (PyTorch's default initialisation)."""
    members = []
    for m in range(cfg.k):
        torch.manual_seed(member_seed(cfg.seed, module, m, 0))
        members.append(AE(cfg.latent_size, cfg.mp, cfg.image_size))
    return members


def to_network_units(u8: torch.Tensor) -> torch.Tensor:
    """uint8 -> (x / 255 - 0.5) / 0.5, the same float32 arithmetic as the engine."""
    return (u8.float() / 255.0 - 0.5) / 0.5


@dataclass
class ModuleResult:
    model: BatchedAE
    losses: list[list[float]] = field(default_factory=list)  #: per epoch, per member
    seconds: float = 0.0


def train_module(images: np.ndarray, cfg: TrainConfig, module: str,
                 progress: bool = True,
                 on_epoch: Callable[[int, list[float]], None] | None = None) -> ModuleResult:
    """Trains the K members of one module on ``images`` (uint8 [M, H, W]).

    Args:
        images: training images at the model size.
        cfg: run configuration (k, epochs, batch size, optimiser, seed).
        module: "ndm" or "udm" (selects the members' random streams).
        progress: show a progress bar.
        on_epoch: called after each epoch with (epoch, per-member mean loss).
    """
    if module not in MODULE_IDS:
        msg = f"module must be 'ndm' or 'udm', got {module!r}"
        raise ValueError(msg)
    m_total = images.shape[0]
    if m_total < cfg.batch_size:
        msg = (f"{module.upper()} has {m_total} training images, fewer than one batch of "
               f"{cfg.batch_size} (batches drop the remainder): add images or lower batch_size")
        raise ValueError(msg)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    # Denormal gradients in Adam's second moments slow the CPU by several times.
    torch.set_flush_denormal(True)

    members = init_members(cfg, module)
    model = BatchedAE.from_members(members, latent_size=cfg.latent_size, mp=cfg.mp,
                                   image_size=cfg.image_size)
    model.train()
    adam_kwargs = {"lr": cfg.lr, "betas": (0.5, 0.999), "weight_decay": cfg.weight_decay}
    try:
        optimizer = torch.optim.Adam(model.parameters(), fused=True, **adam_kwargs)
    except (RuntimeError, TypeError):  # fused CPU Adam needs torch >= 2.4
        optimizer = torch.optim.Adam(model.parameters(), **adam_kwargs)

    data = torch.from_numpy(np.ascontiguousarray(images))
    gens = [torch.Generator().manual_seed(member_seed(cfg.seed, module, m, 1)) for m in range(cfg.k)]
    steps = m_total // cfg.batch_size
    result = ModuleResult(model)
    t0 = time.perf_counter()

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.epochs, desc=f"train {module.upper()} (K={cfg.k})", unit="epoch")
    for epoch in range(1, cfg.epochs + 1):
        perms = torch.stack([torch.randperm(m_total, generator=g) for g in gens])  # [K, M]
        loss_sum = torch.zeros(cfg.k, dtype=torch.float64)
        for s in range(steps):
            idx = perms[:, s * cfg.batch_size:(s + 1) * cfg.batch_size]  # [K, B]
            x = to_network_units(data[idx]).transpose(0, 1)  # [B, K, H, W]
            out = model(x)
            per_member = ((out - x) ** 2).mean(dim=(0, 2, 3))  # [K]
            optimizer.zero_grad(set_to_none=True)
            per_member.sum().backward()
            optimizer.step()
            loss_sum += per_member.detach().double()
        epoch_losses = (loss_sum / steps).tolist()
        result.losses.append(epoch_losses)
        if on_epoch is not None:
            on_epoch(epoch, epoch_losses)
        if bar is not None:
            bar.set_postfix(loss=f"{np.mean(epoch_losses):.4f}")
            bar.update(1)
    if bar is not None:
        bar.close()
    result.seconds = time.perf_counter() - t0
    model.eval()
    return result
