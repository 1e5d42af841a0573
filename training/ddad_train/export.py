"""Export of trained modules to a bundle: one ONNX graph with all 2K members + manifest."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import torch
from torch import nn

from ddad_rt import bundle as bundle_io
from ddad_train.models import BatchedAE

OPSET = 18


class EnsembleGraph(nn.Module):
    """images [N,1,H,W] (network units) -> (udm [N,K,H,W], ndm [N,K,H,W])."""

    def __init__(self, udm: BatchedAE, ndm: BatchedAE) -> None:
        super().__init__()
        if udm.members != ndm.members:
            msg = f"UDM and NDM must have the same K, got {udm.members} and {ndm.members}"
            raise ValueError(msg)
        self.k = udm.members
        self.model = BatchedAE.from_members(
            udm.split_members() + ndm.split_members(), latent_size=udm.latent_size, mp=udm.mp,
            image_size=udm.image_size, out_channels=udm.out_channels)
        self.model.eval()

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(images)
        return out[:, : self.k], out[:, self.k:]


def export_onnx(graph: EnsembleGraph, path: str | Path, image_size: int) -> None:
    """Writes the ensemble graph to ONNX with a dynamic batch dimension."""
    example = torch.zeros(2, 1, image_size, image_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = torch.export.Dim("batch", min=1, max=4096)
        program = torch.onnx.export(
            graph, (example,), input_names=["images"], output_names=["udm", "ndm"],
            dynamic_shapes={"images": {0: batch}}, opset_version=OPSET, dynamo=True, verbose=False,
            external_data=False)
        program.save(str(path))


def export_bundle(udm: BatchedAE, ndm: BatchedAE, out_dir: str | Path, *, config: dict,
                  training: dict) -> Path:
    """Writes a bundle directory (ensemble.onnx + manifest.json) and returns its path.

    The bundle is assembled in a sibling temporary directory and renamed into place, so an
    interrupted export never leaves a half-written bundle under ``out_dir``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / bundle_io.MANIFEST).is_file():
        msg = f"{out_dir} exists and is not a bundle: choose a new or empty directory"
        raise FileExistsError(msg)
    tmp = out_dir.with_name(out_dir.name + ".tmp-export")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    graph = EnsembleGraph(udm, ndm)
    image_size = udm.image_size
    export_onnx(graph, tmp / "ensemble.onnx", image_size)
    manifest = {
        "backbone": config.get("backbone", "ae"),
        "k": graph.k,
        "image_size": [image_size, image_size],
        "channels": 1,
        "normalization": {"mean": 0.5, "std": 0.5,
                          "input": "uint8 / 255, uint16 / 65535 or float in [0, 1]"},
        "scores": ["rec", "intra", "inter"],
        "default_score": "inter",
        "graphs": {"ensemble": "ensemble.onnx"},
        "model": {"latent_size": udm.latent_size, "mp": udm.mp,
                  "members_order": "udm[0..K-1], ndm[0..K-1]"},
        "training": {"config": config, **training},
    }
    bundle_io.write_manifest(tmp, manifest)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir
