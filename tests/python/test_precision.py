"""Reduced precision: bf16 runs where the CPU has it natively, stays close to fp32, and
precision="auto" uses it only for bundles whose accuracy check passed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import ddad_rt
import numpy as np
import pytest
from ddad_rt.bundle import GENERATED_FIELDS, read_manifest, write_manifest


def native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


needs_bf16 = pytest.mark.skipif(not native_bf16(), reason="this CPU has no native bf16")


@pytest.fixture()
def own_bundle(bundle, tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(bundle, dst)
    return dst


def test_fp32_is_the_default_and_says_so(bundle):
    info = ddad_rt.Engine(bundle, device="cpu").info
    assert (info["precision"], info["precision_reason"]) == ("fp32", "default on the CPU")
    info = ddad_rt.Engine(bundle, device="cpu", precision="fp32").info
    assert (info["precision"], info["precision_reason"]) == ("fp32", "requested")


@needs_bf16
def test_bf16_scores_stay_close_to_fp32(bundle, rng):
    images = rng.integers(0, 256, (16, 32, 32), dtype=np.uint8)
    full = ddad_rt.Engine(bundle, device="cpu").score(images, maps=True)
    bf16 = ddad_rt.Engine(bundle, device="cpu", precision="bf16")
    assert bf16.info["precision"] == "bf16"
    low = bf16.score(images, maps=True)
    assert set(low.scores) == set(full.scores)
    for k in full.scores:
        # bf16 keeps 8 significant bits: scores agree to a few percent, not bit for bit.
        np.testing.assert_allclose(low.scores[k], full.scores[k], rtol=0.05, atol=1e-3, err_msg=k)
    assert any(not np.array_equal(low.maps[k], full.maps[k]) for k in full.maps), "ran as fp32?"


def test_bf16_without_native_support_is_refused_with_the_reason(bundle):
    if native_bf16():
        pytest.skip("this CPU has native bf16")
    with pytest.raises(ddad_rt.EngineError, match="native bf16"):
        ddad_rt.Engine(bundle, device="cpu", precision="bf16")


def test_auto_stays_fp32_without_a_passed_check(own_bundle):
    info = ddad_rt.Engine(own_bundle, device="cpu", precision="auto").info
    assert info["precision"] == "fp32"
    assert "no passed bf16 accuracy check" in info["precision_reason"] or not native_bf16()


@needs_bf16
def test_check_precision_records_its_verdict_and_auto_follows_it(own_bundle, synth_data):
    from ddad_rt.precision import check_precision

    result = check_precision(own_bundle, synth_data, "bf16", tolerance=1.0, progress=False)
    assert result["passed"] and set(result["auc"]) == set(result["auc_fp32"])
    assert result["max_auc_delta"] == max(abs(result["auc"][k] - result["auc_fp32"][k])
                                          for k in result["auc"])
    assert read_manifest(own_bundle)["precision_checks"]["bf16"]["passed"] is True
    info = ddad_rt.Engine(own_bundle, device="cpu", precision="auto").info
    assert info["precision"] == "bf16" and "check passed" in info["precision_reason"]

    failed = check_precision(own_bundle, synth_data, "bf16", tolerance=-1.0, progress=False)
    assert not failed["passed"]
    assert ddad_rt.Engine(own_bundle, device="cpu", precision="auto").info["precision"] == "fp32"


@needs_bf16
def test_a_bf16_check_counts_only_for_the_refiner_arithmetic_it_measured(own_bundle, synth_data):
    """The native bf16 refiners (Winograd, AVX512_BF16 CPUs without AMX) round differently
    from OpenVINO's (AMX CPUs): a check made with one must not turn bf16 on for the other."""
    from ddad_rt.precision import check_precision

    result = check_precision(own_bundle, synth_data, "bf16", tolerance=1.0, progress=False)
    ran = ddad_rt.Engine(own_bundle, device="cpu", precision="bf16").info["refine_impl"]
    assert result["refine_impl"] == ran
    other = "openvino" if "avx512_bf16" in ran else "native (Winograd F(4x4,3x3), avx512_bf16)"
    m = read_manifest(own_bundle)
    m = {k: v for k, v in m.items() if k not in GENERATED_FIELDS}
    m["precision_checks"]["bf16"]["refine_impl"] = other
    write_manifest(own_bundle, m)
    info = ddad_rt.Engine(own_bundle, device="cpu", precision="auto").info
    assert info["precision"] == "fp32"
    assert "rerun ddad-rt check-precision" in info["precision_reason"], info["precision_reason"]


def amx_bf16() -> bool:
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


@needs_bf16
def test_bf16_refiners_run_natively_where_openvino_has_no_amx(bundle):
    # Measured on AMD Zen 4 (AVX512_BF16, no AMX), R_dual, 64x64, batch 64, 1 thread: the
    # native bf16 refiner 2.3-2.9 ms per image, OpenVINO's bf16 6.3, native fp32 3.9-4.9.
    impl = ddad_rt.Engine(bundle, device="cpu", precision="bf16").info["refine_impl"]
    assert ("avx512_bf16" in impl) == (not amx_bf16()), impl


def test_malformed_precision_checks_are_rejected(own_bundle):
    m = read_manifest(own_bundle)
    m = {k: v for k, v in m.items() if k not in GENERATED_FIELDS}
    m["precision_checks"] = {"bf16": {"passed": "yes"}}
    write_manifest(own_bundle, m)
    with pytest.raises(ddad_rt.BundleError, match="precision_checks"):
        ddad_rt.Engine(own_bundle, device="cpu")
    assert json.loads((own_bundle / "manifest.json").read_text())["precision_checks"]


@needs_bf16
@pytest.mark.parametrize("fixture", ["trained", "trained_aeu"])
def test_bf16_computes_the_decoders_last_layers_in_fp32(fixture, request, rng):
    # fp32 rewrites them as sub-pixel convolutions (faster, same function); bf16 must not: the
    # rewritten layer would run in bf16 and its rounding, amplified by A_intra's standard
    # deviation of nearly equal reconstructions, moved R_intra's AUC by ~0.01 on the demo
    # bundle (check-precision's tolerance is 0.002). bf16 runs them in the engine's own fp32
    # code instead, so its reconstructions carry only the bf16 rounding of the layers before.
    # AE-U's last layer has two outputs (mean and log-variance).
    bundle = request.getfixturevalue(fixture)[0]
    fp32 = ddad_rt.Engine(bundle, device="cpu", precision="fp32")
    bf16 = ddad_rt.Engine(bundle, device="cpu", precision="bf16")
    members = str(2 * fp32.info["k"])
    assert (fp32.info["subpixel_deconvolutions"], fp32.info["native_deconvolutions"]) == (members, "0")
    assert (bf16.info["subpixel_deconvolutions"], bf16.info["native_deconvolutions"]) == ("0", members)
    images = rng.integers(0, 256, (8, 32, 32), dtype=np.uint8)
    low, full = bf16.score(images).scores, fp32.score(images).scores
    for k in ("rec", "inter"):  # the maps of the ensemble alone
        np.testing.assert_allclose(low[k], full[k], rtol=0.05, err_msg=k)
