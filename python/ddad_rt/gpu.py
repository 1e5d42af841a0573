"""The GPU path's environment: whether ``device="cuda"`` can work here, and where the
TensorRT libraries are looked for.

The TensorRT backend opens ``libnvinfer`` and ``libnvonnxparser`` at run time. Besides
``$DDAD_RT_TENSORRT_LIB_DIR`` and the system library path, it looks in the ``tensorrt_libs``
folder of a pip-installed TensorRT (``pip install tensorrt-cu12``), found here without
importing it.
"""

from __future__ import annotations

import importlib.util
import os

from ddad_rt import _core

#: Python packages whose folder holds the TensorRT shared libraries when pip installed them.
TENSORRT_LIB_PACKAGES = ("tensorrt_libs", "tensorrt_cu13_libs", "tensorrt_cu12_libs")


def pip_tensorrt_lib_dirs() -> list[str]:
    """Folders of pip-installed TensorRT libraries (may be empty)."""
    dirs = []
    for name in TENSORRT_LIB_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.submodule_search_locations:
            dirs.extend(os.fspath(p) for p in spec.submodule_search_locations)
    return dirs


def register_tensorrt_lib_dirs() -> None:
    """Tells the engine where pip put TensorRT (called on import)."""
    _core.set_tensorrt_library_dirs(pip_tensorrt_lib_dirs())


def cuda_status() -> dict:
    """Whether ``device="cuda"`` works on this machine, and if not, exactly what is missing.

    Returns:
        dict with ``usable`` (bool); ``problems`` (list of sentences, each naming what is
        missing and what to do); ``cuda_kernels`` and ``tensorrt_backend`` (what this build
        has); ``gpu``, ``compute_capability``, ``driver``, ``cuda_runtime``,
        ``tensorrt_library``, ``tensorrt_version`` (what was found; empty strings if not).

    Example:
        >>> import ddad_rt
        >>> s = ddad_rt.cuda_status()
        >>> s["usable"] or len(s["problems"]) > 0
        True
    """
    return dict(_core.cuda_status())


def build_engines(bundle: str | os.PathLike, *, max_batch: int = 64, precision: str = "default",
                  cache_dir: str | os.PathLike | None = None) -> dict:
    """Builds (or validates) the TensorRT engines of ``bundle`` in the engine cache, so that
    later engines on this GPU load in seconds: edge devices run this once at install time.

    Returns:
        The engine's ``info`` (``engine_cache`` says per graph whether it was loaded or built).

    Raises:
        ddad_rt.EngineError: no usable GPU; the message lists what is missing.

    Example:
        >>> build_engines("bundle/", max_batch=16, precision="fp16")["engine_cache"]  # doctest: +SKIP
    """
    from ddad_rt.engine import Engine

    return Engine(bundle, device="cuda", precision=precision, max_batch=max_batch,
                  cache_dir=cache_dir).info
