"""Predictions at a calibrated operating point, the Engine's lifetime, and what a pip install
gives an application developer (version, typing marker, SDK location)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import ddad_rt
import numpy as np
import pytest
from ddad_rt import bundle as bundle_io


@pytest.fixture(scope="module")
def calibrated(bundle, tmp_path_factory):
    """A copy of the test bundle with operating points at 0.90 and 0.95: the median and
    the 80th percentile of its scores on 40 random images (what `ddad-rt calibrate` records,
    without its 100-image minimum)."""
    dst = tmp_path_factory.mktemp("calibrated") / "bundle"
    shutil.copytree(bundle, dst)
    engine = ddad_rt.Engine(dst, device="cpu")
    images = np.random.default_rng(7).integers(0, 256, (40, 32, 32), dtype=np.uint8)
    scores = engine.score(images).scores
    manifest = bundle_io.read_manifest(dst, verify=False)
    kept = {k: v for k, v in manifest.items() if k not in bundle_io.GENERATED_FIELDS}
    kept["operating_points"] = {"thresholds": {
        "0.90": {k: float(np.quantile(v, 0.5)) for k, v in scores.items()},
        "0.95": {k: float(np.quantile(v, 0.8)) for k, v in scores.items()},
    }}
    bundle_io.write_manifest(dst, kept)
    return dst, images, scores


def test_predict_flags_scores_above_the_calibrated_threshold(calibrated):
    bundle, images, scores = calibrated
    engine = ddad_rt.Engine(bundle, device="cpu")
    p = engine.predict(images, specificity=0.95)
    key = engine.info["default_score"]
    assert p.score == key and p.specificity == 0.95 and len(p) == len(images)
    assert p.threshold == pytest.approx(np.quantile(scores[key], 0.8))
    np.testing.assert_array_equal(p.scores, scores[key])
    np.testing.assert_array_equal(p.flags, scores[key] > p.threshold)
    assert 0 < p.flags.sum() < len(images)
    p90 = engine.predict(images, specificity=0.9, score="r_intra")
    np.testing.assert_array_equal(p90.flags, scores["r_intra"] > np.quantile(scores["r_intra"], 0.5))


def test_predict_names_what_is_missing(calibrated, engine):
    bundle, images, _ = calibrated
    with pytest.raises(ddad_rt.BundleError, match="not calibrated.*ddad-rt calibrate"):
        engine.predict(images)  # the session's uncalibrated bundle
    calibrated_engine = ddad_rt.Engine(bundle, device="cpu")
    with pytest.raises(ddad_rt.InputError, match="calibrated at specificity 0.90, 0.95, not 0.99"):
        calibrated_engine.predict(images, specificity=0.99)


def test_float64_images_score_as_float32(engine, rng):
    images = rng.random((3, 32, 32))
    np.testing.assert_array_equal(engine.score(images).score,
                                  engine.score(images.astype(np.float32)).score)


def test_engine_is_a_context_manager_and_says_when_closed(bundle):
    with ddad_rt.Engine(bundle, device="cpu") as engine:
        engine.score(np.zeros((1, 32, 32), np.uint8))
    assert repr(engine) == "Engine(closed)"
    with pytest.raises(ddad_rt.EngineError, match="closed"):
        engine.score(np.zeros((1, 32, 32), np.uint8))


def test_the_install_carries_version_types_and_the_sdk():
    out = subprocess.run([sys.executable, "-m", "ddad_rt.cli", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == f"ddad-rt {ddad_rt.__version__}"
    assert (Path(ddad_rt.__file__).parent / "py.typed").is_file()
    sdk = Path(ddad_rt.cmake_prefix_path)
    assert (sdk / "include" / "ddad_rt" / "ddad_rt.h").is_file()
    assert (sdk / "lib" / "cmake" / "ddad_rt" / "ddad_rtConfig.cmake").is_file()
    assert list((sdk / "lib").glob("libddad_rt.so.*"))
    printed = subprocess.run([sys.executable, "-m", "ddad_rt.cli", "info", "--cmake-prefix-path"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert printed == str(sdk)
