"""``ddad-rt screen``: score every image of an archive, flag the anomalous ones, write
results, studies, overlays and a report; resumable after a crash.

Three stages run side by side: worker processes decode files (ddad_rt.screen.decode), the
calling thread batches frames and scores them with the engine (which releases the GIL), and a
writer thread renders overlays and appends rows (ddad_rt.screen.journal). The engine's and
the decoders' shares of the cores are set by ``engine_threads`` and ``decode_workers``.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from ddad_rt.calibrate import DEFAULT_SPECIFICITY, specificity_key, thresholds
from ddad_rt.screen import journal as jr
from ddad_rt.screen.decode import Decoder, decode_item
from ddad_rt.screen.inputs import list_inputs
from ddad_rt.screen.scoring import Frame, ScoringPlan, columns, render, score_frames

OVERLAYS = ("flagged", "all", "none")
STUDY_FIELDS = ["study", "study_uid", "n_images", "n_flagged", "score", "flag", "top_path",
                "top_frame"]

#: Most decoder processes started by default (each holds its own Python and codecs).
MAX_DEFAULT_DECODERS = 16


def default_split(cores: int | None = None) -> tuple[int, int]:
    """(decode worker processes, engine threads) for ``cores`` (default: this machine's).

    Both get every core (decoders at most MAX_DEFAULT_DECODERS): decoders only run while
    there is decoding to do, so with cheap files (small PNGs: 0.3 ms against 3 ms of scoring)
    they idle and the engine has the cores, and with expensive ones (512x512 JPEG 2000 DICOM,
    18 ms) they keep the engine fed. On 2 cores, benchmarks/results/screen/throughput.md
    measured this split within 4% of the fastest on PNGs and 1.4x one decoder on JPEG 2000
    DICOM.
    """
    cores = cores or _usable_cores()
    return min(cores, MAX_DEFAULT_DECODERS), cores


def _usable_cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. under taskset or a
    container's cpuset), else the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class ScreenOptions:
    """Settings of a screening run (those that change results are checked on resume).

    Attributes:
        specificity: operating point (a calibrated specificity) at which images are flagged.
        threshold: flag above this score instead of a calibrated operating point.
        score: the score that is flagged (default: the bundle's default score).
        overlays: heatmap PNGs for "flagged" images, "all", or "none".
        dicom_sc: also write each overlay of a DICOM image as a Secondary Capture.
        include_phi: put the patient's name, ID and birth date in the outputs.
        any_modality: screen DICOM files whatever their Modality.
        top_n: most anomalous images shown in report.html.
        device: engine device ("auto", "cpu", "cuda").
        decode_workers: decoding processes (None: see default_split; 0: in this thread).
        engine_threads: engine CPU threads (None: see default_split).
        batch_size: images per engine call.
        retry_errors: on a resumed run, try again the files errors.csv lists (a share that
            was offline, a file since repaired); by default they count as done.
        ray: run on a Ray cluster: "auto" (RAY_ADDRESS, a cluster started on this machine,
            else a new local one) or its address; None: this machine only. Inputs, bundle
            and ``out`` must be on storage every node sees.
        ray_actors: scoring actors on Ray (default: one per GPU, else one per
            ``engine_threads`` CPUs of the cluster); each owns one Engine.
    """

    specificity: float = DEFAULT_SPECIFICITY
    threshold: float | None = None
    score: str | None = None
    overlays: str = "flagged"
    dicom_sc: bool = False
    include_phi: bool = False
    any_modality: bool = False
    top_n: int = 24
    device: str = "auto"
    decode_workers: int | None = None
    engine_threads: int | None = None
    batch_size: int = 64
    retry_errors: bool = False
    ray: str | None = None
    ray_actors: int | None = None


@dataclass
class ScreenSummary:
    """What a screening run did (this run and the ones it resumed)."""

    out: str
    files: int
    images: int
    flagged: int
    errors: int
    studies: int
    flagged_studies: int
    skipped_done: int
    seconds: float
    images_per_second: float
    calibrated: bool
    operating_point: str
    threshold: float | None
    score: str
    report: str
    errors_by_reason: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [
            (f"screened {self.files} files: {self.images} images, {self.flagged} flagged "
             f"({self.operating_point}), {self.errors} errors"),
             f"studies: {self.studies}, {self.flagged_studies} flagged",
             f"this run: {self.seconds:.1f} s, {self.images_per_second:.1f} images/s"
            + (f"; {self.skipped_done} files were already done" if self.skipped_done else ""),
        ]
        if self.errors_by_reason:
            lines.append("errors: " + ", ".join(f"{k} {v}" for k, v in
                                                sorted(self.errors_by_reason.items())))
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"wrote {self.out}/ (results.csv, results.jsonl, studies.csv, errors.csv, "
                     f"report.html)")
        return "\n".join(lines)


class _Writer(threading.Thread):
    """Renders overlays and appends rows in order, beside the scoring thread."""

    def __init__(self, journal: jr.Journal, out: Path) -> None:
        super().__init__(name="ddad-rt-screen-writer", daemon=True)
        self.journal, self.out = journal, out
        self.q: queue.Queue = queue.Queue(maxsize=4)
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            job = self.q.get()
            if job is None:
                return
            if self.error is not None:
                continue
            rows, errors, files = job
            try:
                for rel, make, row, column in files:  # pictures before the rows naming them
                    try:
                        data = render(make)
                        path = self.out / rel
                        tmp = path.with_name(path.name + ".tmp")
                        tmp.write_bytes(data)
                        tmp.replace(path)
                    except Exception as e:  # noqa: BLE001 - one picture must not stop the run
                        row[column] = f"failed ({type(e).__name__})"
                self.journal.write(rows, errors)
            except BaseException as e:  # noqa: BLE001 - re-raised in the scoring thread
                self.error = e

    def put(self, rows: list[dict], errors: list[dict], files: list) -> None:
        if self.error is not None:
            raise self.error
        self.q.put((rows, errors, files))

    def finish(self) -> None:
        self.q.put(None)
        self.join()
        if self.error is not None:
            raise self.error


def _check_run_file(out: Path, run: dict) -> None:
    path = out / jr.RUN_JSON
    if path.is_file():
        old = json.loads(path.read_text())
        diffs = [f"{k}: {old.get(k)!r} before, {v!r} now" for k, v in run.items()
                 if k != "started" and old.get(k) != v]
        if diffs:
            msg = (f"{out} holds a screening run with other settings ({'; '.join(diffs)}): "
                   "rerun with the same ones to resume it, or use another --out")
            raise FileExistsError(msg)
        return
    jr.atomic_write(path, json.dumps(run, indent=2) + "\n")


def screen(bundle: str | os.PathLike, inputs, out: str | os.PathLike,
           options: ScreenOptions | None = None, progress: bool = True) -> ScreenSummary:
    """Screens files, folders and file lists with a bundle; see ``ddad-rt screen --help``.

    Rerunning with the same bundle, settings and ``out`` resumes: done files are skipped and
    the final outputs equal an uninterrupted run's.

    Returns:
        The run's summary (also printed by the CLI); ``errors`` > 0 means some files could
        not be screened (listed in errors.csv).

    Raises:
        FileExistsError: ``out`` holds a run with other settings.
        FileNotFoundError: an input does not exist.
        ValueError: a bad option (unknown score, uncalibrated specificity, ...).
    """
    o = options or ScreenOptions()
    if o.overlays not in OVERLAYS:
        msg = f"overlays must be one of {', '.join(OVERLAYS)}, got {o.overlays!r}"
        raise ValueError(msg)
    if o.batch_size < 1:
        msg = f"batch_size must be >= 1, got {o.batch_size}"
        raise ValueError(msg)
    d_workers, e_threads = default_split()
    d_workers = d_workers if o.decode_workers is None else o.decode_workers
    e_threads = e_threads if o.engine_threads is None else o.engine_threads
    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lock = jr.lock_out(out)
    try:
        return _screen(bundle, inputs, out, o, progress, lock, d_workers, e_threads, t_start)
    finally:
        lock.close()


def _screen(bundle, inputs, out: Path, o: ScreenOptions, progress: bool, lock, d_workers: int,
            e_threads: int, t_start: float) -> ScreenSummary:
    from ddad_rt import __version__
    from ddad_rt.engine import Engine
    from ddad_rt.screen.report import tally, write_report

    listing_problems: list[tuple[str, str]] = []
    paths = list_inputs(inputs, skip=out, problems=listing_problems)
    ray = actor_engine = None
    if o.ray:
        from ddad_rt.screen import distributed

        ray = distributed.connect(o.ray)
        cpus, gpus = distributed.cluster_resources(ray)
        ray_threads = o.engine_threads or 1
        n_actors, gpus_per_actor = distributed.default_actors(cpus, gpus, ray_threads, o.device)
        n_actors = o.ray_actors or n_actors
        if o.device == "cuda" and not gpus_per_actor:
            msg = f"--device cuda on Ray needs GPU nodes; the cluster has {gpus:g} GPUs"
            raise ValueError(msg)
        distributed.check_resources(ray, n_actors, ray_threads, gpus_per_actor)
        actor_engine = distributed.probe_engine(ray, str(Path(bundle).resolve()), o.device,
                                                ray_threads, gpus_per_actor)
        # The driver's engine only reads the bundle and re-scores the report's top images.
        e_threads, d_workers = 1, 0
    engine = Engine(bundle, device="cpu" if ray else o.device, num_threads=e_threads,
                    max_batch=max(o.batch_size, 1))
    manifest = engine.manifest
    keys = list(manifest["scores"])
    key = o.score or manifest["default_score"]
    if key not in keys:
        msg = f"score {key!r} is not one of this bundle's scores: {', '.join(keys)}"
        raise ValueError(msg)
    notes = []
    if o.threshold is not None:
        threshold, op_name = float(o.threshold), f"threshold {o.threshold:g}"
    else:
        th = thresholds(manifest, o.specificity)
        if th is None:
            threshold, op_name = None, "uncalibrated"
            notes.append("the bundle is not calibrated, so no image is flagged: run "
                         "`ddad-rt calibrate BUNDLE --data NORMAL_IMAGES` first")
        else:
            threshold = th[key]
            op_name = f"specificity {specificity_key(o.specificity)}"
    modality = None if o.any_modality else (manifest.get("modality") or None)
    if not o.any_modality and not modality:
        notes.append("the bundle does not state its modality, so DICOM Modality is not checked")
    op_record = manifest.get("operating_points") or {}
    map_scale = op_record.get("map_scale", {}).get(key)
    info = engine.info
    # What the scores are computed with: this engine, or the Ray actors' (probed).
    scored_with = actor_engine[:2] if ray else (info["backend"], info["precision"])
    calibrated_with = (op_record.get("backend"), op_record.get("precision"))
    if threshold is not None and o.threshold is None and calibrated_with[0] and \
            calibrated_with != scored_with:
        notes.append(f"the thresholds were calibrated with {calibrated_with[0]} "
                     f"{calibrated_with[1]}, this run scores with {scored_with[0]} "
                     f"{scored_with[1]}: recalibrate on this device for exact operating points")
    # Scores differ in the last bits between backends and precisions: one run, one of each.
    run = {"bundle_identity": info["bundle_identity"], "flagged_on": key,
           "operating_point": op_name, "threshold": threshold, "include_phi": o.include_phi,
           "any_modality": o.any_modality, "overlays": o.overlays, "dicom_sc": o.dicom_sc,
           "image_size": list(engine.image_size),
           "backend": f"{scored_with[0]} (Ray actors)" if ray else scored_with[0],
           "precision": scored_with[1],
           "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _check_run_file(out, run)
    fields = columns(keys, o.include_phi)
    journal = jr.Journal(out, fields, lock=lock)
    done_frames, done_counts, error_paths = journal.done()
    if o.retry_errors and error_paths:
        journal.forget_errors(error_paths)
        error_paths = set()
    new_problems = [{"path": p, "reason": "unreadable", "message": m}
                    for p, m in listing_problems if p not in error_paths]
    todo, skipped = [], 0
    for p in map(str, paths):
        if p in error_paths or (p in done_counts and len(done_frames[p]) >= done_counts[p]):
            skipped += 1
        else:
            todo.append(p)
    for folder in ("overlays", "dicom"):
        if folder == "overlays" and o.overlays == "none" or folder == "dicom" and not o.dicom_sc:
            continue
        (out / folder).mkdir(exist_ok=True)
        for tmp in (out / folder).glob("*.tmp"):  # left by a kill mid-write
            tmp.unlink(missing_ok=True)
    audit = {"flagged_on": key, "operating_point": op_name,
             "threshold": "" if threshold is None else threshold,
             "bundle_identity": info["bundle_identity"], "ddad_rt_version": __version__}
    run_id = f"{info['bundle_identity']}:{op_name}"
    description = f"ddad_rt anomaly heatmap ({key}, {op_name}); NOT FOR DIAGNOSTIC USE"

    writer = _Writer(journal, out)
    writer.start()
    if new_problems:
        writer.put([], new_problems, [])
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="screening", unit="file", dynamic_ncols=True,
                   file=sys.stderr)
    n_images = n_flagged = n_errors = 0
    pending: list[Frame] = []
    plan = ScoringPlan(key=key, keys=keys, threshold=threshold, overlays=o.overlays,
                       dicom_sc=o.dicom_sc, include_phi=o.include_phi, map_scale=map_scale,
                       audit=audit, run_id=run_id, description=description)

    def flush() -> None:
        nonlocal n_images, n_flagged
        rows, pictures = score_frames(engine, plan, pending)
        pending.clear()
        if rows:
            n_images += len(rows)
            n_flagged += sum(r["flag"] for r in rows)
            writer.put(rows, [], pictures)

    t_run = time.perf_counter()
    split = f"{d_workers} decode worker(s), {e_threads} engine thread(s)"
    if ray is not None:
        split = (f"Ray: {n_actors} scoring actor(s) x "
                 + (f"{gpus_per_actor:g} GPU" if gpus_per_actor else f"{ray_threads} thread(s)")
                 + f", decoding tasks; cluster {cpus:g} CPUs, {gpus:g} GPUs")
        remaining: dict[str, int] = {}
    try:
        if ray is not None:
            for rows, errors, pictures in distributed.run(
                    ray, todo=todo, done_frames=done_frames,
                    bundle=str(Path(bundle).resolve()), device=o.device, threads=ray_threads,
                    actors=n_actors, gpus_per_actor=gpus_per_actor, batch_size=o.batch_size,
                    size=engine.image_size, modality=modality, include_phi=o.include_phi,
                    plan=plan):
                writer.put(rows, errors, pictures)
                n_images += len(rows)
                n_flagged += sum(r["flag"] for r in rows)
                n_errors += len(errors)
                finished = len(errors)
                for r in rows:  # a file is done when its last missing frame arrives
                    left = remaining.get(r["path"])
                    if left is None:
                        left = r["n_frames"] - len(done_frames.get(r["path"], ()))
                    remaining[r["path"]] = left - 1
                    if left - 1 <= 0:
                        finished += 1
                        del remaining[r["path"]]
                if bar is not None:
                    bar.update(finished)
                    bar.set_postfix(flagged=n_flagged, errors=n_errors, refresh=False)
        else:
            with Decoder(partial(decode_item, size=engine.image_size, modality=modality,
                                 include_phi=o.include_phi), workers=d_workers) as dec:
                for item in dec.decode(todo):
                    if item.error:
                        flush()  # keep rows in input order around the error
                        kind, message = item.error
                        writer.put([], [{"path": item.path, "reason": kind,
                                         "message": " ".join(message.split())}], [])
                        n_errors += 1
                    else:
                        already = done_frames.get(item.path, set())
                        for frame, img in item.frames:
                            if frame not in already:
                                pending.append(Frame(item.path, frame, item.n_frames,
                                                     item.dicom, item.seconds, img))
                                if len(pending) >= o.batch_size:
                                    flush()
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(flagged=n_flagged, errors=n_errors, refresh=False)
                flush()
    finally:
        if bar is not None:
            bar.close()
        try:
            writer.finish()
        finally:
            journal.close()
    seconds = time.perf_counter() - t_run

    # Ray delivers errors in completion order: one order for every run.
    jr.write_csv(out / jr.ERRORS_CSV, jr.ERROR_FIELDS, sorted(journal.errors,
                                                             key=lambda e: e["path"]))
    tallied = tally(jr.iter_rows(out), threshold, o.top_n)
    studies = tallied.studies
    jr.write_csv(out / jr.STUDIES_CSV, STUDY_FIELDS, studies)
    by_reason: dict[str, int] = {}
    for e in journal.errors:
        by_reason[e["reason"]] = by_reason.get(e["reason"], 0) + 1
    summary = ScreenSummary(
        out=str(out), files=len(journal.frames.keys() | {e["path"] for e in journal.errors}),
        images=tallied.images,
        flagged=tallied.flagged, errors=len(journal.errors),
        studies=len(studies), flagged_studies=sum(bool(s["flag"]) for s in studies),
        skipped_done=skipped, seconds=seconds,
        images_per_second=n_images / seconds if seconds > 0 else 0.0,
        calibrated=threshold is not None and o.threshold is None, operating_point=op_name,
        threshold=threshold, score=key, report=str(out / "report.html"),
        errors_by_reason=by_reason, notes=notes)
    write_report(out / "report.html", engine=engine, manifest=manifest, tallied=tallied,
                 errors=journal.errors, summary=summary, key=key, map_scale=map_scale,
                 split=split, total_seconds=time.perf_counter() - t_start)
    (out / "summary.json").write_text(json.dumps(asdict(summary), indent=2) + "\n")
    return summary
