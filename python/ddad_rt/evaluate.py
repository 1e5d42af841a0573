"""Evaluation of a bundle on a labelled test split: AUC and AP per score, through the engine."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ddad_rt import datasets
from ddad_rt.engine import Engine
from ddad_rt.metrics import average_precision, roc_auc
from ddad_rt.preprocess import load_images


def score_images(engine: Engine, images: np.ndarray, batch: int = 64, progress: bool = True,
                 desc: str = "scoring") -> dict[str, np.ndarray]:
    """Scores uint8 [N, H, W] images in batches (with a progress bar); returns key -> [N]."""
    chunks: dict[str, list[np.ndarray]] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(images), desc=desc, unit="img", leave=False)
    for start in range(0, len(images), batch):
        r = engine.score(images[start:start + batch])
        for k, v in r.scores.items():
            chunks.setdefault(k, []).append(v)
        if bar is not None:
            bar.update(min(batch, len(images) - start))
    if bar is not None:
        bar.close()
    return {k: np.concatenate(v) for k, v in chunks.items()}


def evaluate(bundle: str | os.PathLike, data: str | os.PathLike, *, device: str = "auto",
             num_threads: int = 0, progress: bool = True, engine: Engine | None = None,
             histograms: str | os.PathLike | None = None) -> dict:
    """AUC and AP of every score of ``bundle`` on the test split of ``data``, computed
    through the engine. Nothing is selected on the test set.

    Args:
        histograms: also write a PNG of normal vs abnormal score histograms, one per score.

    Returns:
        {"auc": {key: float}, "ap": {key: float}, "n_normal": int, "n_abnormal": int,
         "bundle": str, "bundle_identity": str, "data": str, "backend": str}

    Example:
        >>> evaluate("demo_out/bundle", "demo_out/data")["auc"]["inter"]  # doctest: +SKIP
        0.97
    """
    engine = engine or Engine(bundle, device=device, num_threads=num_threads)
    test = datasets.test_set(data)
    images = load_images(test.paths, engine.image_size, progress=progress, desc="load test")
    scores = score_images(engine, images, progress=progress)
    info = engine.info
    report = {
        "auc": {k: roc_auc(test.labels, s) for k, s in scores.items()},
        "ap": {k: average_precision(test.labels, s) for k, s in scores.items()},
        "n_normal": int((test.labels == 0).sum()),
        "n_abnormal": int((test.labels == 1).sum()),
        "bundle": str(Path(bundle)),
        "bundle_identity": info["bundle_identity"],
        "data": str(Path(data)),
        "backend": f"{info['backend']} ({info['device']}, {info['precision']})",
    }
    if histograms is not None:
        from ddad_rt.viz import histograms_figure

        Path(histograms).parent.mkdir(parents=True, exist_ok=True)
        histograms_figure(scores, test.labels, histograms, auc=report["auc"],
                          title=f"{Path(bundle).name} on {Path(data).name}: "
                                f"{report['n_normal']} normal, {report['n_abnormal']} abnormal")
        report["histograms"] = str(histograms)
    return report


def format_table(report: dict) -> str:
    """A plain-text table of AUC and AP per score."""
    rows = ["score    AUC     AP", "-------  ------  ------"]
    for k in report["auc"]:
        rows.append(f"{k:<7}  {report['auc'][k]:.4f}  {report['ap'][k]:.4f}")
    return "\n".join(rows)
