"""The GPU path on a machine without a GPU: what the build contains, what device="cuda" says
is missing, where TensorRT is looked for, and the commands that need a GPU failing with
those reasons. (The kernels' math, batching and the engine cache are in tests/cpp; the
TensorRT backend against the CPU backend is in test_gpu.py, marked ``gpu``.)"""

from __future__ import annotations

import shutil
import subprocess
import sys

import ddad_rt
import numpy as np
import pytest
from ddad_rt import _core
from ddad_rt.gpu import pip_tensorrt_lib_dirs

needs_no_gpu = pytest.mark.skipif(ddad_rt.cuda_status()["usable"],
                                  reason="a usable GPU is here: test_gpu.py covers this machine")


def test_build_info_describes_the_gpu_parts_consistently():
    info = ddad_rt.build_info()
    status = ddad_rt.cuda_status()
    assert info["openvino"].startswith("2026.4.1")
    assert info["cuda_kernels"] is status["cuda_kernels"]
    assert info["tensorrt"] is status["tensorrt_backend"]
    if info["cuda_kernels"]:
        # SASS for Turing .. Blackwell including Jetson Orin, PTX for the newest.
        archs = info["cuda_architectures"].split()
        assert {"sm_75", "sm_80", "sm_86", "sm_87", "sm_89", "sm_90"} <= set(archs)
        assert archs[-1].startswith("compute_")
        assert info["cuda_runtime"]
    else:
        assert info["cuda_architectures"] == ""
    if info["tensorrt"]:
        assert info["cuda_kernels"], "the TensorRT backend is only built with the CUDA kernels"
        assert int(info["tensorrt_headers"].split(".")[0]) >= 10


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc here: kernels are optional")
def test_a_build_where_nvcc_exists_has_the_cuda_kernels():
    # CI builds the wheel on a machine with nvcc: the kernels must be in it.
    assert ddad_rt.build_info()["cuda_kernels"] is True


@needs_no_gpu
def test_cuda_status_names_each_missing_piece():
    s = ddad_rt.cuda_status()
    assert s["usable"] is False and s["problems"]
    text = " ".join(s["problems"])
    if not s["tensorrt_backend"]:
        assert "no TensorRT backend" in text and "DDAD_RT_WITH_TENSORRT=ON" in text
    if not s["cuda_kernels"]:
        assert "no CUDA kernels" in text
    if s["cuda_kernels"] and not s["gpu"]:
        assert "driver" in text or "GPU" in text
        assert s["cuda_runtime"].startswith("CUDA ")
    if s["tensorrt_backend"] and not s["tensorrt_library"]:
        assert "libnvinfer.so." in text and "looked in" in text


@needs_no_gpu
def test_device_cuda_raises_with_every_reason(bundle):
    problems = ddad_rt.cuda_status()["problems"]
    with pytest.raises(ddad_rt.EngineError) as e:
        ddad_rt.Engine(bundle, device="cuda")
    message = str(e.value)
    assert message.startswith("device='cuda' is unavailable: ")
    for p in problems:
        assert p in message


@needs_no_gpu
def test_device_cuda_fails_before_reading_the_bundle(tmp_path):
    # The device is the first problem a user on a CPU machine must hear about.
    with pytest.raises(ddad_rt.EngineError, match="device='cuda' is unavailable"):
        ddad_rt.Engine(tmp_path / "no_bundle_here", device="cuda")


@needs_no_gpu
def test_auto_device_falls_back_to_cpu_and_says_why(bundle, rng):
    e = ddad_rt.Engine(bundle, device="auto")
    assert e.info["device"] == "cpu" and e.info["backend"] == "openvino"
    assert e.info["device_reason"].startswith("auto: no usable GPU: ")
    for p in ddad_rt.cuda_status()["problems"]:
        assert p in e.info["device_reason"]
    # ... and it is the CPU engine: same scores as device="cpu".
    images = rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)
    cpu = ddad_rt.Engine(bundle, device="cpu").score(images).scores
    for k, v in e.score(images).scores.items():
        np.testing.assert_array_equal(v, cpu[k])


def test_tensorrt_is_looked_for_in_the_env_folder_and_pip_packages(tmp_path, monkeypatch):
    # A pip-installed TensorRT puts its libraries in the tensorrt_libs package.
    pkg = tmp_path / "site" / "tensorrt_libs"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert str(pkg) in pip_tensorrt_lib_dirs()
    monkeypatch.setenv("DDAD_RT_TENSORRT_LIB_DIR", "/opt/trt/lib:/opt/other")
    _core.set_tensorrt_library_dirs(pip_tensorrt_lib_dirs())
    try:
        dirs = _core.tensorrt_library_dirs()
        assert dirs[:2] == ["/opt/trt/lib", "/opt/other"]  # the environment comes first
        assert str(pkg) in dirs
    finally:
        ddad_rt.register_tensorrt_lib_dirs()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ddad_rt.cli", *args], capture_output=True,
                          text=True, check=False, timeout=600)


@needs_no_gpu
def test_build_engine_command_without_a_gpu_says_why(bundle):
    r = _cli("build-engine", str(bundle), "--max-batch", "16")
    assert r.returncode == 2
    assert "device='cuda' is unavailable" in r.stderr
    for p in ddad_rt.cuda_status()["problems"]:
        assert p in r.stderr


@needs_no_gpu
def test_gpu_benchmark_without_a_gpu_says_why(tmp_path):
    r = _cli("bench", "--device", "cuda", "--out", str(tmp_path / "bench"))
    assert r.returncode != 0
    assert "needs a usable NVIDIA GPU" in r.stderr
    assert "PyTorch" in r.stderr  # the reference loop needs a CUDA build of torch too
    assert not (tmp_path / "bench" / "inference.json").exists()


def test_info_command_reports_build_and_gpu():
    r = _cli("info")
    assert r.returncode == 0, r.stderr
    import json

    out = json.loads(r.stdout)
    assert out["build"]["cuda_kernels"] == ddad_rt.build_info()["cuda_kernels"]
    assert out["cuda"]["usable"] == ddad_rt.cuda_status()["usable"]
