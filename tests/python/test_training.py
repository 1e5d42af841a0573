"""Batched training keeps the K members independent models, for every backbone."""

import numpy as np
import pytest
import torch
from ddad_train.config import TrainConfig
from ddad_train.models import AE, BatchedAE, attention_entropy
from ddad_train.trainer import init_members, member_losses, model_kwargs, train_module

BACKBONES = ["ae", "ae-u", "memae"]

#: Adam's epsilon in the step-equivalence tests. Adam is elementwise, so a batched step equals
#: K separate steps for any epsilon; but at the default 1e-8 the first step, lr * g / (|g| + eps),
#: turns a rounding-level difference in a gradient near 1e-8 into a weight difference of a
#: sizeable fraction of lr (6e-5 seen on an AMX CPU, whose oneDNN kernels sum the grouped and
#: the separate convolutions' gradients in different orders). At 1e-3 the step is a smooth
#: function of the gradient, so the comparison tests the equivalence, not the rounding.
WELL_CONDITIONED_EPS = 1e-3
#: The weights after that step may then differ by the gradients' rounding times lr / eps:
#: up to 1.2e-5 seen (MemAE, whose attention softmax amplifies it), against an lr of 5e-4.
STEP_ATOL = 3e-5


def plain_loss(member: AE, x: torch.Tensor, backbone: str) -> torch.Tensor:
    """One member's loss as the authors' trainers write it (AE_trainer, MemAE_trainer)."""
    if backbone == "memae":
        out, att = member(x, return_attention=True)
        ent = -(att * torch.log(att + 1e-12)).sum(dim=1).mean()
        return ((out - x) ** 2).mean() + 0.0002 * ent
    out = member(x)
    if backbone == "ae-u":
        mean, logvar = out.chunk(2, 1)
        return torch.mean(torch.exp(-logvar) * (mean - x) ** 2) + torch.mean(logvar)
    return ((out - x) ** 2).mean()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_batched_backbone_equals_members_forward_and_one_adam_step(backbone):
    """Same init, same data: the batched forward equals each member's, and one batched Adam
    step on the summed per-member losses equals K separate steps (weights and BN state)."""
    cfg = TrainConfig(backbone=backbone, k=3, image_size=32, seed=2)
    members = init_members(cfg, "ndm")
    bm = BatchedAE.from_members(members, **model_kwargs(cfg))
    torch.manual_seed(1)
    x = torch.randn(8, 3, 32, 32)
    oc = 2 if backbone == "ae-u" else 1
    with torch.no_grad():
        out = bm(x)
        for g, m in enumerate(members):
            # Grouped and separate convolutions sum in different orders: up to ~1e-5 apart
            # in fp32 (MemAE, AMX CPU); a member mixed up with another is off by ~0.1.
            torch.testing.assert_close(out[:, g * oc:(g + 1) * oc], m(x[:, g:g + 1]),
                                       rtol=1e-5, atol=5e-5)
    opt = torch.optim.Adam(bm.parameters(), lr=5e-4, betas=(0.5, 0.999), eps=WELL_CONDITIONED_EPS)
    losses = member_losses(bm, x, cfg)
    opt.zero_grad()
    losses.sum().backward()
    opt.step()
    for g, m in enumerate(members):
        o = torch.optim.Adam(m.parameters(), lr=5e-4, betas=(0.5, 0.999), eps=WELL_CONDITIONED_EPS)
        o.zero_grad()
        loss = plain_loss(m, x[:, g:g + 1], backbone)
        torch.testing.assert_close(losses[g], loss, rtol=1e-5, atol=1e-6)
        loss.backward()
        o.step()
        unpacked = bm.member(g).state_dict()
        for k, v in m.state_dict().items():
            torch.testing.assert_close(unpacked[k], v, rtol=1e-5, atol=STEP_ATOL, msg=k)


def test_memae_memory_is_the_papers():
    cfg = TrainConfig(backbone="memae", image_size=32)
    m = init_members(cfg, "ndm")[0]
    assert tuple(m.memory.weight.shape) == (25, 16)
    out, att = m(torch.randn(4, 1, 32, 32), return_attention=True)
    assert att.shape == (4, 25)
    torch.testing.assert_close(att.sum(dim=1), torch.ones(4))
    assert attention_entropy(torch.full((2, 25), 1 / 25)).allclose(torch.tensor(np.log(25.0)).float())


def test_batched_forward_equals_each_member_in_train_and_eval_mode():
    torch.manual_seed(0)
    members = [AE(16, 1, 32) for _ in range(3)]
    bm = BatchedAE.from_members(members, latent_size=16, mp=1, image_size=32)
    x = torch.randn(8, 3, 32, 32)
    for mode in ("train", "eval"):
        for m in [bm, *members]:
            getattr(m, mode)()
        out = bm(x)
        for g, m in enumerate(members):
            torch.testing.assert_close(out[:, g], m(x[:, g:g + 1])[:, 0], rtol=1e-5, atol=1e-5)


def test_one_batched_step_equals_separate_steps():
    """Same data, same init: a batched Adam step = K separate Adam steps (weights and BN state)."""
    torch.manual_seed(0)
    members = [AE(16, 1, 32) for _ in range(3)]
    bm = BatchedAE.from_members(members, latent_size=16, mp=1, image_size=32)
    x = torch.randn(8, 3, 32, 32)
    opt = torch.optim.Adam(bm.parameters(), lr=5e-4, betas=(0.5, 0.999), eps=WELL_CONDITIONED_EPS)
    opt.zero_grad()
    ((bm(x) - x) ** 2).mean(dim=(0, 2, 3)).sum().backward()
    opt.step()
    for g, m in enumerate(members):
        o = torch.optim.Adam(m.parameters(), lr=5e-4, betas=(0.5, 0.999), eps=WELL_CONDITIONED_EPS)
        o.zero_grad()
        ((m(x[:, g:g + 1]) - x[:, g:g + 1]) ** 2).mean().backward()
        o.step()
        unpacked = bm.member(g).state_dict()
        for k, v in m.state_dict().items():
            torch.testing.assert_close(unpacked[k], v, rtol=1e-5, atol=STEP_ATOL)


def test_members_have_independent_init_and_data_order():
    cfg = TrainConfig(k=3, image_size=32, seed=7)
    a = init_members(cfg, "ndm")
    w = [m.encoder[0].weight for m in a]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    b = init_members(cfg, "udm")
    assert not torch.equal(a[0].encoder[0].weight, b[0].encoder[0].weight)
    again = init_members(cfg, "ndm")
    assert torch.equal(a[0].encoder[0].weight, again[0].encoder[0].weight)


def test_training_is_seeded_and_learns(rng):
    images = rng.integers(0, 256, (40, 32, 32), dtype=np.uint8)
    images[:] = images.mean(axis=0, keepdims=True).astype(np.uint8)  # learnable: one image
    cfg = TrainConfig(k=2, image_size=32, epochs=3, batch_size=8, seed=1, lr=1e-3)
    r1 = train_module(images, cfg, "ndm", progress=False)
    r2 = train_module(images, cfg, "ndm", progress=False)
    assert r1.losses == r2.losses
    assert np.mean(r1.losses[-1]) < np.mean(r1.losses[0])


def test_bf16_training_learns_like_fp32_and_keeps_fp32_weights(rng):
    images = rng.integers(0, 256, (40, 32, 32), dtype=np.uint8)
    images[:] = images.mean(axis=0, keepdims=True).astype(np.uint8)
    base = {"k": 2, "image_size": 32, "epochs": 3, "batch_size": 8, "seed": 1, "lr": 1e-3}
    full = train_module(images, TrainConfig(**base), "ndm", progress=False)
    half = train_module(images, TrainConfig(**base, precision="bf16"), "ndm", progress=False)
    assert np.mean(half.losses[-1]) < np.mean(half.losses[0])
    # Same seed and data order: bf16 rounding moves the losses a little, not the trend.
    np.testing.assert_allclose(half.losses, full.losses, rtol=0.1)
    assert all(p.dtype == torch.float32 for p in half.model.parameters())
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp16").validate()


TINY = ["--k", "2", "--image-size", "32", "--epochs", "1", "--batch-size", "16",
        "--refiners", "intra", "--refine-epochs", "1", "--threads", "1", "--seed", "4"]


def test_training_removes_only_what_it_wrote_and_never_replaces_a_bundle_silently(
        synth_data, tmp_path, capsys):
    """A user's --checkpoint-dir keeps its other files (was: removed wholesale, also by
    `refine`, which inherited the bundle's stored folder); an existing bundle, calibrated or
    not, is replaced only with --force."""
    import json

    from ddad_rt.cli import main

    mine = tmp_path / "my_checkpoints"
    mine.mkdir()
    (mine / "notes.txt").write_text("my own notes\n")
    (mine / "other_run").mkdir()
    bundle = tmp_path / "bundle"
    assert main(["train", "--data", str(synth_data), "--out", str(bundle),
                 "--checkpoint-dir", str(mine), *TINY]) == 0
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "other_run"]

    # `refine` checkpoints beside its own output, not in the folder the bundle records.
    refined = tmp_path / "refined"
    assert main(["refine", str(bundle), "--data", str(synth_data), "--out", str(refined),
                 "--refiners", "dual", "--refine-epochs", "1", "--threads", "1"]) == 0
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "other_run"]
    assert not (tmp_path / "refined.ckpt").exists()

    # An existing (here: calibrated) bundle is not silently replaced by a new model.
    m = json.loads((bundle / "manifest.json").read_text())
    m["operating_points"] = {"thresholds": {}}
    (bundle / "manifest.json").write_text(json.dumps(m))
    capsys.readouterr()
    assert main(["train", "--data", str(synth_data), "--out", str(bundle), *TINY]) == 2
    err = capsys.readouterr().err
    assert "already holds a bundle (calibrated)" in err and "--force" in err
    assert json.loads((bundle / "manifest.json").read_text())["operating_points"] == {"thresholds": {}}
    assert main(["refine", str(bundle), "--data", str(synth_data), "--out", str(bundle),
                 "--refiners", "dual", "--refine-epochs", "1"]) == 2
    assert main(["train", "--data", str(synth_data), "--out", str(bundle), *TINY, "--force"]) == 0
    assert "operating_points" not in json.loads((bundle / "manifest.json").read_text())
