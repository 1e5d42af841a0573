"""`ddad-rt screen` and `ddad-rt calibrate` on a mixed archive: formats, errors, PHI,
resume after SIGKILL, operating points."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom  # a dependency of ddad-rt, never skipped
import pytest
from dicom_files import make_dicom, write
from PIL import Image

PATIENT = "Doe^Jane"
PATIENT_ID = "PID-12345"
BIRTH = "19700101"


def synth_images(n: int, seed: int, abnormal_every: int = 0) -> list[np.ndarray]:
    from ddad_rt.synthetic import make_image

    rng = np.random.default_rng(seed)
    return [make_image(rng, abnormal=bool(abnormal_every) and i % abnormal_every == 0)[0]
            for i in range(n)]


def full_range(img: np.ndarray) -> np.ndarray:
    """The image stretched to 0..255, so 8-bit (/255) and DICOM (min-max) scaling agree."""
    f = img.astype(np.float64)
    return np.rint((f - f.min()) / (f.max() - f.min()) * 255).astype(np.uint8)


def set_manifest(bundle: Path, **fields) -> None:
    from ddad_rt.bundle import GENERATED_FIELDS, read_manifest, write_manifest

    m = read_manifest(bundle, verify=False)
    m = {k: v for k, v in m.items() if k not in GENERATED_FIELDS}
    m.update(fields)
    write_manifest(bundle, m)


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory) -> Path:
    """120 fresh normal images (not in any training set)."""
    d = tmp_path_factory.mktemp("calib")
    for i, img in enumerate(synth_images(120, seed=77)):
        Image.fromarray(img).save(d / f"normal_{i:03d}.png")
    return d


@pytest.fixture(scope="module")
def mr_bundle(trained, calib_dir, tmp_path_factory) -> Path:
    """The synthetic AE bundle, stated as an MR model and calibrated."""
    from ddad_rt.calibrate import calibrate

    dst = tmp_path_factory.mktemp("mr") / "bundle"
    shutil.copytree(trained[0], dst)
    set_manifest(dst, modality="MR")
    calibrate(dst, calib_dir, progress=False, decode_workers=0, num_threads=1)
    return dst


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> dict:
    """A folder mixing every format and every kind of bad file; returns what it holds."""
    root = tmp_path_factory.mktemp("archive")
    imgs = synth_images(12, seed=5, abnormal_every=3)
    same = full_range(imgs[0])
    study = pydicom.uid.generate_uid()
    Image.fromarray(imgs[1]).save(root / "a.png")
    Image.fromarray(imgs[2]).save(root / "b.jpg", quality=90)
    (root / "sub").mkdir()
    Image.fromarray(imgs[3].astype(np.uint16) * 257).save(root / "sub" / "c.tif")
    Image.fromarray(same).save(root / "same.png")
    write(root / "same.dcm", make_dicom(same, study_uid=study))
    write(root / "sub" / "deeper" / "same_j2k.dcm", make_dicom(same, syntax="j2k", study_uid=study))
    write(root / "same_rle.dcm", make_dicom(same, syntax="rle", study_uid=study))
    write(root / "same_m1.dcm", make_dicom(255 - same, photometric="MONOCHROME1", study_uid=study))
    write(root / "jpeg_baseline.dcm", make_dicom(imgs[4], syntax="jpeg", bits=8))
    write(root / "multi.dcm", make_dicom(np.stack([full_range(i) for i in imgs[5:8]])))
    write(root / "ct.dcm", make_dicom(imgs[8], modality="CT"))
    good = Path(root / "corrupt.png")
    Image.fromarray(imgs[9]).save(good)
    good.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("scanner maintenance log, not an image\n")
    (root / ".hidden.png").write_bytes(b"")  # hidden files are skipped
    expected_rows = {("a.png", 0), ("b.jpg", 0), ("c.tif", 0), ("same.png", 0), ("same.dcm", 0),
                     ("same_j2k.dcm", 0), ("same_rle.dcm", 0), ("same_m1.dcm", 0),
                     ("jpeg_baseline.dcm", 0), ("multi.dcm", 0), ("multi.dcm", 1),
                     ("multi.dcm", 2)}
    expected_errors = {"ct.dcm": "wrong_modality", "corrupt.png": "corrupt",
                       "empty.png": "empty", "notes.txt": "not_an_image"}
    return {"root": root, "rows": expected_rows, "errors": expected_errors, "study": study}


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ddad_rt.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, check=False)


def read_rows(out: Path) -> list[dict]:
    with open(out / "results.jsonl") as f:
        return [json.loads(line) for line in f]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def screened(mr_bundle, archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("screen") / "out"
    r = run_cli("screen", mr_bundle, archive["root"], "--out", out, "--overlays", "all",
                "--dicom-sc", "--no-progress")
    return out, r


def test_every_good_image_has_a_row_and_every_bad_file_an_error(screened, archive):
    out, r = screened
    assert r.returncode == 1, r.stderr  # some files failed
    rows = read_rows(out)
    assert {(Path(x["path"]).name, x["frame"]) for x in rows} == archive["rows"]
    errors = {Path(e["path"]).name: e["reason"] for e in read_csv(out / "errors.csv")}
    assert errors == archive["errors"]
    assert all(e["message"] for e in read_csv(out / "errors.csv"))
    # The CSV holds the journal's rows, one per (path, frame).
    csv_rows = read_csv(out / "results.csv")
    assert len(csv_rows) == len(rows)
    assert {(c["path"], int(c["frame"])) for c in csv_rows} == {(x["path"], x["frame"]) for x in rows}
    multi = [x for x in rows if x["path"].endswith("multi.dcm")]
    assert all(x["n_frames"] == 3 for x in multi)
    dicom_rows = [x for x in rows if x["path"].endswith(".dcm")]
    assert all(x["study_uid"] and x["sop_uid"] and x["modality"] == "MR" for x in dicom_rows)
    assert "12 images" in r.stdout and "4 errors" in r.stdout


def test_screen_computes_only_the_flagged_score_unless_asked_for_all(screened, mr_bundle, archive,
                                                                    tmp_path):
    """By default the run writes the flagged score alone (only its networks ran);
    --all-scores writes every score, and the flagged one is the same number either way."""
    from ddad_rt import Engine

    default_rows = {(x["path"], x["frame"]): x for x in read_rows(screened[0])}
    keys = Engine(mr_bundle, device="cpu").info["scores"]
    flagged = Engine(mr_bundle, device="cpu").info["default_score"]
    assert {k for k in next(iter(default_rows.values())) if k.startswith("score_")} == {f"score_{flagged}"}
    out = tmp_path / "all"
    r = run_cli("screen", mr_bundle, archive["root"], "--out", out, "--overlays", "none",
                "--all-scores", "--no-progress")
    assert r.returncode == 1, r.stderr
    for row in read_rows(out):
        assert {k for k in row if k.startswith("score_")} == {f"score_{k}" for k in keys}
        same = default_rows[(row["path"], row["frame"])]
        assert row["score"] == same["score"] == row[f"score_{flagged}"]


def test_same_pixels_in_png_and_dicom_score_the_same(screened):
    """PNG, uncompressed, JPEG 2000 and RLE DICOM, and MONOCHROME1 holding the inverted
    pixels all reach the engine as the same model input."""
    rows = {Path(x["path"]).name: x for x in read_rows(screened[0])}
    ref = rows["same.png"]
    for name in ("same.dcm", "same_j2k.dcm", "same_rle.dcm", "same_m1.dcm"):
        assert rows[name]["score"] == ref["score"], name
        assert rows[name]["flag"] == ref["flag"]


def test_jpeg_compressed_dicom_decodes_like_its_own_pixels(archive, mr_bundle):
    """JPEG baseline DICOM goes through the pylibjpeg handler; the pixels match PIL's
    decoding of the same JPEG stream within JPEG decoder differences."""
    from ddad_rt.preprocess import decode_file

    f = decode_file(archive["root"] / "jpeg_baseline.dcm")
    ds = pydicom.dcmread(archive["root"] / "jpeg_baseline.dcm")
    frame = pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1)
    import io

    pil = np.asarray(Image.open(io.BytesIO(next(frame))).convert("L"), np.float64)
    assert f.frames[0].pixels.shape == pil.shape
    assert np.abs(f.frames[0].pixels - pil).max() <= 2


def test_no_phi_in_any_output_or_log(screened):
    out, r = screened
    # (Not "Doe" alone: three letters occur by chance in the report's base64 images.)
    needles = [PATIENT.encode(), PATIENT_ID.encode(), BIRTH.encode(), b"Doe Jane", b"Jane Doe"]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.suffix == ".dcm" for p in files)  # Secondary Captures were written
    for p in files:
        data = p.read_bytes()
        for n in needles:
            assert n not in data, f"{n!r} found in {p}"
    for n in needles:
        assert n.decode() not in r.stdout + r.stderr


def test_include_phi_puts_patient_data_in_results(mr_bundle, archive, tmp_path):
    out = tmp_path / "phi"
    r = run_cli("screen", mr_bundle, archive["root"] / "same.dcm", "--out", out, "--include-phi",
                "--no-progress")
    assert r.returncode == 0, r.stderr
    (row,) = read_csv(out / "results.csv")
    assert (row["patient_name"], row["patient_id"], row["patient_birth_date"]) == (PATIENT, PATIENT_ID, BIRTH)


def test_decoder_error_texts_stay_out_unless_include_phi(mr_bundle, archive, tmp_path,
                                                         monkeypatch):
    """A decoder's exception text can quote DICOM values: errors.csv and report.html get the
    reason code, ddad_rt's own text and the exception type; the text only with
    --include-phi."""
    from ddad_rt.preprocess import DecodeError
    from ddad_rt.screen import ScreenOptions, decode, screen

    real = decode.decode_file

    def leaky(path):
        if Path(path).name == "a.png":
            raise DecodeError(f"cannot decode DICOM pixel data of {path} (ValueError)",
                              "corrupt", detail="bad value 'Doe^Jane' in (0010,0010)")
        return real(path)

    monkeypatch.setattr(decode, "decode_file", leaky)
    for include_phi in (False, True):
        out = tmp_path / f"out_{include_phi}"
        screen(mr_bundle, [archive["root"] / "a.png", archive["root"] / "b.jpg"], out,
               ScreenOptions(decode_workers=0, include_phi=include_phi), progress=False)
        (err,) = read_csv(out / "errors.csv")
        assert err["reason"] == "corrupt" and "(ValueError)" in err["message"]
        text = (out / "errors.csv").read_text() + (out / "report.html").read_text()
        assert (PATIENT in text) == include_phi


def test_uids_can_be_pseudonymized_or_dropped(mr_bundle, tmp_path):
    from ddad_rt.screen.uids import pseudonym

    src = tmp_path / "in"
    study = pydicom.uid.generate_uid()
    imgs = synth_images(2, seed=8)
    for i, img in enumerate(imgs):
        write(src / f"s{i}.dcm", make_dicom(full_range(img), study_uid=study))
    originals = {pydicom.dcmread(p).SOPInstanceUID for p in src.glob("*.dcm")}
    key = tmp_path / "site.key"
    key.write_bytes(os.urandom(32))

    out = tmp_path / "pseudo"
    r = run_cli("screen", mr_bundle, src, "--out", out, "--no-progress", "--dicom-sc",
                "--overlays", "all", "--uids", "pseudonymize", "--uid-key-file", key)
    assert r.returncode == 0, r.stderr
    rows = read_rows(out)
    expected = pseudonym(study, key.read_bytes())
    assert {x["study_uid"] for x in rows} == {expected} and expected.startswith("2.25.")
    assert len(read_csv(out / "studies.csv")) == 1  # the study still groups
    for p in (q for q in out.rglob("*") if q.is_file()):
        data = p.read_bytes()
        assert study.encode() not in data and not any(u.encode() in data for u in originals), p
    # A resumed run must use the same key, or one study would get two pseudonyms.
    other = tmp_path / "other.key"
    other.write_bytes(os.urandom(32))
    r = run_cli("screen", mr_bundle, src, "--out", out, "--no-progress", "--dicom-sc",
                "--overlays", "all", "--uids", "pseudonymize", "--uid-key-file", other)
    assert r.returncode == 2 and "uid_key_id" in r.stderr

    out = tmp_path / "drop"
    r = run_cli("screen", mr_bundle, src, "--out", out, "--no-progress", "--uids", "drop")
    assert r.returncode == 0, r.stderr
    assert {(x["study_uid"], x["series_uid"], x["sop_uid"]) for x in read_rows(out)} == {("", "", "")}
    r = run_cli("screen", mr_bundle, src, "--out", tmp_path / "nokey", "--uids", "pseudonymize")
    assert r.returncode == 2 and "--uid-key-file" in r.stderr


def test_secondary_capture_references_the_source_study(screened, archive):
    out, _ = screened
    rows = {Path(x["path"]).name: x for x in read_rows(out)}
    src = rows["same.dcm"]
    from ddad_rt.screen.overlay import overlay_name

    sc = pydicom.dcmread(out / "dicom" / (overlay_name(src["path"], 0)[:-4] + ".dcm"))
    assert sc.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert sc.StudyInstanceUID == archive["study"]
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == src["sop_uid"]
    assert str(sc.PatientName) == "" and sc.PatientID == ""
    assert sc.pixel_array.shape[-1] == 3 and "NOT FOR DIAGNOSTIC USE" in sc.DerivationDescription


def test_studies_are_scored_as_their_maximum(screened, archive):
    out, _ = screened
    rows = read_rows(out)
    studies = {s["study"]: s for s in read_csv(out / "studies.csv")}
    mine = [x for x in rows if x["study_uid"] == archive["study"]]
    assert len(mine) == 4
    s = studies[archive["study"]]
    assert float(s["score"]) == max(x["score"] for x in mine)
    assert int(s["n_images"]) == 4
    png = next(x for x in rows if x["path"].endswith("a.png"))
    assert float(studies[png["path"]]["score"]) == png["score"]  # a non-DICOM file is its own study
    threshold = rows[0]["threshold"]
    for st in studies.values():
        assert (st["flag"] == "True") == (float(st["score"]) > threshold)


def test_flags_follow_the_calibrated_threshold(screened, mr_bundle):
    from ddad_rt.bundle import read_manifest

    th = read_manifest(mr_bundle)["operating_points"]["thresholds"]["0.95"]
    rows = read_rows(screened[0])
    key = rows[0]["flagged_on"]
    for x in rows:
        assert x["threshold"] == th[key] and x["operating_point"] == "specificity 0.95"
        assert x["flag"] == (x["score"] > th[key])
        assert x["overlay"] and (screened[0] / x["overlay"]).is_file()  # --overlays all


def test_uncalibrated_bundle_flags_nothing_and_says_so(bundle, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i, img in enumerate(synth_images(5, seed=9, abnormal_every=1)):
        Image.fromarray(img).save(folder / f"{i}.png")
    r = run_cli("screen", bundle, folder, "--out", tmp_path / "out", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "not calibrated" in r.stdout
    rows = read_rows(tmp_path / "out")
    assert len(rows) == 5 and not any(x["flag"] for x in rows)
    assert {x["operating_point"] for x in rows} == {"uncalibrated"}


def test_file_lists_and_missing_listed_files(mr_bundle, archive, tmp_path):
    root = archive["root"]
    (tmp_path / "list.txt").write_text(f"# a comment\n{root / 'a.png'}\n\n{root / 'gone.png'}\n")
    with open(tmp_path / "list.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["patient_ref", "path"])
        w.writerow(["x", os.path.relpath(root / "same.dcm", tmp_path)])
    out = tmp_path / "out"
    r = run_cli("screen", mr_bundle, tmp_path / "list.txt", tmp_path / "list.csv",
                root / "b.jpg", "--out", out, "--no-progress")
    assert r.returncode == 1
    assert sorted(Path(x["path"]).name for x in read_rows(out)) == ["a.png", "b.jpg", "same.dcm"]
    assert [(Path(e["path"]).name, e["reason"]) for e in read_csv(out / "errors.csv")] == [("gone.png", "missing")]


def test_other_settings_in_the_same_out_folder_are_refused(mr_bundle, archive, tmp_path):
    out = tmp_path / "out"
    assert run_cli("screen", mr_bundle, archive["root"] / "a.png", "--out", out,
                   "--no-progress").returncode == 0
    r = run_cli("screen", mr_bundle, archive["root"] / "a.png", "--out", out, "--specificity",
                "0.99", "--no-progress")
    assert r.returncode == 2 and "other settings" in r.stderr


# --- crash safety -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("big")
    for i, img in enumerate(synth_images(300, seed=11, abnormal_every=4)):
        Image.fromarray(img).save(root / f"img_{i:04d}.png")
    write(root / "zz_multi.dcm", make_dicom(np.stack([full_range(x) for x in synth_images(40, seed=12)])))
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return root


def comparable(out: Path) -> list[tuple]:
    return sorted((x["path"], x["frame"], x["score"], tuple(sorted((k, v) for k, v in x.items()
                                                                   if k.startswith("score_"))),
                   x["flag"]) for x in read_rows(out))


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux /proc)."""
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                kids = {int(c) for c in children.read_text().split()}
            except OSError:
                continue
            todo += list(kids - out)
            out |= kids
    return out


def alive(pids: set[int]) -> set[int]:
    out = set()
    for p in pids:
        try:
            state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(p)
    return out


def test_sigkill_midway_then_rerun_gives_the_uninterrupted_result(mr_bundle, big_archive, tmp_path):
    args = ["screen", mr_bundle, big_archive, "--batch-size", "4", "--no-progress",
            "--overlays", "flagged", "--decode-workers", "2"]
    ref = tmp_path / "ref"
    assert run_cli(*args, "--out", ref).returncode == 1  # broken.png
    out = tmp_path / "killed"
    journal = out / "results.jsonl"
    kills = 0
    # Kill twice: early, and in the middle of the 40-frame file (listed last).
    for ready in (lambda data: data.count(b"\n") >= 10,
                  lambda data: 5 <= data.count(b"zz_multi") < 40):
        proc = subprocess.Popen([sys.executable, "-m", "ddad_rt.cli", *map(str, args), "--out", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        workers: set[int] = set()
        while time.monotonic() < deadline and proc.poll() is None:
            workers |= descendants(proc.pid)
            if journal.is_file() and ready(journal.read_bytes()):
                proc.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.002)
        proc.wait(timeout=60)
        assert workers, "no decoder process was seen"
        # Its decoder processes do not outlive it.
        deadline = time.monotonic() + 10
        while alive(workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(workers), f"decoder processes left behind: {alive(workers)}"
    assert kills == 2, "the run finished before it could be killed"
    rows = read_rows(out)
    assert 0 < len(rows) < len(read_rows(ref))
    assert 0 < sum(x["path"].endswith("zz_multi.dcm") for x in rows) < 40
    r = run_cli(*args, "--out", out)
    assert r.returncode == 1, r.stderr
    assert "already done" in r.stdout
    assert comparable(out) == comparable(ref)
    keys = [(x["path"], x["frame"]) for x in read_rows(out)]
    assert len(keys) == len(set(keys))
    assert len(read_csv(out / "results.csv")) == len(keys)
    assert [e["path"] for e in read_csv(out / "errors.csv")] == [str(big_archive / "broken.png")]
    assert read_csv(out / "studies.csv") == read_csv(ref / "studies.csv")


def test_torn_last_rows_are_cut_and_redone(mr_bundle, big_archive, tmp_path):
    """What a kill during a write leaves: half a JSON line, half a CSV row."""
    from ddad_rt.screen import ScreenOptions, screen

    opts = ScreenOptions(batch_size=16, overlays="none", decode_workers=0, engine_threads=1)
    files = sorted(big_archive.glob("img_00[0-4]*.png"))
    ref = screen(mr_bundle, files, tmp_path / "ref", opts, progress=False)
    out = tmp_path / "torn"
    screen(mr_bundle, files[:20], out, opts, progress=False)
    with open(out / "results.jsonl", "a") as f:
        f.write('{"path": "' + str(files[30]) + '", "fra')
    with open(out / "results.csv", "a") as f:
        f.write(str(files[31]) + ",0,1,,,,")
    with open(out / "errors.csv", "a") as f:
        f.write(str(files[32]) + ",corr")
    summary = screen(mr_bundle, files, out, opts, progress=False)
    assert summary.skipped_done == 20 and summary.errors == 0
    assert comparable(out) == comparable(tmp_path / "ref") and summary.images == ref.images
    assert len(read_csv(out / "results.csv")) == len(files)


def test_a_multi_frame_file_cut_midway_resumes_with_its_missing_frames(mr_bundle, big_archive, tmp_path):
    from ddad_rt.screen import ScreenOptions, screen

    opts = ScreenOptions(batch_size=8, overlays="none", decode_workers=0, engine_threads=1)
    multi = [big_archive / "zz_multi.dcm"]
    screen(mr_bundle, multi, tmp_path / "ref", opts, progress=False)
    out = tmp_path / "cut"
    screen(mr_bundle, multi, out, opts, progress=False)
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    assert len(lines) == 40
    (out / "results.jsonl").write_text("".join(lines[:13]))  # killed after 13 of 40 frames
    summary = screen(mr_bundle, multi, out, opts, progress=False)
    assert summary.skipped_done == 0 and summary.images == 40
    assert comparable(out) == comparable(tmp_path / "ref")
    assert sorted(x["frame"] for x in read_rows(out)) == list(range(40))


def crashing_decode(path: str):
    """A decoder that dies like a segfaulting codec on files named crash*."""
    from ddad_rt.screen.decode import decode_item

    if Path(path).name.startswith("crash"):
        os._exit(11)
    return decode_item(path, (32, 32))


def test_a_decoder_crash_costs_only_its_file(big_archive):
    """Crashes while every task is in flight, and while the consumer is busy elsewhere (the
    pool breaks between submissions)."""
    from ddad_rt.screen.decode import Decoder

    files = [str(p) for p in sorted(big_archive.glob("img_00*.png"))]
    crash = str(big_archive / "crash_me.png")
    paths = files[:5] + [crash] + files[5:40] + [crash.replace("me", "again")] + files[40:60]
    for delay in (0.0, 0.02):
        with Decoder(crashing_decode, workers=1, chunk=2, ahead=2) as dec:
            items = []
            for item in dec.decode(paths):
                items.append(item)
                time.sleep(delay)  # the engine scoring
        assert [i.path for i in items] == paths
        bad = [(Path(i.path).name, i.error[0]) for i in items if i.error]
        assert bad == [("crash_me.png", "decoder_crashed"), ("crash_again.png", "decoder_crashed")]
        assert all(len(i.frames) == 1 for i in items if not i.error)


def test_malformed_dicom_attributes_cost_only_their_file(mr_bundle, tmp_path):
    """Values a scanner got wrong (a rescale slope that is not a number, a LUT without data)
    are errors of that file, and their text (it could be anything) is not quoted."""
    from pydicom import config
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    src = tmp_path / "in"
    good = full_range(synth_images(1, seed=3)[0])
    write(src / "ok.dcm", make_dicom(good))
    import warnings

    mode = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom rightly complains about these values
            for name, tag, vr, value in (("slope.dcm", 0x00281053, "DS", b"Doe^Jane"),
                                         ("window.dcm", 0x00281051, "DS", b"ab c")):
                ds = pydicom.dcmread(src / "ok.dcm")
                # Raw bytes, as a broken scanner wrote them (pydicom will not build them).
                ds[tag] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)
                if name == "window.dcm":
                    ds.WindowCenter = ["100", "200"]
                else:
                    ds.RescaleIntercept = "0"
                ds.save_as(src / name)
    finally:
        config.settings.writing_validation_mode = mode
    out = tmp_path / "out"
    r = run_cli("screen", mr_bundle, src, "--out", out, "--no-progress")
    assert r.returncode == 1, r.stderr
    assert [Path(x["path"]).name for x in read_rows(out)] == ["ok.dcm"]
    errors = {Path(e["path"]).name: e for e in read_csv(out / "errors.csv")}
    assert set(errors) == {"slope.dcm", "window.dcm"}
    assert {e["reason"] for e in errors.values()} == {"corrupt"}
    assert PATIENT not in (out / "errors.csv").read_text() + r.stderr + r.stdout


@pytest.mark.skipif(sys.platform != "linux", reason="Linux file names are bytes")
def test_non_utf8_file_names_are_screened_and_resumed(mr_bundle, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    name = os.fsdecode(b"M\xfcller.png")  # Latin-1 bytes: not UTF-8
    Image.fromarray(synth_images(1, seed=4)[0]).save(src / name)
    Image.fromarray(synth_images(1, seed=5)[0]).save(src / "plain.png")
    out = tmp_path / "out"
    r = run_cli("screen", mr_bundle, src, "--out", out, "--no-progress")
    assert r.returncode == 0, r.stderr
    r = run_cli("screen", mr_bundle, src, "--out", out, "--no-progress")
    assert r.returncode == 0 and "2 files were already done" in r.stdout, r.stdout + r.stderr
    assert len(read_rows(out)) == 2
    assert b"M\xfcller.png" in (out / "results.csv").read_bytes()


def test_symlink_loops_and_aliases_list_each_file_once(tmp_path):
    from ddad_rt.screen.inputs import list_inputs

    root = tmp_path / "archive"
    (root / "a" / "b").mkdir(parents=True)
    for p in (root / "top.png", root / "a" / "x.png", root / "a" / "b" / "y.png"):
        p.write_bytes(b"x")
    (root / "a" / "b" / "loop").symlink_to(root)  # a cycle
    (root / "alias").symlink_to(root / "a")  # the same folder twice
    got = list_inputs([root, root / "a" / "x.png"])
    assert sorted(p.name for p in got) == ["top.png", "x.png", "y.png"]


def test_retry_errors_screens_files_that_failed_before(mr_bundle, tmp_path):
    late = tmp_path / "late.png"
    listing = tmp_path / "list.txt"
    listing.write_text(f"{late}\n")
    out = tmp_path / "out"
    assert run_cli("screen", mr_bundle, listing, "--out", out, "--no-progress").returncode == 1
    Image.fromarray(synth_images(1, seed=6)[0]).save(late)  # the share came back
    r = run_cli("screen", mr_bundle, listing, "--out", out, "--no-progress")
    assert r.returncode == 1 and len(read_rows(out)) == 0  # errors count as done by default
    r = run_cli("screen", mr_bundle, listing, "--out", out, "--no-progress", "--retry-errors")
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(read_rows(out)) == 1 and read_csv(out / "errors.csv") == []


def test_a_second_run_into_the_same_folder_is_refused(mr_bundle, archive, tmp_path):
    from ddad_rt.screen import journal

    out = tmp_path / "out"
    out.mkdir()
    held = journal.lock_out(out)  # a run in progress
    try:
        r = run_cli("screen", mr_bundle, archive["root"] / "a.png", "--out", out, "--no-progress")
        assert r.returncode == 2 and "another ddad-rt screen run" in r.stderr
    finally:
        held.close()
    assert run_cli("screen", mr_bundle, archive["root"] / "a.png", "--out", out,
                   "--no-progress").returncode == 0


def test_the_folder_stays_locked_until_the_last_output_is_written(mr_bundle, archive, tmp_path,
                                                                  monkeypatch):
    """errors.csv, studies.csv, report.html and summary.json are written after the journal
    closes: a second run must not be able to start in that window."""
    from ddad_rt.screen import journal, report

    out = tmp_path / "out"
    seen = []
    real_write_report = report.write_report

    def write_report_and_try_the_lock(*args, **kwargs):
        try:
            journal.lock_out(out).close()
            seen.append("lock was free")
        except FileExistsError:
            seen.append("locked")
        return real_write_report(*args, **kwargs)

    monkeypatch.setattr(report, "write_report", write_report_and_try_the_lock)
    from ddad_rt.screen import ScreenOptions, screen

    screen(mr_bundle, [archive["root"] / "a.png"], out, ScreenOptions(decode_workers=0),
           progress=False)
    assert seen == ["locked"]
    journal.lock_out(out).close()  # released once screen() returns


def test_unreadable_files_are_written_in_batches(mr_bundle, tmp_path, monkeypatch):
    """Bad files cost no more than good ones: not an engine batch, a writer job and an
    fsync each (issue 15: 2.6 ms per bad file and rising with their count)."""
    from ddad_rt.screen import ScreenOptions, screen

    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(1500):
        (bad / f"broken_{i:04d}.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    good = tmp_path / "good"
    good.mkdir()
    for i, img in enumerate(synth_images(5, seed=3)):
        Image.fromarray(img).save(good / f"ok_{i}.png")
    syncs = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (syncs.append(fd), real_fsync(fd))[1])
    calls = []
    from ddad_rt.screen import run as run_module

    real_score = run_module.score_frames
    monkeypatch.setattr(run_module, "score_frames",
                        lambda engine, plan, frames: (calls.append(len(frames)),
                                                      real_score(engine, plan, frames))[1])
    s = screen(mr_bundle, [bad, good], tmp_path / "out", ScreenOptions(decode_workers=0),
               progress=False)
    assert s.errors == 1500 and s.images == 5
    assert calls == [5]  # one engine batch for the 5 images, none forced by an error
    assert len(syncs) < 40, len(syncs)  # was > 1,500: one per error


def test_csv_list_without_path_column_is_refused(mr_bundle, tmp_path):
    (tmp_path / "l.csv").write_text("/some/file.png\n")
    r = run_cli("screen", mr_bundle, tmp_path / "l.csv", "--out", tmp_path / "out")
    assert r.returncode == 2 and "'path' column" in r.stderr


# --- calibration --------------------------------------------------------------------------

def test_threshold_is_numpy_inverted_cdf_quantile():
    from ddad_rt.calibrate import threshold_at

    rng = np.random.default_rng(0)
    for n in (100, 101, 337):
        s = rng.normal(size=n)
        for spec in (0.9, 0.95, 0.99):
            t = threshold_at(s, spec)
            assert t == np.quantile(s, spec, method="inverted_cdf")
            assert np.mean(s > t) <= 1 - spec + 1e-12


def test_calibration_keeps_identity_and_flags_at_most_its_share(mr_bundle, calib_dir, trained):
    import ddad_rt
    from ddad_rt.bundle import read_manifest

    m = read_manifest(mr_bundle)
    assert m["identity"] == read_manifest(trained[0])["identity"]
    op = m["operating_points"]
    assert op["n_images"] == 120 and set(op["thresholds"]) == {"0.90", "0.95", "0.99"}
    engine = ddad_rt.Engine(mr_bundle, device="cpu", num_threads=1)
    from ddad_rt.preprocess import load_images

    imgs = load_images(sorted(calib_dir.glob("*.png")), engine.image_size)
    scores = engine.score(imgs).scores
    for spec, th in op["thresholds"].items():
        for k, t in th.items():
            assert np.mean(scores[k] > t) <= 1 - float(spec) + 1e-9
    # Thresholds increase with specificity.
    key = m["default_score"]
    assert op["thresholds"]["0.90"][key] <= op["thresholds"]["0.95"][key] <= op["thresholds"]["0.99"][key]


def test_calibration_refuses_training_images(mr_bundle, synth_data, tmp_path):
    from ddad_rt.calibrate import calibrate

    data = json.loads((synth_data / "data.json").read_text())
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in data["train"]["0"][:3]:
        shutil.copy(synth_data / "images" / name, folder / name)
    for i, img in enumerate(synth_images(110, seed=123)):
        Image.fromarray(img).save(folder / f"new_{i:03d}.png")
    with pytest.raises(ValueError, match="3 of the calibration images were used to train"):
        calibrate(mr_bundle, folder, progress=False, decode_workers=0, write=False)
    r = calibrate(mr_bundle, folder, progress=False, decode_workers=0, write=False,
                  drop_training_images=True)
    assert r["dropped_training_images"] == 3 and r["n_images"] == 110
    with pytest.raises(ValueError, match="at least 200"):
        calibrate(mr_bundle, folder, progress=False, decode_workers=0, write=False,
                  drop_training_images=True, min_images=200)


def test_calibration_applies_the_bundles_modality(mr_bundle, tmp_path, capsys):
    """CT slices must not set the thresholds of an MR bundle that screening refuses them
    for; --any-modality uses them, as it does in screen."""
    from ddad_rt.calibrate import calibrate
    from ddad_rt.cli import main

    folder = tmp_path / "mixed"
    folder.mkdir()
    for i, img in enumerate(synth_images(100, seed=321)):
        Image.fromarray(img).save(folder / f"mr_{i:03d}.png")
    for i, img in enumerate(synth_images(20, seed=654, abnormal_every=1)):
        (folder / f"ct_{i:02d}.dcm").write_bytes(make_dicom(full_range(img), modality="CT"))
    r = calibrate(mr_bundle, folder, progress=False, decode_workers=0, write=False)
    assert r["n_images"] == 100 and r["other_modality"] == 20 and r["unreadable"] == 0
    r_any = calibrate(mr_bundle, folder, progress=False, decode_workers=0, write=False,
                      any_modality=True)
    assert r_any["n_images"] == 120 and r_any["other_modality"] == 0
    with pytest.raises(ValueError, match="20 DICOM files of another modality"):
        calibrate(mr_bundle, folder, progress=False, decode_workers=0, write=False,
                  min_images=110)
    # The command line: the same rule and the same escape.
    bundle = tmp_path / "bundle"
    shutil.copytree(mr_bundle, bundle)
    assert main(["calibrate", str(bundle), "--data", str(folder), "--threads", "1"]) == 0
    assert "20 DICOM files of another modality left out" in capsys.readouterr().out
    assert main(["calibrate", str(bundle), "--data", str(folder), "--threads", "1",
                 "--any-modality"]) == 0
    assert "calibrated on 120 normal images" in capsys.readouterr().out


def test_screening_input_equals_the_training_loader(synth_data):
    """The screening decoder and the training loader give the same model inputs."""
    from ddad_rt.screen.decode import decode_item
    from ddad_train.config import TrainConfig
    from ddad_train.pipeline import load_training_images

    cfg = TrainConfig(data=str(synth_data), image_size=32)
    _, udm, _ = load_training_images(cfg, progress=False)
    from ddad_rt import datasets

    ts = datasets.training_set(synth_data)
    for path, expected in zip(ts.normal + ts.unlabeled, udm):
        (frame,) = decode_item(str(path), (32, 32)).frames
        np.testing.assert_array_equal(frame[1], expected)


@pytest.mark.skipif(sys.platform != "linux", reason="Linux file names are bytes")
def test_hostile_file_names_are_inert_in_the_report(mr_bundle, tmp_path):
    """A file named like markup, with quotes, or with bytes that are not UTF-8 is shown as
    text: report.html stays valid UTF-8 and holds no element the archive chose."""
    from html.parser import HTMLParser

    src = tmp_path / "in"
    src.mkdir()
    names = ['<script>alert(1).png', 'quote"s \'and\' <b>.png',
             os.fsdecode(b"M\xfcller<img src=x onerror=alert(2)>.png")]
    for name, img in zip(names, synth_images(3, seed=12, abnormal_every=1)):
        Image.fromarray(img).save(src / name)
    (src / "<iframe src=evil>.png").write_bytes(b"not an image")  # an error row too
    out = tmp_path / "out"
    r = run_cli("screen", mr_bundle, src, "--out", out, "--no-progress", "--overlays", "all",
                "--threshold", "0")
    assert r.returncode == 1, r.stderr
    raw = (out / "report.html").read_bytes()
    text = raw.decode("utf-8")  # strict: valid UTF-8

    class Tags(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags = set()

        def handle_starttag(self, tag, attrs):
            self.tags.add(tag)
            assert not any(k.startswith("on") for k, _ in attrs), attrs

    parser = Tags()
    parser.feed(text)
    assert not parser.tags & {"script", "iframe", "b"}, parser.tags
    assert "&lt;script&gt;alert(1).png" in text
    assert "M\\xfcller&lt;img src=x onerror=alert(2)&gt;.png" in text
    assert len(read_rows(out)) == 3


def test_the_drivers_memory_does_not_grow_with_the_archive(mr_bundle, tmp_path):
    """Issue 15 item 16: the input list, the done-set, the error rows and the studies live
    on disk (the run index), so the Python heap's peak while screening 20,000 listed files
    is within a few MB of screening 2,000 (before: every path, frame set and error row was
    a Python object, ~1 KB per file: ~18 MB more)."""
    import tracemalloc

    from ddad_rt.screen import ScreenOptions, screen

    peaks = {}
    for n in (2_000, 20_000):
        listing = tmp_path / f"list_{n}.txt"
        listing.write_text("".join(f"{tmp_path}/archive/{i // 1000:03d}/img_{i:06d}.png\n"
                                   for i in range(n)))
        tracemalloc.start()
        s = screen(mr_bundle, [listing], tmp_path / f"out_{n}",
                   ScreenOptions(decode_workers=1, engine_threads=1, overlays="none"),
                   progress=False)
        peaks[n] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        assert s.errors == n and s.files == n
    assert peaks[20_000] - peaks[2_000] < 8, peaks  # MB; ~18 MB for 18,000 more files before
