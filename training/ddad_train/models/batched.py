"""K ensemble members as one model: one forward/backward trains all of them.

Convolutions become grouped convolutions (group g = member g), linear layers become batched
matrix products and BatchNorm runs over the members' concatenated channels, so every member
keeps its own weights, BatchNorm statistics and optimiser state - the members are exactly as
independent as K separate models, only computed together. The same module, with all 2K
members of UDM and NDM, is what ``ddad_train.export`` writes to ONNX.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ddad_train.models.ae import AE, channels


class GroupedLinear(nn.Module):
    """``groups`` independent Linear layers applied to x of shape [B, groups, in]."""

    def __init__(self, groups: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(groups, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(groups, out_features))
        # Values are always packed from plain members (see BatchedAE.from_members).
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [G, B, in] @ [G, in, out] + [G, 1, out] -> [G, B, out] -> [B, G, out]
        y = torch.baddbmm(self.bias.unsqueeze(1), x.transpose(0, 1), self.weight)
        return y.transpose(0, 1)


class GroupedMemory(nn.Module):
    """``groups`` independent MemAE memories applied to codes z of shape [B, groups, features]."""

    def __init__(self, groups: int, slots: int, features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(groups, slots, features))  # packed from members

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zg = z.transpose(0, 1)  # [G, B, C]
        att = torch.softmax(torch.bmm(zg, self.weight.transpose(1, 2)), dim=-1)  # [G, B, M]
        return torch.bmm(att, self.weight).transpose(0, 1), att.transpose(0, 1)


class GroupedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d over [B, groups, features]: statistics per member and feature."""

    def __init__(self, groups: int, features: int) -> None:
        super().__init__(groups * features)
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        return super().forward(x.reshape(b, -1)).view(b, self.groups, -1)


class BatchedAE(nn.Module):
    """``members`` AEs computed as one network.

    Input: [B, members, H, W] (member g reconstructs channel g - each member may see
    different images) or [B, 1, H, W] (all members see the same image; used at inference).
    Output: [B, members * out_channels, H, W], member-major; with ``return_attention``
    (MemAE) also the memory attention [B, members, slots].
    """

    def __init__(self, members: int, latent_size: int = 16, mp: float = 1, image_size: int = 64,
                 out_channels: int = 1, mem_slots: int | None = None) -> None:
        super().__init__()
        g = members
        self.members = g
        self.latent_size = latent_size
        self.mp = mp
        self.image_size = image_size
        self.out_channels = out_channels
        self.mem_slots = mem_slots
        c1, c2, c3, c4 = channels(mp)
        self.c4 = c4
        self.fm = image_size // 16
        flat = c4 * self.fm * self.fm

        def conv(cin: int, cout: int) -> nn.Conv2d:
            return nn.Conv2d(g * cin, g * cout, 4, 2, 1, bias=False, groups=g)

        def deconv(cin: int, cout: int) -> nn.ConvTranspose2d:
            return nn.ConvTranspose2d(g * cin, g * cout, 4, 2, 1, bias=False, groups=g)

        self.encoder = nn.Sequential(
            conv(1, c1), nn.BatchNorm2d(g * c1), nn.ReLU(True),
            conv(c1, c2), nn.BatchNorm2d(g * c2), nn.ReLU(True),
            conv(c2, c3), nn.BatchNorm2d(g * c3), nn.ReLU(True),
            conv(c3, c4), nn.BatchNorm2d(g * c4), nn.ReLU(True),
        )
        self.linear_enc = nn.Sequential(
            GroupedLinear(g, flat, 2048), GroupedBatchNorm1d(g, 2048), nn.ReLU(True),
            GroupedLinear(g, 2048, latent_size),
        )
        self.linear_dec = nn.Sequential(
            GroupedLinear(g, latent_size, 2048), GroupedBatchNorm1d(g, 2048), nn.ReLU(True),
            GroupedLinear(g, 2048, flat),
        )
        self.decoder = nn.Sequential(
            deconv(c4, c3), nn.BatchNorm2d(g * c3), nn.ReLU(True),
            deconv(c3, c2), nn.BatchNorm2d(g * c2), nn.ReLU(True),
            deconv(c2, c1), nn.BatchNorm2d(g * c1), nn.ReLU(True),
            deconv(c1, out_channels),
        )
        self.memory = GroupedMemory(g, mem_slots, latent_size) if mem_slots else None

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        b = x.shape[0]
        first = self.encoder[0]
        if x.shape[1] == 1 and self.members > 1:
            # Shared input: an ordinary convolution with all members' filters stacked has
            # the same weight tensor as the grouped one and needs no copies of the image.
            h = F.conv2d(x, first.weight, stride=2, padding=1)
        elif x.shape[1] == self.members:
            h = first(x)
        else:
            msg = f"expected input with 1 or {self.members} channels, got shape {tuple(x.shape)}"
            raise ValueError(msg)
        h = self.encoder[1:](h)
        z = self.linear_enc(h.reshape(b, self.members, -1))
        att = None
        if self.memory is not None:
            z, att = self.memory(z)
        h = self.linear_dec(z).reshape(b, self.members * self.c4, self.fm, self.fm)
        out = self.decoder(h)
        return (out, att) if return_attention else out

    # --- packing plain members ----------------------------------------------------------
    def _stacked_kind(self, key: str) -> str | None:
        """"linear" (stored transposed), "memory" (stacked as is) or None (concatenated)."""
        module = self.get_submodule(key.rsplit(".", 1)[0])
        if isinstance(module, GroupedLinear):
            return "linear"
        if isinstance(module, GroupedMemory):
            return "memory"
        return None

    @classmethod
    def from_members(cls, members: Sequence[AE], *, latent_size: int, mp: float,
                     image_size: int, out_channels: int = 1,
                     mem_slots: int | None = None) -> BatchedAE:
        """Packs plain members (weights and BatchNorm state) into one batched model."""
        model = cls(len(members), latent_size, mp, image_size, out_channels, mem_slots)
        states = [m.state_dict() for m in members]
        packed = {}
        for key in model.state_dict():
            parts = [s[key] for s in states]
            kind = model._stacked_kind(key)
            if key.endswith("num_batches_tracked"):
                packed[key] = parts[0].clone()
            elif kind == "linear":
                # nn.Linear stores [out, in]; GroupedLinear stores [G, in, out].
                packed[key] = torch.stack([p.t() if p.dim() == 2 else p for p in parts])
            elif kind == "memory":
                packed[key] = torch.stack(parts)
            else:
                packed[key] = torch.cat(parts, dim=0)
        model.load_state_dict(packed)
        return model

    def member(self, index: int) -> AE:
        """Unpacks member ``index`` as a plain AE (weights and BatchNorm state copied)."""
        if not 0 <= index < self.members:
            msg = f"member index {index} out of range [0, {self.members})"
            raise IndexError(msg)
        ae = AE(self.latent_size, self.mp, self.image_size, self.out_channels, self.mem_slots)
        state = {}
        for key, value in self.state_dict().items():
            kind = self._stacked_kind(key)
            if key.endswith("num_batches_tracked"):
                state[key] = value.clone()
            elif kind is not None:
                v = value[index]
                state[key] = (v.t() if kind == "linear" and v.dim() == 2 else v).clone()
            else:
                state[key] = value.chunk(self.members, dim=0)[index].clone()
        ae.load_state_dict(state)
        return ae

    def config(self) -> dict:
        """Constructor arguments (without ``members``)."""
        return {"latent_size": self.latent_size, "mp": self.mp, "image_size": self.image_size,
                "out_channels": self.out_channels, "mem_slots": self.mem_slots}

    def split_members(self) -> list[AE]:
        """All members as plain AEs."""
        return [self.member(i) for i in range(self.members)]
