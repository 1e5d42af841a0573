"""Scoring a batch of decoded frames into result rows and pictures: the one piece a local
run and a Ray actor share, so both produce the same rows."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from functools import partial

import numpy as np

from ddad_rt.screen.overlay import (
    overlay_name,
    overlay_png,
    overlay_rgb,
    secondary_capture,
)

#: DICOM attributes in result rows, as column names.
DICOM_COLUMNS = {"StudyInstanceUID": "study_uid", "SeriesInstanceUID": "series_uid",
                 "SOPInstanceUID": "sop_uid", "Modality": "modality"}
PHI_COLUMNS = {"PatientName": "patient_name", "PatientID": "patient_id",
               "PatientBirthDate": "patient_birth_date"}


def columns(keys: list[str], include_phi: bool) -> list[str]:
    """The results.csv columns for a bundle's score keys."""
    cols = ["path", "frame", "n_frames", *DICOM_COLUMNS.values()]
    if include_phi:
        cols += list(PHI_COLUMNS.values())
    cols += ["score", "flag", *[f"score_{k}" for k in keys], "overlay", "dicom_sc",
             "decode_ms", "engine_ms",
             "flagged_on", "operating_point", "threshold", "bundle_identity", "ddad_rt_version"]
    return cols


@dataclass
class Frame:
    """One decoded frame waiting to be scored."""

    path: str
    frame: int
    n_frames: int
    dicom: dict[str, str]
    decode_seconds: float
    image: np.ndarray


@dataclass
class ScoringPlan:
    """Everything scoring needs besides the engine; picklable (Ray sends it to actors).

    Attributes:
        key: the score that is flagged.
        keys: every score of the bundle.
        threshold: flag above it (None: flag nothing).
        overlays: "flagged", "all" or "none".
        dicom_sc: also a Secondary Capture per overlay of a DICOM frame.
        include_phi: patient columns in the rows.
        map_scale: overlay colour scale from calibration (None: per image).
        audit: columns every row carries (bundle identity, version, operating point...).
        run_id: seeds the Secondary Captures' UIDs.
        description: text of the Secondary Captures.
    """

    key: str
    keys: list[str]  # the scores computed and written: [key], or all with --all-scores
    threshold: float | None
    overlays: str
    dicom_sc: bool
    include_phi: bool
    map_scale: list[float] | None
    audit: dict
    run_id: str
    description: str


def score_frames(engine, plan: ScoringPlan, frames: list[Frame]) -> tuple[list[dict], list]:
    """Scores ``frames`` in one engine call.

    Returns:
        (rows, pictures): pictures are (relative path, callable giving the file's bytes,
        row, row column that names the file), rendered by the caller (a failure is
        recorded in that column).
    """
    if not frames:
        return [], []
    need_maps = plan.overlays != "none"
    batch = np.stack([f.image for f in frames])
    t0 = time.perf_counter()
    r = engine.score(batch, maps=need_maps, scores=plan.keys)
    engine_ms = (time.perf_counter() - t0) * 1000 / len(batch)
    rows, pictures = [], []
    for i, f in enumerate(frames):
        s = float(r.scores[plan.key][i])
        flag = plan.threshold is not None and s > plan.threshold
        row = {"path": f.path, "frame": f.frame, "n_frames": f.n_frames}
        for attr, col in DICOM_COLUMNS.items():
            row[col] = f.dicom.get(attr, "")
        if plan.include_phi:
            for attr, col in PHI_COLUMNS.items():
                row[col] = f.dicom.get(attr, "")
        row["score"] = s  # the float32 score as a double: exact, so flag == score > threshold
        row["flag"] = bool(flag)
        for k in plan.keys:
            row[f"score_{k}"] = float(r.scores[k][i])
        row["overlay"] = row["dicom_sc"] = ""
        if need_maps and (flag or plan.overlays == "all"):
            name = overlay_name(f.path, f.frame)
            row["overlay"] = f"overlays/{name}"
            amap = r.maps[plan.key][i].copy()
            caption = f"{plan.key} {s:.5g}" + ("  FLAGGED" if flag else "")
            pictures.append((row["overlay"], partial(overlay_png, f.image, amap, plan.map_scale,
                                                     caption), row, "overlay"))
            if plan.dicom_sc and f.dicom.get("SOPInstanceUID"):
                row["dicom_sc"] = f"dicom/{name[:-4]}.dcm"
                pictures.append((row["dicom_sc"],
                                 partial(_sc_bytes, f.image, amap, plan.map_scale, f.dicom,
                                         plan.run_id, f.frame, f.n_frames, plan.description,
                                         plan.include_phi), row, "dicom_sc"))
        row["decode_ms"] = round(f.decode_seconds * 1000 / max(f.n_frames, 1), 3)
        row["engine_ms"] = round(engine_ms, 3)
        row.update(plan.audit)
        rows.append(row)
    return rows, pictures


def render(make) -> bytes:
    """Runs a picture's callable with pydicom's warnings (which may quote values) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make()


def _sc_bytes(img, amap, scale, dicom, run_id, frame, n_frames, description,
              include_phi) -> bytes:
    return secondary_capture(overlay_rgb(img, amap, scale), dicom, run_id=run_id, frame=frame,
                             n_frames=n_frames, description=description,
                             include_phi=include_phi)
