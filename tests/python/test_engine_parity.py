"""The engine against independent computations: ONNX Runtime on the bundle's graphs plus the
NumPy formulas of DESIGN.md section 2 (maps, AE-U normalisation, refinement softmax and
mean), and the PyTorch networks themselves."""

from __future__ import annotations

import json

import ddad_rt
import numpy as np
import onnxruntime as ort
import pytest
import torch

REFINERS = (("refine_dual", "r_dual", ("inter", "intra")), ("refine_intra", "r_intra", ("intra",)))


def ort_session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def reference(bundle, images_unit: np.ndarray):
    """Maps and scores from ONNX Runtime + NumPy; images_unit float32 [N,H,W] in [0,1]."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    x = (images_unit.astype(np.float32) - np.float32(0.5)) / np.float32(0.5)
    sess = ort_session(bundle / manifest["graphs"]["ensemble"])
    names = [o.name for o in sess.get_outputs()]
    outs = dict(zip(names, sess.run(names, {"images": x[:, None]}), strict=True))
    udm, ndm = outs["udm"].astype(np.float64), outs["ndm"].astype(np.float64)
    mu_a, mu_b = udm.mean(axis=1), ndm.mean(axis=1)
    var = ndm.var(axis=1, ddof=1)
    sigma2 = np.exp(outs["ndm_logvar"].astype(np.float64)).mean(axis=1) if "ndm_logvar" in outs else 1.0
    maps = {
        "rec": (x - mu_b) ** 2 / sigma2,
        "intra": np.sqrt(var / sigma2),
        "inter": np.abs(mu_a - mu_b) / np.sqrt(sigma2),
    }
    for role, key, inputs in REFINERS:
        if role not in manifest["graphs"]:
            continue
        net_in = np.stack([maps[k] for k in inputs], axis=1).astype(np.float32)
        logits = ort_session(bundle / manifest["graphs"][role]).run(["logits"], {"maps": net_in})[0]
        logits = logits.astype(np.float64)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        maps[key] = (e / e.sum(axis=1, keepdims=True))[:, 1]
    scores = {k: m.mean(axis=(1, 2)) for k, m in maps.items()}
    return maps, scores, outs


def random_images(rng, n: int, dtype: str, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(images as the engine takes them, the same in float32 [0, 1] for the reference)."""
    if dtype == "uint8":
        images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
        return images, images.astype(np.float32) / np.float32(255)
    images = rng.random((n, size, size), dtype=np.float32)
    return images, images


def check(result, maps, scores):
    assert set(result.scores) == set(scores) == set(result.maps)
    for k in scores:
        np.testing.assert_allclose(result.scores[k], scores[k], rtol=1e-4, atol=0, err_msg=k)
        np.testing.assert_allclose(result.maps[k], maps[k], rtol=0, atol=1e-5, err_msg=k)


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_engine_matches_onnxruntime_and_numpy(engine, bundle, rng, dtype):
    images, unit = random_images(rng, 21, dtype)  # 21 > max_batch (8): the engine splits it
    result = engine.score(images, maps=True)
    maps, scores, _ = reference(bundle, unit)
    check(result, maps, scores)


@pytest.mark.parametrize(("max_batch", "n"), [(8, 1), (8, 8), (8, 3), (1, 3), (2, 5)])
def test_every_batch_size_path_matches_the_reference(bundle, rng, max_batch, n):
    # The backend compiles static shapes for 1 image and for max_batch, and a dynamic-batch
    # version for other sizes; every path must give the same numbers.
    engine = ddad_rt.Engine(bundle, device="cpu", max_batch=max_batch)
    images = rng.integers(0, 256, (n, 32, 32), dtype=np.uint8)
    maps, scores, _ = reference(bundle, images.astype(np.float32) / np.float32(255))
    check(engine.score(images, maps=True), maps, scores)


def test_memae_without_refiners_defaults_to_inter(trained_memae, rng):
    import ddad_rt

    bundle = trained_memae[0]
    engine = ddad_rt.Engine(bundle, device="cpu")
    assert engine.info["backbone"] == "memae"
    assert engine.info["scores"] == ["rec", "intra", "inter"]
    images = rng.integers(0, 256, (5, 32, 32), dtype=np.uint8)
    maps, scores, _ = reference(bundle, images.astype(np.float32) / np.float32(255))
    result = engine.score(images, maps=True)
    check(result, maps, scores)
    assert result.score is result.scores["inter"]


def test_ae_u_engine_matches_onnxruntime_and_numpy(trained_aeu, rng):
    """AE-U: all three maps normalised by the NDM's predicted variance, then R_dual."""
    import ddad_rt

    bundle = trained_aeu[0]
    engine = ddad_rt.Engine(bundle, device="cpu", max_batch=8)
    assert engine.info["scores"] == ["rec", "intra", "inter", "r_dual"]
    assert engine.info["default_score"] == "r_dual"
    images = rng.integers(0, 256, (11, 32, 32), dtype=np.uint8)
    maps, scores, outs = reference(bundle, images.astype(np.float32) / np.float32(255))
    assert "ndm_logvar" in outs
    check(engine.score(images, maps=True), maps, scores)


def test_engine_on_synthetic_images_matches_reference(engine, bundle, synth_data):
    from ddad_rt import datasets
    from ddad_rt.preprocess import load_images

    test = datasets.test_set(synth_data)
    images = load_images(test.paths, 32)
    result = engine.score(images[:, None], maps=True)  # (N, 1, H, W) works too
    maps, scores, _ = reference(bundle, images.astype(np.float32) / np.float32(255))
    check(result, maps, scores)
    assert result.score is result.scores["r_dual"]  # the default score with both refiners


def test_scores_without_maps_equal_scores_with_maps(engine, rng):
    images = rng.integers(0, 256, (5, 32, 32), dtype=np.uint8)
    a = engine.score(images, maps=False)
    b = engine.score(images, maps=True)
    assert a.maps is None
    for k in a.scores:
        np.testing.assert_array_equal(a.scores[k], b.scores[k])
    assert a.score is a.scores["r_dual"] and len(a) == 5


@pytest.mark.parametrize("fixture", ["trained", "trained_aeu", "trained_memae"])
def test_exported_graphs_match_pytorch(fixture, request, rng):
    bundle, udm, ndm, refiners = request.getfixturevalue(fixture)
    x = rng.uniform(-1, 1, (6, 1, 32, 32)).astype(np.float32)
    sess = ort_session(bundle / "ensemble.onnx")
    names = [o.name for o in sess.get_outputs()]
    outs = dict(zip(names, sess.run(names, {"images": x}), strict=True))
    with torch.no_grad():
        for module, key in ((udm, "udm"), (ndm, "ndm")):
            for k, member in enumerate(module.split_members()):
                member.eval()
                ref = member(torch.from_numpy(x)).numpy()
                np.testing.assert_allclose(outs[key][:, k], ref[:, 0], rtol=0, atol=1e-4)
                if key == "ndm" and "ndm_logvar" in outs:
                    np.testing.assert_allclose(outs["ndm_logvar"][:, k], ref[:, 1], rtol=0, atol=1e-4)
        for name, net in refiners.items():
            maps = rng.uniform(0, 0.5, (4, net.in_channels, 32, 32)).astype(np.float32)
            logits = ort_session(bundle / f"refine_{name}.onnx").run(["logits"], {"maps": maps})[0]
            np.testing.assert_allclose(logits, net.eval()(torch.from_numpy(maps)).numpy(),
                                       rtol=0, atol=1e-4)


def test_engine_info_describes_the_bundle(engine, bundle):
    info = engine.info
    assert info["backend"] == "openvino" and info["device"] == "cpu"
    assert info["precision"] == "fp32"
    assert tuple(info["image_size"]) == (32, 32) and info["k"] == 3
    assert info["backbone"] == "ae"
    assert info["scores"] == ["rec", "intra", "inter", "r_intra", "r_dual"]
    assert info["default_score"] == "r_dual"
    assert info["bundle_version"] == 1
    assert info["bundle_identity"] == engine.manifest["identity"]


def test_ensemble_layouts_compute_the_same_function(trained, tmp_path, rng):
    # "parallel" (the default export: 2K plain branches) and "grouped" (the training form)
    # are two graphs of one function.
    from ddad_train.export import EnsembleGraph, export_onnx

    _, udm, ndm, _ = trained
    x = (rng.random((5, 1, 32, 32), dtype=np.float32) - 0.5) / 0.5
    outs = {}
    for layout in ("parallel", "grouped"):
        path = tmp_path / f"{layout}.onnx"
        export_onnx(EnsembleGraph(udm, ndm, layout), path, 32)
        outs[layout] = ort_session(path).run(["udm", "ndm"], {"images": x})
    for a, b in zip(outs["parallel"], outs["grouped"], strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_the_same_pixels_score_the_same_by_every_route(engine, rng, tmp_path):
    """A 12-bit CT slice as a file (load_image), as an array through to_model_input, or
    decoded by screening: one rule (per-image min-max to 8 bit, as training); a bare uint16
    array, which /65535 would have scored as a nearly black image, is refused with the
    function to use."""
    from ddad_rt.screen.decode import decode_item
    from PIL import Image

    ct = rng.integers(0, 4096, (48, 48)).astype(np.uint16)  # 12-bit values in 16-bit words
    path = tmp_path / "ct.png"
    Image.fromarray(ct).save(path)  # a 16-bit PNG
    size = engine.image_size
    by_file = ddad_rt.load_image(path, size)
    by_array = ddad_rt.to_model_input(ct, size)
    by_screen = decode_item(str(path), size).frames[0][1]
    np.testing.assert_array_equal(by_file, by_array)
    np.testing.assert_array_equal(by_file, by_screen)
    scores = [engine.score(x[None]).scores for x in (by_file, by_array, by_screen)]
    for k in scores[0]:
        assert scores[0][k] == scores[1][k] == scores[2][k]
    at_model_size = ct[:32, :32]
    with pytest.raises(ddad_rt.InputError, match="to_model_input"):
        engine.score(at_model_size[None])
