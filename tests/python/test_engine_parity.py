"""The engine against independent computations: ONNX Runtime on the bundle's graph plus the
NumPy formulas of DESIGN.md section 2, and the PyTorch members themselves."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch


def reference(bundle, images_unit: np.ndarray):
    """Maps and scores from ONNX Runtime + NumPy; images_unit float32 [N,H,W] in [0,1]."""
    x = (images_unit.astype(np.float32) - np.float32(0.5)) / np.float32(0.5)
    sess = ort.InferenceSession(str(bundle / "ensemble.onnx"), providers=["CPUExecutionProvider"])
    udm, ndm = sess.run(["udm", "ndm"], {"images": x[:, None]})
    mu_a = udm.astype(np.float64).mean(axis=1)
    mu_b = ndm.astype(np.float64).mean(axis=1)
    maps = {
        "rec": (x - mu_b) ** 2,
        "intra": ndm.astype(np.float64).std(axis=1, ddof=1),
        "inter": np.abs(mu_a - mu_b),
    }
    scores = {k: m.mean(axis=(1, 2)) for k, m in maps.items()}
    return maps, scores, udm, ndm


def check(result, maps, scores):
    for k in ("rec", "intra", "inter"):
        np.testing.assert_allclose(result.scores[k], scores[k], rtol=1e-4, atol=0)
        np.testing.assert_allclose(result.maps[k], maps[k], rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_engine_matches_onnxruntime_and_numpy(engine, bundle, rng, dtype):
    n = 21  # > max_batch (8): the engine splits the batch
    if dtype == "uint8":
        images = rng.integers(0, 256, (n, 32, 32), dtype=np.uint8)
        unit = images.astype(np.float32) / np.float32(255)
    elif dtype == "uint16":
        images = rng.integers(0, 65536, (n, 32, 32), dtype=np.uint16)
        unit = images.astype(np.float32) / np.float32(65535)
    else:
        images = rng.random((n, 32, 32), dtype=np.float32)
        unit = images
    result = engine.score(images, maps=True)
    maps, scores, _, _ = reference(bundle, unit)
    check(result, maps, scores)


def test_engine_on_synthetic_images_matches_reference(engine, bundle, synth_data):
    from ddad_rt import datasets
    from ddad_rt.preprocess import load_images

    test = datasets.test_set(synth_data)
    images = load_images(test.paths, 32)
    result = engine.score(images[:, None], maps=True)  # (N, 1, H, W) works too
    maps, scores, _, _ = reference(bundle, images.astype(np.float32) / np.float32(255))
    check(result, maps, scores)


def test_scores_without_maps_equal_scores_with_maps(engine, rng):
    images = rng.integers(0, 256, (5, 32, 32), dtype=np.uint8)
    a = engine.score(images, maps=False)
    b = engine.score(images, maps=True)
    assert a.maps is None
    for k in a.scores:
        np.testing.assert_array_equal(a.scores[k], b.scores[k])
    assert a.score is a.scores["inter"] and len(a) == 5


def test_exported_graph_matches_pytorch_members(trained, rng):
    bundle, udm, ndm = trained
    x = rng.uniform(-1, 1, (6, 1, 32, 32)).astype(np.float32)
    sess = ort.InferenceSession(str(bundle / "ensemble.onnx"), providers=["CPUExecutionProvider"])
    out_udm, out_ndm = sess.run(["udm", "ndm"], {"images": x})
    with torch.no_grad():
        for module, out in ((udm, out_udm), (ndm, out_ndm)):
            for k, member in enumerate(module.split_members()):
                member.eval()
                ref = member(torch.from_numpy(x)).numpy()[:, 0]
                np.testing.assert_allclose(out[:, k], ref, rtol=0, atol=1e-4)


def test_engine_info_describes_the_bundle(engine, bundle):
    info = engine.info
    assert info["backend"] == "openvino" and info["device"] == "cpu"
    assert info["precision"] == "fp32"
    assert tuple(info["image_size"]) == (32, 32) and info["k"] == 3
    assert info["backbone"] == "ae"
    assert info["scores"] == ["rec", "intra", "inter"] and info["default_score"] == "inter"
    assert info["bundle_version"] == 1
    assert info["bundle_identity"] == engine.manifest["identity"]


def test_auto_device_falls_back_to_cpu_and_says_why(bundle):
    import ddad_rt

    e = ddad_rt.Engine(bundle, device="auto")
    assert e.info["device"] == "cpu"
    assert "TensorRT" in e.info["device_reason"]


def test_build_info():
    import ddad_rt

    info = ddad_rt.build_info()
    assert info["cuda_kernels"] is False and info["tensorrt"] is False
    assert info["openvino"].startswith("2026.4.1")
