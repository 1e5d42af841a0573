"""The Python face of the C++ engine."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ddad_rt import _core
from ddad_rt.errors import EngineError, InputError

if TYPE_CHECKING:
    from typing_extensions import Self


@dataclass
class ScoreResult:
    """Scores (and optionally maps) of a batch.

    Attributes:
        scores: score key ("rec", "intra", "inter") -> float32 [N].
        maps: map key -> float32 [N, H, W], or None when ``maps=False``.
        default_score: the bundle's default key (e.g. "inter").
    """

    scores: dict[str, np.ndarray]
    maps: dict[str, np.ndarray] | None
    default_score: str

    @property
    def score(self) -> np.ndarray:
        """The default score [N]."""
        return self.scores[self.default_score]

    def __len__(self) -> int:
        return len(next(iter(self.scores.values())))


@dataclass
class Prediction:
    """Scores and flags of a batch at a calibrated operating point.

    Attributes:
        scores: float32 [N], the score ``score``.
        flags: bool [N], True where the score is above ``threshold``.
        threshold: the bundle's calibrated threshold for ``score`` at ``specificity``.
        score: the score key used (the bundle's default unless asked otherwise).
        specificity: the operating point, e.g. 0.95: at most 5% of normal images flagged.
    """

    scores: np.ndarray
    flags: np.ndarray
    threshold: float
    score: str
    specificity: float

    def __len__(self) -> int:
        return len(self.scores)


class Engine:
    """Scores images with a bundle: all ensemble members in one network call, maps and
    scores in a fused C++ kernel. Thread-safe; releases the GIL while scoring.

    Args:
        bundle: bundle directory (holding manifest.json).
        device: "auto" (GPU when usable, else CPU; ``info["device_reason"]`` says why),
            "cpu" or "cuda" (raises EngineError naming what is missing when unusable).
        precision: "fp32" (on a GPU with TF32 off), "fp16" (GPU), "bf16" (CPUs with native
            bf16), or "default"/"auto": a reduced precision only where the bundle records a
            passed accuracy check for it (``ddad-rt check-precision``) - bf16 on the CPU
            ("auto" only, on CPUs with native bf16), fp16 on a GPU (a check made on a GPU) -
            else fp32. ``info["precision_reason"]`` says which and why.
        max_batch: larger batches are split inside the engine; on a GPU the TensorRT engines
            serve every batch from 1 to max_batch.
        num_threads: CPU threads for the backend: 0 = one per CPU this process may use (its
            affinity mask and cgroup CPU quota, as in a container); at most 4x that many
            (ValueError above). ``info["threads"]`` says how many it uses.
        cache_dir: where the GPU backend caches built TensorRT engines (default:
            ``$DDAD_RT_CACHE_DIR``, else ``~/.cache/ddad_rt/tensorrt``). The first engine on a
            GPU builds them (minutes); later ones load them (seconds).

    Raises:
        ddad_rt.BundleError: the bundle is missing, malformed or fails its hash check.
        ddad_rt.EngineError: the device or precision is unavailable (the message says why).
        ValueError: a bad option value.

    Example:
        >>> engine = Engine("demo_out/bundle", device="cpu")       # doctest: +SKIP
        >>> images = np.zeros((8, 64, 64), np.uint8)
        >>> engine.score(images).scores["inter"].shape            # doctest: +SKIP
        (8,)
    """

    def __init__(self, bundle: str | os.PathLike, device: str = "auto",
                 precision: str = "default", max_batch: int = 64, num_threads: int = 0,
                 cache_dir: str | os.PathLike | None = None) -> None:
        self._engine = _core.Engine(os.fspath(bundle), device, precision, int(max_batch),
                                    int(num_threads),
                                    os.fspath(cache_dir) if cache_dir is not None else "")
        self.manifest: dict = json.loads(self._engine.manifest_json)

    @property
    def info(self) -> dict:
        """backend, device (and why), precision (and why), image_size, k, backbone, scores,
        default_score, bundle_version, bundle_identity, max_batch, num_threads, threads (on
        the CPU: the threads it uses); on a GPU
        also gpu, tensorrt, tensorrt_library, engine_cache_dir and engine_cache (per graph:
        loaded from the cache, or built and why)."""
        return dict(self._engine.info)

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self._engine.info["image_size"])

    def score(self, images: np.ndarray, maps: bool = False,
              scores: Iterable[str] | None = None) -> ScoreResult:
        """Scores a batch.

        Args:
            images: (N, H, W) or (N, 1, H, W) at the model's image size: uint8 (0-255, as
                ``load_image`` and ``to_model_input`` return) or float32 in [0, 1];
                float64 in [0, 1] is converted to float32. C-contiguous float32 is not
                copied. uint16 is refused: raw 12- or 16-bit pixels (CT, MR, X-ray
                detectors) are min-max scaled per image by the shared preprocessing, as in
                training, while a bare array cannot say whether its values fill 0-65535;
                pass them through ``to_model_input`` first.
            maps: also return the per-pixel anomaly maps (of the scores computed).
            scores: the score keys wanted, e.g. ``("r_dual",)``; default: every score the
                bundle has. Only the networks they need run: the refiners cost most of a
                call, so asking for ``r_dual`` alone skips R_intra. ``result.score`` is the
                bundle's default score when it was computed, else the first one computed.

        Raises:
            ValueError: wrong rank, size or dtype (uint16 included), float values outside
                [0, 1] or NaN, empty batch, a score the bundle lacks (ddad_rt.InputError).
        """
        if not isinstance(images, np.ndarray):
            msg = (f"images must be a NumPy array, got {type(images).__name__}; "
                   "e.g. np.stack(list_of_images)")
            raise TypeError(msg)
        if images.dtype == np.uint16:
            msg = ("uint16 images are ambiguous: raw 12- or 16-bit pixels are min-max scaled "
                   "per image by the shared preprocessing (as the model was trained), not "
                   "divided by 65535. Use ddad_rt.to_model_input(image, engine.image_size) "
                   "per original image (or ddad_rt.load_image(path, ...)), which returns the "
                   "uint8 model input; if your values already are a 0-65535 full scale, pass "
                   "images.astype(np.float32) / 65535")
            raise InputError(msg)
        if images.dtype == np.float64:
            images = images.astype(np.float32)
        keys = None if scores is None else [scores] if isinstance(scores, str) else list(scores)
        out = self._engine.score(images, bool(maps), keys)
        default = self.manifest["default_score"]
        if default not in out["scores"]:
            default = next(iter(out["scores"]))
        return ScoreResult(scores=dict(out["scores"]),
                           maps=dict(out["maps"]) if out["maps"] is not None else None,
                           default_score=default)

    def stage_times(self, reset: bool = False) -> dict[str, dict]:
        """Where the time goes: for each pipeline stage the engine times (on the CPU:
        ``input``, ``ensemble``, ``discrepancy``, ``refine_dual``, ``refine_intra``,
        ``refine_softmax``), ``{"seconds": wall time, "images": images}`` summed over every
        call since the engine was made or last reset. ``reset=True`` zeroes the sums after
        reading them. Concurrent calls add up. The GPU backend times no stages (they overlap
        on the GPU) and returns ``{}``.

        Example:
            >>> engine.score(images)
            >>> t = engine.stage_times(reset=True)
            >>> {k: 1e3 * v["seconds"] / v["images"] for k, v in t.items()}  # ms per image
        """
        return dict(self._engine.stage_times(reset))

    def threshold(self, specificity: float = 0.95, score: str | None = None) -> float:
        """The bundle's calibrated threshold for ``score`` (default: the bundle's default
        score) at ``specificity``.

        Raises:
            ddad_rt.BundleError: the bundle is not calibrated (``ddad-rt calibrate``).
            ValueError: calibrated, but not at that specificity.
        """
        return self._engine.threshold(score or self.manifest["default_score"], float(specificity))

    def predict(self, images: np.ndarray, specificity: float = 0.95,
                score: str | None = None) -> Prediction:
        """Scores a batch and flags the images above the bundle's calibrated operating
        point: at ``specificity`` 0.95 at most 5% of normal images are flagged.

        Args:
            images: as for ``score``.
            specificity: one the bundle was calibrated at (``ddad-rt calibrate``; by default
                0.90, 0.95 and 0.99).
            score: the score to flag on; default: the bundle's default score. Only the
                networks it needs run.

        Raises:
            ddad_rt.BundleError: the bundle is not calibrated.
            ValueError: not calibrated at that specificity, or bad images.

        Example:
            >>> p = engine.predict(images, specificity=0.95)        # doctest: +SKIP
            >>> p.flags.sum(), p.threshold                          # doctest: +SKIP
        """
        key = score or self.manifest["default_score"]
        t = self.threshold(specificity, key)  # first: an uncalibrated bundle fails before the work
        values = self.score(images, scores=(key,)).scores[key]
        return Prediction(scores=values, flags=values.astype(np.float64) > t, threshold=t,
                          score=key, specificity=float(specificity))

    def close(self) -> None:
        """Frees the engine (its networks, GPU memory, threads) now rather than at garbage
        collection. Later calls raise ddad_rt.EngineError."""
        self._engine = _Closed()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if isinstance(self._engine, _Closed):
            return "Engine(closed)"
        i = self._engine.info
        return (f"Engine(bundle={i['bundle_path']!r}, backend={i['backend']}, device={i['device']}, "
                f"precision={i['precision']}, k={i['k']}, image_size={tuple(i['image_size'])})")


class _Closed:
    """Stands in for a closed engine's C++ object: every use says so."""

    def __getattr__(self, name: str) -> object:
        msg = "this Engine was closed (Engine.close() or the end of its `with` block): create a new one"
        raise EngineError(msg)
