"""The ``ddad-rt`` command line. Thin: it parses arguments and calls library functions."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from pathlib import Path

from ddad_rt.errors import BundleError, EngineError, InputError

TRAIN_EXTRA = "this command needs the training extra (PyTorch, ONNX): pip install 'ddad-rt[train]'"


def _import_train():
    try:
        import ddad_train  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        raise InputError(f"{TRAIN_EXTRA} ({e})") from None


def cmd_demo(a: argparse.Namespace) -> int:
    _import_train()
    from ddad_train.demo import DEMO_EPOCHS, run_demo

    epochs = a.epochs if a.epochs is not None else DEMO_EPOCHS
    results = run_demo(a.out, seed=a.seed, epochs=epochs, threads=a.threads, backbone=a.backbone)
    print(results["table"])
    b = results["baseline_mean_intensity"]
    print(f"baseline (mean intensity): AUC {b['auc']:.4f}  AP {b['ap']:.4f}")
    sc = results["screen"]
    print(f"screened the test split as an archive: {sc['flagged']} of {sc['images']} images "
          f"flagged at {sc['operating_point']}; open {sc['report']}")
    print(f"wrote {Path(a.out) / 'results.json'}, {Path(a.out) / 'maps.png'} and the bundle "
          f"{results['bundle']} in {results['seconds']['total']:.0f} s")
    if sc["errors"]:
        print(f"error: the demo's screening step could not read {sc['errors']} of its own "
              f"test files (see {Path(sc['out']) / 'errors.csv'}): this is a bug, please "
              "report it", file=sys.stderr)
        return EXIT_BUG
    return EXIT_OK


def cmd_train(a: argparse.Namespace) -> int:
    _import_train()
    import dataclasses

    from ddad_train import TrainConfig, train

    overrides = {f.name: getattr(a, f.name) for f in dataclasses.fields(TrainConfig)
                 if getattr(a, f.name, None) is not None}
    cfg = (TrainConfig.from_yaml(a.config, **overrides) if a.config
           else TrainConfig.from_yaml_values(overrides))
    bundle = train(cfg, resume=a.resume, force=a.force)
    print(f"wrote bundle {bundle}")
    return 0


def cmd_refine(a: argparse.Namespace) -> int:
    _import_train()
    from ddad_train.refine import refine_existing

    names = ("refiners", "refine_epochs", "refine_batch_size", "refine_lr",
             "refine_weight_decay", "refine_mode", "refine_anomalies", "seed", "threads")
    overrides = {k: getattr(a, k) for k in names if getattr(a, k) is not None}
    bundle = refine_existing(a.bundle, a.out, a.data, overrides, resume=a.resume,
                             force=a.force)
    print(f"wrote bundle {bundle}")
    return 0


def cmd_eval(a: argparse.Namespace) -> int:
    from ddad_rt.evaluate import evaluate, format_table

    # evaluate makes the folder when it has something to write: a failed command (a missing
    # bundle, say) leaves no empty folder behind.
    out = Path(a.out)
    report = evaluate(a.bundle, a.data, device=a.device, num_threads=a.threads,
                      histograms=out / "histograms.png")
    print(format_table(report))
    print(f"{report['n_normal']} normal, {report['n_abnormal']} abnormal test images; "
          f"engine: {report['backend']}")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out / 'report.json'} and {out / 'histograms.png'}")
    return 0


def cmd_check_precision(a: argparse.Namespace) -> int:
    from ddad_rt.precision import check_precision

    r = check_precision(a.bundle, a.data, a.precision, tolerance=a.tolerance,
                        record=not a.no_record, num_threads=a.threads, device=a.device)
    rows = ["score    AUC fp32  AUC " + a.precision + "  delta", "-------  --------  --------  ------"]
    for k, v in r["auc_fp32"].items():
        rows.append(f"{k:<7}  {v:.4f}    {r['auc'][k]:.4f}    {abs(r['auc'][k] - v):.4f}")
    print("\n".join(rows))
    verdict = "passed" if r["passed"] else "FAILED"
    print(f"{a.precision}: max AUC change {r['max_auc_delta']:.4f} (tolerance {r['tolerance']}): "
          f"{verdict} on {r['n_images']} images"
          + ("" if a.no_record else f"; recorded in {Path(a.bundle) / 'manifest.json'}"
             + ((" (precision='auto' will use it on CPUs with native bf16)"
                 if a.precision == "bf16" else " (the GPU default is now fp16 for this bundle)")
                if r["passed"] else "")))
    return EXIT_OK if r["passed"] else EXIT_SOME_FAILED


def cmd_bench(a: argparse.Namespace) -> int:
    _import_train()
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise InputError(f"the benchmark compares against ONNX Runtime: pip install "
                         f"'ddad-rt[train,bench]' ({e})") from None
    from ddad_train.bench import run_inference_bench

    threads = tuple(a.threads)
    out = Path(a.out)
    command = "ddad-rt " + " ".join(sys.argv[1:]) if a.command_line is None else a.command_line
    inference = precision = training = None
    if a.device == "cuda":
        from ddad_train.bench import gpu_problems

        if problems := gpu_problems():
            raise InputError("ddad-rt bench --device cuda needs a usable NVIDIA GPU: " +
                             "; ".join(problems))
        if a.accuracy_bundle or a.train_data:
            raise InputError("--device cuda times GPU inference only; run the accuracy "
                             "and training parts without it")
        # One host thread count: the GPU does the work.
        threads = (max(threads),)
    if not a.skip_inference:
        inference = run_inference_bench(out, threads=threads, rounds=a.rounds, data=a.data,
                                        min_seconds=a.min_seconds, command=command,
                                        device=a.device, batch=a.batch)
        print((out / "inference.md").read_text())  # the tables, then where the time goes
        if a.device == "cuda":
            print(f"wrote {out}/")
            return 0
    if a.accuracy_bundle:
        from ddad_rt.precision import check_precision

        if not a.data:
            raise InputError("--accuracy-bundle needs --data (a dataset with a test split)")
        # AUCs do not depend on the thread count: one check, at the largest.
        precision = check_precision(a.accuracy_bundle, a.data, "bf16", record=False,
                                    num_threads=max(threads))
        precision["bundle"] = str(a.accuracy_bundle)
        (out / "precision.json").write_text(json.dumps(precision, indent=1))
        print(f"bf16 vs fp32 on {a.data}: max AUC change {precision['max_auc_delta']:.4f} -> "
              f"{'passed' if precision['passed'] else 'FAILED'}")
    if a.train_data:
        from ddad_train.bench_train import run_training_bench, training_markdown

        training = run_training_bench(a.train_data, threads=threads, epochs=a.train_epochs,
                                      authors_code=a.authors_code, plain=a.train_plain,
                                      work=out / "work", command=command)
        (out / "training.json").write_text(json.dumps(training, indent=1))
        (out / "training.md").write_text(training_markdown(training))
        print(training_markdown(training))
    from ddad_train.bench.report import summary_markdown

    # Parts not run this time are summarised from the reports an earlier run left in --out.
    parts = {"inference": inference, "precision": precision, "training": training}
    earlier = [n for n, v in parts.items() if v is None and (out / f"{n}.json").is_file()]
    for name in earlier:
        parts[name] = json.loads((out / f"{name}.json").read_text())
    summary = summary_markdown(parts["inference"], parts["precision"], parts["training"], command,
                               earlier=earlier)
    (out / "summary.md").write_text(summary)
    print(summary)
    print(f"wrote {out}/")
    return 0


def cmd_calibrate(a: argparse.Namespace) -> int:
    from ddad_rt.calibrate import calibrate

    r = calibrate(a.bundle, a.data, specificities=a.specificity, min_images=a.min_images,
                  drop_training_images=a.drop_training_images, any_modality=a.any_modality,
                  device=a.device, num_threads=a.threads)
    keys = list(next(iter(r["thresholds"].values())))
    print("specificity  " + "  ".join(f"{k:>10}" for k in keys))
    for spec, th in r["thresholds"].items():
        print(f"{spec:<11}  " + "  ".join(f"{th[k]:>10.5g}" for k in keys))
    extra = []
    if r["dropped_training_images"]:
        extra.append(f"{r['dropped_training_images']} training images left out")
    if r["unreadable"]:
        extra.append(f"{r['unreadable']} unreadable files skipped")
    if r["other_modality"]:
        extra.append(f"{r['other_modality']} DICOM files of another modality left out "
                     "(--any-modality uses them)")
    print(f"calibrated on {r['n_images']} normal images"
          + (f" ({'; '.join(extra)})" if extra else "")
          + f"; stored in {Path(a.bundle) / 'manifest.json'} (the bundle's identity is unchanged)")
    return 0


def cmd_screen(a: argparse.Namespace) -> int:
    from ddad_rt.screen import ScreenOptions, screen
    from ddad_rt.screen.uids import read_key as read_uid_key

    if a.ray:
        from ddad_rt.screen.distributed import import_ray

        try:
            import_ray()
        except ImportError as e:
            raise InputError(str(e)) from None

    opts = ScreenOptions(specificity=a.specificity, threshold=a.threshold, score=a.score,
                         all_scores=a.all_scores,
                         overlays=a.overlays, dicom_sc=a.dicom_sc, include_phi=a.include_phi,
                         any_modality=a.any_modality, top_n=a.top_n, device=a.device,
                         decode_workers=a.decode_workers, engine_threads=a.engine_threads,
                         batch_size=a.batch_size, retry_errors=a.retry_errors, ray=a.ray,
                         ray_actors=a.ray_actors, uids=a.uids,
                         uid_key=read_uid_key(a.uid_key_file) if a.uid_key_file else None)
    summary = screen(a.bundle, a.inputs, a.out, opts, progress=not a.no_progress)
    print(summary.text())
    return EXIT_SOME_FAILED if summary.errors else EXIT_OK


def cmd_build_engine(a: argparse.Namespace) -> int:
    from ddad_rt.gpu import build_engines

    info = build_engines(a.bundle, max_batch=a.max_batch, precision=a.precision,
                         cache_dir=a.cache_dir)
    print(f"GPU         {info['gpu']}, TensorRT {info['tensorrt']} ({info['tensorrt_library']})")
    print(f"precision   {info['precision']} ({info['precision_reason']}), batch 1-{info['max_batch']}")
    print(f"cache       {info['engine_cache_dir']}")
    for entry in info["engine_cache"].split("; "):
        print(f"  {entry}")
    return 0


def cmd_info(a: argparse.Namespace) -> int:
    import ddad_rt
    from ddad_rt.bundle import read_manifest

    if a.cmake_prefix_path:
        print(ddad_rt.cmake_prefix_path)
        return 0
    if a.bundle is None:
        print(json.dumps({"build": ddad_rt.build_info(), "cuda": ddad_rt.cuda_status()}, indent=2))
        return 0
    m = read_manifest(a.bundle, verify=True)
    t = m.get("training", {})
    cfg = t.get("config", {})
    print(f"bundle      {a.bundle}  (format {m['format_version']}, verified: {len(m['files'])} files)")
    print(f"identity    {m.get('identity', '?')}")
    print(f"model       {m['backbone']}, K={m['k']}, image {m['image_size'][0]}x{m['image_size'][1]}, "
          f"latent {m.get('model', {}).get('latent_size')}")
    print(f"scores      {', '.join(m['scores'])} (default {m['default_score']})")
    if cfg:
        print(f"training    {cfg.get('epochs')} epochs, batch {cfg.get('batch_size')}, lr {cfg.get('lr')}, "
              f"seed {t.get('seed')}, data {t.get('data', {}).get('data', cfg.get('data'))}")
        d = t.get("data", {})
        print(f"data        {d.get('normal')} normal, {d.get('unlabeled')} unlabeled"
              + (f" (anomaly rate {d['anomaly_rate']:.2f})" if "anomaly_rate" in d else ""))
        print(f"backbone    {cfg.get('backbone', 'ae')}; refiners: "
              f"{', '.join('R_' + r for r in cfg.get('refiners', [])) or 'none'}"
              + (f", {cfg.get('refine_epochs')} epochs ({cfg.get('refine_mode', 'paper')})"
                 if cfg.get("refiners") else ""))
        losses = t.get("losses", {})
        for mod in ("ndm", "udm"):
            if losses.get(mod):
                last = losses[mod][-1]
                print(f"{mod.upper()} loss    last epoch: {', '.join(f'{v:.4f}' for v in last)} (per member)")
        for name in ("refine_dual", "refine_intra"):
            if losses.get(name):
                print(f"{'R_' + name[7:] + ' loss':<12}last epoch: {losses[name][-1]:.4f}")
        for line in _refine_validation_lines(t.get("refine_validation")):
            print(line)
    return 0


def _refine_validation_lines(v: dict | None) -> list[str]:
    """`ddad-rt info`'s lines on the refiners' label-free validation (fresh synthetic
    anomalies on the training normals): each refiner's pixel / image AUROC beside its input
    maps', and a warning for one that looks collapsed."""
    if not v:
        return []
    maps = v["maps"]
    lines = [(f"validation  {v['images']} training images, {v['anomalous_images']} given fresh "
              "synthetic anomalies (no real labels): AUROC pixel / image"),
             "            " + ", ".join(f"A_{k} {f['pixel_auc']:.3f} / {f['image_auc']:.3f}"
                                      for k, f in maps.items())]
    for name, f in v["refiners"].items():
        verdict = ("LOOKS COLLAPSED: no better than its input map" if f["collapsed"]
                   else f"better than its input map ({f['input_pixel_auc']:.3f})")
        lines.append(f"            R_{name} {f['pixel_auc']:.3f} / {f['image_auc']:.3f}: {verdict}")
    return lines


def _field_docs(cls) -> dict[str, str]:
    """Field descriptions from the "Attributes:" section of a dataclass's docstring."""
    docs, name = {}, None
    lines = (cls.__doc__ or "").split("Attributes:", 1)[-1].splitlines()
    for line in lines:
        text = line.strip()
        if ":" in text and text.split(":", 1)[0].isidentifier():
            name, desc = text.split(":", 1)
            docs[name] = desc.strip()
        elif text and name:
            docs[name] += " " + text
    return docs


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One --option per TrainConfig field, described by its docstring; options left unset
    keep the config's value."""
    import dataclasses

    try:
        from ddad_train.config import TrainConfig
    except ImportError:  # without the [train] extra, `train` reports that when run
        return
    defaults = TrainConfig()
    docs = _field_docs(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        default = getattr(defaults, f.name)
        shown = ",".join(default) if isinstance(default, list) else default
        text = docs.get(f.name, f.name.replace("_", " ")).rstrip(".").replace("``", "")
        if shown not in ("", None):
            text += f" (default: {shown})"
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None,
                            metavar=f.name.split("_")[-1].upper(), help=text)


def build_parser() -> argparse.ArgumentParser:
    from ddad_rt import __version__
    from ddad_rt.precision import AUC_TOLERANCE

    p = argparse.ArgumentParser(prog="ddad-rt", description="DDAD-ASR anomaly detection for medical images.")
    p.add_argument("--version", action="version", version=f"ddad-rt {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="synthetic data -> train -> bundle -> engine scores, AUC, maps.png")
    d.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--epochs", type=int, default=None, help="AE epochs per module (default: the demo budget)")
    d.add_argument("--backbone", default="ae", choices=["ae", "ae-u", "memae"])
    d.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all)")
    d.set_defaults(func=cmd_demo)

    t = sub.add_parser(
        "train", help="train NDM, UDM and the ASR refiners on a dataset folder; write a bundle",
        description="Train DDAD-ASR. Defaults are the paper's BrainTumor AE setting; --config "
                    "loads a YAML file or a built-in config (rsna, vindr_cxr, brain_tumor, lag), "
                    "and every option below overrides it.")
    t.add_argument("--config", default=None, help="YAML config: a path or a built-in name")
    t.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its checkpoints (<out>.ckpt)")
    t.add_argument("--force", action="store_true",
                   help="replace an existing bundle at --out (its calibration is lost)")
    _add_config_options(t)
    t.set_defaults(func=cmd_train)

    r = sub.add_parser(
        "refine", help="add the ASR refiners (R_dual, R_intra) to a bundle that has none",
        description="Train the refinement networks on the maps of an existing bundle and write "
                    "a new bundle with them. Settings default to the bundle's training config.")
    r.add_argument("bundle", help="bundle with trained NDM and UDM")
    r.add_argument("--data", required=True, help="dataset folder (its known-normal images are used)")
    r.add_argument("--out", required=True, help="bundle directory to write")
    r.add_argument("--resume", action="store_true", help="continue an interrupted refinement")
    r.add_argument("--force", action="store_true",
                   help="replace an existing bundle at --out (BUNDLE itself included)")
    for name in ("refiners", "refine-epochs", "refine-batch-size", "refine-lr",
                 "refine-weight-decay", "refine-mode", "refine-anomalies", "seed", "threads"):
        r.add_argument(f"--{name}", dest=name.replace("-", "_"), default=None,
                       help="as for train (default: the bundle's training config)")
    r.set_defaults(func=cmd_refine)

    e = sub.add_parser("eval", help="AUC and AP per score on a labelled test split, through the engine")
    e.add_argument("bundle")
    e.add_argument("--data", required=True, help="Med-AD folder or folder with test/normal and test/abnormal")
    e.add_argument("--out", default="eval_out",
                   help="folder for report.json and histograms.png (default: eval_out)")
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    e.add_argument("--threads", type=int, default=0)
    e.set_defaults(func=cmd_eval)

    c = sub.add_parser(
        "check-precision", help="compare a reduced precision's AUC with fp32 on labelled data; "
                                "record the result in the bundle",
        description="Scores the test split of DATA at fp32 and at --precision with the engine "
                    "and compares every score's AUC. A passed check is written to the bundle's "
                    "manifest; precision='auto' uses bf16 only for bundles with one.")
    c.add_argument("bundle")
    c.add_argument("--data", required=True, help="Med-AD folder or folder with test/normal and test/abnormal")
    c.add_argument("--precision", default="bf16", choices=["bf16", "fp16"],
                   help="bf16 (checked on the CPU) or fp16 (on a GPU: --device cuda)")
    c.add_argument("--device", default=None, choices=["cpu", "cuda"],
                   help="where to check (default: where the precision runs)")
    c.add_argument("--tolerance", type=float, default=AUC_TOLERANCE,
                   help=f"largest AUC change allowed (default: {AUC_TOLERANCE})")
    c.add_argument("--no-record", action="store_true", help="do not write the result to the manifest")
    c.add_argument("--threads", type=int, default=0)
    c.set_defaults(func=cmd_check_precision)

    b = sub.add_parser(
        "bench", help="speed and memory, side by side: engine vs ONNX Runtime vs the authors' "
                      "PyTorch loop, on the CPU or a GPU (and training: batched module vs one "
                      "member at a time)",
        description="Run on a quiet machine. Each contender runs in its own process, the "
                    "contenders alternate, and the report gives medians and ratios.")
    b.add_argument("--out", default="bench_out", help="folder for the JSON and Markdown reports")
    b.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="cuda: PyTorch on the GPU vs ONNX Runtime's CUDA provider (when "
                        "installed) vs the TensorRT engine at fp32 and fp16")
    b.add_argument("--batch", type=int, default=None,
                   help="throughput batch (default: 64 on the CPU, 256 on a GPU)")
    b.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    b.add_argument("--rounds", type=int, default=5)
    b.add_argument("--data", default=None, help="dataset with a test split for the images (default: synthetic)")
    b.add_argument("--min-seconds", type=float, default=2.0, help="timing per batch-64 measurement")
    b.add_argument("--skip-inference", action="store_true")
    b.add_argument("--accuracy-bundle", default=None,
                   help="a trained bundle: also compare bf16 with fp32 AUC on --data's test split")
    b.add_argument("--train-data", default=None, help="also time training on this dataset (UDM images)")
    b.add_argument("--train-epochs", type=int, default=40)
    b.add_argument("--train-plain", action="store_true",
                   help="also time a plain PyTorch loop per member on preloaded images")
    b.add_argument("--authors-code", default=None,
                   help="checkout of the authors' code, to time it too (see benchmarks/authors_code)")
    b.add_argument("--command-line", default=None, help=argparse.SUPPRESS)
    b.set_defaults(func=cmd_bench)

    from ddad_rt.calibrate import DEFAULT_SPECIFICITY, MIN_IMAGES, SPECIFICITIES

    s = sub.add_parser(
        "screen", help="score every image of files, folders or file lists; flag, report, resume",
        description="Screens PNG, JPEG, TIFF and DICOM (multi-frame: one row per frame) images "
                    "and writes results.csv/.jsonl, studies.csv, errors.csv, overlays/ and "
                    "report.html to --out. Rerun the same command after a crash to resume. "
                    "Exit status 1 when any file could not be screened (see errors.csv).")
    s.add_argument("bundle")
    s.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image file, folder (recursive) or file list (.txt/.lst, or .csv with a path column)")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--specificity", type=float, default=DEFAULT_SPECIFICITY,
                   help=f"operating point: a calibrated specificity (default: {DEFAULT_SPECIFICITY})")
    s.add_argument("--threshold", type=float, default=None,
                   help="flag images scoring above this instead of a calibrated operating point")
    s.add_argument("--score", default=None, help="score to flag on (default: the bundle's default)")
    s.add_argument("--all-scores", action="store_true",
                   help="compute and write every score of the bundle (score_<key> columns); by "
                        "default only the flagged score is computed, and only its networks run")
    s.add_argument("--overlays", default="flagged", choices=["flagged", "all", "none"],
                   help="heatmap PNGs for flagged images (default), all images, or none")
    s.add_argument("--dicom-sc", action="store_true",
                   help="also write overlays of DICOM images as Secondary Captures in the source study")
    s.add_argument("--include-phi", action="store_true",
                   help="put patient name, ID and birth date, and decoders' error texts (which "
                        "can quote DICOM values), in the outputs (left out by default)")
    s.add_argument("--uids", default="keep", choices=["keep", "pseudonymize", "drop"],
                   help="Study/Series/SOP Instance UIDs in the outputs (identifiers under DICOM "
                        "PS3.15): keep (default), pseudonymize with --uid-key-file, or drop")
    s.add_argument("--uid-key-file", default=None,
                   help="the site's secret key for --uids pseudonymize (>= 16 random bytes, "
                        "e.g. head -c 32 /dev/urandom > site.key; keep it apart from results)")
    s.add_argument("--any-modality", action="store_true",
                   help="screen DICOM files whatever their Modality (default: the bundle's only)")
    s.add_argument("--top-n", type=int, default=24, help="images shown in report.html (default: 24)")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    s.add_argument("--decode-workers", type=int, default=None,
                   help="decoding processes (default: one per core, at most 16)")
    s.add_argument("--engine-threads", type=int, default=None,
                   help="engine CPU threads (default: all cores; on Ray: per actor, default 1)")
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--ray", default=None, metavar="auto|ADDRESS",
                   help="screen on a Ray cluster: auto (RAY_ADDRESS, a cluster started on this "
                        "machine, else a new local one) or the head's address; needs "
                        "pip install 'ddad-rt[ray]' and inputs/--out on shared storage")
    s.add_argument("--ray-actors", type=int, default=None,
                   help="scoring actors on Ray, each owning one engine (default: one per GPU, "
                        "else one per --engine-threads CPUs)")
    s.add_argument("--retry-errors", action="store_true",
                   help="when resuming, try the files in errors.csv again (default: they count as done)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_screen)

    k = sub.add_parser(
        "calibrate", help="set a bundle's operating points on normal images it was not trained on",
        description="Scores normal images (never training images: their hashes are checked "
                    "against the bundle's) and stores per-score thresholds for the target "
                    "specificities in the manifest; the bundle's identity does not change.")
    k.add_argument("bundle")
    k.add_argument("--data", required=True,
                   help="normal images: a folder, a file list, or a Med-AD dataset (its test/0)")
    k.add_argument("--specificity", type=float, nargs="+", default=list(SPECIFICITIES),
                   help="target specificities (default: 0.90 0.95 0.99)")
    k.add_argument("--min-images", type=int, default=MIN_IMAGES,
                   help=f"fewest usable images (default: {MIN_IMAGES})")
    k.add_argument("--drop-training-images", action="store_true",
                   help="leave out images the bundle was trained on instead of refusing")
    k.add_argument("--any-modality", action="store_true",
                   help="use DICOM files whatever their Modality (by default, as screen does, "
                        "files of another modality than the bundle's are left out)")
    k.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    k.add_argument("--threads", type=int, default=0)
    k.set_defaults(func=cmd_calibrate)

    g = sub.add_parser(
        "build-engine", help="build the TensorRT engines of a bundle into the engine cache (GPU)",
        description="Builds the bundle's TensorRT engines for this GPU, TensorRT version, "
                    "precision and batch range, and caches them, so that engines created later "
                    "load in seconds instead of building for minutes. Edge devices run it once "
                    "at install time. Cached engines that are stale or corrupt are rebuilt.")
    g.add_argument("bundle")
    g.add_argument("--max-batch", type=int, default=64,
                   help="largest batch the engines serve (default: 64; use the Engine's value)")
    g.add_argument("--precision", default="default", choices=["default", "fp16", "fp32"],
                   help="default: fp16")
    g.add_argument("--cache-dir", default=None,
                   help="engine cache folder (default: $DDAD_RT_CACHE_DIR or ~/.cache/ddad_rt/tensorrt)")
    g.set_defaults(func=cmd_build_engine)

    i = sub.add_parser("info", help="describe a bundle (verifying its hashes), or this build and its GPU support")
    i.add_argument("bundle", nargs="?", default=None)
    i.add_argument("--cmake-prefix-path", action="store_true",
                   help="print the folder holding the C/C++ SDK's CMake package, headers and "
                        "library: cmake -DCMAKE_PREFIX_PATH=$(ddad-rt info --cmake-prefix-path)")
    i.set_defaults(func=cmd_info)
    return p


#: Exit statuses: 0 done; 1 done, but some files or checks failed (screen, check-precision);
#: 2 a usage or input error (the message says what to change); 3 a bug (with a traceback);
#: 130 interrupted.
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

#: Problems with what the user gave, reported without a traceback.
USER_ERRORS = (InputError, BundleError, EngineError, FileNotFoundError, FileExistsError,
               PermissionError, IsADirectoryError, NotADirectoryError)
#: OSErrors of the machine rather than of ddad-rt: a full disk, a read-only or failing share.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO,
                                errno.ENAMETOOLONG, errno.ELOOP, errno.ESTALE})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # usage errors: argparse exits 2
    try:
        return args.func(args)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our output went away (`ddad-rt info B | head -3`): what it wanted it
        # has; the work, if any, is done. Point stdout at /dev/null so that the interpreter's
        # final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as e:
        if e.errno not in ENVIRONMENT_ERRNOS:
            return _report_bug()
        print(f"error: {e}", file=sys.stderr)  # the message says which file
        return EXIT_USAGE
    except Exception:  # noqa: BLE001 - a bug: say so, with the traceback, and its own status
        return _report_bug()


def _report_bug() -> int:
    import traceback

    traceback.print_exc()
    print("error: ddad-rt failed unexpectedly (exit status 3); please report the traceback "
          "above. Rerunning a screen resumes where it stopped.", file=sys.stderr)
    return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
