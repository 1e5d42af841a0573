"""Training configuration (defaults: the paper's AE setting for 64x64 images)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass
class TrainConfig:
    """Everything that determines a training run (stored in the bundle's manifest).

    Attributes:
        data: dataset folder (Med-AD layout or plain ``normal/`` + ``unlabeled/``).
        out: output bundle directory.
        backbone: "ae" (AE-U and MemAE come with the full method).
        k: members per module (NDM and UDM each).
        image_size: square model input size (multiple of 16).
        latent_size: bottleneck size.
        mp: width multiplier.
        n: unlabeled pool size (Med-AD; None = whole pool).
        ar: pool anomaly rate (Med-AD; None = the pool's own).
        epochs: AE epochs per module.
        batch_size: AE batch size (drop last).
        lr: Adam learning rate (betas 0.5, 0.999).
        weight_decay: Adam weight decay.
        seed: master seed; member initialisation and data order derive from it.
        threads: torch CPU threads (0 = torch's default).
    """

    data: str = ""
    out: str = ""
    backbone: str = "ae"
    k: int = 3
    image_size: int = 64
    latent_size: int = 16
    mp: float = 1.0
    n: int | None = None
    ar: float | None = None
    epochs: int = 250
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.0
    seed: int = 0
    threads: int = 0

    def validate(self) -> None:
        """Raises ValueError naming the first bad field."""
        if self.backbone != "ae":
            msg = f"backbone {self.backbone!r} is not available yet; use 'ae'"
            raise ValueError(msg)
        if self.k < 2:
            msg = f"k must be >= 2 (A_intra is a standard deviation over members), got {self.k}"
            raise ValueError(msg)
        if self.image_size < 16 or self.image_size % 16:
            msg = f"image_size must be a positive multiple of 16, got {self.image_size}"
            raise ValueError(msg)
        for name in ("epochs", "batch_size", "latent_size"):
            if getattr(self, name) < 1:
                msg = f"{name} must be >= 1, got {getattr(self, name)}"
                raise ValueError(msg)
        if self.lr <= 0:
            msg = f"lr must be > 0, got {self.lr}"
            raise ValueError(msg)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
