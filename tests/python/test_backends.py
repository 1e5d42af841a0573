"""One test body for every backend this build has, against the CPU reference (ONNX Runtime
on the bundle's graphs plus the NumPy formulas of DESIGN.md section 2), as ggml tests every
backend with test-backend-ops: the CPU backend always, the GPU backend where a GPU is usable
(skipped with the reason elsewhere). Each backend runs every score selection, with and
without maps, for uint8 and float32 input, on AE (both refiners), AE-U and MemAE bundles."""

from __future__ import annotations

import ddad_rt
import numpy as np
import pytest
from test_engine_parity import random_images, reference

BACKENDS = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=pytest.mark.gpu)]
#: GPU engines may run reduced precision only when asked; fp32 here, so one tolerance.
TOLERANCE = {"cpu": (1e-4, 1e-5), "cuda": (1e-3, 1e-4)}


def selections(keys):
    """Every single score, the refined scores alone, and everything (None)."""
    return [None, *[(k,) for k in keys], tuple(k for k in keys if k.startswith("r_")) or None]


@pytest.fixture(scope="module", params=["trained", "trained_aeu", "trained_memae"])
def bundle_of_each_backbone(request):
    return request.getfixturevalue(request.param)[0]


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_every_backend_matches_the_cpu_reference(bundle_of_each_backbone, device, dtype, rng):
    bundle = bundle_of_each_backbone
    engine = ddad_rt.Engine(bundle, device=device, precision="fp32", max_batch=4)
    images, unit = random_images(rng, 6, dtype)  # two chunks: a full one and a remainder
    ref_maps, ref_scores, _ = reference(bundle, unit)
    rtol, atol = TOLERANCE[device]
    for wanted in selections(engine.info["scores"]):
        for maps in (False, True):
            r = engine.score(images, maps=maps, scores=wanted)
            expected = set(wanted or engine.info["scores"])
            assert set(r.scores) == expected, (wanted, maps)
            assert (r.maps is None) == (not maps)
            for k in expected:
                np.testing.assert_allclose(r.scores[k], ref_scores[k], rtol=rtol, atol=0,
                                           err_msg=f"{device} {k} of {wanted}")
                if maps:
                    assert set(r.maps) == expected
                    np.testing.assert_allclose(r.maps[k], ref_maps[k], rtol=0, atol=atol,
                                               err_msg=f"{device} map {k} of {wanted}")


def test_the_cpu_engine_runs_every_decoders_last_layer_in_the_fast_form(bundle_of_each_backbone):
    # The decoders' last transposed convolutions (1 or 2 output channels) are slow in
    # OpenVINO as they are; the engine rewrites them (cpu/openvino_rewrites.h). The parity
    # test above checks the numbers; this one that the rewrite still finds all 2K of them.
    engine = ddad_rt.Engine(bundle_of_each_backbone, device="cpu", precision="fp32")
    assert engine.info["subpixel_deconvolutions"] == str(2 * engine.info["k"])


def test_a_score_the_bundle_lacks_is_refused_by_name(trained_memae):
    engine = ddad_rt.Engine(trained_memae[0], device="cpu")
    images = np.zeros((1, 32, 32), np.uint8)
    with pytest.raises(ddad_rt.InputError, match="unknown score 'r_dual': this bundle has rec, intra, inter"):
        engine.score(images, scores=("r_dual",))
    with pytest.raises(ddad_rt.InputError, match="scores is empty"):
        engine.score(images, scores=())
