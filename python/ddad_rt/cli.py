"""The ``ddad-rt`` command line. Thin: it parses arguments and calls library functions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TRAIN_EXTRA = "this command needs the training extra (PyTorch, ONNX): pip install 'ddad-rt[train]'"


def _import_train():
    try:
        import ddad_train  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"error: {TRAIN_EXTRA} ({e})") from None


def cmd_demo(a: argparse.Namespace) -> int:
    _import_train()
    from ddad_train.demo import DEMO_EPOCHS, run_demo

    epochs = a.epochs if a.epochs is not None else DEMO_EPOCHS
    results = run_demo(a.out, seed=a.seed, epochs=epochs, threads=a.threads)
    print(results["table"])
    b = results["baseline_mean_intensity"]
    print(f"baseline (mean intensity): AUC {b['auc']:.4f}  AP {b['ap']:.4f}")
    print(f"wrote {Path(a.out) / 'results.json'}, {Path(a.out) / 'maps.png'} and the bundle "
          f"{results['bundle']} in {results['seconds']['total']:.0f} s")
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    _import_train()
    from ddad_train import TrainConfig, train

    cfg = TrainConfig(data=a.data, out=a.out, k=a.k, image_size=a.image_size,
                      latent_size=a.latent_size, mp=a.mp, n=a.n, ar=a.ar, epochs=a.epochs,
                      batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay,
                      seed=a.seed, threads=a.threads)
    bundle = train(cfg)
    print(f"wrote bundle {bundle}")
    return 0


def cmd_eval(a: argparse.Namespace) -> int:
    from ddad_rt.evaluate import evaluate, format_table

    report = evaluate(a.bundle, a.data, device=a.device, num_threads=a.threads)
    print(format_table(report))
    print(f"{report['n_normal']} normal, {report['n_abnormal']} abnormal test images; "
          f"engine: {report['backend']}")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {a.json}")
    return 0


def cmd_info(a: argparse.Namespace) -> int:
    import ddad_rt
    from ddad_rt.bundle import read_manifest

    if a.bundle is None:
        print(json.dumps(ddad_rt.build_info(), indent=2))
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
        losses = t.get("losses", {})
        for mod in ("ndm", "udm"):
            if losses.get(mod):
                last = losses[mod][-1]
                print(f"{mod.upper()} loss    last epoch: {', '.join(f'{v:.4f}' for v in last)} (per member)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ddad-rt", description="DDAD-ASR anomaly detection for medical images.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="synthetic data -> train -> bundle -> engine scores, AUC, maps.png")
    d.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--epochs", type=int, default=None, help="AE epochs per module (default: the demo budget)")
    d.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all)")
    d.set_defaults(func=cmd_demo)

    t = sub.add_parser("train", help="train NDM and UDM on a dataset folder and write a bundle")
    t.add_argument("--data", required=True, help="Med-AD folder (data.json) or plain folder (normal/, unlabeled/)")
    t.add_argument("--out", required=True, help="bundle directory to write")
    t.add_argument("--k", type=int, default=3, help="members per module (default 3)")
    t.add_argument("--epochs", type=int, default=250)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--image-size", type=int, default=64)
    t.add_argument("--latent-size", type=int, default=16)
    t.add_argument("--mp", type=float, default=1.0, help="width multiplier")
    t.add_argument("--n", type=int, default=None, help="unlabeled pool size (Med-AD; default: all)")
    t.add_argument("--ar", type=float, default=None, help="pool anomaly rate (Med-AD; default: the pool's own)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=0)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="AUC and AP per score on a labelled test split, through the engine")
    e.add_argument("bundle")
    e.add_argument("--data", required=True, help="Med-AD folder or folder with test/normal and test/abnormal")
    e.add_argument("--json", default=None, help="also write the report as JSON")
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    e.add_argument("--threads", type=int, default=0)
    e.set_defaults(func=cmd_eval)

    i = sub.add_parser("info", help="describe a bundle (verifying its hashes), or this build")
    i.add_argument("bundle", nargs="?", default=None)
    i.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import ddad_rt
    from ddad_rt.bundle import BundleError as PyBundleError

    try:
        return args.func(args)
    except (ddad_rt.BundleError, ddad_rt.EngineError, PyBundleError, ValueError,
            FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
