"""The TensorRT backend against the CPU backend on the same bundles and images (marker
``gpu``: these run wherever device="cuda" works and are skipped, with the reasons, elsewhere).

Tolerances (issue 5): maps within 1e-4 (fp32, TF32 off) and 1e-2 (fp16) absolute; test-split
AUC within 0.001 (fp32) and 0.005 (fp16).
"""

from __future__ import annotations

import threading

import ddad_rt
import numpy as np
import pytest
from ddad_rt.evaluate import evaluate

pytestmark = pytest.mark.gpu

MAP_TOL = {"fp32": 1e-4, "fp16": 1e-2}
AUC_TOL = {"fp32": 0.001, "fp16": 0.005}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("trt_cache")


def _compare(cpu: ddad_rt.ScoreResult, gpu: ddad_rt.ScoreResult, tol: float) -> None:
    assert set(gpu.scores) == set(cpu.scores)
    for k in cpu.scores:
        np.testing.assert_allclose(gpu.scores[k], cpu.scores[k], atol=tol, rtol=0, err_msg=k)
        np.testing.assert_allclose(gpu.maps[k], cpu.maps[k], atol=tol, rtol=0, err_msg=k)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("fixture", ["trained", "trained_aeu"])
def test_tensorrt_maps_and_scores_match_the_cpu(fixture, precision, request, cache_dir, rng):
    bundle = request.getfixturevalue(fixture)[0]
    cpu = ddad_rt.Engine(bundle, device="cpu", precision="fp32", max_batch=8)
    gpu = ddad_rt.Engine(bundle, device="cuda", precision=precision, max_batch=8,
                         cache_dir=cache_dir)
    assert gpu.info["backend"] == "tensorrt" and gpu.info["device"] == "cuda"
    assert gpu.info["precision"] == precision
    # uint8 and float inputs (uint16 is refused in Python; the kernels' uint16 path is
    # checked by tests/cuda/kernel_check.cu); 13 images = one chunk of 8 and one of 5.
    u8 = rng.integers(0, 256, (13, 32, 32), dtype=np.uint8)
    for images in (u8, u8.astype(np.float32) / 255):
        _compare(cpu.score(images, maps=True), gpu.score(images, maps=True), MAP_TOL[precision])


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_auc_matches_the_cpu_on_a_test_split(bundle, synth_data, precision, cache_dir):
    cpu = evaluate(bundle, synth_data, device="cpu", progress=False)
    engine = ddad_rt.Engine(bundle, device="cuda", precision=precision, cache_dir=cache_dir)
    gpu = evaluate(bundle, synth_data, engine=engine, progress=False)
    assert gpu["n_normal"] > 10 and gpu["n_abnormal"] > 10
    for k, auc in cpu["auc"].items():
        assert abs(gpu["auc"][k] - auc) <= AUC_TOL[precision], (k, gpu["auc"][k], auc)


def test_graph_replays_are_identical_and_batch_sizes_agree(bundle, cache_dir, rng):
    gpu = ddad_rt.Engine(bundle, device="cuda", precision="fp32", max_batch=8, cache_dir=cache_dir)
    images = rng.integers(0, 256, (20, 32, 32), dtype=np.uint8)
    first = gpu.score(images, maps=True)   # eager run, then capture
    second = gpu.score(images, maps=True)  # CUDA graph replay
    for k in first.scores:
        np.testing.assert_array_equal(second.scores[k], first.scores[k])
        np.testing.assert_array_equal(second.maps[k], first.maps[k])
    one_by_one = [gpu.score(images[i:i + 1]).scores for i in range(len(images))]
    for k in first.scores:
        np.testing.assert_allclose(np.concatenate([s[k] for s in one_by_one]), first.scores[k],
                                   atol=1e-5, rtol=0)
    # Scores without maps are the scores with maps.
    plain = gpu.score(images)
    for k in first.scores:
        np.testing.assert_array_equal(plain.scores[k], first.scores[k])


def test_concurrent_calls_equal_serial_calls(bundle, cache_dir, rng):
    gpu = ddad_rt.Engine(bundle, device="cuda", precision="fp32", max_batch=8, cache_dir=cache_dir)
    batches = [rng.integers(0, 256, (n, 32, 32), dtype=np.uint8) for n in (1, 5, 8, 11, 3, 8)]
    serial = [gpu.score(b).scores for b in batches]
    results: list = [None] * len(batches)

    def work(i):
        results[i] = gpu.score(batches[i]).scores

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, serial):
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])


def test_engine_cache_is_reused_and_bad_files_are_rebuilt(bundle, tmp_path, rng):
    cache = tmp_path / "cache"
    first = ddad_rt.Engine(bundle, device="cuda", precision="fp16", max_batch=4, cache_dir=cache)
    assert "built (absent)" in first.info["engine_cache"]
    plans = sorted(cache.glob("*.plan"))
    assert len(plans) == 3  # ensemble, refine_dual, refine_intra
    assert list(cache.glob("timing-*.cache"))
    images = rng.integers(0, 256, (4, 32, 32), dtype=np.uint8)
    want = first.score(images).scores

    again = ddad_rt.Engine(bundle, device="cuda", precision="fp16", max_batch=4, cache_dir=cache)
    assert again.info["engine_cache"].count("loaded from") == 3
    for k, v in again.score(images).scores.items():
        np.testing.assert_array_equal(v, want[k])

    # A corrupt plan is rebuilt, not handed to TensorRT.
    data = bytearray(plans[0].read_bytes())
    data[-100] ^= 0xFF
    plans[0].write_bytes(bytes(data))
    fixed = ddad_rt.Engine(bundle, device="cuda", precision="fp16", max_batch=4, cache_dir=cache)
    assert "corrupt" in fixed.info["engine_cache"]
    for k, v in fixed.score(images).scores.items():
        np.testing.assert_allclose(v, want[k], atol=MAP_TOL["fp16"], rtol=0)

    # Another max_batch or precision is another engine.
    other = ddad_rt.Engine(bundle, device="cuda", precision="fp16", max_batch=8, cache_dir=cache)
    assert other.info["engine_cache"].count("built (absent)") == 3
    assert len(list(cache.glob("*.plan"))) == 6


def test_auto_picks_the_gpu_and_says_so(bundle, cache_dir):
    e = ddad_rt.Engine(bundle, device="auto", cache_dir=cache_dir)
    assert e.info["device"] == "cuda"
    assert e.info["device_reason"].startswith("auto: ")
    # No fp16 check recorded: fp32, and the reason says how to record one.
    assert e.info["precision"] == "fp32" and "check-precision" in e.info["precision_reason"]
    assert ddad_rt.cuda_status()["gpu"] in e.info["device_reason"]


def test_fp16_is_the_default_after_a_passed_gpu_check(bundle, synth_data, cache_dir, tmp_path):
    import shutil

    from ddad_rt.precision import check_precision

    own = tmp_path / "bundle"
    shutil.copytree(bundle, own)
    r = check_precision(own, synth_data, "fp16", device="cuda", tolerance=1.0, progress=False)
    assert r["passed"] and r["device"] == "cuda"
    e = ddad_rt.Engine(own, device="auto", cache_dir=cache_dir)
    assert e.info["precision"] == "fp16" and "passed on a GPU" in e.info["precision_reason"]


def test_bf16_is_refused_on_the_gpu(bundle, cache_dir):
    with pytest.raises(ddad_rt.EngineError, match="CPU precision"):
        ddad_rt.Engine(bundle, device="cuda", precision="bf16", cache_dir=cache_dir)
