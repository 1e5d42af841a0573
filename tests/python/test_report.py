"""report.html of a screening run on the shared brain MRI test images, opened in headless
Chromium: no console errors, the expected table rows, every image loaded."""

from __future__ import annotations

import shutil

import pytest
from conftest import require, shared_dataset

TOP_N = 30


def chromium_driver():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    require(bool(chromium and driver),
            "needs Debian's chromium and chromium-driver (.ci/run installs them)")
    from selenium import webdriver  # the test extra: a hard dependency of the tests
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    opts.binary_location = chromium
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


@pytest.fixture(scope="module")
def brain_run(brain_bundle, tmp_path_factory):
    from ddad_rt import datasets
    from ddad_rt.calibrate import calibrate
    from ddad_rt.screen import ScreenOptions, screen

    data = shared_dataset("brain_tumor")
    tmp = tmp_path_factory.mktemp("brain_report")
    bundle = tmp / "bundle"
    shutil.copytree(brain_bundle, bundle)
    # test/0 holds exact copies of some training images: calibration must notice them.
    with pytest.raises(ValueError, match="were used to train"):
        calibrate(bundle, data, progress=False, write=False)
    op = calibrate(bundle, data, progress=False, drop_training_images=True)
    test = datasets.test_set(data)
    listing = tmp / "test_images.txt"
    listing.write_text("".join(f"{p}\n" for p in test.paths))
    summary = screen(bundle, [listing], tmp / "out", ScreenOptions(top_n=TOP_N), progress=False)
    return summary, len(test), op, tmp / "out"


def test_brain_mri_operating_point_holds_on_its_calibration_images(brain_run):
    """On real images: every test image screened, and at specificity 0.95 at most 5% of the
    normal test images calibration used (those the model was not trained on) are flagged."""
    import json
    import os

    from ddad_rt import datasets
    from ddad_rt.bundle import image_hash, read_training_hashes
    from ddad_rt.preprocess import load_image

    summary, n, op, out = brain_run
    assert summary.images == n and summary.errors == 0
    assert op["dropped_training_images"] > 0
    with open(out / "results.jsonl") as f:
        rows = {r["path"]: r for r in map(json.loads, f)}
    test = datasets.test_set(shared_dataset("brain_tumor"))
    trained_on = read_training_hashes(out.parent / "bundle")
    calib = [rows[os.path.abspath(p)] for p, y in zip(test.paths, test.labels)
             if y == 0 and image_hash(load_image(p, 32)) not in trained_on]
    assert len(calib) == op["n_images"]
    assert sum(r["flag"] for r in calib) <= 0.05 * len(calib)


def test_report_loads_in_headless_chromium(brain_run):
    _, n, _, out = brain_run
    driver = chromium_driver()
    try:
        driver.get((out / "report.html").as_uri())
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        rows = driver.execute_script("return document.querySelectorAll('#top tbody tr').length")
        assert rows == TOP_N
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        assert len(images) == TOP_N
        assert all(done and w > 0 and h > 0 for done, w, h in images), images
        text = driver.find_element("tag name", "body").text
        assert "Not for diagnostic use" in text and f"{n}" in text
        assert driver.execute_script("return document.querySelectorAll('svg rect').length") > 5
    finally:
        driver.quit()
