"""Screening on a Ray cluster (``ddad-rt screen ... --ray auto|ADDRESS``).

A Ray Data pipeline with streaming execution: the input list (paths on storage every node
sees) -> CPU tasks decoding files with the shared preprocessing -> an actor pool where each
actor owns one Engine (one GPU per actor on GPU nodes, ``engine_threads`` CPU threads
otherwise) and turns batches into result rows and pictures -> the driver, which writes them
through the same crash-safe journal as a local run. So the outputs are the local run's, a
killed driver resumes from the journal, and a killed actor is restarted by Ray and its batch
retried (rows a retry delivers twice are dropped by the journal).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path

import numpy as np

from ddad_rt.errors import InputError
from ddad_rt.screen.decode import Decoder, decode_item
from ddad_rt.screen.scoring import Frame, ScoringPlan, render, score_frames

RAY_EXTRA = "screening on Ray needs the ray extra: pip install 'ddad-rt[ray]'"
#: Files per decoding task.
DECODE_BATCH = 8
#: Logical CPUs an actor reserves per engine thread (and a decoding task reserves): less
#: than one so that a node's decoders and engines can share its cores, as they do locally.
CPU_SHARE = 0.5


def import_ray():
    try:
        import ray
        import ray.data
    except ImportError as e:
        msg = f"{RAY_EXTRA} ({e})"
        raise ImportError(msg) from None
    return ray


def connect(address: str):
    """Connects to the cluster at ``address`` ("auto": RAY_ADDRESS, else a cluster started on
    this machine with ``ray start``, else a new local one)."""
    ray = import_ray()
    if not ray.is_initialized():
        kwargs = {"logging_level": logging.WARNING, "log_to_driver": False}
        try:
            if address == "auto":
                ray.init(**kwargs)
            else:
                ray.init(address=address, **kwargs)
        except (ConnectionError, ray.exceptions.RayError) as e:
            hint = ("" if os.environ.get("RAY_AUTH_MODE") else
                    "; a cluster started with token authentication (the default of `ray start` "
                    "since Ray 2.59) needs RAY_AUTH_MODE=token here too, with its token in "
                    "RAY_AUTH_TOKEN or ~/.ray/auth_token")
            msg = f"cannot connect to the Ray cluster at {address}: {e}{hint}"
            raise ConnectionError(msg) from None
    # ddad-rt draws its own progress bar; Ray Data's logs go to the session's log files.
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    return ray


#: Per Ray worker process: one decoder process, reused by every task the worker runs, so
#: that a codec crashing on a file costs that file (an error row) and not the task.
_DECODERS: dict = {}


def _decoder(size: tuple[int, int], modality: str | None, include_phi: bool, uids: str,
             uid_key: bytes | None) -> Decoder:
    key = (tuple(size), modality, include_phi, uids, uid_key)
    if key not in _DECODERS:
        _DECODERS[key] = Decoder(partial(decode_item, size=tuple(size), modality=modality,
                                         include_phi=include_phi, uids=uids, uid_key=uid_key),
                                 workers=1, chunk=1, ahead=2)
    return _DECODERS[key]


def _decode_batch(batch: dict, size: tuple[int, int], modality: str | None,
                  include_phi: bool, uids: str = "keep", uid_key: bytes | None = None) -> dict:
    """A Ray Data task: files -> one record per frame still to score (or per bad file)."""
    out = {"path": [], "frame": [], "n_frames": [], "dicom": [], "seconds": [],
           "error_kind": [], "error_msg": []}
    images = []
    # One to-do line per file: {"path": ..., "skip": [frames already done]} as ASCII JSON
    # (file names that are not UTF-8 survive as escapes).
    todo = [json.loads(str(line)) for line in batch["text"]]
    paths = [t["path"] for t in todo]
    skips = {t["path"]: json.dumps(t["skip"]) for t in todo}
    for item in _decoder(size, modality, include_phi, uids, uid_key).decode(paths):
        path = item.path
        done = set(json.loads(skips[path]))
        records = [(-1, None)] if item.error else [(f, im) for f, im in item.frames if f not in done]
        for frame, img in records:
            out["path"].append(item.path)
            out["frame"].append(frame)
            out["n_frames"].append(item.n_frames)
            out["dicom"].append(json.dumps(item.dicom))
            out["seconds"].append(item.seconds)
            out["error_kind"].append(item.error[0] if item.error else "")
            out["error_msg"].append(item.error[1] if item.error else "")
            images.append(img if img is not None else np.zeros(size, np.uint8))
    result = {k: np.array(v, dtype=object if k in ("path", "dicom", "error_kind", "error_msg")
                          else None) for k, v in out.items()}
    result["image"] = np.stack(images) if images else np.zeros((0, *size), np.uint8)
    return result


class RayScorer:
    """A Ray Data actor: owns one Engine; decoded records -> rows (as JSON) and pictures."""

    def __init__(self, bundle: str, device: str, threads: int, max_batch: int,
                 plan: ScoringPlan) -> None:
        from ddad_rt.engine import Engine

        self.engine = Engine(bundle, device=device, num_threads=threads, max_batch=max_batch)
        self.plan = plan

    def __call__(self, batch: dict) -> dict:
        out = {"record": [], "is_error": [], "overlay_png": [], "sc_dcm": []}
        frames = []
        for i in range(len(batch["path"])):
            if batch["error_kind"][i]:
                err = {"path": str(batch["path"][i]), "reason": str(batch["error_kind"][i]),
                       "message": " ".join(str(batch["error_msg"][i]).split())}
                out["record"].append(json.dumps(err))
                out["is_error"].append(True)
                out["overlay_png"].append(b"")
                out["sc_dcm"].append(b"")
            else:
                frames.append(Frame(str(batch["path"][i]), int(batch["frame"][i]),
                                    int(batch["n_frames"][i]), json.loads(str(batch["dicom"][i])),
                                    float(batch["seconds"][i]), np.asarray(batch["image"][i])))
        rows, pictures = score_frames(self.engine, self.plan, frames)
        data: dict[int, dict[str, bytes]] = {}
        for _rel, make, row, column in pictures:
            try:
                data.setdefault(id(row), {})[column] = render(make)
            except Exception as e:  # noqa: BLE001 - one picture must not fail the batch
                row[column] = f"failed ({type(e).__name__})"
        for row in rows:
            pics = data.get(id(row), {})
            out["record"].append(json.dumps(row))
            out["is_error"].append(False)
            out["overlay_png"].append(pics.get("overlay", b""))
            out["sc_dcm"].append(pics.get("dicom_sc", b""))
        return {"record": np.array(out["record"], dtype=object),
                "is_error": np.array(out["is_error"], dtype=bool),
                "overlay_png": np.array(out["overlay_png"], dtype=object),
                "sc_dcm": np.array(out["sc_dcm"], dtype=object)}


def cluster_resources(ray) -> tuple[float, float]:
    """(CPUs, GPUs) of the connected cluster."""
    res = ray.cluster_resources()
    return float(res.get("CPU", 0)), float(res.get("GPU", 0))


#: Files per to-do list part: Ray reads the parts in parallel, in bounded blocks.
TODO_PART = 50_000


def write_todo(folder: Path, todo: Iterable[tuple[str, str]]) -> list[str]:
    """Writes the to-do list ((path, JSON list of frames done) pairs, streamed) as text files
    of TODO_PART lines in ``folder`` (on storage every node sees); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("todo-*.txt"):
        old.unlink()
    parts: list[str] = []
    f = None
    try:
        for i, (path, skip) in enumerate(todo):
            if i % TODO_PART == 0:
                if f is not None:
                    f.close()
                parts.append(str(folder / f"todo-{len(parts):05d}.txt"))
                f = open(parts[-1], "w", encoding="ascii")  # noqa: SIM115 - closed below
            f.write(json.dumps({"path": path, "skip": json.loads(skip)}) + "\n")
    finally:
        if f is not None:
            f.close()
    return parts


def run(ray, *, todo_parts: list[str], n_todo: int, bundle: str, device: str,
        threads: int, actors: int, gpus_per_actor: float, batch_size: int,
        size: tuple[int, int], modality: str | None, include_phi: bool, plan: ScoringPlan,
        uids: str = "keep", uid_key: bytes | None = None
        ) -> Iterator[tuple[list[dict], list[dict], list]]:
    """Streams (rows, error rows, pictures) batch by batch; pictures are (relative path,
    callable returning the bytes, row, column) as the local writer expects. The files to
    screen are read by Ray from ``todo_parts`` (write_todo): the driver never holds them."""
    if not n_todo:
        return
    decode_kwargs = {"size": tuple(size), "modality": modality, "include_phi": include_phi,
                     "uids": uids, "uid_key": uid_key}
    yield from _stream(ray, todo_parts, n_todo, bundle, device, threads, actors,
                       gpus_per_actor, batch_size, decode_kwargs, plan)


def _stream(ray, todo_parts, n_todo, bundle, device, threads, actors, gpus_per_actor,
            batch_size, decode_kwargs, plan):
    ds = ray.data.read_text(todo_parts, encoding="ascii",
                            override_num_blocks=max(1, min(n_todo // DECODE_BATCH, 4096)))
    ds = ds.map_batches(_decode_batch, batch_size=DECODE_BATCH, batch_format="numpy",
                        num_cpus=CPU_SHARE,
                        fn_kwargs=decode_kwargs)
    actor_resources = ({"num_gpus": gpus_per_actor, "num_cpus": CPU_SHARE} if gpus_per_actor
                       else {"num_cpus": CPU_SHARE * threads})
    # Ray Data's actor pools restart a killed actor and retry its batch (max_restarts=-1,
    # max_task_retries=-1 are its defaults).
    ds = ds.map_batches(RayScorer, batch_size=batch_size, batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(size=actors),
                        fn_constructor_kwargs={"bundle": bundle, "device": device,
                                               "threads": threads, "max_batch": batch_size,
                                               "plan": plan},
                        **actor_resources)
    for b in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
        rows, errors, pictures = [], [], []
        for rec, is_err, png, sc in zip(b["record"], b["is_error"], b["overlay_png"], b["sc_dcm"]):
            record = json.loads(str(rec))
            if is_err:
                errors.append(record)
                continue
            rows.append(record)
            for column, blob in (("overlay", png), ("dicom_sc", sc)):
                if record[column] and not record[column].startswith("failed") and len(blob):
                    pictures.append((record[column], (lambda data=bytes(blob): data), record,
                                     column))
        yield rows, errors, pictures


def check_resources(ray, actors: int, threads: int, gpus_per_actor: float) -> None:
    """Refuses an actor pool that would leave no CPU for decoding (the run would wait
    forever) or whose actors fit on no node."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    node_cpus = [float(n.get("Resources", {}).get("CPU", 0)) for n in nodes] or [0.0]
    need = CPU_SHARE if gpus_per_actor else CPU_SHARE * threads
    if need > max(node_cpus) - CPU_SHARE:
        msg = (f"a scoring actor with {threads} engine thread(s) reserves {need:g} CPUs, but "
               f"the largest node has {max(node_cpus):g} (and decoding needs {CPU_SHARE:g}): "
               "lower --engine-threads")
        raise InputError(msg)
    if actors * need > sum(node_cpus) - CPU_SHARE:
        msg = (f"{actors} scoring actors x {need:g} CPUs leave the cluster's "
               f"{sum(node_cpus):g} CPUs nothing for decoding: lower --ray-actors or "
               "--engine-threads")
        raise InputError(msg)


def _probe(bundle: str, device: str, threads: int) -> tuple[str, str, str]:
    from ddad_rt.engine import Engine

    info = Engine(bundle, device=device, num_threads=threads).info
    return info["backend"], info["precision"], info["device"]


def probe_engine(ray, bundle: str, device: str, threads: int, gpus_per_actor: float
                 ) -> tuple[str, str, str]:
    """(backend, precision, device) of an Engine as the actors will build it: recorded in
    run.json so that a resume on other hardware is refused, as locally."""
    opts = ({"num_gpus": gpus_per_actor, "num_cpus": CPU_SHARE} if gpus_per_actor
            else {"num_cpus": CPU_SHARE * threads})
    remote = ray.remote(_probe).options(**opts)
    return tuple(ray.get(remote.remote(bundle, device, threads), timeout=900))


def default_actors(cpus: float, gpus: float, threads: int, device: str) -> tuple[int, float]:
    """(actors, GPUs per actor): one per GPU on a GPU cluster, else one per ``threads``
    CPUs (at least one)."""
    if device != "cpu" and gpus >= 1:
        return int(gpus), 1.0
    return max(1, int(cpus // max(threads, 1))), 0.0

