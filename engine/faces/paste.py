"""Crop a face out of a frame and paste an edited crop back without a visible seam.

``paste`` warps the edited crop back through the crop's inverse affine and blends it in
through a feathered mask: the convex hull of the face mesh (oval, brows) grown about its
centre, blurred, and tapered to zero before the crop's border so the crop's edges never
show. Only the frame region under the crop square is touched.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt

from engine.api import RGBImage
from engine.faces.align import apply_affine, check_size, to_cv, warp_crop
from engine.faces.landmarks import mesh_indices

if TYPE_CHECKING:
    from engine.faces.types import Face

MaskArray = npt.NDArray[np.float32]

MASK_GROW = 1.12
"""Hull scaled about its centroid: reaches the hairline and jaw shadow the mesh stops short of."""
MASK_BLUR = 0.03
"""Gaussian sigma of the feather, as a fraction of the crop side."""
MASK_MARGIN = 0.04
"""Mask forced to zero within this fraction of the crop border, so the crop edge never shows."""


MASK_RES = 128
"""The mask is drawn and blurred at most at this size, then resized: it is smooth anyway."""


def feather_mask(face: Face, size: int) -> MaskArray:
    """Soft mask ``(size, size)`` in [0, 1] of the face region, in crop coordinates."""
    r = min(size, MASK_RES)
    fwd, _ = face.affines(size)
    mi = mesh_indices()
    idx = np.concatenate([mi.face_oval, mi.left_brow, mi.right_brow])
    pts = apply_affine(fwd, face.landmarks[idx]) * (r / size)
    hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2)
    c = hull.mean(0)
    hull = c + (hull - c) * MASK_GROW
    m = np.zeros((r, r), np.float32)
    # Sub-pixel polygon fill (cv2 fixed-point shift) keeps small masks smooth.
    shift = 4
    cv2.fillConvexPoly(m, np.round((hull - 0.5) * (1 << shift)).astype(np.int32), (1.0,), cv2.LINE_AA, shift)
    sigma = MASK_BLUR * r
    m = np.asarray(cv2.GaussianBlur(m, (0, 0), sigmaX=sigma, sigmaY=sigma), dtype=np.float32)
    if r != size:
        m = np.asarray(cv2.resize(m, (size, size), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
    m *= _border_taper(size)
    return np.clip(m, 0.0, 1.0, out=m)


@cache
def _border_taper(size: int) -> MaskArray:
    """1 inside, falling linearly to 0 over ``MASK_MARGIN`` at the crop's border."""
    d = np.minimum(np.arange(size), np.arange(size)[::-1]) + 0.5
    ramp = np.clip((d - MASK_MARGIN * size) / (MASK_MARGIN * size), 0.0, 1.0)
    t = np.minimum.outer(ramp, ramp).astype(np.float32)
    t.setflags(write=False)
    return t


def crop(frame: RGBImage, face: Face, size: int | None = None) -> RGBImage:
    """The aligned ``size``² crop of ``face`` (default its ``crop_size``), reflect-padded."""
    s = face.crop_size if size is None else check_size(size)
    fwd, _ = face.affines(s)
    return warp_crop(frame, fwd, s)


def match_colors(edited: RGBImage, original: RGBImage, mask: MaskArray) -> RGBImage:
    """Shift ``edited`` so its per-channel mean/std inside ``mask`` match ``original``'s."""
    w = mask.astype(np.float64)
    total = float(w.sum())
    if total < 1.0:
        return edited
    e = edited.astype(np.float64)
    o = original.astype(np.float64)
    out = np.empty_like(e)
    for ch in range(3):
        me = float((e[..., ch] * w).sum() / total)
        mo = float((o[..., ch] * w).sum() / total)
        se = float(np.sqrt(((e[..., ch] - me) ** 2 * w).sum() / total))
        so = float(np.sqrt(((o[..., ch] - mo) ** 2 * w).sum() / total))
        out[..., ch] = (e[..., ch] - me) * (so / max(se, 1e-3)) + mo
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def paste(
    frame: RGBImage,
    face: Face,
    edited: RGBImage,
    *,
    mask: MaskArray | None = None,
    color_match: bool = False,
) -> RGBImage:
    """Blend ``edited`` (a square crop of ``face``, any allowed size) back into a copy of ``frame``.

    Args:
        mask: crop-space blend weights; default ``face.feather_mask(size)``.
        color_match: first match the edited crop's colour statistics (mean/std in the mask)
            to the original crop's, for styles whose output drifts in colour.
    """
    s = edited.shape[0]
    if edited.shape != (s, s, 3) or edited.dtype != np.uint8:
        raise ValueError(f"edited crop must be (S, S, 3) uint8, got {edited.shape} {edited.dtype}")
    fwd, inv = face.affines(s)
    m = face.feather_mask(s) if mask is None else mask
    if m.shape != (s, s):
        raise ValueError(f"mask must be ({s}, {s}), got {m.shape}")
    if color_match:
        edited = match_colors(edited, crop(frame, face, s), m)
    h, w = frame.shape[:2]
    corners = apply_affine(inv, np.array([[0, 0], [s, 0], [0, s], [s, s]], dtype=np.float64))
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 1, [w, h])
    out = frame.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    # crop = fwd · (p_roi + origin): sample the crop at each ROI pixel (inverse mapping, no holes).
    a = np.c_[fwd[:, :2], fwd[:, :2] @ np.array([x0, y0], dtype=np.float64) + fwd[:, 2]]
    m_cv = to_cv(a)
    size = (int(x1 - x0), int(y1 - y0))
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(edited, m_cv, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(m, m_cv, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=(0.0,))
    # One C++ pass: (warped·α + roi·(1−α)) / 1, rounded, on uint8 (weights must not both be 0).
    alpha = np.asarray(alpha, dtype=np.float32)
    out[y0:y1, x0:x1] = cv2.blendLinear(warped, out[y0:y1, x0:x1], alpha, np.float32(1.0) - alpha)
    return out
