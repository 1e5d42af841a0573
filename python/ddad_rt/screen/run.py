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
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from ddad_rt.calibrate import DEFAULT_SPECIFICITY, specificity_key, thresholds
from ddad_rt.errors import InputError
from ddad_rt.screen import journal as jr
from ddad_rt.screen import uids
from ddad_rt.screen.decode import Decoder, decode_item
from ddad_rt.screen.inputs import check_inputs, iter_inputs
from ddad_rt.screen.scoring import Frame, ScoringPlan, columns, render, score_frames

OVERLAYS = ("flagged", "all", "none")
STUDY_FIELDS = ["study", "study_uid", "n_images", "n_flagged", "score", "flag", "top_path",
                "top_frame"]

#: Where a Ray run writes its to-do list for the cluster to read (removed when done).
TODO_FOLDER = ".ddad-rt-todo"
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
    """The CPUs this process may use: its affinity mask (taskset, a container's cpuset)
    capped by its cgroup CPU quota (a container's --cpus), as the engine counts them."""
    from ddad_rt import _core

    return _core.usable_cpus()


@dataclass
class ScreenOptions:
    """Settings of a screening run (those that change results are checked on resume).

    Attributes:
        specificity: operating point (a calibrated specificity) at which images are flagged.
        threshold: flag above this score instead of a calibrated operating point.
        score: the score that is flagged (default: the bundle's default score).
        all_scores: compute every score of the bundle and write each as a ``score_<key>``
            column; by default only the flagged score is computed (its networks alone run:
            the other refiner, most of an image's cost, is skipped).
        overlays: heatmap PNGs for "flagged" images, "all", or "none".
        dicom_sc: also write each overlay of a DICOM image as a Secondary Capture.
        include_phi: put the patient's name, ID and birth date in the outputs, and decoders'
            exception texts (which can quote DICOM values) in errors.csv and report.html.
        uids: Study, Series and SOP Instance UIDs in the outputs: "keep", "pseudonymize"
            (HMAC under ``uid_key``, a per-site secret) or "drop" (ddad_rt.screen.uids).
        uid_key: the key for ``uids="pseudonymize"`` (ddad_rt.screen.uids.read_key).
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
    all_scores: bool = False
    overlays: str = "flagged"
    dicom_sc: bool = False
    include_phi: bool = False
    uids: str = "keep"
    uid_key: bytes | None = field(default=None, repr=False)
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
        FileExistsError: ``out`` holds a run with other settings, or another run is writing
            to it.
        FileNotFoundError: an input does not exist.
        ValueError: a bad option (unknown score, uncalibrated specificity, ...).
    """
    o = options or ScreenOptions()
    inputs = list(inputs)  # the arguments (files, folders, lists): checked now, walked later
    if o.overlays not in OVERLAYS:
        msg = f"overlays must be one of {', '.join(OVERLAYS)}, got {o.overlays!r}"
        raise InputError(msg)
    if o.batch_size < 1:
        msg = f"batch_size must be >= 1, got {o.batch_size}"
        raise InputError(msg)
    uids.check(o.uids, o.uid_key)
    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # Held from before the first read of ``out`` until its last file is written: a second
    # run into the same folder must not start while this one still writes errors.csv,
    # studies.csv, report.html or summary.json.
    lock = jr.lock_out(out)
    try:
        run = _set_up(bundle, inputs, out, o)
        journal = jr.Journal(out, columns(run.keys, o.include_phi), lock=lock)
        try:
            n_todo, skipped, new_problems = _plan_todo(journal, inputs, out, o, progress)
            _prepare_folders(out, o)
            tally = _Tally(skipped=skipped)
            writer = _Writer(journal, out)
            writer.start()
            bar = _progress_bar(n_todo) if progress else None
            t_run = time.perf_counter()
            try:
                if new_problems:
                    writer.put([], new_problems, [])
                if run.ray is not None:
                    _screen_on_ray(run, o, journal.index, n_todo, out, writer, bar, tally)
                else:
                    _screen_locally(run, o, journal.index, writer, bar, tally)
            finally:
                if bar is not None:
                    bar.close()
                try:
                    writer.finish()
                finally:
                    journal.close()
            tally.seconds = time.perf_counter() - t_run
            return _finish(run, o, out, journal.index, tally, t_start)
        finally:
            journal.index.close()
    finally:
        lock.close()


@dataclass
class _Run:
    """What a screening run was set up with (the engine, the operating point, the plan)."""

    engine: object
    manifest: dict
    keys: list[str]
    key: str
    threshold: float | None
    op_name: str
    notes: list[str]
    map_scale: float | None
    modality: str | None
    plan: ScoringPlan
    split: str
    decode_workers: int
    ray: object | None = None
    ray_args: dict = field(default_factory=dict)


@dataclass
class _Tally:
    """This run's counts (the summary's totals come from the files, resumed runs included)."""

    images: int = 0
    flagged: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0

    def add(self, rows: list[dict], errors: list[dict]) -> None:
        self.images += len(rows)
        self.flagged += sum(r["flag"] for r in rows)
        self.errors += len(errors)


def _progress_bar(total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc="screening", unit="file", dynamic_ncols=True, file=sys.stderr)


def _set_up(bundle, inputs, out: Path, o: ScreenOptions) -> _Run:
    """Lists the inputs, connects to Ray if asked, loads the engine, resolves the score and
    operating point, and records the run's settings in run.json (checked on resume)."""
    from ddad_rt.engine import Engine

    check_inputs(inputs)  # a mistyped argument fails now, not after the engine loads
    d_workers, e_threads = default_split()
    d_workers = d_workers if o.decode_workers is None else o.decode_workers
    e_threads = e_threads if o.engine_threads is None else o.engine_threads
    split = f"{d_workers} decode worker(s), {e_threads} engine thread(s)"
    ray, ray_args = None, {}
    if o.ray:
        ray, ray_args, split = _connect_ray(bundle, o)
        # The driver's engine only reads the bundle and re-scores the report's top images.
        e_threads, d_workers = 1, 0
    engine = Engine(bundle, device="cpu" if ray else o.device, num_threads=e_threads,
                    max_batch=max(o.batch_size, 1))
    manifest = engine.manifest
    bundle_keys = list(manifest["scores"])
    key = o.score or manifest["default_score"]
    if key not in bundle_keys:
        msg = f"score {key!r} is not one of this bundle's scores: {', '.join(bundle_keys)}"
        raise InputError(msg)
    keys = bundle_keys if o.all_scores else [key]
    threshold, op_name, notes = _operating_point(manifest, o, key)
    modality = None if o.any_modality else (manifest.get("modality") or None)
    if not o.any_modality and not modality:
        notes.append("the bundle does not state its modality, so DICOM Modality is not checked")
    op_record = manifest.get("operating_points") or {}
    map_scale = op_record.get("map_scale", {}).get(key)
    info = engine.info
    # What the scores are computed with: this engine, or the Ray actors' (probed).
    scored_with = ray_args["actor_engine"][:2] if ray else (info["backend"], info["precision"])
    calibrated_with = (op_record.get("backend"), op_record.get("precision"))
    if threshold is not None and o.threshold is None and calibrated_with[0] and \
            calibrated_with != scored_with:
        notes.append(f"the thresholds were calibrated with {calibrated_with[0]} "
                     f"{calibrated_with[1]}, this run scores with {scored_with[0]} "
                     f"{scored_with[1]}: recalibrate on this device for exact operating points")
    # Scores differ in the last bits between backends and precisions: one run, one of each.
    _check_run_file(out, {
        "bundle_identity": info["bundle_identity"], "flagged_on": key,
        "operating_point": op_name, "threshold": threshold, "include_phi": o.include_phi,
        "uids": o.uids, "uid_key_id": uids.key_id(o.uid_key if o.uids == "pseudonymize" else None),
        "any_modality": o.any_modality, "overlays": o.overlays, "dicom_sc": o.dicom_sc,
        "scores": keys,
        "image_size": list(engine.image_size),
        "backend": f"{scored_with[0]} (Ray actors)" if ray else scored_with[0],
        "precision": scored_with[1], "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
    plan = _scoring_plan(o, key, keys, threshold, op_name, map_scale, info["bundle_identity"])
    return _Run(engine=engine, manifest=manifest, keys=keys, key=key, threshold=threshold,
                op_name=op_name, notes=notes, map_scale=map_scale, modality=modality, plan=plan,
                split=split,
                decode_workers=d_workers, ray=ray, ray_args=ray_args)


def _operating_point(manifest: dict, o: ScreenOptions, key: str):
    """(threshold or None, its name, notes) for the run's options."""
    if o.threshold is not None:
        return float(o.threshold), f"threshold {o.threshold:g}", []
    th = thresholds(manifest, o.specificity)
    if th is None:
        return None, "uncalibrated", [
            "the bundle is not calibrated, so no image is flagged: run "
            "`ddad-rt calibrate BUNDLE --data NORMAL_IMAGES` first"]
    return th[key], f"specificity {specificity_key(o.specificity)}", []


def _scoring_plan(o: ScreenOptions, key, keys, threshold, op_name, map_scale,
                  identity: str) -> ScoringPlan:
    from ddad_rt import __version__

    audit = {"flagged_on": key, "operating_point": op_name,
             "threshold": "" if threshold is None else threshold,
             "bundle_identity": identity, "ddad_rt_version": __version__}
    return ScoringPlan(key=key, keys=keys, threshold=threshold, overlays=o.overlays,
                       dicom_sc=o.dicom_sc, include_phi=o.include_phi, map_scale=map_scale,
                       audit=audit, run_id=f"{identity}:{op_name}",
                       description=f"ddad_rt anomaly heatmap ({key}, {op_name}); NOT FOR "
                                   "DIAGNOSTIC USE")


def _connect_ray(bundle, o: ScreenOptions):
    """(ray, the actors' settings, the split's description) for ``--ray``."""
    from ddad_rt.screen import distributed

    ray = distributed.connect(o.ray)
    cpus, gpus = distributed.cluster_resources(ray)
    threads = o.engine_threads or 1
    n_actors, gpus_per_actor = distributed.default_actors(cpus, gpus, threads, o.device)
    n_actors = o.ray_actors or n_actors
    if o.device == "cuda" and not gpus_per_actor:
        msg = f"--device cuda on Ray needs GPU nodes; the cluster has {gpus:g} GPUs"
        raise InputError(msg)
    distributed.check_resources(ray, n_actors, threads, gpus_per_actor)
    resolved = str(Path(bundle).resolve())
    actor_engine = distributed.probe_engine(ray, resolved, o.device, threads, gpus_per_actor)
    split = (f"Ray: {n_actors} scoring actor(s) x "
             + (f"{gpus_per_actor:g} GPU" if gpus_per_actor else f"{threads} thread(s)")
             + f", decoding tasks; cluster {cpus:g} CPUs, {gpus:g} GPUs")
    args = {"bundle": resolved, "threads": threads, "actors": n_actors,
            "gpus_per_actor": gpus_per_actor, "actor_engine": actor_engine}
    return ray, args, split


def _plan_todo(journal: jr.Journal, inputs, out: Path, o: ScreenOptions, progress: bool):
    """Walks the inputs once, lazily, into the run index's to-do list (files not done yet,
    in input order; a file listed twice counts once): (files to screen, files already done,
    error rows for folders that could not be listed)."""
    index = journal.index
    if o.retry_errors:
        journal.forget_errors()
    problems: list[tuple[str, str]] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc="listing", unit="file", dynamic_ncols=True, file=sys.stderr, leave=False)
    n_todo = skipped = 0
    for p in map(str, iter_inputs(inputs, skip=out, problems=problems,
                                  first_sight=index.first_sight)):
        state = index.state(p)
        if state in ("done", "error"):
            skipped += 1
        else:
            index.add_todo(p, json.dumps(index.done_frames(p)) if state == "partial" else "[]")
            n_todo += 1
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    new_problems = [{"path": p, "reason": "unreadable", "message": m}
                    for p, m in problems if index.state(p) != "error"]
    return n_todo, skipped, new_problems


def _prepare_folders(out: Path, o: ScreenOptions) -> None:
    for folder in ("overlays", "dicom"):
        if folder == "overlays" and o.overlays == "none" or folder == "dicom" and not o.dicom_sc:
            continue
        (out / folder).mkdir(exist_ok=True)
        for tmp in (out / folder).glob("*.tmp"):  # left by a kill mid-write
            tmp.unlink(missing_ok=True)


#: Error rows held back at most (they are written with the next batch of results): a run of
#: unreadable files costs one journal write per this many, not one each.
ERROR_BATCH = 512


def _screen_locally(run: _Run, o: ScreenOptions, index, writer: _Writer, bar,
                    tally: _Tally) -> None:
    """Decoder processes -> batches of frames -> the engine -> the writer thread."""
    pending: list[Frame] = []
    errors: list[dict] = []
    skips: dict[str, set[int]] = {}  # frames already done, for the few partly done files

    def todo() -> Iterator[str]:
        for path, skip in index.todo():
            if skip != "[]":
                skips[path] = set(json.loads(skip))
            yield path

    def flush() -> None:
        rows, pictures = score_frames(run.engine, run.plan, pending) if pending else ([], [])
        pending.clear()
        if rows or errors:
            tally.add(rows, errors)
            writer.put(rows, list(errors), pictures)
            errors.clear()

    decode_one = partial(decode_item, size=run.engine.image_size, modality=run.modality,
                         include_phi=o.include_phi, uids=o.uids, uid_key=o.uid_key)
    with Decoder(decode_one, workers=run.decode_workers) as dec:
        for item in dec.decode(todo()):
            already = skips.pop(item.path, ())
            if item.error:
                kind, message = item.error
                errors.append({"path": item.path, "reason": kind,
                               "message": " ".join(message.split())})
                if len(errors) >= ERROR_BATCH:
                    flush()
            else:
                for frame, img in item.frames:
                    if frame not in already:
                        pending.append(Frame(item.path, frame, item.n_frames, item.dicom,
                                             item.seconds, img))
                        if len(pending) >= o.batch_size:
                            flush()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(flagged=tally.flagged, errors=tally.errors + len(errors),
                                refresh=False)
        flush()


def _screen_on_ray(run: _Run, o: ScreenOptions, index, n_todo: int, out: Path,
                   writer: _Writer, bar, tally: _Tally) -> None:
    """Ray Data decoding tasks -> an actor pool of engines -> this process's writer. The
    to-do list goes to the cluster as files in ``out`` (which every node sees)."""
    from ddad_rt.screen import distributed

    a = run.ray_args
    parts = distributed.write_todo(out / TODO_FOLDER, index.todo())
    remaining: dict[str, int] = {}  # frames still to come, for files with rows in flight
    for rows, errors, pictures in distributed.run(
            run.ray, todo_parts=parts, n_todo=n_todo, bundle=a["bundle"], device=o.device,
            threads=a["threads"], actors=a["actors"], gpus_per_actor=a["gpus_per_actor"],
            batch_size=o.batch_size, size=run.engine.image_size, modality=run.modality,
            include_phi=o.include_phi, uids=o.uids, uid_key=o.uid_key, plan=run.plan):
        writer.put(rows, errors, pictures)
        tally.add(rows, errors)
        finished = len(errors)
        for r in rows:  # a file is done when its last missing frame arrives
            left = remaining.get(r["path"])
            if left is None:
                left = r["n_frames"] - len(index.done_frames(r["path"]))
            remaining[r["path"]] = left - 1
            if left - 1 <= 0:
                finished += 1
                del remaining[r["path"]]
        if bar is not None:
            bar.update(finished)
            bar.set_postfix(flagged=tally.flagged, errors=tally.errors, refresh=False)
    shutil.rmtree(out / TODO_FOLDER, ignore_errors=True)


def _finish(run: _Run, o: ScreenOptions, out: Path, index, tally: _Tally,
            t_start: float) -> ScreenSummary:
    """The run's final files, computed from what is on disk and streamed (nothing grows with
    the archive): errors.csv in path order, studies.csv, report.html and summary.json."""
    from ddad_rt.screen.report import ErrorSummary, write_report
    from ddad_rt.screen.report import tally as tally_rows

    # Ray delivers errors in completion order: one order for every run.
    jr.write_csv(out / jr.ERRORS_CSV, jr.ERROR_FIELDS, index.errors())
    tallied = tally_rows(jr.iter_rows(out), run.threshold, o.top_n, index)
    jr.write_csv(out / jr.STUDIES_CSV, STUDY_FIELDS, index.studies(run.threshold))
    by_reason = index.error_counts()
    n_errors = sum(by_reason.values())
    summary = ScreenSummary(
        out=str(out), files=index.n_files(), images=tallied.images, flagged=tallied.flagged,
        errors=n_errors, studies=tallied.studies, flagged_studies=tallied.flagged_studies,
        skipped_done=tally.skipped, seconds=tally.seconds,
        images_per_second=tally.images / tally.seconds if tally.seconds > 0 else 0.0,
        calibrated=run.threshold is not None and o.threshold is None,
        operating_point=run.op_name, threshold=run.threshold, score=run.key,
        report=str(out / "report.html"), errors_by_reason=by_reason, notes=run.notes)
    first_errors = [e for _, e in zip(range(50), index.errors())]
    write_report(out / "report.html", engine=run.engine, manifest=run.manifest,
                 tallied=tallied, errors=ErrorSummary(n_errors, by_reason, first_errors),
                 summary=summary, key=run.key, map_scale=run.map_scale, split=run.split,
                 total_seconds=time.perf_counter() - t_start)
    jr.atomic_write(out / "summary.json", json.dumps(asdict(summary), indent=2) + "\n")
    return summary
