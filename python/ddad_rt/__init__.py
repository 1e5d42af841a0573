"""ddad_rt: anomaly detection in medical images with DDAD-ASR, scored by a C++ engine.

Example:
    >>> import ddad_rt
    >>> engine = ddad_rt.Engine("bundle/")                      # doctest: +SKIP
    >>> result = engine.score(images)                           # doctest: +SKIP
    >>> result.scores["inter"]                                  # doctest: +SKIP
"""

from ddad_rt._core import BundleError, EngineError
from ddad_rt._core import build_info as _build_info
from ddad_rt.engine import Engine, ScoreResult
from ddad_rt.metrics import average_precision, roc_auc
from ddad_rt.preprocess import load_image, load_images, to_model_input

__version__ = "0.1.0"

__all__ = [
    "BundleError",
    "Engine",
    "EngineError",
    "ScoreResult",
    "average_precision",
    "build_info",
    "load_image",
    "load_images",
    "roc_auc",
    "to_model_input",
]


def build_info() -> dict:
    """What this build contains.

    Returns:
        dict with ``version``, ``openvino`` (version string), ``cuda_kernels`` and
        ``tensorrt`` (bools), ``bundle_format_version``.
    """
    return dict(_build_info())
