"""Writing DICOM test files the way scanners and archives store them: uncompressed,
JPEG 2000 / RLE / JPEG baseline compressed, MONOCHROME1, multi-frame."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def make_dicom(pixels: np.ndarray, *, photometric: str = "MONOCHROME2", modality: str = "MR",
               patient_name: str = "Doe^Jane", patient_id: str = "PID-12345",
               birth_date: str = "19700101", study_uid: str | None = None,
               syntax: str = "explicit", bits: int = 16) -> bytes:
    """DICOM bytes of ``pixels`` ([H, W] or [frames, H, W]) with patient data that must
    not leak. ``syntax``: "explicit" (uncompressed), "j2k" (JPEG 2000 lossless), "rle",
    "jpeg" (JPEG baseline, 8-bit, lossy: the file's own decoded pixels are the truth)."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import (
        ExplicitVRLittleEndian,
        JPEG2000Lossless,
        JPEGBaseline8Bit,
        MRImageStorage,
        RLELossless,
        generate_uid,
    )

    pixels = np.asarray(pixels)
    frames = pixels.shape[0] if pixels.ndim == 3 else 1
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = birth_date
    ds.Rows, ds.Columns = pixels.shape[-2:]
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    dtype = np.uint8 if bits == 8 else np.uint16
    if syntax == "jpeg":
        assert bits == 8 and frames == 1
        buf = io.BytesIO()
        Image.fromarray(pixels.astype(np.uint8)).save(buf, format="JPEG", quality=92)
        ds.PixelData = encapsulate([buf.getvalue()])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.LossyImageCompression = "01"
    else:
        ds.PixelData = pixels.astype(dtype).tobytes()
        if syntax == "j2k":
            ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
        elif syntax == "rle":
            ds.compress(RLELossless)
        elif syntax != "explicit":
            raise ValueError(syntax)
    out = io.BytesIO()
    pydicom.dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
