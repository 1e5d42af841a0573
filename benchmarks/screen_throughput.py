"""Screening throughput by split of the cores between decoding and the engine.

The paper's bundle (AE, K=3, 64x64, R_dual; seeded weights, as ``ddad-rt bench``) screens
two archives with ``ddad_rt.screen.screen``: the 1,200 brain MRI test PNGs
(``../shared/data/brain_tumor``; synthetic PNGs when it is absent), cheap to decode, and 300
synthetic 512x512 JPEG 2000 DICOM slices, expensive to decode. Each split runs once per
round, the splits alternating; every run writes a fresh output folder, with overlays for
the ~5% flagged (``threshold`` at the 95th score percentile of the PNGs).

    python benchmarks/screen_throughput.py --rounds 3

With ``--default-bundle`` it measures what issue 17 asks instead: the bundle ``ddad-rt train``
writes (both refiners) screening the PNGs at the default split, with every score computed
(what screening did before issue 16) against only the flagged score (the default since),
alternating, into selection.{json,md}.

Run on a quiet machine. Writes benchmarks/results/screen/throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "brain_tumor"
RESULTS = ROOT / "benchmarks" / "results" / "screen"
#: (decode worker processes, engine threads); (0, n): decoding inline in the scoring thread.
SPLITS = [(0, 2), (1, 1), (1, 2), (2, 1), (2, 2)]


def images(work: Path) -> tuple[list[Path], str]:
    if (DATA / "data.json").is_file():
        from ddad_rt import datasets

        return list(datasets.test_set(DATA).paths), str(DATA)
    from ddad_rt.synthetic import make_dataset

    root = make_dataset(work / "synth", seed=0, n_normal=1, n_unlabeled=1, n_test=1200)
    from ddad_rt import datasets

    return list(datasets.test_set(root).paths), "synthetic"


def dicom_archive(work: Path, n: int = 300, size: int = 512) -> list[Path]:
    """``n`` synthetic 12-bit ``size``x``size`` MR slices as JPEG 2000 lossless DICOM: the
    decode-heavy case of a real archive."""
    import numpy as np
    import pydicom
    from ddad_rt.synthetic import make_image
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        ExplicitVRLittleEndian,
        JPEG2000Lossless,
        MRImageStorage,
        generate_uid,
    )

    rng = np.random.default_rng(1)
    folder = work / "dicom"
    folder.mkdir()
    out = []
    for i in range(n):
        img = make_image(rng, abnormal=i % 2 == 1, size=size)[0].astype(np.uint16) * 16
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = MRImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.Modality = "MR"
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = img.tobytes()
        ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
        path = folder / f"slice_{i:04d}.dcm"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        out.append(path)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--default-bundle", action="store_true",
                    help="the both-refiner bundle, all scores vs the flagged score only")
    a = ap.parse_args()
    if a.default_bundle:
        return selection_main(a)

    import ddad_rt
    import numpy as np
    from ddad_rt.preprocess import load_images
    from ddad_rt.screen import ScreenOptions, default_split, screen
    from ddad_train.bench.inference import prepare

    work = Path(tempfile.mkdtemp(prefix="ddad-screen-bench-"))
    try:
        paths, source = images(work)
        sources = {"png": (paths, f"{len(paths)} brain MRI test PNGs, 128x128 8-bit ({source})"),
                   "dicom_j2k": (dicom_archive(work), ("300 synthetic 512x512 12-bit MR slices, "
                                                       "JPEG 2000 lossless DICOM"))}
        imgs = load_images(paths, 64)
        bundle = prepare(work / "bench", imgs[:64]) / "bundle"
        engine = ddad_rt.Engine(bundle, device="cpu")
        scores = engine.score(imgs).score
        threshold = float(np.quantile(scores, 0.95))
        del engine
        runs: dict[str, dict[str, list[dict]]] = {}
        for name, (files, _) in sources.items():
            listing = work / f"{name}.txt"
            listing.write_text("".join(f"{p}\n" for p in files))
            for rnd in range(a.rounds):
                for dec, eng in SPLITS:
                    out = work / f"out-{name}-{dec}-{eng}-{rnd}"
                    opts = ScreenOptions(threshold=threshold, decode_workers=dec,
                                         engine_threads=eng, device="cpu", top_n=24,
                                         any_modality=True)
                    t0 = time.perf_counter()
                    s = screen(bundle, [listing], out, opts, progress=False)
                    wall = time.perf_counter() - t0
                    assert s.errors == 0, f"{s.errors} files failed"
                    with open(out / "results.jsonl") as f:
                        rows = [json.loads(line) for line in f]
                    runs.setdefault(name, {}).setdefault(f"{dec},{eng}", []).append({
                        "images_per_s": s.images_per_second, "wall_s": wall,
                        "flagged": s.flagged,
                        "decode_ms": statistics.mean(r["decode_ms"] for r in rows),
                        "engine_ms": statistics.mean(r["engine_ms"] for r in rows)})
                    shutil.rmtree(out)
                    print(f"{name} round {rnd} split {dec},{eng}: {s.images_per_second:.0f} "
                          f"images/s (wall {wall:.1f} s incl. start-up and report)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    default = default_split(os.cpu_count())
    med = {src: {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in by.items()}
           for src, by in runs.items()}
    report = {"command": "python benchmarks/screen_throughput.py " + " ".join(sys.argv[1:]),
              "sources": {k: v[1] for k, v in sources.items()}, "cores": os.cpu_count(),
              "cpu": platform.processor() or platform.machine(), "default_split": default,
              "rounds": a.rounds, "median": med, "runs": runs,
              "date": time.strftime("%Y-%m-%d")}
    lines = [f"# Screening throughput by core split ({report['date']})", "",
             (f"`{report['command']}` on {report['cores']} cores (quiet machine); bundle: AE K=3 "
              f"64x64 + R_dual (seeded weights); OpenVINO fp32 on the CPU; {a.rounds} rounds, "
              "splits alternating, medians; overlays written for the ~5% flagged.")]
    for src, by in med.items():
        base = by[f"{default[0]},{default[1]}"]["images_per_s"]
        lines += ["", f"## {report['sources'][src]}", "",
                  ("| decode workers | engine threads | images/s | vs default | decode ms/file "
                   "(in its worker) | engine ms/img | wall s (incl. start-up, report) |"),
                   "|---:|---:|---:|---:|---:|---:|---:|"]
        for k, m in by.items():
            dec, eng = k.split(",")
            mark = " (default)" if (int(dec), int(eng)) == tuple(default) else ""
            lines.append(f"| {dec}{mark} | {eng} | {m['images_per_s']:.0f} | "
                         f"{m['images_per_s'] / base:.2f}x | {m['decode_ms']:.3f} | "
                         f"{m['engine_ms']:.3f} | {m['wall_s']:.1f} |")
    lines += ["", ("0 decode workers: files are decoded in the scoring thread (no overlap). "
              "images/s counts the screening loop only (decode, score, write rows and overlays); "
              "wall time adds engine start-up, input listing and report.html.")]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def selection_main(a: argparse.Namespace) -> int:
    """The default bundle (both refiners) screening the PNGs at the default split: every
    score computed (``all_scores``, screening's behaviour before issue 16) against only the
    flagged score, alternating, ``a.rounds`` times each."""
    import ddad_rt
    import numpy as np
    from ddad_rt.preprocess import load_images
    from ddad_rt.screen import ScreenOptions, default_split, screen
    from ddad_train.bench.inference import prepare

    dec, eng = default_split(os.cpu_count())
    work = Path(tempfile.mkdtemp(prefix="ddad-screen-bench-"))
    runs: dict[str, list[dict]] = {"all scores": [], "flagged score only": []}
    try:
        paths, source = images(work)
        imgs = load_images(paths, 64)
        bundle = prepare(work / "bench", imgs[:64]) / "bundle_default"
        engine = ddad_rt.Engine(bundle, device="cpu")
        threshold = float(np.quantile(engine.score(imgs, scores=("r_dual",)).score, 0.95))
        del engine
        listing = work / "png.txt"
        listing.write_text("".join(f"{p}\n" for p in paths))
        for rnd in range(a.rounds):
            for name, every in (("all scores", True), ("flagged score only", False)):
                out = work / f"out-{rnd}-{every}"
                opts = ScreenOptions(threshold=threshold, score="r_dual", all_scores=every,
                                     decode_workers=dec, engine_threads=eng, device="cpu",
                                     top_n=24)
                s = screen(bundle, [listing], out, opts, progress=False)
                assert s.errors == 0, f"{s.errors} files failed"
                with open(out / "results.jsonl") as f:
                    rows = [json.loads(line) for line in f]
                runs[name].append({"images_per_s": s.images_per_second, "flagged": s.flagged,
                                   "engine_ms": statistics.mean(r["engine_ms"] for r in rows)})
                shutil.rmtree(out)
                print(f"round {rnd} {name}: {s.images_per_second:.0f} images/s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in runs.items()}
    ratio = med["flagged score only"]["images_per_s"] / med["all scores"]["images_per_s"]
    report = {"command": "python benchmarks/screen_throughput.py " + " ".join(sys.argv[1:]),
              "source": f"{len(paths)} brain MRI test PNGs ({source})", "cores": os.cpu_count(),
              "split": [dec, eng], "rounds": a.rounds, "median": med, "runs": runs,
              "ratio": ratio, "date": time.strftime("%Y-%m-%d")}
    lines = [f"# Screening with the default bundle: the flagged score only vs every score ({report['date']})",
             "", (f"`{report['command']}` on {report['cores']} cores (quiet machine); bundle: AE K=3 "
                  "64x64 with R_dual and R_intra (what `ddad-rt train` writes; seeded weights), "
                  f"flagging on r_dual; {report['source']}; default split ({dec} decode workers, "
                  f"{eng} engine threads); OpenVINO fp32; {a.rounds} rounds alternating, medians."),
             "", "| screening computes | images/s | engine ms/img | flagged |", "|---|---:|---:|---:|"]
    for k, m in med.items():
        lines.append(f"| {k} | {m['images_per_s']:.0f} | {m['engine_ms']:.3f} | {m['flagged']:.0f} |")
    lines += ["", f"Flagged score only / every score: **{ratio:.2f}x** images/s (issue 17 asks >= 1.4x)."]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "selection.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "selection.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
