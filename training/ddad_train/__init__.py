"""ddad_train: the PyTorch side of ddad_rt - DDAD models, training and export to bundles.

Needs the ``[train]`` extra (torch, onnx). The inference library ``ddad_rt`` never imports it.
"""

from ddad_train.config import TrainConfig
from ddad_train.pipeline import train

__all__ = ["TrainConfig", "train"]
