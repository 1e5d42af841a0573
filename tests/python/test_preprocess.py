"""The shared preprocessing against PIL and pydicom doing each step by hand."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from ddad_rt.preprocess import decode, load_image, to_model_input
from PIL import Image


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_8bit_png_resized_exactly_like_pil_bilinear(rng):
    arr = rng.integers(0, 256, (128, 128), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(arr).resize((64, 64), Image.BILINEAR))
    np.testing.assert_array_equal(load_image(png_bytes(arr), 64), expected)


def test_8bit_at_model_size_is_unchanged(rng):
    arr = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    np.testing.assert_array_equal(load_image(png_bytes(arr), 64), arr)


def test_rgb_becomes_pil_luma(rng):
    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(load_image(png_bytes(rgb), 64), expected)


def test_16bit_png_is_min_max_scaled(rng, tmp_path):
    arr = rng.integers(1000, 3000, (64, 64)).astype(np.uint16)
    path = tmp_path / "x.png"
    Image.fromarray(arr).save(path)
    lo, hi = arr.min(), arr.max()
    expected = np.rint((arr - lo) / (hi - lo) * 255).astype(np.uint8)
    np.testing.assert_array_equal(load_image(path, 64), expected)


def test_non_uint8_array_is_min_max_scaled():
    arr = np.array([[0.0, 2.0], [4.0, 8.0]])
    np.testing.assert_array_equal(to_model_input(arr, 2), [[0, 64], [128, 255]])


def make_dicom(pixels: np.ndarray, photometric: str, slope=1.0, intercept=0.0, window=None) -> bytes:
    import pydicom  # a dependency of ddad-rt
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def test_dicom_monochrome2_min_max(rng):
    px = rng.integers(100, 4000, (64, 64)).astype(np.uint16)
    out = load_image(make_dicom(px, "MONOCHROME2", slope=2.0, intercept=-100), 64)
    v = px * 2.0 - 100
    expected = np.rint((v - v.min()) / (v.max() - v.min()) * 255).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)
    assert decode(make_dicom(px, "MONOCHROME2")).modality == "MR"


def test_dicom_monochrome1_is_inverted(rng):
    px = rng.integers(100, 4000, (64, 64)).astype(np.uint16)
    m1 = load_image(make_dicom(px, "MONOCHROME1"), 64)
    m2 = load_image(make_dicom(px, "MONOCHROME2"), 64)
    np.testing.assert_array_equal(m1.astype(int), 255 - m2.astype(int))


def test_dicom_window_is_applied(rng):
    px = rng.integers(0, 4000, (64, 64)).astype(np.uint16)
    out = load_image(make_dicom(px, "MONOCHROME2", window=(1000, 400)), 64)
    # Everything below 800 is black, above 1200 white after the window.
    assert (out[px < 790] == 0).all() and (out[px > 1210] == 255).all()


def test_errors_name_the_file(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_image(empty)
    junk = tmp_path / "notes.png"
    junk.write_text("not an image")
    with pytest.raises(ValueError, match="notes.png"):
        load_image(junk)
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.png")


def test_multi_frame_dicom_gives_every_frame_each_min_max_scaled(rng):
    from dicom_files import make_dicom

    from ddad_rt.preprocess import DecodeError, decode_file

    frames = rng.integers(0, 4000, (3, 40, 40)).astype(np.uint16)
    frames[1] //= 4  # another range: each frame is scaled on its own
    data = make_dicom(frames)
    f = decode_file(data)
    assert len(f.frames) == 3 and f.dicom["Modality"] == "MR" and "StudyInstanceUID" in f.dicom
    for got, px in zip(f.frames, frames):
        v = px.astype(np.float64)
        expected = np.rint((v - v.min()) / (v.max() - v.min()) * 255).astype(np.uint8)
        np.testing.assert_array_equal(to_model_input(got, 40), expected)
    with pytest.raises(DecodeError, match="multi-frame") as e:
        load_image(data)
    assert e.value.kind == "multi_frame"


def test_colour_dicom_follows_the_colour_png_rule(tmp_path, rng):
    """One rule for colour, whatever the container: RGB (after YBR conversion or the palette
    lookup), then PIL's luma. A colour DICOM secondary capture of a grey film used to be
    refused while the same pixels as a colour PNG were screened."""
    import pydicom
    from ddad_rt.preprocess import decode_file, to_model_input
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    rgb = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(rgb, "RGB").save(tmp_path / "c.png")
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PlanarConfiguration = 40, 48, 3, 0
    ds.PhotometricInterpretation = "RGB"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = rgb.tobytes()
    pydicom.dcmwrite(tmp_path / "c.dcm", ds, enforce_file_format=True)
    png = to_model_input(decode_file(tmp_path / "c.png").frames[0], 32)
    dcm = to_model_input(decode_file(tmp_path / "c.dcm").frames[0], 32)
    np.testing.assert_array_equal(png, dcm)


def test_pydicoms_own_test_files_are_decoded_or_named_rightly():
    """pydicom's 176 test files: no crash; every colour image (RGB, YBR_*, PALETTE COLOR)
    decodes or is damaged, never refused as unsupported; damaged data that an installed
    decoder rejects is "corrupt", not "no decoder here: pip install"."""
    import pydicom  # a dependency of ddad-rt
    from ddad_rt.preprocess import COLOUR, DecodeError, decode_file

    root = Path(pydicom.data.__file__).parent / "test_files"
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert len(files) >= 170
    kinds: dict[str, str] = {}
    colour_kinds: list[str] = []
    for p in files:
        try:
            decode_file(p)
            kinds[p.name] = "ok"
        except DecodeError as e:
            kinds[p.name] = e.kind
        try:
            header = pydicom.dcmread(p, stop_before_pixels=True, force=True)
            photometric = str(header.get("PhotometricInterpretation", "")).upper()
        except Exception:  # noqa: BLE001 - not DICOM at all
            photometric = ""
        if photometric in COLOUR:
            colour_kinds.append(kinds[p.name])
    assert len(colour_kinds) >= 30 and "unsupported" not in colour_kinds, colour_kinds
    assert colour_kinds.count("ok") >= 30
    assert kinds["JPEG-lossy.dcm"] == kinds["JPEG2000-embedded-sequence-delimiter.dcm"] == "corrupt"
    assert kinds["examples_palette.dcm"] == kinds["SC_ybr_full_422_uncompressed.dcm"] == "ok"


def test_decompression_bombs_are_too_large_before_decoding(tmp_path):
    """A few bytes of header announcing billions of pixels: refused as too_large before any
    pixel is allocated."""
    import struct
    import zlib

    import pydicom
    from ddad_rt.preprocess import DecodeError, decode_file
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))
    (tmp_path / "bomb.png").write_bytes(png)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns, ds.NumberOfFrames = 4096, 4096, 50000
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = b"\0" * 64
    pydicom.dcmwrite(tmp_path / "bomb.dcm", ds, enforce_file_format=True)
    for name in ("bomb.png", "bomb.dcm"):
        with pytest.raises(DecodeError) as e:
            decode_file(tmp_path / name)
        assert e.value.kind == "too_large", str(e.value)


def test_a_malformed_element_is_a_decode_error_not_a_crash(tmp_path, rng):
    """Found by fuzzing (.ci/fuzz): pydicom reads elements lazily, so an element with an
    unknown VR raised NotImplementedError from decode_file (load_image's callers saw it)."""
    import pydicom
    from ddad_rt.preprocess import DecodeError, decode_file
    from dicom_files import make_dicom
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    path = tmp_path / "ok.dcm"
    path.write_bytes(make_dicom(rng.integers(0, 4000, (32, 32)).astype(np.uint16)))
    ds = pydicom.dcmread(path)
    ds[0x00100030] = RawDataElement(Tag(0x00100030), "KA", 8, b"19700101", 0, False, True)
    bad = tmp_path / "bad_vr.dcm"
    ds.save_as(bad)
    with pytest.raises(DecodeError) as e:
        decode_file(bad)
    assert e.value.kind == "corrupt"
