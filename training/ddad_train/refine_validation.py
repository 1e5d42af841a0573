"""Label-free validation of the refiners: how well they find fresh synthetic anomalies.

The training loss does not show a collapsed refiner (issue 18: a seed whose R_intra scored
AUC 0.53 ended with the same loss as one that scored 0.88). What can be measured without a
single label is whether the refined map ranks the pixels of synthetic anomalies above
normal pixels better than the map it refines does: the refiner's whole job. These figures
are measured on the known-normal training images given fresh synthetic anomalies (a stream
of their own: none of them was a training example), stored in the bundle's manifest and
printed by ``ddad-rt info``. They check the refiner against its own training task; the test
labels of real anomalies are never used.
"""

from __future__ import annotations

import numpy as np
import torch
from ddad_rt.metrics import roc_auc

from ddad_train.models.refine import REFINER_INPUTS, RefineNet

#: At most this many images (each given a synthetic anomaly with probability 0.5).
VALIDATION_IMAGES = 512


def refiner_input(maps: dict[str, np.ndarray], name: str) -> torch.Tensor:
    """The maps refiner ``name`` reads, as its input tensor [N, C, H, W]."""
    return torch.from_numpy(np.stack([maps[k] for k in REFINER_INPUTS[name]], axis=1))


def anomaly_probability(net: RefineNet, inputs: torch.Tensor, batch: int = 64) -> np.ndarray:
    """The refiner's per-pixel anomaly probability [N, H, W] (eval mode, fp32: as exported)."""
    was_training = net.training
    net.eval()
    with torch.no_grad():
        parts = [torch.softmax(net(inputs[i:i + batch]).float(), dim=1)[:, 1]
                 for i in range(0, len(inputs), batch)]
    net.train(was_training)
    return torch.cat(parts).numpy()


def ranking_figures(labels: np.ndarray, maps: np.ndarray) -> dict[str, float]:
    """Pixel AUROC (anomaly pixels vs every other pixel) and image AUROC (the map's mean;
    images with an anomaly vs without) of one map kind [N, H, W]."""
    image_labels = labels.reshape(len(labels), -1).max(axis=1)
    return {"pixel_auc": roc_auc(labels.ravel(), maps.ravel()),
            "image_auc": roc_auc(image_labels, maps.reshape(len(maps), -1).mean(axis=1))}


def validation_figures(nets: dict[str, RefineNet], maps: dict[str, np.ndarray],
                       labels: np.ndarray) -> dict:
    """The manifest's ``training.refine_validation``: figures of the input maps and of each
    refiner on the same synthetic anomalies, and whether each refiner looks collapsed (its
    refined map ranks the anomalous pixels no better than the best map it reads)."""
    inputs = {k: ranking_figures(labels, v) for k, v in maps.items()}
    refiners = {}
    for name, net in nets.items():
        figures = ranking_figures(labels, anomaly_probability(net, refiner_input(maps, name)))
        best = max(inputs[k]["pixel_auc"] for k in REFINER_INPUTS[name])
        refiners[name] = {**figures, "input_pixel_auc": best,
                          "collapsed": bool(figures["pixel_auc"] <= best)}
    return {"images": len(labels), "anomalous_images": int(labels.any(axis=(1, 2)).sum()),
            "maps": inputs, "refiners": refiners}


def collapse_warnings(figures: dict) -> list[str]:
    """One sentence per refiner that looks collapsed, naming the figures and the remedy."""
    out = []
    for name, f in figures.get("refiners", {}).items():
        if f["collapsed"]:
            out.append(
                f"R_{name} looks collapsed: on {figures['images']} training images with fresh "
                f"synthetic anomalies its refined map ranks the anomalous pixels no better than "
                f"its input does (pixel AUROC {f['pixel_auc']:.3f} vs {f['input_pixel_auc']:.3f}). "
                f"Its score ('r_{name}') may be near chance: retrain it with another --seed "
                "(`ddad-rt refine`), or screen with another score (--score inter).")
    return out
