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


def read_list(list_file: Path) -> Iterator[Path]:
    """Paths listed in a .txt/.lst (one per line) or .csv (``path`` column) file, read
    line by line (a list of millions of files is never held whole)."""
    base = list_file.parent
    with open(list_file, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        if list_file.suffix.lower() == ".csv":
            rows = csv.reader(f)
            first = next(rows, None)
            if first is None:
                return
            header = [h.strip().lower() for h in first]
            if "path" not in header:
                msg = (f"{list_file}: a CSV file list needs a header row with a 'path' column "
                       f"(its first row is {first[:4]}); for a bare list use a .txt file")
                raise InputError(msg)
            col = header.index("path")
            names = (r[col].strip() for r in rows if len(r) > col and r[col].strip())
        else:
            names = (n for n in (line.strip() for line in f) if n and not n.startswith("#"))
        for name in names:
            p = Path(name)
            yield p if p.is_absolute() else base / p


def check_inputs(inputs) -> None:
    """Raises now, not hours into a run, for no input or an input that does not exist."""
    inputs = list(inputs)
    if not inputs:
        msg = "no input given: pass image files, folders or file lists"
        raise InputError(msg)
    for item in inputs:
        if not Path(item).exists():
            msg = f"input not found: {item}"
            raise FileNotFoundError(msg)


def iter_inputs(inputs: Iterable[str | os.PathLike], skip: str | os.PathLike | None = None,
                problems: list | None = None, first_sight=None) -> Iterator[Path]:
    """Expands INPUT arguments to the absolute paths of the files to screen, in order and
    lazily (folders walked and lists read as they are consumed), without repeats: a file
    reached twice, through a symlinked folder say, is yielded once.

    Args:
        inputs: files, folders and list files.
        skip: a folder never descended into (the output folder, when it lies inside an input).
        problems: receives (path, message) for folders that cannot be listed (they are
            skipped; screening reports them in errors.csv).
        first_sight: callable real_path -> bool, True the first time a resolved path is
            seen (default: an in-memory set; screening passes its on-disk index).

    Raises:
        FileNotFoundError: an input (or a folder or list named by one) does not exist.
        ValueError: no input given, or a malformed list file.
    """
    inputs = list(inputs)
    check_inputs(inputs)
    skip_dir = Path(skip).resolve() if skip is not None else None
    problems = problems if problems is not None else []
    if first_sight is None:
        seen: set[str] = set()

        def first_sight(real: str) -> bool:
            if real in seen:
                return False
            seen.add(real)
            return True

    seen_dirs: set = set()

    def fresh(p: Path) -> Path | None:
        p = Path(os.path.abspath(p))
        return p if first_sight(os.path.normcase(os.path.realpath(p))) else None

    for item in inputs:
        path = Path(item)
        if path.is_dir():
            candidates = _walk(path, skip_dir, seen_dirs, problems)
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            candidates = _listed(path, skip_dir, seen_dirs, problems)
        else:
            candidates = iter([path])
        for p in candidates:
            if (p := fresh(p)) is not None:
                yield p


def _listed(list_file: Path, skip_dir, seen_dirs: set, problems: list) -> Iterator[Path]:
    for p in read_list(list_file):
        if p.is_dir():
            yield from _walk(p, skip_dir, seen_dirs, problems)
        else:
            yield p  # a missing listed file becomes an error row, not a fatal error


def list_inputs(inputs: Iterable[str | os.PathLike], skip: str | os.PathLike | None = None,
                problems: list | None = None) -> list[Path]:
    """iter_inputs as a list (for inputs of a size that fits in memory: calibration)."""
    return list(iter_inputs(inputs, skip=skip, problems=problems))
