"""Configs: the paper's per-benchmark YAML files, command-line overrides, clear errors."""

from __future__ import annotations

import pytest
from ddad_rt.cli import build_parser
from ddad_train.config import TrainConfig, builtin_configs


def test_builtin_configs_mirror_the_paper():
    assert builtin_configs() == ["brain_tumor", "lag", "rsna", "vindr_cxr"]
    pools = {"rsna": 4000, "vindr_cxr": 4000, "brain_tumor": 1000, "lag": 1500}
    for name, n in pools.items():
        cfg = TrainConfig.from_yaml(name)
        cfg.validate()
        assert (cfg.n, cfg.ar, cfg.image_size, cfg.k, cfg.latent_size, cfg.mp) == (n, 0.6, 64, 3, 16, 1.0)
        assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.weight_decay) == (250, 64, 5e-4, 0.0)
        assert (cfg.refine_epochs, cfg.refine_batch_size, cfg.refine_lr, cfg.refine_weight_decay) == (
            100, 8, 1e-4, 1e-4)
        assert cfg.refiners == ["dual", "intra"] and (cfg.mem_slots, cfg.entropy_weight) == (25, 0.0002)


def test_every_field_is_overridable_from_the_command_line():
    args = build_parser().parse_args([
        "train", "--config", "lag", "--backbone", "memae", "--epochs", "7", "--ar", "none",
        "--refiners", "intra", "--refine-lr", "2e-4", "--mp", "0.5"])
    import dataclasses

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if getattr(args, f.name) is not None}
    cfg = TrainConfig.from_yaml(args.config, **overrides)
    assert (cfg.backbone, cfg.epochs, cfg.ar, cfg.refiners, cfg.refine_lr, cfg.mp) == (
        "memae", 7, None, ["intra"], 2e-4, 0.5)
    assert cfg.n == 1500  # untouched fields keep the config's value
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    options = {a.dest for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions}
    assert fields <= options


def test_config_errors_name_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 10\nepoch_count: 3\n")
    with pytest.raises(ValueError, match="epoch_count"):
        TrainConfig.from_yaml(bad)
    with pytest.raises(ValueError, match="epochs must be int"):
        TrainConfig.from_yaml("lag", epochs="many")
    with pytest.raises(FileNotFoundError, match="brain_tumor"):
        TrainConfig.from_yaml("no_such_config")
    with pytest.raises(ValueError, match="backbone"):
        TrainConfig(backbone="vae").validate()
    with pytest.raises(ValueError, match="refiners"):
        TrainConfig(refiners=["dual", "both"]).validate()


def test_resume_accepts_checkpoints_from_before_a_field_existed(tmp_path):
    # A run checkpointed by an older ddad_train lacks fields added since (e.g. precision);
    # it used their defaults, so resuming it must work - and a real difference must not.
    import json

    from ddad_train.pipeline import RUN_FILE, _start_or_resume

    cfg = TrainConfig(data="d", out=str(tmp_path / "bundle"))
    ck = cfg.checkpoint_path()
    ck.mkdir(parents=True)
    old = {k: v for k, v in cfg.to_dict().items() if k != "precision"}
    (ck / RUN_FILE).write_text(json.dumps({"config": old}))
    assert _start_or_resume(cfg, resume=True) == ck
    cfg.precision = "bf16"
    with pytest.raises(ValueError, match="precision: checkpoint 'fp32', now 'bf16'"):
        _start_or_resume(cfg, resume=True)


@pytest.mark.parametrize(("field", "value", "needle"), [
    ("refine_mode", "ema", "refine_mode must be one of swa, paper"),
    ("refine_anomalies", "patch,blob", "refine_anomalies must be a comma-separated subset"),
    ("refine_anomalies", "patch,patch", "refine_anomalies must be"),
])
def test_refinement_choices_are_validated(field, value, needle):
    from ddad_rt.errors import InputError
    from ddad_train.config import TrainConfig

    with pytest.raises(InputError, match=needle):
        TrainConfig(**{field: value}).validate()
    assert TrainConfig(refine_anomalies="intensity,patch").anomaly_kinds() == ("intensity", "patch")
    # The default is the authors' patches (intensity anomalies lowered R_intra on brain MRI).
    assert TrainConfig().anomaly_kinds() == ("patch",)
    assert TrainConfig(refine_anomalies="").anomaly_kinds() == ("",)  # and validate refuses it:
    with pytest.raises(InputError, match="refine_anomalies must be"):
        TrainConfig(refine_anomalies="").validate()
