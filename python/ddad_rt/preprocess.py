"""The one preprocessing function of ddad_rt (DESIGN.md section 2).

Training, evaluation and screening all call :func:`load_image` / :func:`to_model_input`, so
what a model sees at deployment is bit-for-bit what it saw in training:

1. decode to one channel: colour to luma (PIL "L"); DICOM: modality LUT (rescale
   slope/intercept), then the first VOI LUT or window when present;
2. to [0, 1]: 8-bit data / 255; any other depth min-max scaled per image; invert MONOCHROME1;
3. to 8 bit (round), then resize to the model size with PIL bilinear (antialiased).

The engine then maps uint8 x to (x / 255 - 0.5) / 0.5.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image

Source = Union[str, os.PathLike, bytes, BinaryIO]
Size = Union[int, tuple[int, int]]

#: File suffixes read as DICOM even without the DICM preamble.
DICOM_SUFFIXES = (".dcm", ".dicom")


@dataclass
class Decoded:
    """A decoded single-channel image before scaling.

    Attributes:
        pixels: 2-D array (uint8 for 8-bit sources; float64 or wider ints otherwise).
        eight_bit: True when the source is 8-bit (scaled by /255, not min-max).
        monochrome1: True for DICOM MONOCHROME1 (high values are dark): inverted in step 2.
        modality: DICOM Modality, when known.
    """

    pixels: np.ndarray
    eight_bit: bool
    monochrome1: bool = False
    modality: str | None = None


def _norm_size(size: Size) -> tuple[int, int]:
    if isinstance(size, int):
        h = w = size
    else:
        h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        msg = f"size must be positive, got {size!r}"
        raise ValueError(msg)
    return h, w


def _read_bytes(source: Source) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), "<bytes>"
    if hasattr(source, "read"):
        return source.read(), getattr(source, "name", "<stream>")
    path = Path(source)
    try:
        return path.read_bytes(), str(path)
    except FileNotFoundError:
        msg = f"image file not found: {path}"
        raise FileNotFoundError(msg) from None
    except IsADirectoryError:
        msg = f"{path} is a directory, not an image file"
        raise ValueError(msg) from None


def _is_dicom(data: bytes, name: str) -> bool:
    return data[128:132] == b"DICM" or name.lower().endswith(DICOM_SUFFIXES)


def _decode_dicom(data: bytes, name: str) -> Decoded:
    try:
        import pydicom
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:
        msg = f"{name} is DICOM, which needs pydicom: pip install 'ddad-rt[dicom]'"
        raise ImportError(msg) from None
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        arr = ds.pixel_array
    except Exception as e:  # pydicom raises many types for broken or undecodable files
        msg = f"cannot decode DICOM {name}: {e}"
        raise ValueError(msg) from e
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        msg = (f"{name}: DICOM PhotometricInterpretation {photometric} is not supported "
               "(ddad_rt models are single-channel grayscale)")
        raise ValueError(msg)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if arr.ndim != 2 or frames > 1:
        msg = f"{name}: multi-frame DICOM ({arr.shape}) is not supported here: pass one frame"
        raise ValueError(msg)
    arr = apply_modality_lut(arr, ds)
    arr = apply_voi_lut(arr, ds, index=0)
    modality = getattr(ds, "Modality", None)
    return Decoded(np.asarray(arr, dtype=np.float64), eight_bit=False,
                   monochrome1=photometric == "MONOCHROME1",
                   modality=str(modality) if modality else None)


def _decode_pil(data: bytes, name: str) -> Decoded:
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception as e:  # PIL raises several types for unreadable data
        msg = f"cannot decode image {name}: {e}"
        raise ValueError(msg) from e
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        pixels = np.asarray(img)
        return Decoded(pixels.astype(np.float64), eight_bit=False)
    # Palette, RGB(A), LA, CMYK, 1-bit: PIL's luma conversion, 8-bit.
    if mode != "L":
        img = img.convert("L")
    return Decoded(np.asarray(img, dtype=np.uint8), eight_bit=True)


def decode(source: Source) -> Decoded:
    """Decodes a file, bytes or stream to a single-channel image (step 1).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the data is not a decodable image (the message names the file).
    """
    data, name = _read_bytes(source)
    if not data:
        msg = f"{name} is empty (0 bytes)"
        raise ValueError(msg)
    if _is_dicom(data, name):
        return _decode_dicom(data, name)
    return _decode_pil(data, name)


def to_unit_range(decoded: Decoded) -> np.ndarray:
    """Step 2: float64 in [0, 1] - /255 for 8-bit data, per-image min-max otherwise."""
    pixels = decoded.pixels
    if decoded.eight_bit:
        unit = pixels.astype(np.float64) / 255.0
    else:
        p = pixels.astype(np.float64)
        if not np.all(np.isfinite(p)):
            msg = "image contains NaN or infinite values"
            raise ValueError(msg)
        lo, hi = float(p.min()), float(p.max())
        unit = (p - lo) / (hi - lo) if hi > lo else np.zeros_like(p)
    if decoded.monochrome1:
        unit = 1.0 - unit
    return unit


def to_model_input(image: np.ndarray | Decoded, size: Size = 64) -> np.ndarray:
    """Steps 2-3 on an already decoded image: returns uint8 [H, W] at the model size.

    A 2-D uint8 array counts as 8-bit data; any other dtype is min-max scaled per image.

    Example:
        >>> to_model_input(np.zeros((128, 128), np.uint8), 64).shape
        (64, 64)
    """
    if not isinstance(image, Decoded):
        arr = np.asarray(image)
        if arr.ndim != 2:
            msg = f"expected a 2-D grayscale image, got shape {arr.shape}"
            raise ValueError(msg)
        image = Decoded(arr, eight_bit=arr.dtype == np.uint8)
    h, w = _norm_size(size)
    if image.eight_bit and not image.monochrome1:
        u8 = np.ascontiguousarray(image.pixels, dtype=np.uint8)  # exact: round(x/255*255) = x
    else:
        u8 = np.rint(to_unit_range(image) * 255.0).astype(np.uint8)
    if u8.shape != (h, w):
        u8 = np.asarray(Image.fromarray(u8).resize((w, h), Image.BILINEAR))
    return u8


def load_image(source: Source, size: Size = 64) -> np.ndarray:
    """Decodes an image file (PNG, JPEG, TIFF, BMP, DICOM, ...) to uint8 [H, W] at ``size``.

    Example:
        >>> img = load_image("scan.png", size=64)  # doctest: +SKIP
    """
    return to_model_input(decode(source), size)


def load_images(sources, size: Size = 64, progress: bool = False, desc: str = "loading") -> np.ndarray:
    """Loads many images to one uint8 array [N, H, W] (with an optional progress bar)."""
    sources = list(sources)
    h, w = _norm_size(size)
    out = np.empty((len(sources), h, w), np.uint8)
    it = sources
    if progress:
        from tqdm import tqdm

        it = tqdm(sources, desc=desc, unit="img", leave=False)
    for i, s in enumerate(it):
        out[i] = load_image(s, (h, w))
    return out
