"""Reduced-precision accuracy checks: a bundle scored at fp32 and at a reduced precision on
the same labelled images, AUC compared score by score. A passed check is recorded in the
bundle's manifest ("precision_checks"), and only then does ``precision="auto"`` use it."""

from __future__ import annotations

import os
from pathlib import Path

from ddad_rt import bundle as bundle_io
from ddad_rt.engine import Engine

#: Largest AUC change (any score) a reduced precision may cause and still pass.
AUC_TOLERANCE = 0.002


def check_precision(bundle: str | os.PathLike, data: str | os.PathLike, precision: str = "bf16",
                    *, tolerance: float = AUC_TOLERANCE, record: bool = True,
                    num_threads: int = 0, progress: bool = True) -> dict:
    """Evaluates ``bundle`` on the test split of ``data`` at fp32 and at ``precision``.

    Returns:
        {"precision", "auc_fp32", "auc", "max_auc_delta", "tolerance", "passed", "data",
         "n_images"}; with ``record`` also written to the manifest's "precision_checks".

    Raises:
        ddad_rt.EngineError: this machine cannot run ``precision`` (e.g. no native bf16).

    Example:
        >>> check_precision("runs/x/bundle", "../shared/data/brain_tumor")["passed"]  # doctest: +SKIP
        True
    """
    from ddad_rt import datasets
    from ddad_rt.evaluate import score_images
    from ddad_rt.metrics import roc_auc
    from ddad_rt.preprocess import load_images

    reduced = Engine(bundle, device="cpu", precision=precision, num_threads=num_threads)
    full = Engine(bundle, device="cpu", precision="fp32", num_threads=num_threads)
    test = datasets.test_set(data)
    images = load_images(test.paths, full.image_size, progress=progress, desc="load test")
    auc = {name: {k: roc_auc(test.labels, s) for k, s in
                  score_images(engine, images, progress=progress, desc=f"scoring ({name})").items()}
           for name, engine in (("fp32", full), (precision, reduced))}
    worst = max(abs(auc[precision][k] - auc["fp32"][k]) for k in auc["fp32"])
    result = {
        "precision": precision,
        "auc_fp32": auc["fp32"],
        "auc": auc[precision],
        "max_auc_delta": worst,
        "tolerance": tolerance,
        "passed": bool(worst <= tolerance),
        "data": str(Path(data).resolve()),
        "n_images": len(images),
    }
    if record:
        manifest = bundle_io.read_manifest(bundle, verify=True)
        manifest = {k: v for k, v in manifest.items() if k not in bundle_io.GENERATED_FIELDS}
        manifest["precision_checks"] = {**manifest.get("precision_checks", {}), precision: result}
        bundle_io.write_manifest(bundle, manifest)
    return result
