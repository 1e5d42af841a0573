"""Reduced-precision accuracy checks: a bundle scored at fp32 and at a reduced precision on
the same labelled images and the same device, AUC compared score by score. A passed check is
recorded in the bundle's manifest ("precision_checks", with the device it was made on), and
only then is the reduced precision a default: bf16 for ``precision="auto"`` on CPUs with
native bf16, fp16 for ``"default"``/``"auto"`` on a GPU (a check made on a GPU)."""

from __future__ import annotations

import os
from pathlib import Path

from ddad_rt import bundle as bundle_io
from ddad_rt.engine import Engine
from ddad_rt.errors import InputError

#: Largest AUC change (any score) a reduced precision may cause and still pass.
AUC_TOLERANCE = 0.002


#: Where each reduced precision runs.
PRECISION_DEVICES = {"bf16": "cpu", "fp16": "cuda"}


def check_precision(bundle: str | os.PathLike, data: str | os.PathLike, precision: str = "bf16",
                    *, tolerance: float = AUC_TOLERANCE, record: bool = True,
                    num_threads: int = 0, progress: bool = True, device: str | None = None,
                    cache_dir: str | os.PathLike | None = None) -> dict:
    """Evaluates ``bundle`` on the test split of ``data`` at fp32 and at ``precision``, both
    on ``device`` (default: where ``precision`` runs: bf16 on the CPU, fp16 on a GPU).

    Returns:
        {"precision", "device", "gpu", "refine_impl", "auc_fp32", "auc", "max_auc_delta",
         "tolerance", "passed", "data", "n_images"}; with ``record`` also written to the manifest's
        "precision_checks".

    Raises:
        ddad_rt.InputError: an unknown precision, or one checked on a device it does not
            run on (fp16 on the CPU).
        ddad_rt.EngineError: this machine cannot run ``precision`` (no native bf16, no GPU).

    Example:
        >>> check_precision("runs/x/bundle", "../shared/data/brain_tumor")["passed"]  # doctest: +SKIP
        True
    """
    from ddad_rt import datasets
    from ddad_rt.evaluate import score_images
    from ddad_rt.metrics import roc_auc
    from ddad_rt.preprocess import load_images

    if precision not in PRECISION_DEVICES:
        msg = f"precision must be one of {', '.join(PRECISION_DEVICES)}, got {precision!r}"
        raise InputError(msg)
    device = device or PRECISION_DEVICES[precision]
    if device != PRECISION_DEVICES[precision]:
        msg = (f"{precision} runs on {'a GPU' if precision == 'fp16' else 'the CPU'}: check it "
               f"with --device {PRECISION_DEVICES[precision]}, on the kind of machine that "
               "will screen with it")
        raise InputError(msg)
    reduced = Engine(bundle, device=device, precision=precision, num_threads=num_threads,
                     cache_dir=cache_dir)
    full = Engine(bundle, device=device, precision="fp32", num_threads=num_threads,
                  cache_dir=cache_dir)
    test = datasets.test_set(data)
    images = load_images(test.paths, full.image_size, progress=progress, desc="load test")
    auc = {name: {k: roc_auc(test.labels, s) for k, s in
                  score_images(engine, images, progress=progress, desc=f"scoring ({name})").items()}
           for name, engine in (("fp32", full), (precision, reduced))}
    worst = max(abs(auc[precision][k] - auc["fp32"][k]) for k in auc["fp32"])
    result = {
        "precision": precision,
        "device": reduced.info["device"],
        "gpu": reduced.info.get("gpu", ""),
        # What ran the refiners: a bf16 check counts only for the same arithmetic (the native
        # Winograd bf16 refiners round differently from OpenVINO's direct convolutions).
        "refine_impl": reduced.info.get("refine_impl", ""),
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
