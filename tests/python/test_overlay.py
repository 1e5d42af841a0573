"""Overlays show the same pixels as the plain float64 formula they were written from: the
per-channel code that makes them fast must not change a pixel."""

from __future__ import annotations

import io

import numpy as np
import pytest
from ddad_rt import viz
from ddad_rt.screen.overlay import ALPHA_FLOOR, PANEL, overlay_png, overlay_rgb
from PIL import Image


def plain_colormap(values: np.ndarray) -> np.ndarray:
    """The colour map as first written: the [anchors, 3] table indexed by the whole array."""
    anchors = viz._ANCHORS
    v = np.clip(np.nan_to_num(values), 0.0, 1.0) * (len(anchors) - 1)
    lo = np.floor(v).astype(int)
    hi = np.minimum(lo + 1, len(anchors) - 1)
    t = (v - lo)[..., None]
    return np.rint(anchors[lo] * (1 - t) + anchors[hi] * t).astype(np.uint8)


def plain_overlay(image: np.ndarray, amap: np.ndarray, scale) -> np.ndarray:
    """overlay_rgb as first written: three-channel float64 arrays throughout."""
    amap = np.asarray(amap, np.float64)
    lo, hi = (float(scale[0]), float(scale[1])) if scale else (float(amap.min()), float(amap.max()))
    norm = np.clip((amap - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    gray = Image.fromarray(image).resize((PANEL, PANEL), Image.BILINEAR)
    norm_big = np.asarray(Image.fromarray(norm.astype(np.float32), mode="F")
                          .resize((PANEL, PANEL), Image.BILINEAR), np.float64).clip(0, 1)
    base = np.repeat(np.asarray(gray, np.float64)[..., None], 3, axis=2)
    heat = plain_colormap(norm_big).astype(np.float64)
    alpha = (np.clip((norm_big - ALPHA_FLOOR) / (1 - ALPHA_FLOOR), 0, 1) * 0.75)[..., None]
    blended = np.rint(base * (1 - alpha) + heat * alpha).astype(np.uint8)
    return np.concatenate([base.astype(np.uint8), blended], axis=1)


def test_colormap_equals_the_plain_formula_including_nan_and_out_of_range():
    values = np.random.default_rng(0).random((97, 61)) * 1.4 - 0.2
    values[0, :3] = (np.nan, np.inf, -np.inf)
    got = viz.colormap(values)
    assert got.dtype == np.uint8 and got.shape == (97, 61, 3)
    np.testing.assert_array_equal(got, plain_colormap(values))


@pytest.mark.parametrize("scale", [(0.2, 0.8), None, (0.5, 0.5)])
def test_overlay_pixels_equal_the_plain_formula(scale):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (64, 48), dtype=np.uint8)
    yy, xx = np.mgrid[:64, :48]
    amap = (np.exp(-((yy - 30) ** 2 + (xx - 20) ** 2) / 60) + 0.1 * rng.random((64, 48))).astype(np.float32)
    got = overlay_rgb(image, amap, scale)
    np.testing.assert_array_equal(got, plain_overlay(image, amap, scale))
    # The PNG holds those pixels, above a caption strip.
    png = np.asarray(Image.open(io.BytesIO(overlay_png(image, amap, scale, "r_dual 1.5"))))
    np.testing.assert_array_equal(png[:PANEL], got)
    assert png.shape == (PANEL + 18, 2 * PANEL, 3)
