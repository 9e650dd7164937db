"""``pose``: shows what the face tracker sees (head axes, landmarks, crop square) on the live video."""

from __future__ import annotations

from engine.api import RGBImage, Style, StyleContext, StyleInfo
from engine.faces.draw import draw_faces
from engine.faces.types import Face


class PoseOverlay(Style):
    info = StyleInfo(
        name="pose",
        description="Face tracking overlay: head axes, landmarks and the aligned-crop square (no model).",
        kind="face",
        needs_faces=True,
        default_intensity=1.0,
    )

    def apply(self, frame: RGBImage, ctx: StyleContext) -> RGBImage:
        faces = [f for f in (ctx.faces or ()) if isinstance(f, Face)]
        if ctx.intensity <= 0.0 or not faces:
            return frame
        return draw_faces(frame, faces)
