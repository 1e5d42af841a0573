"""Training configuration: defaults are the paper's BrainTumor AE setting (64x64, K=3).

Per-benchmark settings live in YAML files (``ddad_train/configs/*.yaml``, by name or path);
every field can be overridden, from Python or from the command line.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from ddad_rt.errors import InputError

BACKBONES = ("ae", "ae-u", "memae")
REFINERS = ("dual", "intra")
PRECISIONS = ("fp32", "bf16")
REFINE_MODES = ("swa", "paper")
ANOMALY_KINDS = ("patch", "intensity")
CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass
class TrainConfig:
    """Everything that determines a training run (stored in the bundle's manifest).

    Attributes:
        data: dataset folder (Med-AD layout or plain ``normal/`` + ``unlabeled/``).
        out: output bundle directory.
        backbone: "ae", "ae-u" (mean and log-variance) or "memae" (memory on the latent).
        k: members per module (NDM and UDM each).
        image_size: square model input size (multiple of 16).
        latent_size: bottleneck size.
        mp: width multiplier.
        mem_slots: MemAE memory size.
        entropy_weight: MemAE's weight of the attention-entropy loss.
        n: unlabeled pool size (Med-AD; None = whole pool).
        ar: pool anomaly rate (Med-AD; None = the pool's own).
        epochs: AE epochs per module.
        batch_size: AE batch size (drop last).
        lr: Adam learning rate (betas 0.5, 0.999).
        weight_decay: Adam weight decay.
        refiners: ASR networks to train: "dual" (R_dual) and/or "intra" (R_intra); empty for none.
        refine_epochs: epochs of each refinement network.
        refine_batch_size: refinement batch size (drop last).
        refine_lr: refinement Adam learning rate (betas 0.5, 0.999).
        refine_weight_decay: refinement Adam weight decay.
        refine_mode: which refiner weights are exported: "swa" (default), the average of the
            weights after every epoch with batch norm recalibrated, which does not depend on
            where the last epoch happened to leave the weights; or "paper", the last epoch's
            weights, as the authors' code (for fidelity runs).
        refine_anomalies: the synthetic anomalies the refiners learn from, comma-separated:
            "patch" (the authors': a blended square of another normal image) and/or
            "intensity" (a soft-edged ellipse made brighter or darker). Intensity anomalies
            lift R_intra on the synthetic demo data but lowered it on brain MRI
            (benchmarks/results/refine_stability/): patches alone are the default.
        seed: master seed; member initialisation, data order and synthetic anomalies derive from it.
        threads: torch and engine CPU threads (0 = all cores).
        precision: training arithmetic: "fp32", or "bf16" (convolutions and matrix products
            autocast to bfloat16, weights and optimiser state stay fp32; faster only on CPUs
            with native bf16). Bundles are exported in fp32 either way.
        checkpoint_dir: where checkpoints go ("" = ``<out>.ckpt`` beside the bundle).
        modality: the DICOM Modality of the training images (e.g. "MR", "CT", "US"; several
            separated by commas, e.g. "CR,DX"); screening refuses DICOM files of another
            modality. "" = not stated.
    """

    data: str = ""
    out: str = ""
    backbone: str = "ae"
    k: int = 3
    image_size: int = 64
    latent_size: int = 16
    mp: float = 1.0
    mem_slots: int = 25
    entropy_weight: float = 0.0002
    n: int | None = None
    ar: float | None = None
    epochs: int = 250
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.0
    refiners: list[str] = field(default_factory=lambda: ["dual", "intra"])
    refine_epochs: int = 100
    refine_batch_size: int = 8
    refine_lr: float = 1e-4
    refine_weight_decay: float = 1e-4
    refine_mode: str = "swa"
    refine_anomalies: str = "patch"
    seed: int = 0
    threads: int = 0
    precision: str = "fp32"
    checkpoint_dir: str = ""
    modality: str = ""

    def validate(self) -> None:
        """Raises ValueError naming the first bad field."""
        if self.backbone not in BACKBONES:
            msg = f"backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}"
            raise InputError(msg)
        if self.k < 2:
            msg = f"k must be >= 2 (A_intra is a standard deviation over members), got {self.k}"
            raise InputError(msg)
        if self.image_size < 16 or self.image_size % 16:
            msg = f"image_size must be a positive multiple of 16, got {self.image_size}"
            raise InputError(msg)
        for name in ("epochs", "batch_size", "latent_size", "mem_slots", "refine_epochs",
                     "refine_batch_size"):
            if getattr(self, name) < 1:
                msg = f"{name} must be >= 1, got {getattr(self, name)}"
                raise InputError(msg)
        for name in ("lr", "refine_lr"):
            if getattr(self, name) <= 0:
                msg = f"{name} must be > 0, got {getattr(self, name)}"
                raise InputError(msg)
        bad = [r for r in self.refiners if r not in REFINERS]
        if bad or len(set(self.refiners)) != len(self.refiners):
            msg = f"refiners must be a subset of {', '.join(REFINERS)} without repeats, got {self.refiners}"
            raise InputError(msg)
        if self.refine_mode not in REFINE_MODES:
            msg = f"refine_mode must be one of {', '.join(REFINE_MODES)}, got {self.refine_mode!r}"
            raise InputError(msg)
        kinds = self.refine_anomalies.split(",")
        if any(k not in ANOMALY_KINDS for k in kinds) or len(set(kinds)) != len(kinds):
            msg = (f"refine_anomalies must be a comma-separated subset of {', '.join(ANOMALY_KINDS)}, "
                   f"got {self.refine_anomalies!r}")
            raise InputError(msg)
        if self.precision not in PRECISIONS:
            msg = f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            raise InputError(msg)
        if self.ar is not None and not 0.0 <= self.ar <= 1.0:
            msg = f"ar (pool anomaly rate) must be in [0, 1], got {self.ar}"
            raise InputError(msg)

    def anomaly_kinds(self) -> tuple[str, ...]:
        """The synthetic anomaly kinds of ``refine_anomalies``, in order."""
        return tuple(self.refine_anomalies.split(","))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def checkpoint_path(self) -> Path:
        """The checkpoint folder of this run."""
        if self.checkpoint_dir:
            return Path(self.checkpoint_dir)
        if not self.out:
            msg = "TrainConfig.out (the bundle directory to write) is required"
            raise InputError(msg)
        out = Path(self.out)
        return out.with_name(out.name + ".ckpt")

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> TrainConfig:
        """Loads a YAML config (a path, or the name of a built-in one such as "brain_tumor"),
        then applies ``overrides``. Unknown keys are errors, not silently ignored."""
        import yaml

        p = resolve_config(path)
        raw = yaml.safe_load(p.read_text()) or {}
        if not isinstance(raw, dict):
            msg = f"{p}: a config is a mapping of field: value, got {type(raw).__name__}"
            raise InputError(msg)
        try:
            return cls.from_yaml_values({**raw, **overrides})
        except ValueError as e:
            msg = f"{p}: {e}"
            raise InputError(msg) from None


    @classmethod
    def from_yaml_values(cls, values: dict) -> TrainConfig:
        """A config from field: value pairs as YAML or the command line give them (strings
        are converted to each field's type)."""
        hints = typing.get_type_hints(cls)
        names = set(hints)
        unknown = sorted(set(values) - names)
        if unknown:
            msg = f"unknown config field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
            raise InputError(msg)
        return cls(**{k: coerce(k, hints[k], v) for k, v in values.items()})


def builtin_configs() -> list[str]:
    """Names of the built-in configs (the paper's benchmarks)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_config(path: str | Path) -> Path:
    p = Path(path)
    if p.is_file():
        return p
    builtin = CONFIG_DIR / f"{path}.yaml"
    if builtin.is_file():
        return builtin
    msg = f"config {path!r} is neither a file nor a built-in config ({', '.join(builtin_configs())})"
    raise FileNotFoundError(msg)


def coerce(name: str, hint, value):
    """Converts a YAML or command-line value to the field's type, or raises ValueError."""
    args = typing.get_args(hint)
    optional = (typing.get_origin(hint) in (typing.Union, types.UnionType)) and type(None) in args
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        msg = f"{name} cannot be empty"
        raise InputError(msg)
    base = next(a for a in args if a is not type(None)) if optional else hint
    try:
        if typing.get_origin(base) is list:
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip() and v.strip() != "none"]
            return [str(v) for v in value]
        if base is bool:
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        if base is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return base(value)
    except (TypeError, ValueError):
        msg = f"{name} must be {getattr(base, '__name__', base)}, got {value!r}"
        raise InputError(msg) from None
