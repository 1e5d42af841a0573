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

import contextlib
import io
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image

from ddad_rt.errors import InputError

Source = Union[str, os.PathLike, bytes, BinaryIO]
Size = Union[int, tuple[int, int]]

#: File suffixes read as DICOM even without the DICM preamble.
DICOM_SUFFIXES = (".dcm", ".dicom")


class DecodeError(ValueError):
    """A file that is not a decodable image. The message names the file; ``kind`` is a short
    reason code for reports: "empty", "not_an_image", "corrupt", "no_pixel_data",
    "unsupported" (a format or photometric interpretation ddad_rt does not take) or
    "multi_frame" (a multi-frame file where one image was expected).

    The message is ddad_rt's own text (the file, the reason, the exception type); the
    underlying library's exception text, which can quote DICOM values (a patient's name in
    a malformed element), is kept apart in ``detail``, written out only where patient data
    is allowed (``ddad-rt screen --include-phi``)."""

    def __init__(self, message: str, kind: str, detail: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.detail = detail


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


#: DICOM attributes :func:`decode_file` reports. The identifiers of the image, its series and
#: study are not patient data; PHI_ATTRIBUTES are, and callers drop them unless asked.
DICOM_UID_ATTRIBUTES = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
PHI_ATTRIBUTES = ("PatientName", "PatientID", "PatientBirthDate")
MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
#: Decompression-bomb limits: a few bytes of a crafted header can announce billions of
#: pixels. The largest real images (mammography, whole-body CR) are ~40 Mpixel a frame;
#: cine and tomosynthesis series hold hundreds to a few thousand frames.
MAX_FRAME_PIXELS = 1 << 28   # 268 Mpixel per frame
MAX_FRAMES = 10_000
MAX_FILE_PIXELS = 1 << 31    # 2.1 Gpixel per file, every frame together
#: Colour DICOM, converted to luma as colour PNGs and JPEGs are (secondary captures of films).
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT", "YBR_PARTIAL_420",
          "PALETTE COLOR")


@dataclass
class DecodedFile:
    """Every image of one file: one frame for PNG/JPEG/TIFF and single-frame DICOM, several
    for a multi-frame DICOM.

    Attributes:
        frames: the decoded frames, in file order.
        dicom: for DICOM, the attributes of DICOM_UID_ATTRIBUTES, "Modality" and
            PHI_ATTRIBUTES that are present (as strings); empty otherwise.
    """

    frames: list[Decoded]
    dicom: dict[str, str] = field(default_factory=dict)


def _norm_size(size: Size) -> tuple[int, int]:
    if isinstance(size, int):
        h = w = size
    else:
        h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        msg = f"size must be positive, got {size!r}"
        raise InputError(msg)
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
        raise InputError(msg) from None


def _is_dicom(data: bytes, name: str) -> bool:
    if data[128:132] == b"DICM" or name.lower().endswith(DICOM_SUFFIXES):
        return True
    # Old files without the preamble start with a group 0x0008 element (little endian).
    return data[:2] == b"\x08\x00" and data[4:6].isalpha()


@contextlib.contextmanager
def _quiet_pydicom_log():
    log = logging.getLogger("pydicom")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _decode_dicom(data: bytes, name: str) -> DecodedFile:
    try:
        import pydicom
    except ImportError:
        msg = f"{name} is DICOM, which needs pydicom (a dependency of ddad-rt): pip install pydicom"
        raise ImportError(msg) from None
    with warnings.catch_warnings(), _quiet_pydicom_log():
        # pydicom warns and logs about invalid element values quoting them: either could
        # carry a patient's name into a log.
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            return _dicom_dataset_frames(ds, data, name)
        except DecodeError:
            raise
        except Exception as e:  # noqa: BLE001 - pydicom reads elements lazily, so any
            # attribute can raise for a broken file, with many types
            msg = f"cannot read DICOM {name}: malformed data ({type(e).__name__})"
            raise DecodeError(msg, "corrupt", detail=str(e)[:200]) from None


def _dicom_dataset_frames(ds, data: bytes, name: str) -> DecodedFile:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        if data[128:132] != b"DICM" and len(ds) == 0:
            msg = f"cannot decode image {name}: not a DICOM file or an image format PIL reads"
            raise DecodeError(msg, "not_an_image")
        msg = f"{name}: DICOM without pixel data (e.g. a report or DICOMDIR), nothing to score"
        raise DecodeError(msg, "no_pixel_data")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper().strip()
    if photometric not in MONOCHROME and photometric not in COLOUR:
        msg = (f"{name}: DICOM PhotometricInterpretation {photometric} is not supported "
               f"(grayscale {', '.join(MONOCHROME)} and colour {', '.join(COLOUR)} are)")
        raise DecodeError(msg, "unsupported")
    _check_dicom_size(ds, name)
    try:
        arr = ds.pixel_array  # pydicom 3 converts YBR_* to RGB
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - a missing codec, or data that does not
        # decode; codecs written in Rust panic with a BaseException (pyo3's PanicException)
        raise _pixel_data_error(ds, e, name) from None
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        msg = f"{name}: DICOM NumberOfFrames is not a number"
        raise DecodeError(msg, "corrupt") from None
    colour = photometric in COLOUR
    single = arr.ndim == (3 if colour and photometric != "PALETTE COLOR" else 2)
    if frames == 1 and single:
        arr = arr[None]
    expected_rank = 4 if colour and photometric != "PALETTE COLOR" else 3
    if arr.ndim != expected_rank or arr.shape[0] != frames:
        msg = f"{name}: unexpected DICOM pixel array shape {arr.shape} for {frames} frame(s)"
        raise DecodeError(msg, "unsupported")
    if colour:
        decoded = _dicom_colour_frames(arr, ds, photometric, name)
    else:
        try:
            arr = apply_modality_lut(arr, ds)
            arr = apply_voi_lut(arr, ds, index=0)
        except Exception as e:  # noqa: BLE001 - malformed rescale, LUT or window attributes
            msg = f"{name}: malformed DICOM modality LUT, rescale or window ({type(e).__name__})"
            raise DecodeError(msg, "corrupt", detail=str(e)[:200]) from None
        arr = np.asarray(arr, dtype=np.float64)
        decoded = [Decoded(arr[i], eight_bit=False, monochrome1=photometric == "MONOCHROME1")
                   for i in range(frames)]
    info = {}
    for key in (*DICOM_UID_ATTRIBUTES, "Modality", *PHI_ATTRIBUTES):
        value = ds.get(key)
        if value is not None and str(value) != "":
            info[key] = str(value)
    for d in decoded:
        d.modality = info.get("Modality")
    return DecodedFile(decoded, info)


def _check_size(name: str, width: int, height: int, frames: int) -> None:
    """Refuses an image too large to decode as "too_large", before any pixel is decoded."""
    if width * height > MAX_FRAME_PIXELS or frames > MAX_FRAMES or \
            width * height * frames > MAX_FILE_PIXELS:
        msg = (f"{name}: {width}x{height} pixels x {frames} frame(s) is beyond the decoding "
               f"limits ({MAX_FRAME_PIXELS} pixels a frame, {MAX_FRAMES} frames, "
               f"{MAX_FILE_PIXELS} pixels a file): a damaged or crafted header")
        raise DecodeError(msg, "too_large")


def _check_dicom_size(ds, name: str) -> None:
    try:
        rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        msg = f"{name}: DICOM Rows, Columns or NumberOfFrames is not a number"
        raise DecodeError(msg, "corrupt") from None
    _check_size(name, cols, rows, frames)


def _pixel_data_error(ds, error: Exception, name: str) -> DecodeError:
    """Why pixel data did not decode: no decoder for its transfer syntax here
    ("unsupported", with the packages to install), or damaged data ("corrupt")."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None:
        msg = f"{name}: DICOM without a TransferSyntaxUID in its file meta information"
        return DecodeError(msg, "corrupt", detail=str(error)[:200])
    try:
        from pydicom.pixels import get_decoder

        available = get_decoder(syntax).is_available
    except Exception:  # noqa: BLE001 - an unknown or missing transfer syntax
        available = False
    if not available:
        msg = (f"{name}: no decoder for transfer syntax {getattr(syntax, 'name', syntax)} "
               "here: pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg "
               "pylibjpeg-rle (dependencies of ddad-rt)")
        return DecodeError(msg, "unsupported", detail=str(error)[:200])
    msg = (f"cannot decode DICOM pixel data of {name}: the {getattr(syntax, 'name', syntax)} "
           f"decoder is installed but failed on this data ({type(error).__name__})")
    return DecodeError(msg, "corrupt", detail=str(error)[:200])


def _dicom_colour_frames(arr: np.ndarray, ds, photometric: str, name: str) -> list[Decoded]:
    """Colour DICOM frames to one channel by the rule colour PNGs and JPEGs follow: RGB (after
    the colour-space conversion pydicom applies to YBR_*, or the palette lookup), then PIL's
    luma; 8-bit data stays 8-bit, deeper data is min-max scaled like any other."""
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        try:
            arr = apply_color_lut(arr, ds)
        except Exception as e:  # noqa: BLE001 - a malformed or missing palette
            msg = f"{name}: malformed DICOM palette colour lookup table ({type(e).__name__})"
            raise DecodeError(msg, "corrupt", detail=str(e)[:200]) from None
    if arr.dtype == np.uint8:
        return [Decoded(np.asarray(Image.fromarray(f, "RGB").convert("L")), eight_bit=True)
                for f in arr]
    rgb = arr.astype(np.float64)
    luma = (rgb[..., 0] * 299 + rgb[..., 1] * 587 + rgb[..., 2] * 114) / 1000
    return [Decoded(f, eight_bit=False) for f in luma]


def _decode_pil(data: bytes, name: str) -> DecodedFile:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        msg = f"{name}: the image header announces more pixels than PIL decodes safely"
        raise DecodeError(msg, "too_large") from None
    except Exception as e:  # UnidentifiedImageError and friends
        msg = f"cannot decode image {name}: not a DICOM file or an image format PIL reads"
        raise DecodeError(msg, "not_an_image") from e
    _check_size(name, img.width, img.height, 1)  # before a pixel is decoded
    try:
        return _pil_frames(img, name)
    except DecodeError:
        raise
    except Exception as e:  # truncated or damaged data: PIL raises many types for it
        msg = f"cannot decode image {name}: {img.format} data is damaged ({type(e).__name__})"
        raise DecodeError(msg, "corrupt", detail=str(e)[:200]) from e


def _pil_frames(img: Image.Image, name: str) -> DecodedFile:
    img.load()
    if getattr(img, "n_frames", 1) > 1:
        msg = (f"{name}: {img.format} with {img.n_frames} frames; multi-frame images are read "
               "from DICOM only")
        raise DecodeError(msg, "unsupported")
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        pixels = np.asarray(img)
        return DecodedFile([Decoded(pixels.astype(np.float64), eight_bit=False)])
    # Palette, RGB(A), LA, CMYK, 1-bit: PIL's luma conversion, 8-bit.
    if mode != "L":
        img = img.convert("L")
    return DecodedFile([Decoded(np.asarray(img, dtype=np.uint8), eight_bit=True)])


def decode_file(source: Source) -> DecodedFile:
    """Decodes a file, bytes or stream to its frames (step 1) and, for DICOM, its identifiers.

    Raises:
        FileNotFoundError: the path does not exist.
        DecodeError: the data is not a decodable image (the message names the file).
    """
    data, name = _read_bytes(source)
    if not data:
        msg = f"{name} is empty (0 bytes)"
        raise DecodeError(msg, "empty")
    if _is_dicom(data, name):
        return _decode_dicom(data, name)
    return _decode_pil(data, name)


def decode(source: Source) -> Decoded:
    """Decodes a single-image file, bytes or stream to one channel (step 1).

    Raises:
        FileNotFoundError: the path does not exist.
        DecodeError: the data is not a decodable image, or holds several frames (the
            message names the file; use :func:`decode_file` for multi-frame DICOM).
    """
    f = decode_file(source)
    if len(f.frames) != 1:
        name = source if isinstance(source, (str, os.PathLike)) else "<data>"
        msg = f"{name}: multi-frame DICOM ({len(f.frames)} frames) where one image was expected"
        raise DecodeError(msg, "multi_frame")
    return f.frames[0]


def to_unit_range(decoded: Decoded) -> np.ndarray:
    """Step 2: float64 in [0, 1] - /255 for 8-bit data, per-image min-max otherwise."""
    pixels = decoded.pixels
    if decoded.eight_bit:
        unit = pixels.astype(np.float64) / 255.0
    else:
        p = pixels.astype(np.float64)
        if not np.all(np.isfinite(p)):
            msg = "image contains NaN or infinite values"
            raise InputError(msg)
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
            raise InputError(msg)
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
