"""The output files of a screening run, written so that a kill -9 at any moment loses nothing
that was reported done and leaves no torn or duplicate row.

``results.jsonl`` is the journal: every result row is appended to it, flushed and fsynced
before it is counted done; ``results.csv`` is appended right after and, on every start, rebuilt
from the journal, so the two always hold the same rows. ``errors.csv`` is appended the same
way. On a restart a torn last line (the process died mid-write) is cut off, and the rows
present say which (file, frame) pairs are done.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ddad_rt.screen.index import RunIndex

RESULTS_JSONL = "results.jsonl"
RESULTS_CSV = "results.csv"
ERRORS_CSV = "errors.csv"
STUDIES_CSV = "studies.csv"
RUN_JSON = "run.json"
LOCK = ".ddad-rt-screen.lock"
ERROR_FIELDS = ["path", "reason", "message"]
#: Every output is UTF-8; file names that are not (Latin-1 names on Linux arrive as
#: surrogate escapes) are written back as their original bytes.
TEXT = {"encoding": "utf-8", "errors": "surrogateescape"}


def _cut_torn_tail(path: Path) -> int:
    """Truncates a file after its last newline; returns the bytes cut."""
    if not path.is_file():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        # Read backwards in blocks until a newline is found.
        pos, block = size, 1 << 16
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            data = f.read(pos - start)
            i = data.rfind(b"\n")
            if i >= 0:
                end = start + i + 1
                break
            pos = start
        else:
            end = 0
        if end < size:
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
        return size - end


def _csv_line(fields: list[str], row: dict) -> str:
    buf = io.StringIO()
    csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n").writerow(row)
    return buf.getvalue()


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", **TEXT) as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


class Journal:
    """Append-only result and error files in ``out``.

    Args:
        out: the output folder.
        fields: the results.csv columns.
        lock: the folder's lock (lock_out), held by the caller until its last output is
            written; when not given, the journal takes it and releases it in close().
    """

    def __init__(self, out: Path, fields: list[str], lock=None) -> None:
        self.out = out
        self.fields = fields
        self.torn = 0
        self.n_rows = 0
        self._own_lock = lock_out(out) if lock is None else None
        #: Which (file, frame) pairs are done and the error rows, on disk (RunIndex): the
        #: rows themselves stay in the journal (iter_rows), so memory does not grow with
        #: the archive.
        self.index = RunIndex(out)
        self._recover()
        # Open for the journal's lifetime; close() syncs and closes them.
        self._jsonl = open(out / RESULTS_JSONL, "a", **TEXT)  # noqa: SIM115
        self._csv = open(out / RESULTS_CSV, "a", newline="", **TEXT)  # noqa: SIM115
        self._err = open(out / ERRORS_CSV, "a", newline="", **TEXT)  # noqa: SIM115
        if self._err.tell() == 0:
            self._err.write(_csv_line(ERROR_FIELDS, dict(zip(ERROR_FIELDS, ERROR_FIELDS))))
            self._sync(self._err)

    def _recover(self) -> None:
        jsonl, errors = self.out / RESULTS_JSONL, self.out / ERRORS_CSV
        self.torn = _cut_torn_tail(jsonl) + _cut_torn_tail(errors)
        # results.csv is derived: rebuilt from the journal, streaming (it may lag by the rows
        # written between the journal's fsync and the kill).
        tmp = self.out / (RESULTS_CSV + ".tmp")
        with open(tmp, "w", newline="", **TEXT) as csv_out:
            csv_out.write(_csv_line(self.fields, dict(zip(self.fields, self.fields))))
            if jsonl.is_file():
                good = 0  # bytes of intact lines
                with open(jsonl, "rb") as f:
                    for raw in f:
                        try:
                            row = json.loads(raw.decode(**TEXT))
                            key = (row["path"], int(row["frame"]))
                            n_frames = int(row["n_frames"])
                        except (ValueError, KeyError, TypeError):
                            # A damaged line (power loss, a disk error): everything from
                            # here on is redone rather than trusted.
                            break
                        good += len(raw)
                        if self.index.add_frames([{"path": key[0], "frame": key[1],
                                                   "n_frames": n_frames}]):
                            self.n_rows += 1
                            csv_out.write(_csv_line(self.fields, row))
                if good < jsonl.stat().st_size:
                    self.torn += jsonl.stat().st_size - good
                    with open(jsonl, "rb+") as f:
                        f.truncate(good)
                        os.fsync(f.fileno())
            csv_out.flush()
            os.fsync(csv_out.fileno())
        tmp.replace(self.out / RESULTS_CSV)
        if errors.is_file():
            with open(errors, newline="", **TEXT) as f:
                self.index.add_errors({"path": e["path"], "reason": e["reason"],
                                       "message": e.get("message") or ""}
                                      for e in csv.DictReader(f)
                                      if e.get("path") and e.get("reason"))

    @staticmethod
    def _sync(f) -> None:
        f.flush()
        os.fsync(f.fileno())

    def write(self, rows: Iterable[dict], errors: Iterable[dict]) -> None:
        """Appends rows and error rows: the journal first (synced), then the CSV files."""
        # A row already in the journal (a batch a restarted worker scored twice) is dropped,
        # and so is a second error row for a path.
        rows = self.index.add_frames(rows)
        errors = self.index.add_errors(errors)
        if rows:
            self._jsonl.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))
            self._sync(self._jsonl)
            self._csv.write("".join(_csv_line(self.fields, r) for r in rows))
            self._csv.flush()
            self.n_rows += len(rows)
        if errors:
            self._err.write("".join(_csv_line(ERROR_FIELDS, e) for e in errors))
            self._sync(self._err)

    def forget_errors(self) -> int:
        """Drops every error row (to retry those files), emptying errors.csv; returns how
        many there were."""
        n = self.index.forget_errors()
        self._err.close()
        write_csv(self.out / ERRORS_CSV, ERROR_FIELDS, [])
        self._err = open(self.out / ERRORS_CSV, "a", newline="", **TEXT)  # noqa: SIM115
        return n

    def close(self) -> None:
        """Syncs and closes the files (the index stays open for the run's final outputs:
        close it with ``index.close()``)."""
        for f in (self._jsonl, self._csv, self._err):
            if not f.closed:
                f.flush()
                os.fsync(f.fileno())
                f.close()
        if self._own_lock is not None:
            self._own_lock.close()
            self._own_lock = None


def lock_out(out: Path):
    """An exclusive lock on ``out`` for the run: a second run into the same folder would
    duplicate every row. Released when the process ends, however it ends."""
    f = open(out / LOCK, "a+", **TEXT)  # noqa: SIM115 - held until close()
    try:
        try:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # Windows
            import msvcrt

            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
    except OSError:
        f.close()
        msg = f"another ddad-rt screen run is writing to {out}: wait for it, or use another --out"
        raise FileExistsError(msg) from None
    return f


def iter_rows(out: Path) -> Iterator[dict]:
    """The result rows in ``out``'s journal, one at a time."""
    path = out / RESULTS_JSONL
    if not path.is_file():
        return
    with open(path, "rb") as f:
        for raw in f:
            yield json.loads(raw.decode(**TEXT))


def write_csv(path: Path, fields: list[str], rows: Iterable[dict]) -> None:
    """Writes a whole CSV file atomically, streaming ``rows`` (an archive's millions of
    error rows are never one string)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", **TEXT) as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
