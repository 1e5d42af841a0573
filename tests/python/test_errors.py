"""Bad input never crashes the interpreter: it raises an exception that names the problem."""

from __future__ import annotations

import json
import shutil

import ddad_rt
import numpy as np
import pytest


@pytest.mark.parametrize(("images", "needle"), [
    (np.zeros((0, 32, 32), np.uint8), "empty batch"),
    (np.zeros((2, 64, 64), np.uint8), "does not match the model's 32x32"),
    (np.zeros((32, 32), np.uint8), "image[None]"),
    (np.zeros((2, 3, 32, 32), np.uint8), "shape (N, H, W) or (N, 1, H, W)"),
    (np.zeros((2, 32, 32), np.float16), "unsupported dtype float16"),
    (np.full((2, 32, 32), 2.0, np.float64), "outside [0, 1]"),
    (np.zeros((2, 32, 32), np.int32), "unsupported dtype int32"),
    (np.full((2, 32, 32), 1.5, np.float32), "outside [0, 1]"),
    (np.full((2, 32, 32), -0.1, np.float32), "outside [0, 1]"),
])
def test_bad_images_raise_value_error(engine, images, needle):
    with pytest.raises(ValueError, match=None) as exc:
        engine.score(images)
    assert needle in str(exc.value)


def test_nan_names_the_image(engine):
    images = np.zeros((3, 32, 32), np.float32)
    images[2, 5, 5] = np.nan
    with pytest.raises(ValueError, match=r"images\[2\] contains NaN"):
        engine.score(images)


def test_non_array_input_raises_type_error(engine):
    with pytest.raises(TypeError, match="NumPy array"):
        engine.score([[0.0]])


def test_non_contiguous_input_is_scored_like_a_contiguous_copy(engine, rng):
    big = rng.random((4, 32, 64), dtype=np.float32)
    view = big[:, :, ::2]
    np.testing.assert_array_equal(engine.score(view).scores["inter"],
                                  engine.score(np.ascontiguousarray(view)).scores["inter"])


def copy_bundle(bundle, tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(bundle, dst)
    return dst


def test_missing_bundle_dir(tmp_path):
    with pytest.raises(ddad_rt.BundleError, match="not a directory"):
        ddad_rt.Engine(tmp_path / "nope", device="cpu")


def test_missing_graph_file(bundle, tmp_path):
    b = copy_bundle(bundle, tmp_path)
    (b / "ensemble.onnx").unlink()
    with pytest.raises(ddad_rt.BundleError, match="bundle file missing"):
        ddad_rt.Engine(b, device="cpu")


def test_tampered_graph_fails_hash_check(bundle, tmp_path):
    b = copy_bundle(bundle, tmp_path)
    with open(b / "ensemble.onnx", "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(ddad_rt.BundleError, match="sha256 mismatch"):
        ddad_rt.Engine(b, device="cpu")


def test_other_format_version(bundle, tmp_path):
    b = copy_bundle(bundle, tmp_path)
    m = json.loads((b / "manifest.json").read_text())
    m["format_version"] = 99
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ddad_rt.BundleError, match="format_version 99"):
        ddad_rt.Engine(b, device="cpu")


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda m: m["scores"].remove("r_dual"), 'omits "r_dual"'),
    (lambda m: m["graphs"].pop("refine_intra"), 'lists "r_intra" but'),
    (lambda m: m["graphs"].update(refine_extra="ensemble.onnx"), 'unknown role "refine_extra"'),
    (lambda m: m["scores"].remove("intra"), 'must include "intra"'),
])
def test_scores_and_graphs_must_agree(bundle, tmp_path, edit, needle):
    """A manifest that promises a score without its graph (or hides one) is refused."""
    b = copy_bundle(bundle, tmp_path)
    m = json.loads((b / "manifest.json").read_text())
    edit(m)
    if m["default_score"] not in m["scores"]:
        m["default_score"] = "inter"
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ddad_rt.BundleError, match=needle):
        ddad_rt.Engine(b, device="cpu")


def test_refine_graph_with_wrong_output_is_refused(bundle, tmp_path):
    """A refinement graph swapped for another graph (hashes updated) names what is wrong."""
    from ddad_rt.bundle import GENERATED_FIELDS, write_manifest

    b = copy_bundle(bundle, tmp_path)
    m = json.loads((b / "manifest.json").read_text())
    (b / "refine_dual.onnx").write_bytes((b / "ensemble.onnx").read_bytes())
    write_manifest(b, {k: v for k, v in m.items() if k not in GENERATED_FIELDS})
    with pytest.raises((ddad_rt.BundleError, ddad_rt.EngineError), match="refine_dual"):
        ddad_rt.Engine(b, device="cpu")


@pytest.mark.parametrize(("kwargs", "exc", "needle"), [
    ({"device": "tpu"}, ValueError, "device must be"),
    ({"precision": "int4"}, ValueError, "precision must be"),
    ({"precision": "fp16"}, ddad_rt.EngineError, "GPU precision"),
    ({"max_batch": 0}, ValueError, "max_batch"),
    ({"num_threads": -1}, ValueError, "num_threads"),
])
def test_bad_options(bundle, kwargs, exc, needle):
    with pytest.raises(exc) as e:
        ddad_rt.Engine(bundle, **{"device": "cpu", **kwargs})
    assert needle in str(e.value)


def _edit_manifest(b, edit):
    m = json.loads((b / "manifest.json").read_text())
    edit(m)
    (b / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda m: m.update(k=4), "field 'k' says 4, but the ensemble graph"),
    (lambda m: m.update(k=2), "field 'k' says 2"),
    (lambda m: m.update(image_size=[64, 64]), "field 'image_size' says [64, 64]"),
    (lambda m: m.update(channels=3), "'channels' is 3"),
    (lambda m: m.update(backbone="ae-u"), "no output 'ndm_logvar'"),
    (lambda m: m.update(precision_checks={"int8": {"passed": True}}), 'unknown precision "int8"'),
])
def test_manifest_that_disagrees_with_its_graphs_is_refused_at_load(bundle, tmp_path, edit, needle):
    """The manifest is outside the hash (calibration writes it): an edited k, image_size or
    channels is refused when the engine is built, naming the field, not at the first score()."""
    b = copy_bundle(bundle, tmp_path)
    _edit_manifest(b, edit)
    with pytest.raises(ddad_rt.BundleError) as e:
        ddad_rt.Engine(b, device="cpu")
    assert needle in str(e.value)


def test_graph_with_external_data_is_refused(bundle, tmp_path):
    """A graph must be one hashed file: ONNX external data would be read from outside it."""
    import onnx
    from ddad_rt.bundle import GENERATED_FIELDS, write_manifest

    b = copy_bundle(bundle, tmp_path)
    model = onnx.load(b / "refine_dual.onnx")
    (b / "refine_dual.onnx").unlink()
    onnx.save_model(model, b / "refine_dual.onnx", save_as_external_data=True,
                    all_tensors_to_one_file=True, location="refine_dual.weights", size_threshold=0)
    m = json.loads((b / "manifest.json").read_text())
    write_manifest(b, {k: v for k, v in m.items() if k not in GENERATED_FIELDS})  # both hashed
    assert "refine_dual.weights" in json.loads((b / "manifest.json").read_text())["files"]
    with pytest.raises(ddad_rt.BundleError, match="ONNX external data"):
        ddad_rt.Engine(b, device="cpu")


def test_symlinked_graph_is_refused(bundle, tmp_path):
    b = copy_bundle(bundle, tmp_path)
    elsewhere = tmp_path / "elsewhere.onnx"
    (b / "ensemble.onnx").rename(elsewhere)
    (b / "ensemble.onnx").symlink_to(elsewhere)
    with pytest.raises(ddad_rt.BundleError, match="symbolic link"):
        ddad_rt.Engine(b, device="cpu")
    from ddad_rt.bundle import read_manifest
    with pytest.raises(ddad_rt.BundleError, match="symbolic link"):
        read_manifest(b)


def test_one_bundle_error_class_for_every_bundle_path(tmp_path):
    import ddad_rt.bundle

    assert ddad_rt.bundle.BundleError is ddad_rt.BundleError
    with pytest.raises(ddad_rt.BundleError, match="bundle file missing"):
        ddad_rt.bundle.read_manifest(tmp_path)


def test_import_ddad_rt_loads_no_torch():
    """The inference library must install and import without PyTorch (DESIGN.md): a fresh
    interpreter imports ddad_rt and every inference module, and torch is not among them."""
    import subprocess
    import sys

    code = ("import sys, ddad_rt, ddad_rt.cli, ddad_rt.screen, ddad_rt.calibrate, "
            "ddad_rt.precision, ddad_rt.evaluate\n"
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', "
            "'ddad_train')))\n"
            "print(','.join(bad))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "", r.stdout
