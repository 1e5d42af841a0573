"""Bundles on disk: writing the manifest (used by ddad_train.export) and reading it back.

A bundle is a directory::

    manifest.json    format, backbone, K, image size, normalisation, scores, training summary,
                     and the sha256 of every other file
    ensemble.onnx    all 2K members in one graph: images [N,1,H,W] -> udm, ndm [N,K,H,W]

The engine (C++) verifies every hash when it loads a bundle. The bundle's identity is the
sha256 over its graph files' hashes, so editing the manifest (e.g. adding calibrated
thresholds) keeps the identity.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

# One exception for every bundle problem, whether the engine (C++) or these helpers find it.
from ddad_rt._core import BundleError

FORMAT = "ddad_rt.bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


#: Manifest fields write_manifest computes; drop them before rewriting a manifest.
GENERATED_FIELDS = ("format", "format_version", "files", "identity")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def identity(graph_hashes: dict[str, str]) -> str:
    """Bundle identity: sha256 over "name:hash\\n" of the graph files, sorted by name."""
    text = "".join(f"{name}:{graph_hashes[name]}\n" for name in sorted(graph_hashes))
    return hashlib.sha256(text.encode()).hexdigest()


def write_manifest(bundle_dir: str | Path, manifest: dict) -> dict:
    """Completes ``manifest`` with format fields and file hashes, and writes it atomically.

    ``manifest["graphs"]`` maps roles to files in ``bundle_dir``; every other regular file
    in the directory is hashed too. Returns the manifest as written.
    """
    bundle_dir = Path(bundle_dir)
    files = {}
    for p in sorted(bundle_dir.iterdir()):
        if p.is_file() and p.name != MANIFEST and not p.name.endswith(".tmp"):
            files[p.name] = sha256_file(p)
    for role, name in manifest["graphs"].items():
        if name not in files:
            msg = f"graph {role!r} file {name} is not in {bundle_dir}"
            raise BundleError(msg)
    out = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest, "files": files}
    out["identity"] = identity({n: files[n] for n in manifest["graphs"].values()})
    tmp = bundle_dir / (MANIFEST + ".tmp")
    with open(tmp, "w") as f:
        json.dump(out, f, indent=2, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(bundle_dir / MANIFEST)
    return out


def read_manifest(bundle_dir: str | Path, verify: bool = True) -> dict:
    """Reads a bundle's manifest; with ``verify``, checks format version and file hashes.

    Raises:
        BundleError: missing manifest or file, other format version, hash mismatch.
    """
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST
    if not path.is_file():
        msg = f"bundle file missing: {path} (pass the bundle directory that holds manifest.json)"
        raise BundleError(msg)
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        msg = f"manifest {path} is not valid JSON ({e}): re-export or re-copy the bundle"
        raise BundleError(msg) from e
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        msg = (f"bundle {bundle_dir} has format {manifest.get('format')!r} version "
               f"{manifest.get('format_version')!r}; this ddad_rt reads {FORMAT!r} version "
               f"{FORMAT_VERSION}: install the release that wrote it, or re-export")
        raise BundleError(msg)
    if verify:
        for name, expected in manifest.get("files", {}).items():
            p = bundle_dir / name
            if Path(name).name != name:
                msg = f"manifest lists {name!r}, which is not a plain file name in the bundle"
                raise BundleError(msg)
            if p.is_symlink():
                msg = (f"{p} is a symbolic link; a bundle's files must be regular files inside "
                       "it: copy the bundle with its files (cp -rL, shutil.copytree)")
                raise BundleError(msg)
            if not p.is_file():
                msg = f"bundle file missing: {p}"
                raise BundleError(msg)
            actual = sha256_file(p)
            if actual != expected:
                msg = (f"sha256 mismatch for {p}: the manifest says {expected}, the file has "
                       f"{actual}; re-copy the bundle from its source or re-export it")
                raise BundleError(msg)
    return manifest


#: Bundle file listing the training images (one sha256 per line, see image_hash).
TRAINING_HASHES = "training_images.sha256"
_HASHES_HEADER = ("# sha256 of every training image as the model saw it: the preprocessed uint8 "
                  "[H, W] model input, row-major bytes (ddad_rt.bundle.image_hash)\n")


def image_hash(model_input) -> str:
    """sha256 of a preprocessed uint8 [H, W] model input: the same image in another container
    (a PNG re-saved as DICOM, say) has the same hash."""
    import numpy as np

    arr = np.ascontiguousarray(model_input, dtype=np.uint8)
    return hashlib.sha256(arr.tobytes()).hexdigest()


def write_training_hashes(path: str | Path, hashes) -> int:
    """Writes the sorted, unique hashes to ``path``; returns how many."""
    unique = sorted(set(hashes))
    Path(path).write_text(_HASHES_HEADER + "".join(h + "\n" for h in unique))
    return len(unique)


def read_training_hashes(bundle_dir: str | Path) -> set[str] | None:
    """The training image hashes a bundle records, or None when it records none."""
    path = Path(bundle_dir) / TRAINING_HASHES
    if not path.is_file():
        return None
    return {line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")}
