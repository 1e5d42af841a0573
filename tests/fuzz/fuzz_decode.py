"""atheris target: the image decoders (PNG, JPEG, TIFF, DICOM, compressed transfer syntaxes
included). Every input must end in frames or a DecodeError - never another exception type,
a hang or unbounded memory (decompression bombs are ``too_large``). The first byte picks the
file name suffix (.png, .jpg, .tif, .dcm), so both the DICOM and the PIL paths are reached.

    python tests/fuzz/fuzz_decode.py tests/fuzz/corpus/decode -max_total_time=60 -rss_limit_mb=3072
"""

from __future__ import annotations

import os
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    import ddad_rt.preprocess as preprocess
    import numpy  # noqa: F401
    import PIL.Image  # noqa: F401
    import pydicom  # noqa: F401

SUFFIXES = (".png", ".jpg", ".tif", ".dcm")
WORK = tempfile.mkdtemp(prefix="ddad_rt_fuzz_decode_")


def one_input(data: bytes) -> None:
    if not data:
        return
    path = os.path.join(WORK, "input" + SUFFIXES[data[0] % len(SUFFIXES)])
    with open(path, "wb") as f:
        f.write(data[1:])
    try:
        decoded = preprocess.decode_file(path)
    except preprocess.DecodeError:
        return
    for frame in decoded.frames:  # what screening does next must hold too
        preprocess.to_model_input(frame, 32)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
