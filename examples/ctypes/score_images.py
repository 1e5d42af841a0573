"""Scores 8-bit grayscale images through the C ABI from another language - here Python's
ctypes, as C#, Go, Rust or Java would bind the same functions - and prints one line per
image: its path and the bundle's default score (9 significant digits).

    python examples/ctypes/score_images.py BUNDLE IMAGE...

The library is the one a pip install ships (``ddad_rt.cmake_prefix_path``/lib), or the file
named by $DDAD_RT_LIBRARY (e.g. PREFIX/lib/libddad_rt.so.0 of a standalone install). Images
must already be at the model's size. Only NumPy and Pillow are used besides the library.
"""

from __future__ import annotations

import ctypes as C
import glob
import os
import sys

import numpy as np
from PIL import Image

NUM_SCORES = 5


class Options(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("device", C.c_char_p), ("precision", C.c_char_p),
                ("max_batch", C.c_int64), ("num_threads", C.c_int32), ("cache_dir", C.c_char_p)]


class Images(C.Structure):
    _fields_ = [("data", C.c_void_p), ("dtype", C.c_int), ("n", C.c_int64),
                ("height", C.c_int64), ("width", C.c_int64)]


class Outputs(C.Structure):
    _fields_ = [("scores", C.POINTER(C.c_float) * NUM_SCORES),
                ("maps", C.POINTER(C.c_float) * NUM_SCORES)]


class EngineInfo(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("height", C.c_int64), ("width", C.c_int64),
                ("k", C.c_int32), ("scores", C.c_uint32), ("default_score", C.c_int),
                ("backbone", C.c_char_p), ("backend", C.c_char_p), ("device", C.c_char_p),
                ("precision", C.c_char_p), ("bundle_identity", C.c_char_p),
                ("calibrated", C.c_int32)]


def load_library() -> C.CDLL:
    path = os.environ.get("DDAD_RT_LIBRARY")
    if not path:
        import ddad_rt  # only to find the library of a pip install

        path = min(glob.glob(os.path.join(ddad_rt.cmake_prefix_path, "lib", "libddad_rt.so.*")))
    lib = C.CDLL(path)
    lib.ddad_rt_last_error.restype = C.c_char_p
    lib.ddad_rt_score_name.restype = C.c_char_p
    lib.ddad_rt_engine_create.argtypes = [C.c_char_p, C.POINTER(Options), C.POINTER(C.c_void_p)]
    lib.ddad_rt_engine_get_info.argtypes = [C.c_void_p, C.POINTER(EngineInfo)]
    lib.ddad_rt_engine_score.argtypes = [C.c_void_p, C.POINTER(Images), C.POINTER(Outputs)]
    lib.ddad_rt_engine_destroy.argtypes = [C.c_void_p]
    return lib


def check(lib: C.CDLL, status: int, what: str) -> None:
    if status != 0:
        sys.exit(f"{what}: status {status}: {lib.ddad_rt_last_error().decode()}")


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(f"usage: {argv[0]} BUNDLE IMAGE...", file=sys.stderr)
        return 2
    lib = load_library()
    engine = C.c_void_p()
    check(lib, lib.ddad_rt_engine_create(argv[1].encode(), None, C.byref(engine)), "loading the bundle")
    try:
        info = EngineInfo(struct_size=C.sizeof(EngineInfo))
        check(lib, lib.ddad_rt_engine_get_info(engine, C.byref(info)), "engine info")
        paths = argv[2:]
        for first in range(0, len(paths), 16):
            chunk = paths[first:first + 16]
            batch = np.ascontiguousarray(np.stack([np.asarray(Image.open(p).convert("L"), np.uint8)
                                                   for p in chunk]))
            if batch.shape[1:] != (info.height, info.width):
                sys.exit(f"images must be {info.height}x{info.width}: resize them first")
            scores = np.zeros(len(chunk), np.float32)
            out = Outputs()
            out.scores[info.default_score] = scores.ctypes.data_as(C.POINTER(C.c_float))
            images = Images(batch.ctypes.data, 0, len(chunk), info.height, info.width)  # 0: uint8
            check(lib, lib.ddad_rt_engine_score(engine, C.byref(images), C.byref(out)), "scoring")
            for p, s in zip(chunk, scores, strict=True):
                print(f"{p} {float(s):.9g}")
    finally:
        lib.ddad_rt_engine_destroy(engine)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
