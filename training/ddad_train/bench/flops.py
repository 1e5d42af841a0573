"""Nominal FLOPs of an ONNX graph: 2 x the multiply-adds of direct convolution and matrix
products (Conv, ConvTranspose, MatMul, Gemm). Elementwise work is not counted, so effective
GFLOP/s computed from these figures are comparable across implementations of one graph."""

from __future__ import annotations

import math
from pathlib import Path

import onnx
from onnx import shape_inference


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def graph_flops(path: str | Path, batch: int = 1) -> dict[str, int]:
    """FLOPs per op type (and "total") of the graph at ``path`` run on a batch of ``batch``.

    Example:
        >>> graph_flops("bundle/refine_dual.onnx")["total"]   # doctest: +SKIP
        1376256000
    """
    model = onnx.load(str(path))
    for inp in model.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = batch
    model = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    shapes: dict[str, list[int]] = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)

    def shape(name: str) -> list[int]:
        s = shapes.get(name)
        if s is None or any(d < 0 for d in s):
            msg = f"cannot count FLOPs: shape of '{name}' is unknown after shape inference"
            raise ValueError(msg)
        return s

    out: dict[str, int] = {}
    for node in model.graph.node:
        op = node.op_type
        if op == "Conv":
            w = shape(node.input[1])  # [Cout, Cin/g, kh, kw]
            y = shape(node.output[0])  # [N, Cout, Ho, Wo]
            macs = math.prod(y) * math.prod(w[1:])
        elif op == "ConvTranspose":
            x = shape(node.input[0])  # [N, Cin, H, W]
            w = shape(node.input[1])  # [Cin, Cout/g, kh, kw]
            macs = math.prod(x) * math.prod(w[1:])
        elif op in ("MatMul", "Gemm"):
            a, y = shape(node.input[0]), shape(node.output[0])
            transposed = op == "Gemm" and _attr(node, "transA", 0)
            k = a[-2] if transposed else a[-1]
            macs = math.prod(y) * k
        else:
            continue
        out[op] = out.get(op, 0) + 2 * macs
    out["total"] = sum(out.values())
    return out


def winograd_flops(path: str | Path, tile: int = 4) -> int:
    """FLOPs per image of a refinement graph run as the engine's native fp32 network does:
    the 3x3 convolutions between hidden layers (C_in = C_out > 2) in the Winograd domain,
    F(tile x tile, 3x3): (tile + 2)^2 multiply-adds per tile, input and output channel
    instead of 9 per pixel; the others direct. Transforms are not counted (elementwise)."""
    model = onnx.load(str(path))
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    dims = model.graph.input[0].type.tensor_type.shape.dim
    h, w = dims[2].dim_value, dims[3].dim_value
    tiles = math.ceil(h / tile) * math.ceil(w / tile)
    total = 0
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        cout, cin, kh, kw = weights[node.input[1]]
        if (kh, kw) == (3, 3) and cin == cout and cin > 2:
            total += 2 * tiles * (tile + 2) ** 2 * cin * cout
        else:
            total += 2 * h * w * cout * cin * kh * kw
    return total
