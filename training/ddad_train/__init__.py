"""ddad_train: the PyTorch side of ddad_rt - DDAD-ASR models, training and export to bundles.

Needs the ``[train]`` extra (torch, onnx, pyyaml). The inference library ``ddad_rt`` never
imports it. Attributes load lazily, so ``ddad_train.config`` is importable without torch
(the CLI builds its options from it).
"""

from __future__ import annotations

__all__ = ["TrainConfig", "train"]


def __getattr__(name: str):
    if name == "TrainConfig":
        from ddad_train.config import TrainConfig

        return TrainConfig
    if name == "train":
        from ddad_train.pipeline import train

        return train
    msg = f"module 'ddad_train' has no attribute {name!r}"
    raise AttributeError(msg)
