"""ASR's refinement network and its loss, as in the authors' code (models/refine_net.py,
models/losses.py)."""

from __future__ import annotations

import torch
from torch import nn

#: R_dual reads [A_inter, A_intra]; R_intra reads [A_intra].
REFINER_INPUTS = {"dual": ("inter", "intra"), "intra": ("intra",)}


class RefineNet(nn.Module):
    """Refines anomaly maps into per-pixel logits (normal, anomalous).

    Conv3x3(C->128), BN, ReLU, Conv3x3(128->128), BN, ReLU, Conv3x3(128->2); padding 1.

    Args:
        in_channels: 2 for R_dual ([A_inter, A_intra]), 1 for R_intra ([A_intra]).
        mid_channels: hidden width (128 in the paper).

    Example:
        >>> RefineNet(2)(torch.zeros(1, 2, 64, 64)).shape
        torch.Size([1, 2, 64, 64])
    """

    def __init__(self, in_channels: int, mid_channels: int = 128) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.model = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, 3, 1, 1), nn.BatchNorm2d(mid_channels), nn.ReLU(),
            nn.Conv2d(mid_channels, mid_channels, 3, 1, 1), nn.BatchNorm2d(mid_channels), nn.ReLU(),
            nn.Conv2d(mid_channels, 2, 3, 1, 1),
        )

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.model(maps)


def focal_loss(prob: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
               smooth: float = 1e-5) -> torch.Tensor:
    """The authors' focal loss on softmax probabilities, with label smoothing.

    Args:
        prob: softmax output [N, 2, H, W].
        target: pixel labels {0, 1} [N, H, W].
        gamma: focusing parameter (2 in the paper).
        smooth: label smoothing (1e-5 in the paper); also added to p_t before the log.
    """
    num_class = prob.shape[1]
    p = prob.permute(0, 2, 3, 1).reshape(-1, num_class)
    one_hot = torch.nn.functional.one_hot(target.reshape(-1).long(), num_class).to(p.dtype)
    one_hot = one_hot.clamp(smooth / (num_class - 1), 1.0 - smooth)
    pt = (one_hot * p).sum(dim=1) + smooth
    return (-torch.pow(1 - pt, gamma) * pt.log()).mean()
