"""Every exit status of the command line means one thing: 0 done, 1 done but some files or
checks failed, 2 a usage or input error (message, no traceback), 3 a bug (traceback), 130
interrupted; and the commands not exercised elsewhere (check-precision, screen --score)."""

from __future__ import annotations

import errno
import json
import shutil

import ddad_rt
import pytest
from ddad_rt.cli import main
from PIL import Image


def test_done_is_0_and_some_files_failed_is_1(bundle, tmp_path, capsys):
    assert main(["info", str(bundle)]) == 0
    good = tmp_path / "good.png"
    Image.new("L", (40, 40), 90).save(good)
    assert main(["screen", str(bundle), str(good), "--out", str(tmp_path / "ok"),
                 "--no-progress", "--threshold", "1"]) == 0
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert main(["screen", str(bundle), str(good), str(tmp_path / "broken.png"), "--out",
                 str(tmp_path / "some"), "--no-progress", "--threshold", "1"]) == 1
    assert "1 errors" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "needle"), [
    (["info", "{tmp}/missing_bundle"], "bundle file missing"),
    (["screen", "{bundle}", "{tmp}/nothing_here.png", "--out", "{tmp}/o"], "input not found"),
    (["screen", "{bundle}", "{tmp}", "--out", "{tmp}/o2", "--score", "nope"],
     "score 'nope' is not one of"),
    (["screen", "{bundle}", "{tmp}", "--out", "{tmp}/o3", "--specificity", "0.5"],
     "not 0.50"),
    (["calibrate", "{bundle}", "--data", "{tmp}", "--threads", "100000"], "num_threads=100000"),
    (["eval", "{bundle}", "--data", "{tmp}", "--out", "{tmp}/eval"], ""),
    (["refine", "{bundle}", "--data", "{tmp}", "--out", "{tmp}/r", "--refine-mode", "ema"],
     "refine_mode must be one of swa, paper, got 'ema'"),
])
def test_usage_and_input_errors_are_2_without_traceback(calibrated, tmp_path, capsys, argv,
                                                         needle):
    argv = [a.format(tmp=tmp_path, bundle=calibrated) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and "Traceback" not in err


def test_ray_missing_is_a_usage_error(bundle, tmp_path, capsys, monkeypatch):
    """Was `raise SystemExit("error: ...")`: exit 1, which screen documents as "some files
    failed"."""
    from ddad_rt.screen import distributed

    def no_ray():
        raise ImportError("screening on Ray needs Ray: pip install 'ddad-rt[ray]'")

    monkeypatch.setattr(distributed, "import_ray", no_ray)
    assert main(["screen", str(bundle), str(tmp_path), "--out", str(tmp_path / "o"),
                 "--ray", "auto"]) == 2
    assert "pip install 'ddad-rt[ray]'" in capsys.readouterr().err


def test_argparse_usage_errors_are_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["screen", "--no-such-option"])
    assert e.value.code == 2


@pytest.mark.parametrize("error", [ValueError("an internal invariant broke"),
                                   KeyError("missing"), OSError(errno.EBADF, "Bad file descriptor")])
def test_a_bug_is_3_with_its_traceback(bundle, capsys, monkeypatch, error):
    """A plain ValueError or an OSError of ddad-rt's own making is not the user's to fix."""
    import ddad_rt.cli as cli

    def broken(_args):
        raise error

    monkeypatch.setattr(cli, "cmd_info", broken)
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["info"].set_defaults(func=broken)
    assert main(["info", str(bundle)]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "please report" in err


def test_a_full_disk_is_2_and_an_interrupt_is_130(bundle, capsys, monkeypatch):
    import ddad_rt.cli as cli

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    info = parser._subparsers._group_actions[0].choices["info"]

    def disk_full(_args):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out/results.jsonl")

    info.set_defaults(func=disk_full)
    assert main(["info"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err

    def interrupted(_args):
        raise KeyboardInterrupt

    info.set_defaults(func=interrupted)
    assert main(["info"]) == 130


def test_output_cut_short_by_its_reader_is_not_an_error(bundle, monkeypatch, capsys):
    """`ddad-rt info BUNDLE | head -3`: the reader closes the pipe early; that is exit 0 and
    no traceback, not a bug report. (A pipe whose reader is gone: every write fails.)"""
    import os
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)
    with capsys.disabled(), os.fdopen(write_end, "w", buffering=1) as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)
        assert main(["info", str(bundle)]) == 0
        monkeypatch.undo()
    assert "Traceback" not in capsys.readouterr().err


def test_input_error_is_one_class_from_cpp_and_python(bundle):
    with pytest.raises(ddad_rt.InputError):  # std::invalid_argument in the engine
        ddad_rt.Engine(bundle, device="tpu")
    with pytest.raises(ddad_rt.InputError):  # the Python side
        ddad_rt.roc_auc([0, 0], [0.1, 0.2])
    assert issubclass(ddad_rt.InputError, ValueError)


def test_check_precision_command(trained, synth_data, tmp_path, capsys):
    """Exit 0 and a recorded verdict when it passes, 1 when it fails (bf16 CPUs only: the
    others refuse bf16 with exit 2, which is checked too)."""
    bundle = tmp_path / "bundle"
    shutil.copytree(trained[0], bundle)
    argv = ["check-precision", str(bundle), "--data", str(synth_data), "--threads", "1"]
    try:
        ddad_rt.Engine(bundle, device="cpu", precision="bf16")
    except ddad_rt.EngineError:
        assert main(argv) == 2
        assert "native bf16" in capsys.readouterr().err
        return
    assert main([*argv, "--tolerance", "1.0"]) == 0
    assert "passed" in capsys.readouterr().out
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["precision_checks"]["bf16"]["passed"] is True
    assert main([*argv, "--tolerance", "-1"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_screen_flags_on_the_score_it_is_given(calibrated, tmp_path):
    import numpy as np
    from ddad_rt.synthetic import make_image

    rng = np.random.default_rng(8)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(make_image(rng, abnormal=i % 2 == 0)[0]).save(folder / f"i{i}.png")
    for key in ("inter", "rec"):
        out = tmp_path / f"out_{key}"
        assert main(["screen", str(calibrated), str(folder), "--out", str(out),
                     "--no-progress", "--score", key]) == 0
        run = json.loads((out / "run.json").read_text())
        th = json.loads((calibrated / "manifest.json").read_text())[
            "operating_points"]["thresholds"]["0.95"][key]
        assert run["flagged_on"] == key and run["threshold"] == th
        rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        assert [r["score"] for r in rows] == [r[f"score_{key}"] for r in rows]
        assert [r["flag"] for r in rows] == [r["score"] > th for r in rows]


@pytest.fixture(scope="module")
def calibrated(trained, tmp_path_factory):
    """The synthetic AE bundle calibrated on 120 fresh normal images."""
    import numpy as np
    from ddad_rt.calibrate import calibrate
    from ddad_rt.synthetic import make_image

    root = tmp_path_factory.mktemp("cli")
    bundle = root / "bundle"
    shutil.copytree(trained[0], bundle)
    calib = root / "calib"
    calib.mkdir()
    rng = np.random.default_rng(99)
    for i in range(120):
        Image.fromarray(make_image(rng, abnormal=False)[0]).save(calib / f"n{i:03d}.png")
    calibrate(bundle, calib, progress=False, decode_workers=0, num_threads=1)
    return bundle


def test_fp16_is_checked_on_a_gpu_only(trained, synth_data, capsys):
    """An fp16 check made anywhere but on a GPU would vouch for arithmetic it never ran."""
    from ddad_rt.precision import check_precision

    with pytest.raises(ddad_rt.InputError, match="--device cuda"):
        check_precision(trained[0], synth_data, "fp16", device="cpu", record=False)
    assert main(["check-precision", str(trained[0]), "--data", str(synth_data),
                 "--precision", "fp16", "--device", "cpu", "--no-record"]) == 2
    assert "fp16 runs on a GPU" in capsys.readouterr().err
