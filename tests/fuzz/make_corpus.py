"""Writes the fuzzers' seed corpora (committed under tests/fuzz/corpus/; rerun only to
change them): small valid inputs of every kind the loaders take, so mutation starts from
inside the formats.

    python tests/fuzz/make_corpus.py
"""

from __future__ import annotations

import io
import json
import struct
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))  # tests/python: dicom_files


def onnx_model(k: int, h: int, w: int, logvar: bool) -> bytes:
    """A tiny ONNX ensemble graph: the interface only (names, float32, shapes)."""
    from onnx import TensorProto, helper

    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 1, h, w])
    names = ["udm", "ndm"] + (["ndm_logvar"] if logvar else [])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", k, h, w]) for n in names]
    nodes = [helper.make_node("Tile", ["images", "reps"], [n]) for n in names]
    reps = helper.make_tensor("reps", TensorProto.INT64, [4], [1, k, 1, 1])
    graph = helper.make_graph(nodes, "ensemble", [inp], outs, initializer=[reps])
    return helper.make_model(graph).SerializeToString()


def bundle_seeds(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for i, (k, size, backbone) in enumerate([(3, 32, "ae"), (2, 64, "ae-u"), (5, 16, "memae")]):
        manifest = {"format": "ddad_rt.bundle", "format_version": 1, "backbone": backbone,
                    "k": k, "image_size": [size, size], "channels": 1,
                    "normalization": {"mean": 0.5, "std": 0.5},
                    "scores": ["rec", "intra", "inter"], "default_score": "inter",
                    "graphs": {"ensemble": "ensemble.onnx"},
                    "files": {"ensemble.onnx": "@SHA@"},
                    "precision_checks": {"bf16": {"passed": True, "device": "cpu"}}}
        text = json.dumps(manifest).encode()
        graph = onnx_model(k, size, size, backbone == "ae-u")
        (out / f"seed_{i}").write_bytes(struct.pack("<H", len(text)) + text + graph)


def decode_seeds(out: Path) -> None:
    sys.path.insert(0, str(HERE.parent / "python"))  # tests/python: dicom_files
    from dicom_files import make_dicom

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (24, 24), dtype=np.uint8)
    # The first byte picks the suffix: 0 .png, 1 .jpg, 2 .tif, 3 .dcm.
    for name, suffix, fmt, img in [("png8", 0, "PNG", Image.fromarray(gray)),
                                   ("png16", 0, "PNG", Image.fromarray(gray.astype(np.uint16) * 200)),
                                   ("rgb", 0, "PNG", Image.fromarray(np.dstack([gray] * 3))),
                                   ("jpeg", 1, "JPEG", Image.fromarray(gray)),
                                   ("tiff16", 2, "TIFF", Image.fromarray(gray.astype(np.uint16) * 16))]:
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        (out / name).write_bytes(bytes([suffix]) + buf.getvalue())
    # JPEG 2000 needs a few resolution levels: 64x64.
    twelve = rng.integers(0, 4096, (64, 64)).astype(np.uint16)
    gray = (twelve // 16).astype(np.uint8)
    for syntax in ("explicit", "j2k", "rle"):
        (out / f"dicom_{syntax}").write_bytes(b"\x03" + make_dicom(twelve, syntax=syntax))
    (out / "dicom_jpeg").write_bytes(b"\x03" + make_dicom(gray, syntax="jpeg", bits=8))
    (out / "dicom_frames").write_bytes(b"\x03" + make_dicom(np.stack([twelve] * 3)))
    (out / "dicom_mono1").write_bytes(b"\x03" + make_dicom(twelve, photometric="MONOCHROME1"))


if __name__ == "__main__":
    bundle_seeds(HERE / "corpus" / "bundle")
    decode_seeds(HERE / "corpus" / "decode")
    print("wrote", *sorted(p.name for p in (HERE / "corpus").rglob("*") if p.is_file()))
