"""Crash-safe checkpoints: written to a temporary file, fsynced, then renamed into place, so a
kill at any moment leaves either the previous checkpoint or the new one - never a torn file.
Loaded with ``weights_only=True``: a checkpoint holds tensors and plain values, no code."""

from __future__ import annotations

import json
import os
import random
import threading
from pathlib import Path

import numpy as np
import torch


def fsync_dir(path: Path) -> None:
    """Makes a rename in ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_save(obj: dict, path: str | Path) -> None:
    """torch.save, atomically: the file at ``path`` is always complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_text(text: str, path: str | Path) -> None:
    """Writes text atomically (same protocol as atomic_save)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def snapshot(obj):
    """A deep copy of nested dicts/lists/tuples of tensors, detached from the live ones."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: snapshot(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(snapshot(v) for v in obj)
    return obj


class Checkpointer:
    """Saves checkpoints in a background thread, so training does not wait for the disk.

    ``save`` snapshots the state (a memory copy), waits for the previous write to finish,
    and starts writing; at most one write is in flight. ``wait`` blocks until the last write
    is on disk and re-raises its error, if any. A kill during a write leaves the previous
    checkpoint (writes are atomic).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(self, state: dict) -> None:
        copy = snapshot(state)
        self.wait()
        self._thread = threading.Thread(target=self._write, args=(copy,), name="checkpoint")
        self._thread.start()

    def _write(self, state: dict) -> None:
        try:
            atomic_save(state, self.path)
        except BaseException as e:  # surfaced by wait()
            self._error = e

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def load(path: str | Path) -> dict:
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def global_rng_state() -> dict:
    """torch's, NumPy's legacy and Python's global RNG states (JSON for the last two)."""
    return {
        "torch": torch.get_rng_state(),
        "numpy": json.dumps(_np_legacy_state()),
        "python": json.dumps(_py_state()),
    }


def set_global_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = json.loads(state["numpy"])
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = json.loads(state["python"])
    random.setstate((version, tuple(internal), gauss_next))


def generator_state(rng: np.random.Generator) -> str:
    """A NumPy Generator's state as JSON (its 128-bit integers survive exactly)."""
    return json.dumps(rng.bit_generator.state)


def set_generator_state(rng: np.random.Generator, state: str) -> None:
    rng.bit_generator.state = json.loads(state)


def _np_legacy_state() -> list:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)]


def _py_state() -> list:
    version, internal, gauss_next = random.getstate()
    return [version, list(internal), gauss_next]


def remove_run_files(folder: str | Path, names: list[str]) -> None:
    """Removes what a finished run wrote into its checkpoint folder - the files and folders
    ``names``, with their atomic-write leftovers - and then the folder itself only if it is
    empty: a user's --checkpoint-dir may hold other things, which are never deleted."""
    import shutil

    folder = Path(folder)
    for name in names:
        for candidate in (name, name + ".tmp", name + ".tmp-export", name + ".old-export"):
            path = folder / candidate
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists() or path.is_symlink():
                path.unlink(missing_ok=True)
    try:
        folder.rmdir()  # only when empty
    except OSError:
        pass
