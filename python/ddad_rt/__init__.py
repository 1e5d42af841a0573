"""ddad_rt: anomaly detection in medical images with DDAD-ASR, scored by a C++ engine.

Example:
    >>> import ddad_rt
    >>> engine = ddad_rt.Engine("bundle/")                      # doctest: +SKIP
    >>> result = engine.score(images)                           # doctest: +SKIP
    >>> result.scores["inter"]                                  # doctest: +SKIP
"""

import os as _os

from ddad_rt import _core
from ddad_rt._core import BundleError, EngineError, InputError
from ddad_rt._core import build_info as _build_info
from ddad_rt.engine import Engine, Prediction, ScoreResult
from ddad_rt.gpu import cuda_status, register_tensorrt_lib_dirs
from ddad_rt.metrics import average_precision, roc_auc
from ddad_rt.preprocess import load_image, load_images, to_model_input

__version__ = "0.1.0"

#: The folder holding the C/C++ SDK that ships in this package - headers (include/ddad_rt/),
#: libddad_rt (lib/) and its CMake package and pkg-config file - for
#: ``cmake -DCMAKE_PREFIX_PATH=...`` (as ``torch.utils.cmake_prefix_path``).
#: (Beside the compiled module, which an editable install keeps apart from the sources.)
cmake_prefix_path: str = _os.path.join(_os.path.dirname(_os.path.abspath(_core.__file__)), "sdk")

register_tensorrt_lib_dirs()

__all__ = [
    "BundleError",
    "Engine",
    "EngineError",
    "InputError",
    "Prediction",
    "ScoreResult",
    "average_precision",
    "build_info",
    "cmake_prefix_path",
    "cuda_status",
    "load_image",
    "load_images",
    "roc_auc",
    "to_model_input",
]


def build_info() -> dict:
    """What this build contains.

    Returns:
        dict with ``version``, ``openvino`` (version string), ``cuda_kernels`` and
        ``tensorrt`` (bools: the CUDA kernels and the TensorRT backend are compiled in),
        ``cuda_architectures`` (e.g. "sm_75 ... sm_120 compute_120"), ``cuda_runtime``,
        ``tensorrt_headers`` (the TensorRT version built against), ``bundle_format_version``.
    """
    return dict(_build_info())
