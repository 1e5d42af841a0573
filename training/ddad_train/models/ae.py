"""The plain autoencoders of DDAD (one ensemble member), as in the authors' code: AE, AE-U
(two output channels: mean and log-variance) and MemAE (a memory on the latent code).

These are the reference definitions of a member: ``BatchedAE`` packs several of them into one
model for training and export, and the tests check the two agree.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def channels(mp: float) -> tuple[int, int, int, int]:
    """Encoder widths 16, 32, 64, 64 times the width multiplier ``mp``."""
    return int(16 * mp), int(32 * mp), int(64 * mp), int(64 * mp)


class Memory(nn.Module):
    """MemAE's memory: ``slots`` learned prototypes of the latent code. A code is replaced by
    the attention-weighted sum of the slots, attention = softmax(code . slots^T). The
    authors' hard-shrink threshold is 0 in every config, i.e. off, so it is not implemented.
    """

    def __init__(self, slots: int, features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(slots, features))
        bound = 1.0 / math.sqrt(features)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        att = torch.softmax(z @ self.weight.t(), dim=1)
        return att @ self.weight, att


def attention_entropy(att: torch.Tensor) -> torch.Tensor:
    """MemAE's entropy loss: mean over codes of -sum_slots a log(a + 1e-12), as the authors."""
    return -(att * torch.log(att + 1e-12)).sum(dim=-1).mean(dim=0)


class AE(nn.Module):
    """Convolutional autoencoder: 4 strided convs, a 2-layer MLP bottleneck, 4 transposed convs.

    Args:
        latent_size: size of the bottleneck code (16 in the paper).
        mp: width multiplier of the convolutional channels.
        image_size: square input size, a multiple of 16.
        out_channels: 1 for the AE; 2 (mean, log-variance) for AE-U.
        mem_slots: MemAE's memory size (25 in the paper); None for AE and AE-U.

    Example:
        >>> ae = AE(latent_size=16, image_size=64)
        >>> ae(torch.zeros(2, 1, 64, 64)).shape
        torch.Size([2, 1, 64, 64])
    """

    def __init__(self, latent_size: int = 16, mp: float = 1, image_size: int = 64,
                 out_channels: int = 1, mem_slots: int | None = None) -> None:
        super().__init__()
        if image_size % 16:
            msg = f"image_size must be a multiple of 16, got {image_size}"
            raise ValueError(msg)
        c1, c2, c3, c4 = channels(mp)
        self.c4 = c4
        self.fm = image_size // 16
        flat = c4 * self.fm * self.fm
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 4, 2, 1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(True),
            nn.Conv2d(c1, c2, 4, 2, 1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(True),
            nn.Conv2d(c2, c3, 4, 2, 1, bias=False), nn.BatchNorm2d(c3), nn.ReLU(True),
            nn.Conv2d(c3, c4, 4, 2, 1, bias=False), nn.BatchNorm2d(c4), nn.ReLU(True),
        )
        self.linear_enc = nn.Sequential(
            nn.Linear(flat, 2048), nn.BatchNorm1d(2048), nn.ReLU(True), nn.Linear(2048, latent_size),
        )
        self.linear_dec = nn.Sequential(
            nn.Linear(latent_size, 2048), nn.BatchNorm1d(2048), nn.ReLU(True), nn.Linear(2048, flat),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(c4, c3, 4, 2, 1, bias=False), nn.BatchNorm2d(c3), nn.ReLU(True),
            nn.ConvTranspose2d(c3, c2, 4, 2, 1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(True),
            nn.ConvTranspose2d(c2, c1, 4, 2, 1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(True),
            nn.ConvTranspose2d(c1, out_channels, 4, 2, 1, bias=False),
        )

        self.memory = Memory(mem_slots, latent_size) if mem_slots else None

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        """Reconstruction [B, out_channels, H, W]; with ``return_attention`` (MemAE) also the
        memory attention [B, slots]."""
        z = self.encoder(x).flatten(1)
        z = self.linear_enc(z)
        att = None
        if self.memory is not None:
            z, att = self.memory(z)
        h = self.linear_dec(z).view(x.shape[0], self.c4, self.fm, self.fm)
        out = self.decoder(h)
        return (out, att) if return_attention else out
