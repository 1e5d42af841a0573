"""The shared preprocessing against PIL and pydicom doing each step by hand."""

from __future__ import annotations

import io

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
    pydicom = pytest.importorskip("pydicom")
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
    pytest.importorskip("pydicom")
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
