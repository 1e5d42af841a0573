"""A small, untrained bundle for the reliability runs (sanitizers, leak check, fuzzing):
AE ensemble K=3 at 32x32 with half-width members, R_dual and R_intra, seeded. Built with
ddad_train's export, as a trained bundle is; its numbers mean nothing, its shapes and code
paths are the real ones.

    python tests/reliability/tiny_bundle.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path


def make(out: Path) -> Path:
    import torch
    from ddad_train.config import TrainConfig
    from ddad_train.export import add_refiners, export_bundle
    from ddad_train.models import AE, BatchedAE, RefineNet

    torch.manual_seed(0)
    cfg = {"latent_size": 16, "mp": 0.5, "image_size": 32}
    members = [AE(**cfg).eval() for _ in range(6)]
    udm = BatchedAE.from_members(members[:3], **cfg)
    ndm = BatchedAE.from_members(members[3:], **cfg)
    train_cfg = TrainConfig(image_size=32, k=3, mp=0.5, refiners=["dual", "intra"]).to_dict()
    training = {"seed": 0, "note": "reliability bundle: initialised, not trained"}
    maps = out.with_name(out.name + "_maps")
    export_bundle(udm, ndm, maps, config=train_cfg, training=training, force=True)
    add_refiners(maps, out, {"dual": RefineNet(2).eval(), "intra": RefineNet(1).eval()},
                 config=train_cfg, training={}, force=True)
    return out


if __name__ == "__main__":
    print(make(Path(sys.argv[1])))
