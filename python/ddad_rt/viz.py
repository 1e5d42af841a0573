"""Pictures people look at instead of numbers: images beside their anomaly maps, and
histograms of normal vs abnormal scores."""

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
    """Maps values in [0, 1] to RGB uint8 (shape + (3,)): linear between the anchors.

    One channel at a time through flat anchor columns: the same float64 arithmetic as
    indexing the [anchors, 3] table with the whole index array, 2.6x faster (it ran
    for every flagged image's overlay while screening)."""
    v = np.clip(np.nan_to_num(values), 0.0, 1.0) * (len(_ANCHORS) - 1)
    lo = np.floor(v).astype(np.intp)
    hi = np.minimum(lo + 1, len(_ANCHORS) - 1)
    t = v - lo
    out = np.empty(v.shape + (3,), np.uint8)
    for c in range(3):
        anchors = np.ascontiguousarray(_ANCHORS[:, c])
        out[..., c] = np.rint(anchors.take(lo) * (1 - t) + anchors.take(hi) * t)
    return out


def score_label(key: str) -> str:
    """The paper's name of a score key: A_rec, A_intra, A_inter, R_intra, R_dual."""
    return "R_" + key[2:] if key.startswith("r_") else "A_" + key


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
    for c, name in enumerate(["image"] + [score_label(k) for k in keys]):
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


NORMAL_RGB = (40, 110, 220)
ABNORMAL_RGB = (220, 50, 40)


def histograms_figure(scores: dict[str, np.ndarray], labels: np.ndarray,
                      path: str | os.PathLike, auc: dict[str, float] | None = None,
                      bins: int = 40, title: str = "") -> None:
    """Writes a PNG with one panel per score: the distribution of normal (blue) and abnormal
    (red) images' scores, each score min-max scaled over all images as the authors' figures
    are, with the raw range on the axis.

    Args:
        scores: key -> [N] scores.
        labels: [N] 0 normal, 1 abnormal.
        path: output PNG.
        auc: key -> AUC to print in each panel's title.
        bins: histogram bins.
        title: a line above the panels.
    """
    labels = np.asarray(labels)
    keys = list(scores)
    pw, ph, margin = 330, 210, 34
    cols = min(3, len(keys))
    rows = (len(keys) + cols - 1) // cols
    head = 28 if title else 6
    canvas = Image.new("RGB", (cols * pw, head + rows * ph), (255, 255, 255))
    draw = ImageDraw.Draw(canvas, "RGBA")
    if title:
        draw.text((8, 8), title, fill=(0, 0, 0))
    for i, key in enumerate(keys):
        s = np.asarray(scores[key], dtype=np.float64)
        x0 = (i % cols) * pw + margin
        y0 = head + (i // cols) * ph + 22
        w, h = pw - margin - 12, ph - 22 - 40
        lo, hi = float(np.min(s)), float(np.max(s))
        scaled = (s - lo) / (hi - lo) if hi > lo else np.zeros_like(s)
        hists = {}
        for lab in (0, 1):
            sel = scaled[labels == lab]
            counts, _ = np.histogram(sel, bins=bins, range=(0.0, 1.0))
            hists[lab] = counts / max(len(sel), 1)
        top = max(float(max(h_.max() for h_ in hists.values())), 1e-9)
        draw.rectangle([x0, y0, x0 + w, y0 + h], outline=(0, 0, 0))
        bw = w / bins
        for lab, rgb in ((0, NORMAL_RGB), (1, ABNORMAL_RGB)):
            for b, frac in enumerate(hists[lab]):
                if frac <= 0:
                    continue
                bh = frac / top * (h - 4)
                draw.rectangle([x0 + b * bw, y0 + h - bh, x0 + (b + 1) * bw, y0 + h],
                               fill=(*rgb, 120))
        name = score_label(key) + (f"   AUC {auc[key]:.3f}" if auc and key in auc else "")
        draw.text((x0, y0 - 16), name, fill=(0, 0, 0))
        draw.text((x0, y0 + h + 4), f"{lo:.4g}", fill=(0, 0, 0))
        hi_text = f"{hi:.4g}"
        draw.text((x0 + w - 6 * len(hi_text), y0 + h + 4), hi_text, fill=(0, 0, 0))
        draw.text((x0 + w // 2 - 30, y0 + h + 4), "score", fill=(90, 90, 90))
        draw.rectangle([x0 + 4, y0 + h + 22, x0 + 14, y0 + h + 32], fill=NORMAL_RGB)
        draw.text((x0 + 18, y0 + h + 21), f"normal ({int((labels == 0).sum())})", fill=(0, 0, 0))
        draw.rectangle([x0 + 130, y0 + h + 22, x0 + 140, y0 + h + 32], fill=ABNORMAL_RGB)
        draw.text((x0 + 144, y0 + h + 21), f"abnormal ({int((labels == 1).sum())})", fill=(0, 0, 0))
    canvas.save(path)
