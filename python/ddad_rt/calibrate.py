"""Operating points: per-score thresholds at target specificities, set on normal images the
model never saw, stored in the bundle's manifest (the bundle's identity does not change:
it covers the graphs only).

A threshold t at specificity s flags an image when its score is above t; t is the smallest
calibration score with at least a fraction s of the calibration images at or below it, so
at most 1 - s of them are flagged.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from functools import partial
from pathlib import Path

import numpy as np

from ddad_rt import bundle as bundle_io
from ddad_rt import datasets
from ddad_rt.errors import InputError

SPECIFICITIES = (0.90, 0.95, 0.99)
DEFAULT_SPECIFICITY = 0.95
MIN_IMAGES = 100
#: The top of the overlays' colour scale: this quantile of the calibration images' map
#: pixels (the bottom: their median).
MAP_QUANTILE = 0.999
#: Pixels sampled per calibration image for the map quantile.
MAP_SAMPLES = 512


def specificity_key(s: float) -> str:
    """Manifest key of a specificity: 0.95 -> "0.95", 0.9 -> "0.90"."""
    return f"{s:.2f}" if round(s, 2) == s else f"{s:g}"


def threshold_at(scores: np.ndarray, specificity: float) -> float:
    """The smallest score with at least ``specificity`` of ``scores`` at or below it."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    if not 0.0 < specificity < 1.0:
        msg = f"specificity must be in (0, 1), got {specificity}"
        raise InputError(msg)
    k = max(0, math.ceil(specificity * len(s) - 1e-9) - 1)
    return float(s[k])


def calibration_paths(data: str | os.PathLike) -> list[Path]:
    """The images of ``data``: a Med-AD dataset's normal test images (test/0), or every file
    of a folder or file list (see ddad_rt.screen.inputs)."""
    from ddad_rt.screen.inputs import list_inputs

    if Path(data).is_dir() and datasets.is_medad(data):
        test = datasets.test_set(data)
        return [p for p, y in zip(test.paths, test.labels) if y == 0]
    return list_inputs([data])


def calibrate(bundle: str | os.PathLike, data: str | os.PathLike, *,
              specificities=SPECIFICITIES, min_images: int = MIN_IMAGES,
              drop_training_images: bool = False, any_modality: bool = False,
              device: str = "auto", num_threads: int = 0, decode_workers: int = 1,
              progress: bool = True, write: bool = True) -> dict:
    """Sets the bundle's operating points from normal images not used in training.

    Args:
        bundle: the bundle (its manifest is rewritten with ``write``).
        data: normal images: a folder, a file list, or a Med-AD dataset (its test/0 images).
        specificities: target specificities (fractions of normal images not flagged).
        min_images: fewest usable images accepted (at least MIN_IMAGES).
        drop_training_images: leave out images the model was trained on instead of refusing.
        any_modality: use DICOM files whatever their Modality. By default, as ``screen``
            does, a DICOM file of another modality than the bundle's is left out (a CT slice
            must not set the thresholds of an MR model that screening refuses it for).
        write: store the result in the manifest.

    Returns:
        The manifest's new "operating_points" record.

    Raises:
        ValueError: a training image is among ``data`` (unless dropped), fewer than
            ``min_images`` usable images, or the bundle records no training image hashes.
    """
    from ddad_rt import __version__
    from ddad_rt.engine import Engine
    from ddad_rt.screen.decode import Decoder, decode_item

    bundle = Path(bundle)
    if min_images < MIN_IMAGES:
        msg = f"min_images must be at least {MIN_IMAGES} (thresholds on fewer are too noisy), got {min_images}"
        raise InputError(msg)
    specificities = sorted({float(s) for s in specificities})
    for s in specificities:
        if not 0.0 < s < 1.0:
            msg = f"specificity must be in (0, 1), got {s}"
            raise InputError(msg)
    manifest = bundle_io.read_manifest(bundle, verify=True)
    trained_on = bundle_io.read_training_hashes(bundle)
    if trained_on is None:
        msg = (f"{bundle} records no training image hashes ({bundle_io.TRAINING_HASHES}), so "
               "calibration cannot prove its images are unseen: re-export the bundle with this "
               "ddad_rt (ddad-rt train writes them)")
        raise InputError(msg)
    engine = Engine(bundle, device=device, num_threads=num_threads)
    size = engine.image_size
    paths = [str(p) for p in calibration_paths(data)]
    modality = None if any_modality else (manifest.get("modality") or None)
    images, names, unreadable, overlap, other_modality = [], [], [], [], []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(paths), desc="calibration images", unit="file", leave=False)
    with Decoder(partial(decode_item, size=size, modality=modality),
                 workers=decode_workers) as dec:
        for item in dec.decode(paths):
            if bar is not None:
                bar.update(1)
            if item.error:
                kind = item.error[0]
                (other_modality if kind == "wrong_modality" else unreadable).append(
                    f"{item.path} ({kind})")
                continue
            for frame, img in item.frames:
                name = item.path if item.n_frames == 1 else f"{item.path} [frame {frame}]"
                if bundle_io.image_hash(img) in trained_on:
                    overlap.append(name)
                else:
                    images.append(img)
                    names.append(name)
    if bar is not None:
        bar.close()
    if overlap and not drop_training_images:
        shown = "; ".join(overlap[:5]) + (f"; and {len(overlap) - 5} more" if len(overlap) > 5 else "")
        msg = (f"{len(overlap)} of the calibration images were used to train this bundle "
               f"({shown}): thresholds set on them would be too low. Remove them, or pass "
               "--drop-training-images to leave them out")
        raise InputError(msg)
    if len(images) < min_images:
        msg = (f"calibration needs at least {min_images} normal images the model was not "
               f"trained on; {data} gave {len(images)} ({len(overlap)} training images left "
               f"out, {len(unreadable)} unreadable, {len(other_modality)} DICOM files of "
               f"another modality than the bundle's {modality}: --any-modality uses them)")
        raise InputError(msg)
    batch = np.stack(images)
    keys = manifest["scores"]
    scores: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    samples: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    rng = np.random.default_rng(0)
    for start in range(0, len(batch), 64):
        r = engine.score(batch[start:start + 64], maps=True)
        for k in keys:
            scores[k].append(r.scores[k])
            m = r.maps[k].reshape(len(r.maps[k]), -1)
            idx = rng.integers(0, m.shape[1], (m.shape[0], min(MAP_SAMPLES, m.shape[1])))
            samples[k].append(np.take_along_axis(m, idx, axis=1).ravel())
    all_scores = {k: np.concatenate(v) for k, v in scores.items()}
    record = {
        "thresholds": {specificity_key(s): {k: threshold_at(all_scores[k], s) for k in keys}
                       for s in specificities},
        # Overlay colour scale: from a typical normal pixel (median) to a rare one.
        "map_scale": {k: [float(np.quantile(np.concatenate(samples[k]), 0.5)),
                          float(np.quantile(np.concatenate(samples[k]), MAP_QUANTILE))]
                      for k in keys},
        "n_images": len(images),
        "dropped_training_images": len(overlap),
        "unreadable": len(unreadable),
        "other_modality": len(other_modality),
        "data": str(Path(data).resolve()),
        "calibrated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        # Thresholds hold for the arithmetic they were computed with.
        "backend": engine.info["backend"], "precision": engine.info["precision"],
        "ddad_rt": __version__,
        "normal_score_median": {k: float(np.median(v)) for k, v in all_scores.items()},
    }
    if write:
        fresh = bundle_io.read_manifest(bundle, verify=False)
        kept = {k: v for k, v in fresh.items() if k not in bundle_io.GENERATED_FIELDS}
        kept["operating_points"] = record
        written = bundle_io.write_manifest(bundle, kept)
        if written["identity"] != manifest["identity"]:  # cannot happen: graphs untouched
            msg = f"calibration changed the identity of {bundle}"
            raise RuntimeError(msg)
    return record


def thresholds(manifest: dict, specificity: float) -> dict[str, float] | None:
    """The bundle's thresholds at ``specificity``, None when it is not calibrated.

    Raises:
        ValueError: the bundle is calibrated, but not at ``specificity``.
    """
    op = manifest.get("operating_points")
    if not op:
        return None
    key = specificity_key(specificity)
    if key not in op["thresholds"]:
        msg = (f"the bundle is calibrated at specificity {', '.join(op['thresholds'])}, not "
               f"{key}: pick one of those, or recalibrate with --specificity {key}")
        raise InputError(msg)
    return op["thresholds"][key]
