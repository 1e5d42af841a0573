"""The CLI end to end, and the demo's acceptance: A_inter AUC >= 0.90 where the mean
intensity alone reaches at most 0.65, and the ASR refinement (R_dual) improves on A_inter."""

from __future__ import annotations

import json

import pytest
from ddad_rt.cli import main
from PIL import Image


def test_info_and_eval(bundle, synth_data, tmp_path, capsys):
    assert main(["info", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "K=3" in out and "verified" in out
    out = tmp_path / "eval"
    assert main(["eval", str(bundle), "--data", str(synth_data), "--out", str(out)]) == 0
    r = json.loads((out / "report.json").read_text())
    assert set(r["auc"]) == {"rec", "intra", "inter", "r_intra", "r_dual"} == set(r["ap"])
    assert r["n_normal"] == 20
    with Image.open(out / "histograms.png") as im:
        assert im.size[0] >= 900 and im.size[1] >= 400  # 5 panels, 3 per row
    printed = capsys.readouterr().out
    assert "r_dual" in printed and "histograms.png" in printed


def test_refine_adds_refiners_to_a_bundle(trained_memae, synth_data, tmp_path, capsys, caplog):
    src = trained_memae[0]
    out = tmp_path / "memae_asr"
    assert main(["refine", str(src), "--data", str(synth_data), "--out", str(out),
                 "--refiners", "intra", "--refine-epochs", "1", "--threads", "1",
                 "--refine-mode", "paper"]) == 0
    capsys.readouterr()
    m = json.loads((out / "manifest.json").read_text())
    assert m["scores"] == ["rec", "intra", "inter", "r_intra"] and m["default_score"] == "r_intra"
    assert m["training"]["config"]["backbone"] == "memae"
    assert m["training"]["config"]["refine_mode"] == "paper"
    # The label-free validation is recorded, and `info` shows it beside the input map's.
    v = m["training"]["refine_validation"]
    assert set(v["refiners"]) == {"intra"} and set(v["maps"]) == {"inter", "intra"}
    assert v["images"] == 64 and 0 < v["anomalous_images"] < 64
    assert main(["info", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 epochs (paper)" in printed and "validation  64 training images" in printed
    assert f"R_intra {v['refiners']['intra']['pixel_auc']:.3f}" in printed
    # A refiner that looks collapsed (likely after one epoch on 64 images) is said so at the
    # end of training, and by `info`.
    collapsed = v["refiners"]["intra"]["collapsed"]
    assert ("R_intra looks collapsed" in caplog.text) == collapsed
    assert ("LOOKS COLLAPSED" in printed) == collapsed
    assert len(m["training"]["losses"]["refine_intra"]) == 1 and "ndm" in m["training"]["losses"]
    # The ensemble is the source's, byte for byte.
    assert (out / "ensemble.onnx").read_bytes() == (src / "ensemble.onnx").read_bytes()
    assert not (tmp_path / "memae_asr.ckpt").exists()


def test_cli_errors_exit_2_without_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the default --out (eval_out) would go
    assert main(["eval", str(tmp_path / "missing"), "--data", str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "eval_out").exists()  # a failed command leaves no empty folder


@pytest.mark.slow
def test_demo_separates_synthetic_lesions(tmp_path, capsys, monkeypatch):
    # As the README runs it: a relative --out, from a working directory of its own.
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "demo"
    assert main(["demo", "--out", "demo"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["auc"]) == {"rec", "intra", "inter", "r_intra", "r_dual"} == set(results["ap"])
    assert results["auc"]["inter"] >= 0.90, results["auc"]
    assert results["auc"]["r_dual"] > results["auc"]["inter"], results["auc"]
    assert results["baseline_mean_intensity"]["auc"] <= 0.65, results["baseline_mean_intensity"]
    assert (out / "maps.png").stat().st_size > 10_000
    assert (out / "histograms.png").stat().st_size > 5_000
    assert (out / "bundle" / "manifest.json").is_file()
    # The default refinement (weight averaging) and its label-free validation: R_dual finds
    # fresh synthetic anomalies better than A_inter alone, and no warning was needed for it.
    training = json.loads((out / "bundle" / "manifest.json").read_text())["training"]
    assert training["config"]["refine_mode"] == "swa"
    assert not training["refine_validation"]["refiners"]["dual"]["collapsed"], training
    assert "inter" in capsys.readouterr().out
    # The deployment half: calibrated at 0.95 specificity, the test split screened.
    sc = results["screen"]
    assert sc["images"] == 400 and sc["errors"] == 0 and sc["operating_point"] == "specificity 0.95"
    with open(out / "screen" / "results.jsonl") as f:
        rows = [json.loads(line) for line in f]
    abnormal = {str(p.resolve()) for p in (out / "data" / "images").glob("test_abnormal_*.png")}
    flagged = [r["flag"] for r in rows if r["path"] in abnormal]
    normal = [r["flag"] for r in rows if r["path"] not in abnormal]
    assert len(flagged) == len(normal) == 200
    # A useful detector: most lesions flagged, about 5% of normal images.
    assert sum(flagged) >= 0.5 * len(flagged) and sum(normal) <= 0.12 * len(normal)
    assert (out / "screen" / "report.html").is_file()


def test_train_and_eval_on_real_ultrasound(tmp_path, capsys):
    """`ddad-rt train` then `ddad-rt eval` on the small real BUSI set (integration, not accuracy)."""
    from conftest import shared_dataset

    data = shared_dataset("busi")
    bundle = tmp_path / "busi_bundle"
    assert main(["train", "--data", str(data), "--out", str(bundle), "--epochs", "1",
                 "--k", "2", "--image-size", "32", "--batch-size", "16", "--seed", "5",
                 "--refine-epochs", "1"]) == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["k"] == 2 and manifest["image_size"] == [32, 32]
    assert manifest["training"]["data"]["normal"] == 53
    assert manifest["training"]["data"]["unlabeled"] == 75
    assert manifest["scores"] == ["rec", "intra", "inter", "r_intra", "r_dual"]
    report = tmp_path / "busi_eval"
    assert main(["eval", str(bundle), "--data", str(data), "--out", str(report)]) == 0
    r = json.loads((report / "report.json").read_text())
    assert r["n_normal"] == 50 and r["n_abnormal"] == 50
    assert all(0.0 <= v <= 1.0 for v in r["auc"].values())
