"""The default refinement mode (SWA: weight averaging, batch norm recalibrated) and the
refiners' label-free validation, each against an independent reference: torch's own
swa_utils, sklearn's AUROC, and a refiner built by hand to be better or worse than its input."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from ddad_train.models import RefineNet
from ddad_train.refine_average import (
    WeightAverage,
    averaged_refiner,
    recalibrate_batch_norm,
)
from ddad_train.refine_validation import (
    collapse_warnings,
    ranking_figures,
    validation_figures,
)
from sklearn.metrics import roc_auc_score


def perturb(net: torch.nn.Module, rng: torch.Generator) -> None:
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=rng))


def test_weight_average_is_the_mean_of_the_snapshots_and_survives_a_checkpoint():
    torch.manual_seed(0)
    net, rng = RefineNet(1, mid_channels=8), torch.Generator().manual_seed(1)
    avg, snapshots = WeightAverage(), []
    for _ in range(4):
        perturb(net, rng)
        avg.update(net)
        snapshots.append({k: v.detach().clone() for k, v in net.named_parameters()})
    restored = WeightAverage()
    restored.load_state_dict(copy.deepcopy(avg.state_dict()))
    for averaged in (avg.averaged(net), restored.averaged(net)):
        for name, p in averaged.named_parameters():
            expected = torch.stack([s[name] for s in snapshots]).mean(dim=0)
            torch.testing.assert_close(p, expected, rtol=1e-6, atol=1e-6)
    # The network being trained is not touched.
    for name, p in net.named_parameters():
        assert torch.equal(p, snapshots[-1][name])
    with pytest.raises(RuntimeError, match="no snapshot"):
        WeightAverage().averaged(net)


def test_batch_norm_recalibration_matches_torch_update_bn():
    torch.manual_seed(2)
    net = RefineNet(2, mid_channels=8)
    perturb(net, torch.Generator().manual_seed(3))
    batches = [torch.rand(4, 2, 16, 16) * scale for scale in (1.0, 2.0, 5.0)]
    ours = recalibrate_batch_norm(copy.deepcopy(net), batches)
    reference = copy.deepcopy(net)
    torch.optim.swa_utils.update_bn(batches, reference)
    assert not ours.training
    norms = [(a, b) for a, b in zip(ours.modules(), reference.modules(), strict=True)
             if isinstance(a, torch.nn.BatchNorm2d)]
    assert len(norms) == 2
    for a, b in norms:
        torch.testing.assert_close(a.running_mean, b.running_mean)
        torch.testing.assert_close(a.running_var, b.running_var)
        assert a.momentum == 0.1  # restored for any later training
    # The statistics really changed: they are no longer the initial (0, 1).
    assert float(norms[0][0].running_var.mean()) > 1.5


def test_averaged_refiner_leaves_the_average_and_the_net_alone():
    torch.manual_seed(4)
    net = RefineNet(1, mid_channels=8).train()
    avg = WeightAverage()
    avg.update(net)
    before = copy.deepcopy(net.state_dict())
    out = averaged_refiner(avg, net, [torch.rand(2, 1, 8, 8)])
    assert out is not net and not out.training and net.training
    for name, value in net.state_dict().items():
        assert torch.equal(value, before[name]), name


def mean_filter_refiner(gain: float) -> RefineNet:
    """A refiner whose anomaly logit is gain x (3x3 mean of A_inter), by hand: with batch
    norm at its initial statistics (mean 0, variance 1) each layer passes its input on."""
    net = RefineNet(2, mid_channels=4).eval()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for c in convs:
            c.weight.zero_()
            c.bias.zero_()
        convs[0].weight[0, 0] = 1.0 / 9.0  # every tap of A_inter: a 3x3 mean
        convs[1].weight[0, 0, 1, 1] = 1.0
        convs[2].weight[1, 0, 1, 1] = gain
    return net


def square_anomalies(n: int = 24, size: int = 16, seed: int = 0):
    """Labels with a square patch in every other image, and a noisy A_inter that sees it."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((n, size, size), np.uint8)
    for i in range(0, n, 2):
        r, c = rng.integers(2, size - 6, 2)
        labels[i, r:r + 5, c:c + 5] = 1
    inter = (0.6 * labels + rng.random(labels.shape)).astype(np.float32)
    intra = rng.random(labels.shape).astype(np.float32)
    return {"inter": inter, "intra": intra}, labels


def test_ranking_figures_are_sklearns_aurocs():
    maps, labels = square_anomalies()
    f = ranking_figures(labels, maps["inter"])
    assert f["pixel_auc"] == pytest.approx(roc_auc_score(labels.ravel(), maps["inter"].ravel()))
    image_labels = labels.any(axis=(1, 2))
    assert f["image_auc"] == pytest.approx(roc_auc_score(image_labels, maps["inter"].mean(axis=(1, 2))))


def test_a_refiner_that_improves_its_input_passes_and_a_constant_one_is_flagged():
    maps, labels = square_anomalies()
    good = validation_figures({"dual": mean_filter_refiner(8.0)}, maps, labels)
    g = good["refiners"]["dual"]
    assert g["input_pixel_auc"] == pytest.approx(good["maps"]["inter"]["pixel_auc"])
    assert g["pixel_auc"] > g["input_pixel_auc"] + 0.02 and not g["collapsed"]
    assert collapse_warnings(good) == []
    assert good["images"] == 24 and good["anomalous_images"] == 12

    bad = validation_figures({"dual": mean_filter_refiner(0.0)}, maps, labels)  # constant 0.5
    b = bad["refiners"]["dual"]
    assert b["pixel_auc"] == pytest.approx(0.5) and b["collapsed"]
    (message,) = collapse_warnings(bad)
    assert "R_dual looks collapsed" in message and "--seed" in message
