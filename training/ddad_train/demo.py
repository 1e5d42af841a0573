"""`ddad-rt demo`: the whole path on the built-in synthetic dataset, in a few minutes.

synthetic data -> train NDM, UDM and the ASR refiners -> export a bundle -> score the test
split with the C++ engine -> AUC/AP per score, results.json, maps.png and histograms.png ->
calibrate the bundle on fresh normal images -> screen the test split as an archive
(screen/results.csv, studies.csv, overlays, report.html).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
from ddad_rt import datasets, synthetic
from ddad_rt.engine import Engine
from ddad_rt.evaluate import format_table, score_images
from ddad_rt.metrics import average_precision, roc_auc
from ddad_rt.preprocess import load_images
from ddad_rt.viz import histograms_figure, maps_figure

from ddad_train.config import TrainConfig
from ddad_train.pipeline import train

#: Demo budget, sized to finish within 5 minutes on a 2-core machine: 32x32 images (the
#: paper uses 64x64, which needs far more than minutes to separate even synthetic lesions),
#: the paper's pool anomaly rate 0.6, batch 32 for more optimiser steps per second, and a
#: short refinement (the paper: 100 epochs).
DEMO_DATA = {"n_normal": 256, "n_unlabeled": 768, "anomaly_rate": 0.6, "n_test": 400}
DEMO_IMAGE_SIZE = 32
DEMO_BATCH = 32
DEMO_EPOCHS = 40
DEMO_REFINE_EPOCHS = 10
#: Fresh normal images for calibration (never trained on).
DEMO_CALIBRATION = 200


def run_demo(out: str | Path, seed: int = 0, epochs: int = DEMO_EPOCHS, threads: int = 0,
             progress: bool = True, backbone: str = "ae",
             refine_epochs: int = DEMO_REFINE_EPOCHS) -> dict:
    """Runs the demo into ``out``; returns the results dict (also written to results.json)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = synthetic.make_dataset(out / "data", seed=seed, progress=progress, **DEMO_DATA)
    cfg = TrainConfig(data=str(data), out=str(out / "bundle"), backbone=backbone, k=3,
                      image_size=DEMO_IMAGE_SIZE, batch_size=DEMO_BATCH, epochs=epochs,
                      refine_epochs=refine_epochs, seed=seed, threads=threads)
    ckpt = cfg.checkpoint_path()
    if ckpt.exists():  # a killed earlier demo: start over, the demo is minutes long
        shutil.rmtree(ckpt)
    bundle = train(cfg, progress=progress, force=True)  # the demo's own folder: a rerun retrains
    t_train = time.perf_counter() - t0

    engine = Engine(bundle, device="auto", num_threads=threads)
    test = datasets.test_set(data)
    images = load_images(test.paths, engine.image_size, progress=progress, desc="load test")
    scores = score_images(engine, images, progress=progress)
    baseline = images.reshape(len(images), -1).mean(axis=1)
    results = {
        "auc": {k: roc_auc(test.labels, s) for k, s in scores.items()},
        "ap": {k: average_precision(test.labels, s) for k, s in scores.items()},
        "baseline_mean_intensity": {"auc": roc_auc(test.labels, baseline),
                                    "ap": average_precision(test.labels, baseline)},
        "n_normal": int((test.labels == 0).sum()),
        "n_abnormal": int((test.labels == 1).sum()),
        "seed": seed,
        "backbone": backbone,
        "epochs": epochs,
        "refine_epochs": refine_epochs,
        "engine": engine.info | {"image_size": list(engine.image_size)},
        "seconds": {"data_and_training": round(t_train, 1),
                    "total": round(time.perf_counter() - t0, 1)},
        "bundle": str(bundle),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    # A few normal and abnormal test images beside their maps, most typical first.
    pick = []
    for label in (0, 1):
        idx = np.flatnonzero(test.labels == label)
        pick += list(idx[:4])
    r = engine.score(images[pick], maps=True)
    key = engine.manifest["default_score"]
    labels = [f"{'abnormal' if test.labels[i] else 'normal'}  {key}={r.scores[key][j]:.4f}"
              for j, i in enumerate(pick)]
    maps_figure(images[pick], r.maps, labels, out / "maps.png",
                title=f"ddad_rt demo ({backbone}): {key} AUC {results['auc'][key]:.3f} "
                      "on the synthetic test split")
    histograms_figure(scores, test.labels, out / "histograms.png", auc=results["auc"],
                      title=f"ddad_rt demo ({backbone}): scores of the synthetic test split")
    results["screen"] = _calibrate_and_screen(out, bundle, test.paths, seed, threads, progress)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    results["table"] = format_table(results)
    return results


def _calibrate_and_screen(out: Path, bundle: Path, test_paths, seed: int, threads: int,
                          progress: bool) -> dict:
    """The deployment half: operating points from fresh normal images, then the test split
    screened as if it were an archive."""
    from ddad_rt.calibrate import calibrate
    from ddad_rt.screen import ScreenOptions, screen
    from PIL import Image

    calib = out / "calibration"
    calib.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed + 10_000)
    for i in range(DEMO_CALIBRATION):
        Image.fromarray(synthetic.make_image(rng, abnormal=False)[0]).save(calib / f"normal_{i:03d}.png")
    calibrate(bundle, calib, num_threads=threads, progress=progress)
    listing = out / "test_images.txt"
    # Absolute paths: a list's relative entries are relative to the list's folder, and
    # test_paths are relative to the working directory when --out is.
    listing.write_text("".join(f"{Path(p).resolve()}\n" for p in test_paths))
    screen_out = out / "screen"
    if screen_out.exists():  # a rerun of the demo retrains: results of the old bundle go
        shutil.rmtree(screen_out)
    opts = ScreenOptions(engine_threads=threads or None)
    summary = screen(bundle, [listing], screen_out, opts, progress=progress)
    return {"out": str(screen_out), "report": summary.report, "images": summary.images,
            "flagged": summary.flagged, "errors": summary.errors,
            "operating_point": summary.operating_point, "threshold": summary.threshold}
