"""The plain autoencoder of DDAD (one ensemble member), as in the authors' code.

This is the reference definition of a member: ``BatchedAE`` packs several of these into one
model for training and export, and the tests check the two agree.
"""

from __future__ import annotations

import torch
from torch import nn


def channels(mp: float) -> tuple[int, int, int, int]:
    """Encoder widths 16, 32, 64, 64 times the width multiplier ``mp``."""
    return int(16 * mp), int(32 * mp), int(64 * mp), int(64 * mp)


class AE(nn.Module):
    """Convolutional autoencoder: 4 strided convs, a 2-layer MLP bottleneck, 4 transposed convs.

    Args:
        latent_size: size of the bottleneck code (16 in the paper).
        mp: width multiplier of the convolutional channels.
        image_size: square input size, a multiple of 16.
        out_channels: 1 for the AE; 2 (mean, log-variance) for AE-U.

    Example:
        >>> ae = AE(latent_size=16, image_size=64)
        >>> ae(torch.zeros(2, 1, 64, 64)).shape
        torch.Size([2, 1, 64, 64])
    """

    def __init__(self, latent_size: int = 16, mp: float = 1, image_size: int = 64,
                 out_channels: int = 1) -> None:
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x).flatten(1)
        z = self.linear_enc(z)
        h = self.linear_dec(z).view(x.shape[0], self.c4, self.fm, self.fm)
        return self.decoder(h)
