"""Where the engine's time goes: its own per-stage times (``Engine.stage_times``) on the
default bundle, each beside the stage's limit on this machine - its FLOPs at the measured
peak of the arithmetic it uses (fp32 GEMM, or bf16 GEMM for bf16 networks), or, for the
memory-bound kernels, the bytes it must move at the measured memory bandwidth. A stage near
its limit has little left to give; one far from it is where the next person should look."""

from __future__ import annotations

from pathlib import Path


def stage_bytes(k: int, refiners: int, hw: int) -> dict[str, float]:
    """Bytes per image each memory-bound stage moves at the minimum: input reads uint8 and
    writes fp32; discrepancy reads x and the 2K reconstructions and writes the three maps the
    refiners read (A_inter, A_intra for R_dual, A_intra for R_intra); refine_softmax reads two
    logits per pixel per refiner."""
    return {
        "input": hw * (1 + 4),
        "discrepancy": hw * 4 * (1 + 2 * k + 3),
        "refine_softmax": hw * 4 * 2 * refiners,
    }


def weight_bytes(graph: str | Path) -> int:
    """Bytes of the graph's weights (initializers) as stored: what one image must read."""
    import math

    import onnx

    model = onnx.load(str(graph))
    return sum(math.prod(i.dims) * 4 for i in model.graph.initializer)


def stage_limits(bundle: str | Path, peaks: dict, precision: str, refine_impl: str,
                 batch: int = 64) -> dict[str, dict]:
    """For each stage of the default bundle's pipeline: its limit in seconds per image and
    what the limit is made of. For one image at a time (``batch`` 1) a network must also
    read all its weights per image: its limit is the larger of its FLOPs at the peak and its
    weights' bytes at the matrix-vector read rate (fp32 weights; half for bf16) - not the
    copy bandwidth, which one core's reads alone do not reach."""
    from ddad_rt.bundle import read_manifest

    from ddad_train.bench.flops import graph_flops, winograd_flops

    bundle = Path(bundle)
    manifest = read_manifest(bundle)  # k and the image size; no engine to compile for them
    k, (h, w) = int(manifest["k"]), manifest["image_size"]
    refiners = [r for r in ("dual", "intra") if (bundle / f"refine_{r}.onnx").exists()]
    bf16 = precision == "bf16" and peaks.get("bf16_gflops")
    peak = (peaks["bf16_gflops"] if bf16 else peaks["gflops"]) * 1e9
    arithmetic = "bf16 GEMM" if bf16 else "fp32 GEMM"
    bandwidth = peaks["bandwidth_gbs"] * 1e9
    limits = {"ensemble": {"seconds": graph_flops(bundle / "ensemble.onnx")["total"] / peak,
                           "of": f"FLOPs at the {arithmetic} peak"}}
    if batch == 1:
        read = weight_bytes(bundle / "ensemble.onnx") * (0.5 if bf16 else 1.0) / (peaks["read_gbs"] * 1e9)
        if read > limits["ensemble"]["seconds"]:
            limits["ensemble"] = {"seconds": read, "of": "its weights' bytes at the matrix-vector read rate"}
    for r in refiners:
        graph = bundle / f"refine_{r}.onnx"
        # The native refiners run Winograd in fp32 and, on CPUs without AMX, in bf16 too.
        winograd = "Winograd" in refine_impl
        flops = winograd_flops(graph) if winograd else graph_flops(graph)["total"]
        limits[f"refine_{r}"] = {"seconds": flops / peak,
                                 "of": ("Winograd-domain FLOPs" if winograd else "FLOPs") +
                                       f" at the {arithmetic} peak"}
    for stage, nbytes in stage_bytes(k, len(refiners), h * w).items():
        limits[stage] = {"seconds": nbytes / bandwidth, "of": "bytes at the memory bandwidth"}
    return limits


#: The pipeline's stages in the order they run.
STAGE_ORDER = ("input", "ensemble", "discrepancy", "refine_dual", "refine_intra", "refine_softmax")


def stage_rows(profile: dict, limits: dict) -> list[dict]:
    """One row per stage: ms per image scored, the limit, and time / limit."""
    per_image = profile["seconds_per_image"]
    rows = []
    for stage in STAGE_ORDER:
        if stage not in per_image:
            continue
        seconds = per_image[stage]  # per image scored (the worker divides by those)
        limit = limits.get(stage, {})
        rows.append({"stage": stage, "ms": 1e3 * seconds,
                     "limit_ms": 1e3 * limit["seconds"] if limit else None,
                     "of": limit.get("of", ""),
                     "x_limit": seconds / limit["seconds"] if limit else None})
    return rows


def stages_markdown(sections: list[dict]) -> str:
    """Markdown tables: per thread count and precision, each stage beside its limit."""
    lines = ["## Where the time goes (engine stages, default bundle, all scores)", "",
             ("Each stage's wall time per image (Engine.stage_times) beside its limit on this "
              "machine. time / limit near 1: little left to give; far above 1: the next place to "
              "look. Below 1 means the yardstick is not the true peak of that arithmetic "
              "(e.g. OpenVINO's AMX convolutions outrun its own bf16 GEMM)."), ""]
    for sec in sections:
        p = sec["profile"]
        lines += [(f"### {sec['threads']} thread(s), {p['engine_precision']}, batch {p['batch']} "
                  f"(refiners: {p['refine_impl']}); peaks: fp32 GEMM {sec['peaks']['gflops']:.0f} "
                  f"GFLOP/s, bf16 GEMM {sec['peaks'].get('bf16_gflops', 0):.0f} GFLOP/s, memory "
                  f"{sec['peaks']['bandwidth_gbs']:.1f} GB/s (copy, read + write), weight reads "
                  f"{sec['peaks'].get('read_gbs', 0):.1f} GB/s (matrix-vector)"), "",
                  "| stage | ms per image | limit ms | time / limit | limit is |", "|---|---|---|---|---|"]
        for r in sec["rows"]:
            lim = "" if r["limit_ms"] is None else f"{r['limit_ms']:.3f}"
            ratio = "" if r["x_limit"] is None else f"{r['x_limit']:.2f}"
            lines.append(f"| {r['stage']} | {r['ms']:.3f} | {lim} | {ratio} | {r['of']} |")
        total = sum(r["ms"] for r in sec["rows"])
        lines += [(f"| **sum** | {total:.3f} | | | wall time per image: "
                  f"{1e3 * p['wall_seconds_per_image']:.3f} ms |"), ""]
    return "\n".join(lines)
