"""Faces in the frame: landmarks, head pose as an EG3D camera, aligned crop, paste-back, smoothing.

The convenient entry points for face-aware styles::

    from engine.faces import crop, paste
    c = crop(frame, face, 256)          # FFHQ-aligned crop, reflect-padded
    frame = paste(frame, face, edit(c)) # inverse warp through a feathered mask

Heavy imports (mediapipe) happen only when a detector is built.
"""

from engine.faces.align import CropQuad, crop_affine, ffhq_quad
from engine.faces.landmarks import LandmarkDetector, to_rgb
from engine.faces.paste import crop, feather_mask, match_colors, paste
from engine.faces.pose import HeadPose, estimate_pose
from engine.faces.smoothing import OneEuroFilter, OneEuroParams
from engine.faces.tracker import FaceTracker, TrackerSettings, build_face, find_faces, tracker_factory
from engine.faces.types import Face

__all__ = [
    "CropQuad",
    "Face",
    "FaceTracker",
    "HeadPose",
    "LandmarkDetector",
    "OneEuroFilter",
    "OneEuroParams",
    "TrackerSettings",
    "build_face",
    "crop",
    "crop_affine",
    "estimate_pose",
    "feather_mask",
    "ffhq_quad",
    "find_faces",
    "match_colors",
    "paste",
    "to_rgb",
    "tracker_factory",
]
