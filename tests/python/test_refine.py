"""ASR's pieces against the paper's definition: the synthetic anomaly generator, the focal
loss, and refinement training end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ddad_train.models import RefineNet, focal_loss
from ddad_train.refine import synthetic_anomaly, synthetic_batch


@pytest.mark.parametrize("size", [32, 64])
def test_synthetic_anomaly_is_a_blended_square_patch_of_another_image(size):
    rng = np.random.default_rng(0)
    images = rng.random((6, size, size), dtype=np.float32)
    lo_w, hi_w = round(0.05 * size), round(0.2 * size)
    lo_c, hi_c = int(0.1 * size), int(0.9 * size)
    seen_half = set()
    for trial in range(300):
        index = trial % len(images)
        out, label = synthetic_anomaly(images, index, rng)
        rows = np.flatnonzero(label.any(axis=1))
        cols = np.flatnonzero(label.any(axis=0))
        # The label is one axis-aligned rectangle (a square unless clipped at the border).
        assert label[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()
        assert label.sum() == len(rows) * len(cols)
        h, w = len(rows), len(cols)
        assert h % 2 == 0 and h // 2 < hi_w or rows[0] == 0 or rows[-1] == size - 1
        if 0 < rows[0] and rows[-1] < size - 1 and 0 < cols[0] and cols[-1] < size - 1:
            assert h == w and lo_w <= h // 2 < hi_w
            seen_half.add(h // 2)
            centre = (rows[0] + h // 2, cols[0] + w // 2)
            assert lo_c <= centre[0] < hi_c and lo_c <= centre[1] < hi_c
        # Outside the patch: untouched. Inside: (1 - a) x + a x_src for one source != index.
        np.testing.assert_array_equal(out[label == 0], images[index][label == 0])
        x, y = images[index][label == 1], out[label == 1]
        fits = []
        for j in range(len(images)):
            src = images[j][label == 1]
            if j == index:  # x_src = x would leave the patch unchanged
                continue
            a = np.dot(y - x, src - x) / np.dot(src - x, src - x)
            if np.allclose((1 - a) * x + a * src, y, atol=1e-5) and 0 <= a <= 1:
                fits.append(j)
        assert len(fits) == 1
    assert seen_half == set(range(lo_w, hi_w))  # every half-width occurs


def test_synthetic_batch_corrupts_about_half_and_is_seeded():
    images = np.random.default_rng(1).random((10, 32, 32), dtype=np.float32)
    idx = np.arange(10)
    rng = np.random.default_rng(7)
    n_anomalous = sum(synthetic_batch(images, idx, rng)[1].any(axis=(1, 2)).sum() for _ in range(100))
    assert 430 <= n_anomalous <= 570  # p = 0.5 over 1000 images (3 sd)
    a = synthetic_batch(images, idx, np.random.default_rng(3))
    b = synthetic_batch(images, idx, np.random.default_rng(3))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_focal_loss_matches_its_definition():
    torch.manual_seed(0)
    prob = torch.softmax(torch.randn(3, 2, 8, 8), dim=1)
    target = (torch.rand(3, 8, 8) > 0.7).long()
    # gamma 0, no smoothing: plain negative log-likelihood.
    torch.testing.assert_close(focal_loss(prob, target, gamma=0.0, smooth=0.0),
                               torch.nn.functional.nll_loss(prob.log(), target))
    # The paper's setting, pixel by pixel.
    p1 = prob[:, 1]
    pt = torch.where(target == 1, p1 * (1 - 1e-5) + (1 - p1) * 1e-5,
                     (1 - p1) * (1 - 1e-5) + p1 * 1e-5) + 1e-5
    expected = (-(1 - pt) ** 2 * pt.log()).mean()
    torch.testing.assert_close(focal_loss(prob, target), expected)


def test_refine_net_shape_and_paper_architecture():
    net = RefineNet(2)
    assert net(torch.zeros(2, 2, 32, 32)).shape == (2, 2, 32, 32)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (2, 128, (3, 3)), (128, 128, (3, 3)), (128, 2, (3, 3))]


def test_refiners_learn_from_synthetic_anomalies(trained):
    """Both refiners' focal loss falls over training. (Whether R_dual then beats A_inter is a
    question of a trained ensemble: test_cli_demo checks it on the demo, and the brain_tumor
    benchmark at the paper's budget; this fixture's 2-epoch autoencoders barely see the
    synthetic patches, so its refiners can only learn the patches' prior.)"""
    import ddad_rt

    manifest = ddad_rt.Engine(trained[0], device="cpu").manifest
    losses = manifest["training"]["losses"]
    for name in ("refine_dual", "refine_intra"):
        assert len(losses[name]) == 2 and np.all(np.isfinite(losses[name])), losses
        assert losses[name][1] < losses[name][0], (name, losses[name])


def test_measuring_along_the_epochs_changes_nothing(trained, synth_data):
    """``on_epoch`` (benchmarks/refine_stability.py follows the test AUC with it) is called after
    every epoch with the refiners as they would be exported then, and a callback that
    evaluates them leaves the training exactly as it would have been: the same weights and
    BatchNorm statistics, in both refinement modes."""
    from ddad_train.config import TrainConfig
    from ddad_train.pipeline import load_training_images
    from ddad_train.refine import train_refiners

    for mode in ("paper", "swa"):
        cfg = TrainConfig(data=str(synth_data), k=3, image_size=32, batch_size=16,
                          refiners=["dual"], refine_epochs=2, seed=7, threads=1, refine_mode=mode)
        normal, _, _ = load_training_images(cfg, progress=False)
        seen = []

        def evaluate(epoch: int, exported, seen=seen) -> None:
            net = exported()["dual"]
            seen.append((epoch, net.training))
            was_training = net.training
            net.eval()
            with torch.no_grad():
                net(torch.rand(4, 2, 32, 32))
            net.train(was_training)

        measured = train_refiners(normal, trained[0], cfg, progress=False, on_epoch=evaluate)
        plain = train_refiners(normal, trained[0], cfg, progress=False)
        # paper: the nets in training; swa: averaged copies, ready to export (eval mode).
        assert seen == [(1, mode == "paper"), (2, mode == "paper")]
        assert measured.losses == plain.losses
        assert measured.validation == plain.validation
        reference = plain.nets["dual"].state_dict()
        for name, value in measured.nets["dual"].state_dict().items():
            assert torch.equal(value, reference[name]), (mode, name)


def test_intensity_anomaly_is_a_soft_ellipse_labelled_where_the_image_changed():
    from ddad_train.synthetic_anomaly import intensity_anomaly

    rng = np.random.default_rng(5)
    images = rng.uniform(0.2, 0.8, (3, 32, 32)).astype(np.float32)
    signs = set()
    for _ in range(50):
        out, label = intensity_anomaly(images, 1, rng)
        diff = out - images[1]
        changed = np.abs(diff) > 1e-6
        assert label.any() and np.all(changed[label == 1])
        # One connected change of one sign, within the largest ellipse (semi-axes < 0.2 W).
        assert np.all(diff >= -1e-6) or np.all(diff <= 1e-6)
        assert changed.sum() < np.pi * (0.2 * 32) ** 2
        assert out.min() >= 0.0 and out.max() <= 1.0
        signs.add(int(np.sign(diff[changed].mean())))
    assert signs == {-1, 1}
    # Darkening a black background changes nothing: nothing is labelled.
    black = np.zeros((2, 32, 32), np.float32)
    labels = [intensity_anomaly(black, 0, rng)[1].sum() for _ in range(40)]
    assert 0 in labels and all(n == 0 or n > 4 for n in labels)


def test_mixed_anomaly_kinds_draw_both_and_the_patch_stream_is_the_authors():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (6, 24, 24)).astype(np.float32)
    idx = np.arange(6)
    # Only patches: exactly the draws of the authors' generator (fidelity runs).
    a = synthetic_batch(images, idx, np.random.default_rng(3))
    b = synthetic_batch(images, idx, np.random.default_rng(3), ("patch",))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    rng = np.random.default_rng(4)
    square = round_ = 0
    for _ in range(40):
        _, labels = synthetic_batch(images, idx, rng, ("patch", "intensity"))
        for lab in labels[labels.any(axis=(1, 2))]:
            rows, cols = np.nonzero(lab)
            box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
            square += box == lab.sum()
            round_ += box > lab.sum()
    assert square > 20 and round_ > 20
