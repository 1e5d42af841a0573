"""What ``ddad-rt screen`` reads: files, folders (recursive) and file lists.

* a folder: every regular file below it, depth first, names sorted, hidden files and
  folders (".name") and DICOMDIR index files skipped; files that are not images are reported
  in errors.csv, not silently dropped, so nothing in an archive goes unnoticed;
* a list: a ``.txt``/``.lst`` file with one path per line (``#`` comments), or a ``.csv``
  file with a ``path`` column (or paths in its first column); relative paths are relative to
  the list's folder;
* anything else: one image file.

Paths are kept as given (made absolute), so the result rows of a rerun match.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

LIST_SUFFIXES = (".txt", ".lst", ".csv")
#: Names skipped inside folders: DICOM media index files carry no pixels.
SKIPPED_NAMES = frozenset({"DICOMDIR"})


def _walk(folder: Path, skip: Path | None) -> Iterator[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except PermissionError as e:
        msg = f"cannot list {folder}: {e.strerror}"
        raise PermissionError(msg) from None
    for entry in entries:
        if entry.name.startswith(".") or entry.name in SKIPPED_NAMES:
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=True):
            if skip is not None and path.resolve() == skip:
                continue
            yield from _walk(path, skip)
        elif entry.is_file(follow_symlinks=True):
            yield path


def read_list(list_file: Path) -> list[Path]:
    """Paths listed in a .txt/.lst (one per line) or .csv (``path`` column) file."""
    base = list_file.parent
    text = list_file.read_text(encoding="utf-8-sig")
    if list_file.suffix.lower() == ".csv":
        rows = list(csv.reader(text.splitlines()))
        if not rows:
            return []
        header = [h.strip().lower() for h in rows[0]]
        if "path" in header:
            col, rows = header.index("path"), rows[1:]
        else:
            col = 0
        names = [r[col].strip() for r in rows if len(r) > col and r[col].strip()]
    else:
        names = [line.strip() for line in text.splitlines()]
        names = [n for n in names if n and not n.startswith("#")]
    return [p if p.is_absolute() else base / p for p in map(Path, names)]


def list_inputs(inputs: Iterable[str | os.PathLike], skip: str | os.PathLike | None = None
                ) -> list[Path]:
    """Expands INPUT arguments to the absolute paths of the files to screen, in order,
    without repeats.

    Args:
        inputs: files, folders and list files.
        skip: a folder never descended into (the output folder, when it lies inside an input).

    Raises:
        FileNotFoundError: an input (or a folder or list named by one) does not exist.
        ValueError: no input given.
    """
    inputs = list(inputs)
    if not inputs:
        msg = "no input given: pass image files, folders or file lists"
        raise ValueError(msg)
    skip_dir = Path(skip).resolve() if skip is not None else None
    seen: set[Path] = set()
    out: list[Path] = []

    def add(p: Path) -> None:
        p = Path(os.path.abspath(p))
        if p not in seen:
            seen.add(p)
            out.append(p)

    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for p in _walk(path, skip_dir):
                add(p)
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            for p in read_list(path):
                if p.is_dir():
                    for q in _walk(p, skip_dir):
                        add(q)
                else:
                    add(p)  # a missing listed file becomes an error row, not a fatal error
        elif path.exists():
            add(path)
        else:
            msg = f"input not found: {path}"
            raise FileNotFoundError(msg)
    return out
