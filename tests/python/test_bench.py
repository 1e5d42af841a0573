"""The benchmark harness measures what it claims: its FLOP counts agree with PyTorch's own
counter, every contender computes the same scores, and the report's ratios come from the
measurements. (Timings themselves are never asserted: see benchmarks/results/.)"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch


def test_onnx_flops_match_pytorch_flop_counter(trained):
    from ddad_train.bench.flops import graph_flops
    from ddad_train.export import EnsembleGraph
    from torch.utils.flop_counter import FlopCounterMode

    bundle, udm, ndm, nets = trained
    graph = EnsembleGraph(udm, ndm)
    size = udm.image_size
    for batch in (1, 5):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            graph(torch.zeros(batch, 1, size, size))
        assert graph_flops(bundle / "ensemble.onnx", batch)["total"] == counter.get_total_flops()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            nets["dual"].eval()(torch.zeros(batch, 2, size, size))
        assert graph_flops(bundle / "refine_dual.onnx", batch)["total"] == counter.get_total_flops()


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    from ddad_train.bench.inference import bench_images, prepare

    images, source = bench_images(None, n=8)
    assert images.shape == (8, 64, 64) and images.dtype == np.uint8 and source == "synthetic"
    return prepare(tmp_path_factory.mktemp("bench"), images)


@pytest.mark.slow
def test_contenders_compute_the_same_scores_and_the_report_uses_them(bench_dir):
    from ddad_train.bench.inference import run_rounds, run_worker
    from ddad_train.bench.report import markdown, summarize, summary_markdown

    contenders = ("reference", "onnxruntime", "openvino-fp32", "engine-fp32")
    results = run_rounds(bench_dir, [1], 1, contenders, min_seconds=0.0, latency_images=2,
                         progress=False)
    # The authors' loop on maps and r_dual; the others on those and the default bundle's paths.
    assert len(results) == 2 + 3 * 4
    flops = {"maps": 1e8, "r_dual": 1.4e9, "default-all": 2.7e9, "default-r_dual": 1.4e9}
    sgemm = {1: run_worker({"contender": "sgemm", "threads": 1})}
    assert sgemm[1]["gflops"] > 0 and sgemm[1]["blas"]
    report = summarize(results, sgemm, flops)["1"]
    all_scores = {"rec", "intra", "inter", "r_dual", "r_intra"}
    for path, keys in (("maps", {"rec", "intra", "inter"}), ("r_dual", {"rec", "intra", "inter", "r_dual"}),
                       ("default-all", all_scores), ("default-r_dual", {"r_dual"})):
        per = report["paths"][path]
        ran = contenders if path in ("maps", "r_dual") else contenders[1:]
        assert set(per) == set(ran)
        for c in ran:
            assert per[c]["max_abs_score_diff_vs_reference"] < 1e-4, (path, c)
        run = next(r for r in results if r["path"] == path and r["contender"] == "engine-fp32")
        assert set(run["scores"]) == keys
        ort = next(r for r in results if r["path"] == path and r["contender"] == "onnxruntime")
        assert set(ort["scores"]) >= keys  # the same work: every refiner the engine ran
        assert run["batch"] == 64 and len(run["scores"]["r_dual" if path == "default-r_dual" else "rec"]) == 64
        assert per["engine-fp32"]["b64_images_per_s"] == pytest.approx(
            64 / np.median(run["batch_seconds"]))
        assert per["engine-fp32"]["gflops_b64"] == pytest.approx(
            flops[path] * per["engine-fp32"]["b64_images_per_s"] / 1e9)
        assert report["path_ratios"][path]["engine-fp32 / openvino-fp32"] == pytest.approx(
            per["engine-fp32"]["b64_images_per_s"] / per["openvino-fp32"]["b64_images_per_s"])
    rd = report["paths"]["r_dual"]
    assert report["ratios"]["engine_vs_ort_b64"] == pytest.approx(
        rd["engine-fp32"]["b64_images_per_s"] / rd["onnxruntime"]["b64_images_per_s"])
    assert {g["gate"] for g in report["gates"]} >= {
        "fp32 R_dual throughput (batch 64) vs ONNX Runtime",
        "fp32 R_dual p50 latency (batch 1) vs ONNX Runtime"}
    text = markdown({"1": report}, {"flops": flops, "k": 3, "image_size": 64, "rounds": 1})
    assert "| r_dual | engine-fp32 |" in text and "| gate | ratio |" in text
    assert "| default-r_dual | openvino-fp32 |" in text
    # The summary lists every gate with the verdict its ratio implies.
    precision = {"auc_fp32": {"rec": 0.8, "r_dual": 0.9}, "auc": {"rec": 0.8005, "r_dual": 0.897},
                 "max_auc_delta": 0.003, "tolerance": 0.002, "passed": False, "bundle": "x/b"}
    summary = summary_markdown({"report": {"1": report}}, precision, None, "ddad-rt bench")
    for g in report["gates"]:
        verdict = "yes" if g["passed"] else "**no**"
        assert f"| {g['gate']} | 1 | {g['ratio']:.2f} | {g['target']} | {verdict} |" in summary
    assert "(b, worst: r_dual) | - | 0.0030 | <= 0.002 | **no** |" in summary


@pytest.mark.slow
def test_training_bench_reports_both_ways(synth_data, tmp_path):
    from ddad_train.bench_train import run_training_bench, training_markdown

    res = run_training_bench(synth_data, threads=(1,), epochs=1, k=2, work=tmp_path, n=64,
                             plain=True, bf16=True, progress=False)
    sec = res["report"]["1"]
    contenders = [r["contender"] for r in res["raw"]]
    assert contenders.count("plain") == 2 and sec["plain"]["members"] == 2  # one run per member
    assert contenders.count("ddad") == 1 and contenders.count("ddad-bf16") == 1
    assert sec["ddad"]["vs_plain"] == pytest.approx(sec["ddad"]["wall_seconds"] / sec["plain"]["wall_seconds"])
    for r in res["raw"]:  # the process wall time includes the timed loop
        assert np.isfinite(r["final_loss"]) and r["wall_seconds"] > r["seconds"] > 0
    text = training_markdown(res)
    assert "| 1 | ddad_train, K=2 batched, fp32 (one run) |" in text
    assert "| 1 | ddad_train, K=2 batched, bf16 autocast (one run) |" in text
    # without the authors' code there is no training gate to report
    from ddad_train.bench.report import summary_markdown

    assert "training a K=2" not in summary_markdown(None, None, res)
    res["report"]["1"]["ddad"]["vs_authors"] = 0.4
    assert "| training a K=2 module (fp32) vs the authors' way, wall time | 1 | 0.40 | <= 0.5 | yes |" in (
        summary_markdown(None, None, res))
    json.dumps(res)  # the report is serialisable as written to training.json


def test_worker_peak_memory_is_its_own_not_its_parents():
    """Linux carries getrusage's ru_maxrss across fork and exec; the benchmark's memory column
    must not show the (large) parent's peak for every contender."""
    import subprocess
    import sys

    ballast = np.ones(600 * 2**20 // 8)  # the parent touches 600 MB
    code = "from ddad_train.bench.worker import peak_rss_mb; print(peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True).stdout)
    assert 5 < child < 300, child
    del ballast


def test_gpu_report_gives_ratios_without_the_cpu_gates():
    # The GPU run (ddad-rt bench --device cuda) cannot run here; its report code can.
    from ddad_train.bench.report import markdown, summarize

    def run(contender, per_call, latency):
        return {"contender": contender, "path": "r_dual", "threads": 2, "device": "cuda",
                "batch": 256, "batch_seconds": [per_call] * 3, "latency_seconds": [latency] * 4,
                "peak_rss_mb": 100.0, "scores": {"r_dual": [0.5, 0.25]}}

    results = [run("reference", 0.5, 0.004), run("onnxruntime", 0.1, 0.002),
               run("engine-fp32", 0.05, 0.001), run("engine-fp16", 0.025, 0.001)]
    report = summarize(results, {}, {"r_dual": 1e9}, gates=False)["2"]
    assert report["gates"] == []
    assert report["ratios"]["engine_vs_ort_b64"] == pytest.approx(2.0)
    assert report["ratios"]["fp16_vs_ort_b64"] == pytest.approx(4.0)
    assert report["ratios"]["fp16_vs_reference_b64"] == pytest.approx(20.0)
    assert report["ratios"]["engine_vs_ort_p50"] == pytest.approx(0.5)
    assert report["paths"]["r_dual"]["engine-fp16"]["b64_images_per_s"] == pytest.approx(256 / 0.025)
    meta = {"device": "cuda", "batch": 256, "gpu": "Test GPU", "k": 3, "image_size": 64,
            "weights": "w", "images": "i", "rounds": 3, "flops": {"maps": 1e8, "r_dual": 1e9},
            "command": "ddad-rt bench --device cuda", "notes": ["ONNX Runtime left out"]}
    md = markdown({"2": report}, meta)
    assert "GPU (Test GPU)" in md and "img/s (batch 256)" in md
    assert "| fp16_vs_ort_b64 | 4.00 |" in md and "gate" not in md


def test_stage_profile_adds_up_and_stands_beside_its_limits(bench_dir):
    from ddad_train.bench.inference import run_worker
    from ddad_train.bench.stages import stage_limits, stage_rows, stages_markdown

    profile = run_worker({"contender": "stages", "path": "default-all", "threads": 1,
                          "precision": "fp32", "bench_dir": str(bench_dir), "min_seconds": 0.0})
    per = profile["seconds_per_image"]
    assert set(per) == {"input", "ensemble", "discrepancy", "refine_dual", "refine_intra", "refine_softmax"}
    # The stages are the pipeline: together they are the call, up to Python and the chunking.
    assert 0.8 * profile["wall_seconds_per_image"] < sum(per.values()) <= profile["wall_seconds_per_image"]
    peaks = {"gflops": 100.0, "bf16_gflops": 0.0, "bandwidth_gbs": 10.0, "read_gbs": 5.0}
    limits = stage_limits(bench_dir / "bundle_default", peaks, "fp32", profile["refine_impl"])
    # The ensemble's limit is its FLOPs (the graph's, as the FLOP counter test checks) at 100 GFLOP/s.
    from ddad_train.bench.flops import graph_flops

    assert limits["ensemble"]["seconds"] == pytest.approx(
        graph_flops(bench_dir / "bundle_default" / "ensemble.onnx")["total"] / 100e9)
    assert limits["discrepancy"]["seconds"] == pytest.approx(64 * 64 * 4 * (1 + 6 + 3) / 10e9)
    rows = stage_rows(profile, limits)
    assert [r["stage"] for r in rows][:3] == ["input", "ensemble", "discrepancy"]
    for r in rows:
        assert r["x_limit"] == pytest.approx(r["ms"] / r["limit_ms"])
    text = stages_markdown([{"threads": 1, "peaks": peaks, "profile": profile, "rows": rows}])
    assert "| ensemble |" in text and "FLOPs at the fp32 GEMM peak" in text
    # One image at a time, the ensemble must read all its weights per image: at the 5 GB/s
    # matrix-vector read rate that, not its FLOPs, is its limit.
    from ddad_train.bench.stages import weight_bytes

    one = stage_limits(bench_dir / "bundle_default", peaks, "fp32", profile["refine_impl"], batch=1)
    assert one["ensemble"]["seconds"] == pytest.approx(
        weight_bytes(bench_dir / "bundle_default" / "ensemble.onnx") / 5e9)
    assert "weights" in one["ensemble"]["of"]
    single = run_worker({"contender": "stages", "path": "default-all", "threads": 1, "batch": 1,
                         "precision": "fp32", "bench_dir": str(bench_dir), "min_seconds": 0.0})
    assert single["batch"] == 1 and set(single["seconds_per_image"]) == set(per)


def test_winograd_flops_count_the_transformed_middle_layer(trained):
    from ddad_train.bench.flops import graph_flops, winograd_flops

    graph = trained[0] / "refine_dual.onnx"
    size = 32  # the test bundles' image size: 8 x 8 tiles of 4 x 4
    direct = graph_flops(graph)["total"]
    middle = 2 * size * size * 128 * 128 * 9
    assert winograd_flops(graph) == direct - middle + 2 * 8 * 8 * 36 * 128 * 128
