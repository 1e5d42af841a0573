"""Pictures people look at instead of numbers: images beside their anomaly maps."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

# Anchor colours of a perceptually ordered dark-to-bright map (like matplotlib's "inferno").
_ANCHORS = np.array([
    [0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99],
    [212, 72, 66], [245, 125, 21], [250, 193, 39], [252, 255, 164],
], dtype=np.float64)


def colormap(values: np.ndarray) -> np.ndarray:
    """Maps values in [0, 1] to RGB uint8 (shape + (3,))."""
    v = np.clip(np.nan_to_num(values), 0.0, 1.0) * (len(_ANCHORS) - 1)
    lo = np.floor(v).astype(int)
    hi = np.minimum(lo + 1, len(_ANCHORS) - 1)
    t = (v - lo)[..., None]
    return np.rint(_ANCHORS[lo] * (1 - t) + _ANCHORS[hi] * t).astype(np.uint8)


def maps_figure(images: np.ndarray, maps: dict[str, np.ndarray], row_labels: Sequence[str],
                path: str | os.PathLike, tile: int = 128, title: str = "") -> None:
    """Writes a PNG grid: one row per image - the image, then each map (shared colour scale
    per map across rows, so rows compare directly).

    Args:
        images: uint8 [N, H, W].
        maps: key -> float [N, H, W] (e.g. "rec", "intra", "inter").
        row_labels: one caption per row (e.g. "normal  inter=0.031").
        path: output PNG.
        tile: pixel size of each tile.
        title: a line above the grid.
    """
    n = len(images)
    keys = list(maps)
    cols = 1 + len(keys)
    label_w, head_h, pad = 170, 40 if title else 24, 4
    width = label_w + cols * (tile + pad)
    height = head_h + n * (tile + pad)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((6, 4), title, fill=(0, 0, 0))
    for c, name in enumerate(["image"] + [f"A_{k}" for k in keys]):
        draw.text((label_w + c * (tile + pad) + 4, head_h - 14), name, fill=(0, 0, 0))
    scales = {}
    for k in keys:
        m = np.asarray(maps[k], dtype=np.float64)
        hi = float(np.percentile(m, 99.5)) if m.size else 1.0
        scales[k] = hi if hi > 0 else 1.0
    for r in range(n):
        y = head_h + r * (tile + pad)
        draw.text((6, y + tile // 2 - 6), row_labels[r], fill=(0, 0, 0))
        img = Image.fromarray(np.asarray(images[r], np.uint8)).convert("RGB")
        canvas.paste(img.resize((tile, tile), Image.BILINEAR), (label_w, y))
        for c, k in enumerate(keys, start=1):
            rgb = colormap(np.asarray(maps[k][r], np.float64) / scales[k])
            tile_img = Image.fromarray(rgb).resize((tile, tile), Image.BILINEAR)
            canvas.paste(tile_img, (label_w + c * (tile + pad), y))
    canvas.save(path)
