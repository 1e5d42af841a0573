"""The run index: what a screening run knows about its archive, on disk, so that the memory
of the machine you screen from does not grow with the archive (10 million files would need
gigabytes as Python sets and dicts).

An SQLite file in the output folder (``.ddad-rt-index.sqlite``) holds which (file, frame)
pairs are done, the error rows, the files still to screen in input order, the input
listing's already-seen files, and the studies' running maxima. It is derived data: the
journal (results.jsonl, errors.csv) is the record, and the index is rebuilt from it on every
start, so a kill at any moment costs nothing here either (writes are unsynchronised).

One connection, guarded by a lock: the scoring thread reads the to-do list and the writer
thread records rows (SQLite files on network storage do not take concurrent writers well).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

INDEX = ".ddad-rt-index.sqlite"
#: Rows fetched from the to-do list per query.
TODO_CHUNK = 1024

def _b(text: str) -> bytes:
    """Paths as bytes: file names that are not UTF-8 (surrogate escapes) cannot be SQLite
    TEXT. Bytes sort as their UTF-8, i.e. by code point, as str does."""
    return text.encode("utf-8", "surrogateescape")


def _s(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


_SCHEMA = """
CREATE TABLE frames (path BLOB NOT NULL, frame INTEGER NOT NULL,
                     PRIMARY KEY (path, frame)) WITHOUT ROWID;
CREATE TABLE files (path BLOB PRIMARY KEY, n_frames INTEGER NOT NULL,
                    done INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE errors (path BLOB PRIMARY KEY, reason TEXT NOT NULL,
                     message BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE seen (real BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE todo (seq INTEGER PRIMARY KEY, path BLOB NOT NULL, skip TEXT NOT NULL);
CREATE TABLE studies (study BLOB PRIMARY KEY, study_uid TEXT NOT NULL, n_images INTEGER,
                      n_flagged INTEGER, score REAL, top_path BLOB, top_frame INTEGER)
                      WITHOUT ROWID;
"""

# A study's highest score; ties go to the first (path, frame), whatever order rows came in.
_STUDY_UPSERT = """
INSERT INTO studies VALUES (?, ?, 1, ?, ?, ?, ?)
ON CONFLICT (study) DO UPDATE SET
  n_images = n_images + 1,
  n_flagged = n_flagged + excluded.n_flagged,
  top_path = CASE WHEN excluded.score > score OR (excluded.score = score AND
                  (excluded.top_path < top_path OR (excluded.top_path = top_path AND
                   excluded.top_frame < top_frame))) THEN excluded.top_path ELSE top_path END,
  top_frame = CASE WHEN excluded.score > score OR (excluded.score = score AND
                  (excluded.top_path < top_path OR (excluded.top_path = top_path AND
                   excluded.top_frame < top_frame))) THEN excluded.top_frame ELSE top_frame END,
  score = MAX(score, excluded.score)
"""


class RunIndex:
    """The index of one output folder, created empty (a new run or a restart rebuilds it)."""

    def __init__(self, out: Path) -> None:
        self.path = out / INDEX
        for suffix in ("", "-journal"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        # Derived data, rebuilt on every start: no fsync, no rollback journal on disk.
        self._db.execute("PRAGMA journal_mode = MEMORY")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.executescript(_SCHEMA)
        self._db.execute("BEGIN")

    # ---- done (file, frame) pairs and error rows ------------------------------------

    def add_frames(self, rows: Iterable[dict]) -> list[dict]:
        """Records result rows as done; returns those that were not already."""
        fresh = []
        with self._lock:
            for r in rows:
                path, frame = r["path"], int(r["frame"])
                cur = self._db.execute("INSERT OR IGNORE INTO frames VALUES (?, ?)",
                                       (_b(path), frame))
                if cur.rowcount:
                    self._db.execute(
                        "INSERT INTO files VALUES (?, ?, 1) ON CONFLICT (path) DO UPDATE SET "
                        "done = done + 1, n_frames = excluded.n_frames",
                        (_b(path), int(r["n_frames"])))
                    fresh.append(r)
        return fresh

    def add_errors(self, errors: Iterable[dict]) -> list[dict]:
        """Records error rows; returns those whose path had none yet (one row per path,
        however often a retried task reports it)."""
        fresh = []
        with self._lock:
            for e in errors:
                cur = self._db.execute("INSERT OR IGNORE INTO errors VALUES (?, ?, ?)",
                                       (_b(e["path"]), e["reason"], _b(e["message"])))
                if cur.rowcount:
                    fresh.append(e)
        return fresh

    def forget_errors(self) -> int:
        """Drops every error row (to retry those files); returns how many."""
        with self._lock:
            return self._db.execute("DELETE FROM errors").rowcount

    def done_frames(self, path: str) -> list[int]:
        with self._lock:
            return [f for (f,) in self._db.execute(
                "SELECT frame FROM frames WHERE path = ? ORDER BY frame", (_b(path),))]

    def state(self, path: str) -> str:
        """"error", "done", "partial" (some frames done) or "new"."""
        with self._lock:
            if self._db.execute("SELECT 1 FROM errors WHERE path = ?", (_b(path),)).fetchone():
                return "error"
            row = self._db.execute("SELECT n_frames, done FROM files WHERE path = ?",
                                   (_b(path),)).fetchone()
        if row is None:
            return "new"
        return "done" if row[1] >= row[0] else "partial"

    def errors(self) -> Iterator[dict]:
        """Error rows in path order, streamed."""
        last = b""
        while True:
            with self._lock:
                chunk = self._db.execute(
                    "SELECT path, reason, message FROM errors WHERE path > ? ORDER BY path "
                    "LIMIT ?", (last, TODO_CHUNK)).fetchall()
            if not chunk:
                return
            for path, reason, message in chunk:
                yield {"path": _s(path), "reason": reason, "message": _s(message)}
            last = chunk[-1][0]

    def error_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute(
                "SELECT reason, COUNT(*) FROM errors GROUP BY reason ORDER BY reason"))

    def n_files(self) -> int:
        """Files with rows or an error row."""
        with self._lock:
            return self._db.execute(
                "SELECT COUNT(*) FROM (SELECT path FROM files UNION SELECT path FROM errors)"
            ).fetchone()[0]

    # ---- the input listing and the to-do list ---------------------------------------

    def first_sight(self, real: str) -> bool:
        """True the first time ``real`` (a resolved path) is offered."""
        with self._lock:
            return bool(self._db.execute("INSERT OR IGNORE INTO seen VALUES (?)",
                                         (_b(real),)).rowcount)

    def add_todo(self, path: str, skip: str = "[]") -> None:
        with self._lock:
            self._db.execute("INSERT INTO todo (path, skip) VALUES (?, ?)", (_b(path), skip))

    def n_todo(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM todo").fetchone()[0]

    def todo(self) -> Iterator[tuple[str, str]]:
        """(path, JSON list of frames already done) in input order, streamed."""
        seq = 0
        while True:
            with self._lock:
                chunk = self._db.execute(
                    "SELECT seq, path, skip FROM todo WHERE seq > ? ORDER BY seq LIMIT ?",
                    (seq, TODO_CHUNK)).fetchall()
            if not chunk:
                return
            for seq, path, skip in chunk:
                yield _s(path), skip

    # ---- studies ----------------------------------------------------------------------

    def add_to_study(self, r: dict) -> None:
        study_uid = r.get("study_uid") or ""
        with self._lock:
            self._db.execute(_STUDY_UPSERT, (_b(study_uid or r["path"]), study_uid,
                                             int(bool(r["flag"])), float(r["score"]),
                                             _b(r["path"]), int(r["frame"])))

    def studies(self, threshold: float | None) -> Iterator[dict]:
        """One row per study, most anomalous first, streamed."""
        last: tuple | None = None
        while True:
            with self._lock:
                if last is None:
                    chunk = self._db.execute(
                        "SELECT * FROM studies ORDER BY score DESC, study LIMIT ?",
                        (TODO_CHUNK,)).fetchall()
                else:
                    chunk = self._db.execute(
                        "SELECT * FROM studies WHERE score < ? OR (score = ? AND study > ?) "
                        "ORDER BY score DESC, study LIMIT ?",
                        (last[0], last[0], last[1], TODO_CHUNK)).fetchall()
            if not chunk:
                return
            for study, uid, n, n_flagged, score, top_path, top_frame in chunk:
                yield {"study": _s(study), "study_uid": uid, "n_images": n,
                       "n_flagged": n_flagged, "score": score,
                       "flag": threshold is not None and score > threshold,
                       "top_path": _s(top_path), "top_frame": top_frame}
            last = (chunk[-1][4], chunk[-1][0])

    def study_counts(self, threshold: float | None) -> tuple[int, int]:
        """(studies, flagged studies)."""
        with self._lock:
            n = self._db.execute("SELECT COUNT(*) FROM studies").fetchone()[0]
            if threshold is None:
                return n, 0
            flagged = self._db.execute("SELECT COUNT(*) FROM studies WHERE score > ?",
                                       (threshold,)).fetchone()[0]
        return n, flagged

    def close(self, remove: bool = True) -> None:
        with self._lock:
            if self._db.in_transaction:
                self._db.execute("COMMIT")
            self._db.close()
        if remove:
            for suffix in ("", "-journal"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
