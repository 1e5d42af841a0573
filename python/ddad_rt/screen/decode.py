"""Decoding for screening, off the engine's thread: worker processes turn files into model
inputs with the shared preprocessing (ddad_rt.preprocess), and a bad file becomes an error
record instead of an exception.

Processes rather than threads: pydicom parses in Python under the GIL, and a codec that
crashes on a damaged file takes down only its worker. The pool is then rebuilt and the files
it held are retried one at a time, so the one that crashes is reported and the rest go on.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from ddad_rt.errors import InputError
from ddad_rt.preprocess import PHI_ATTRIBUTES, DecodeError, decode_file, to_model_input
from ddad_rt.screen.uids import protect as protect_uids


@dataclass
class DecodedItem:
    """One input file, decoded.

    Attributes:
        path: the file.
        frames: (frame index, uint8 [H, W] model input) per frame; empty on error.
        n_frames: frames in the file (0 on error).
        dicom: StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, SOPClassUID, Modality
            when present; the patient's name, ID and birth date only when asked for.
        error: (reason code, message) when the file cannot be screened.
        seconds: decoding time of the whole file.
    """

    path: str
    frames: list[tuple[int, np.ndarray]] = field(default_factory=list)
    n_frames: int = 0
    dicom: dict[str, str] = field(default_factory=dict)
    error: tuple[str, str] | None = None
    seconds: float = 0.0


def decode_item(path: str, size: tuple[int, int], modality: str | None = None,
                include_phi: bool = False, uids: str = "keep",
                uid_key: bytes | None = None) -> DecodedItem:
    """Decodes one file to model inputs; never raises for a bad file.

    Args:
        path: the file.
        size: the model's (H, W).
        modality: the bundle's DICOM Modality (several: comma-separated); a DICOM file of
            another modality is an error ("wrong_modality"). None or "" accepts any.
        include_phi: keep the patient's name, ID and birth date in ``dicom``, and the text
            of a decoder's exception (which can quote DICOM values) in error messages.
        uids: "keep", "pseudonymize" (with ``uid_key``) or "drop" the Study, Series and SOP
            Instance UIDs (ddad_rt.screen.uids).
    """
    t0 = time.perf_counter()
    item = DecodedItem(path)
    try:
        f = decode_file(path)
        dicom = dict(f.dicom)
        if not include_phi:
            for key in PHI_ATTRIBUTES:
                dicom.pop(key, None)
        item.dicom = dicom = protect_uids(dicom, uids, uid_key)
        found = dicom.get("Modality")
        accepted = {m.strip().upper() for m in (modality or "").split(",") if m.strip()}
        if accepted and found and found.strip().upper() not in accepted:
            item.error = ("wrong_modality",
                          (f"{path}: DICOM Modality {found}, but the model was trained on "
                           f"{modality} images (--any-modality screens it anyway)"))
        else:
            item.frames = [(i, to_model_input(d, size)) for i, d in enumerate(f.frames)]
            item.n_frames = len(item.frames)
    except DecodeError as e:
        # The decoder's own exception text only with include_phi: it can quote DICOM values.
        item.error = (e.kind, f"{e}: {e.detail}" if include_phi and e.detail else str(e))
    except FileNotFoundError:
        item.error = ("missing", f"{path}: file not found")
    except PermissionError:
        item.error = ("unreadable", f"{path}: permission denied")
    except ImportError as e:  # pydicom missing for a DICOM file
        item.error = ("unsupported", str(e))
    except OSError as e:
        item.error = ("unreadable", f"{path}: {e.strerror or type(e).__name__}")
    except MemoryError:
        item.error = ("too_large", f"{path}: not enough memory to decode it")
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - a malformed file must cost only itself (a
        # codec's panic included); the type only: its text may quote a DICOM value
        item.error = ("corrupt", f"{path}: cannot decode ({type(e).__name__})")
    item.seconds = time.perf_counter() - t0
    return item


def _decode_chunk(paths: list[str], decode_one) -> list[DecodedItem]:
    out = []
    for p in paths:
        try:
            out.append(decode_one(p))
        except Exception as e:  # noqa: BLE001 - a custom decode_one that raises
            out.append(DecodedItem(p, error=("corrupt", f"{p}: cannot decode ({type(e).__name__})")))
    return out


def _watch_parent(pid: int) -> None:
    """Worker initializer: exit when the screening process is gone (killed with -9, say),
    instead of lingering on the task queue."""
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return

    def loop() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:  # the pid was reused by another user's process
                os._exit(0)

    threading.Thread(target=loop, name="ddad-rt-parent-watch", daemon=True).start()


def _context():
    """forkserver (spawn where there is none), with this module preloaded so that each
    worker starts in milliseconds. Not fork: the engine's threads run in this process."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return mp.get_context("spawn")


def _processes_possible() -> bool:
    """False when worker processes could not re-import the main script (a program read from
    stdin, say): decoding then runs in threads."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return path is None or os.path.isfile(path)


class Decoder:
    """Decodes files in ``workers`` processes (0: in the calling thread), yielding
    DecodedItems in input order with a bounded number of files in flight.

    Args:
        decode_one: picklable callable path -> DecodedItem (e.g. a partial of decode_item).
        workers: worker processes.
        chunk: files per task (amortises the inter-process hop).
        ahead: chunks in flight per worker.
    """

    def __init__(self, decode_one, workers: int, chunk: int = 8, ahead: int = 4) -> None:
        if workers < 0:
            msg = f"decode workers must be >= 0, got {workers}"
            raise InputError(msg)
        self.decode_one = decode_one
        self.workers = workers
        self.chunk = max(1, chunk)
        self.ahead = max(1, ahead)
        self.threads = not _processes_possible()
        self._pool: Executor | None = None

    def _new_pool(self) -> Executor:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self.threads:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ddad-rt-decode")
        else:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=_context(),
                                             initializer=_watch_parent, initargs=(os.getpid(),))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Decoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _isolate(self, paths: list[str]) -> Iterator[DecodedItem]:
        """After a worker crash: each file alone, so the culprit is found (the pool is
        rebuilt after each crash only)."""
        pool = self._new_pool()
        for p in paths:
            try:
                item = pool.submit(self.decode_one, p).result()
            except BrokenProcessPool:
                item = DecodedItem(p, error=("decoder_crashed",
                                             f"{p}: the decoder process crashed on this file"))
                pool = self._new_pool()
            yield item

    def decode(self, paths: Iterable[str]) -> Iterator[DecodedItem]:
        if self.workers == 0:
            for p in paths:
                yield self.decode_one(p)
            return
        if self._pool is None:
            self._new_pool()
        work = iter(paths)
        # (files, their future; None when the pool broke before they could be submitted)
        pending: deque[tuple[list[str], Future | None]] = deque()
        task = partial(_decode_chunk, decode_one=self.decode_one)

        def fill() -> None:
            while len(pending) < self.workers * self.ahead:
                chunk = [p for _, p in zip(range(self.chunk), work)]
                if not chunk:
                    return
                try:
                    fut = self._pool.submit(task, chunk)
                except BrokenProcessPool:  # a worker died while we were scoring
                    fut = None
                pending.append((chunk, fut))

        fill()
        while pending:
            chunk, fut = pending.popleft()
            try:
                if fut is None:
                    raise BrokenProcessPool
                items = fut.result()
            except BrokenProcessPool:
                retry = chunk + [p for c, _ in pending for p in c]
                pending.clear()
                yield from self._isolate(retry)
                fill()
                continue
            yield from items
            fill()
