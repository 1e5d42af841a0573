"""What ``ddad-rt screen`` reads: files, folders (recursive) and file lists.

* a folder: every regular file below it, depth first, names sorted, hidden files and
  folders (".name") and DICOMDIR index files skipped; files that are not images are reported
  in errors.csv, not silently dropped, so nothing in an archive goes unnoticed;
* a list: a ``.txt``/``.lst`` file with one path per line (``#`` comments), or a ``.csv``
  file with a header row naming a ``path`` column; relative paths are relative to the
  list's folder;
* anything else: one image file.

Paths are kept as given (made absolute), so the result rows of a rerun match.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ddad_rt.errors import InputError

LIST_SUFFIXES = (".txt", ".lst", ".csv")
#: Names skipped inside folders: DICOM media index files carry no pixels.
SKIPPED_NAMES = frozenset({"DICOMDIR"})


def _walk(folder: Path, skip: Path | None, seen_dirs: set, problems: list) -> Iterator[Path]:
    try:
        st = folder.stat()
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as e:
        problems.append((str(folder), f"cannot list folder {folder}: {e.strerror or e}"))
        return
    if (st.st_dev, st.st_ino) in seen_dirs:  # a symlink loop, or a folder reached twice
        return
    seen_dirs.add((st.st_dev, st.st_ino))
    for entry in entries:
        if entry.name.startswith(".") or entry.name in SKIPPED_NAMES:
            continue
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir(follow_symlinks=True)
            is_file = not is_dir and entry.is_file(follow_symlinks=True)
        except OSError as e:
            problems.append((str(path), f"cannot read {path}: {e.strerror or e}"))
            continue
        if is_dir:
            if skip is not None and path.resolve() == skip:
                continue
            yield from _walk(path, skip, seen_dirs, problems)
        elif is_file:
            yield path


def read_list(list_file: Path) -> list[Path]:
    """Paths listed in a .txt/.lst (one per line) or .csv (``path`` column) file."""
    base = list_file.parent
    text = list_file.read_text(encoding="utf-8-sig", errors="surrogateescape")
    if list_file.suffix.lower() == ".csv":
        rows = list(csv.reader(text.splitlines()))
        if not rows:
            return []
        header = [h.strip().lower() for h in rows[0]]
        if "path" not in header:
            msg = (f"{list_file}: a CSV file list needs a header row with a 'path' column "
                   f"(its first row is {rows[0][:4]}); for a bare list use a .txt file")
            raise InputError(msg)
        col = header.index("path")
        names = [r[col].strip() for r in rows[1:] if len(r) > col and r[col].strip()]
    else:
        names = [line.strip() for line in text.splitlines()]
        names = [n for n in names if n and not n.startswith("#")]
    return [p if p.is_absolute() else base / p for p in map(Path, names)]


def list_inputs(inputs: Iterable[str | os.PathLike], skip: str | os.PathLike | None = None,
                problems: list | None = None) -> list[Path]:
    """Expands INPUT arguments to the absolute paths of the files to screen, in order,
    without repeats (a file reached twice, through a symlinked folder say, is listed once).

    Args:
        inputs: files, folders and list files.
        skip: a folder never descended into (the output folder, when it lies inside an input).
        problems: receives (path, message) for folders that cannot be listed (they are
            skipped; screening reports them in errors.csv).

    Raises:
        FileNotFoundError: an input (or a folder or list named by one) does not exist.
        ValueError: no input given, or a malformed list file.
    """
    inputs = list(inputs)
    if not inputs:
        msg = "no input given: pass image files, folders or file lists"
        raise InputError(msg)
    skip_dir = Path(skip).resolve() if skip is not None else None
    problems = problems if problems is not None else []
    seen_dirs: set = set()
    seen: set[str] = set()
    out: list[Path] = []

    def add(p: Path) -> None:
        p = Path(os.path.abspath(p))
        real = os.path.normcase(os.path.realpath(p))
        if real not in seen:
            seen.add(real)
            out.append(p)

    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for p in _walk(path, skip_dir, seen_dirs, problems):
                add(p)
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            for p in read_list(path):
                if p.is_dir():
                    for q in _walk(p, skip_dir, seen_dirs, problems):
                        add(q)
                else:
                    add(p)  # a missing listed file becomes an error row, not a fatal error
        elif path.exists():
            add(path)
        else:
            msg = f"input not found: {path}"
            raise FileNotFoundError(msg)
    return out
