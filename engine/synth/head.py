"""Geometry of the parametric head: a fixed list of quadric primitives plus decal parameters.

Every head uses the same primitive *slots* (absent parts are disabled, not removed), so a
batch is a set of dense tensors and an edit changes values, never shapes: pixels a change
does not reach evaluate through exactly the same arithmetic, which is what makes edit
pairs bit-identical outside the edited region.

A primitive is the quadric ``(x - c)^T Q (x - c) = 1`` (an ellipsoid; an infinite elliptic
cylinder when one axis has zero weight), kept where every clip plane ``n . x >= h`` holds.
The head sits in the EG3D world frame (y up, face towards +z), sized like an FFHQ-aligned
face: eyes near y = 0.03, x = +-0.07, mouth near y = -0.13, chin near y = -0.24, crown near
y = 0.26, face surface near z = 0.16-0.22 (the camera pivot is (0, 0, 0.2)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import torch

from engine.synth.params import HeadParams, SemanticClass, skin_rgb

C = SemanticClass


class Slot(IntEnum):
    CRANIUM = 0
    JAW = 1
    CHIN = 2
    CHEEK_L = 3
    CHEEK_R = 4
    NOSE_BRIDGE = 5
    NOSE_TIP = 6
    NOSE_WING_L = 7
    NOSE_WING_R = 8
    EYE_L = 9
    EYE_R = 10
    EAR_L = 11
    EAR_R = 12
    NECK = 13
    TORSO = 14
    HAIR_CAP = 15
    HAIR_LONG = 16
    HAIR_BUN = 17
    BEARD_CHIN = 18
    GLASSES_BRIDGE = 19
    TEMPLE_L = 20
    TEMPLE_R = 21
    LENS_L = 22  # lenses last: the renderer treats them as a see-through overlay layer
    LENS_R = 23


NUM_SLOTS = len(Slot)
LENS_SLOTS = (Slot.LENS_L, Slot.LENS_R)
NUM_OPAQUE = int(Slot.LENS_L)
MAX_CLIPS = 2

SLOT_CLASS: tuple[SemanticClass, ...] = (
    C.SKIN, C.SKIN, C.SKIN, C.SKIN, C.SKIN,
    C.NOSE, C.NOSE, C.NOSE, C.NOSE,
    C.EYES, C.EYES, C.EARS, C.EARS, C.NECK, C.CLOTHES,
    C.HAIR, C.HAIR, C.HAIR, C.BEARD,
    C.EYEGLASSES, C.EYEGLASSES, C.EYEGLASSES, C.EYEGLASSES, C.EYEGLASSES,
)
assert len(SLOT_CLASS) == NUM_SLOTS

# Per-head decal scalars, in this order, packed into Scene.decal (N, len(DECAL_KEYS)).
DECAL_KEYS = (
    "eye_x", "eye_y", "eye_z", "eye_r", "eye_open", "gaze_x", "gaze_y", "gaze_z",
    "brow_y", "brow_thick", "mouth_y", "mouth_w", "smile", "mouth_open", "lip_thick",
    "beard", "hair_style", "hairline_y", "glasses", "frame_rect", "neck_v", "neck_r",
    "light_x", "light_y", "light_z", "ambient", "background", "nose_tip_y", "part_x",
)
DK = {k: i for i, k in enumerate(DECAL_KEYS)}
# Per-head colours, packed into Scene.colors (N, len(COLOR_KEYS), 3).
COLOR_KEYS = ("skin", "lip", "brow", "iris", "hair", "beard", "frame", "clothes", "bg1", "bg2", "light")
CK = {k: i for i, k in enumerate(COLOR_KEYS)}

HAIR_STYLE_CODE = {"bald": 0, "buzz": 1, "short": 2, "fringe": 3, "long": 4, "bun": 5}
BEARD_CODE = {"none": 0, "stubble": 1, "full": 2}
GLASSES_CODE = {"none": 0, "clear": 1, "sunglasses": 2}
BACKGROUND_CODE = {"flat": 0, "gradient": 1, "texture": 2}


@dataclass
class Scene:
    """A batch of heads as dense tensors (N heads, P = NUM_SLOTS primitives).

    center (N,P,3); quad (N,P,3,3) symmetric Q; clip_n (N,P,MAX_CLIPS,3), clip_h (N,P,MAX_CLIPS);
    enabled (N,P) bool; color (N,P,3) base albedo; decal (N,D); colors (N,K,3).
    """

    center: torch.Tensor
    quad: torch.Tensor
    clip_n: torch.Tensor
    clip_h: torch.Tensor
    enabled: torch.Tensor
    color: torch.Tensor
    decal: torch.Tensor
    colors: torch.Tensor

    def to(self, device: torch.device | str) -> Scene:
        return Scene(**{k: getattr(self, k).to(device) for k in self.__dataclass_fields__})


def _rot_x(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)


def _rot_y(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


def _rot_z(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)


class _Builder:
    def __init__(self) -> None:
        self.center = np.zeros((NUM_SLOTS, 3))
        self.quad = np.tile(np.eye(3) * 1e4, (NUM_SLOTS, 1, 1))  # tiny default (unused when disabled)
        self.clip_n = np.zeros((NUM_SLOTS, MAX_CLIPS, 3))
        self.clip_h = np.full((NUM_SLOTS, MAX_CLIPS), -1.0)  # 0 >= -1: an always-true plane
        self.enabled = np.zeros(NUM_SLOTS, dtype=bool)
        self.color = np.zeros((NUM_SLOTS, 3))

    def put(
        self,
        slot: Slot,
        center: tuple[float, float, float],
        radii: tuple[float, float, float],
        rgb: tuple[float, float, float],
        rot: np.ndarray | None = None,
        clips: tuple[tuple[tuple[float, float, float], float], ...] = (),
        enabled: bool = True,
    ) -> None:
        r = np.eye(3) if rot is None else rot
        inv2 = np.array([0.0 if not math.isfinite(x) else 1.0 / (x * x) for x in radii])
        self.center[slot] = center
        self.quad[slot] = r @ np.diag(inv2) @ r.T
        for i, (n, h) in enumerate(clips):
            nn = np.asarray(n, dtype=np.float64)
            self.clip_n[slot, i] = nn / np.linalg.norm(nn)
            self.clip_h[slot, i] = h
        self.enabled[slot] = enabled
        self.color[slot] = rgb


def _skull_z(w: float, h: float, d: float, x: float, y: float) -> float:
    """Front z of the cranium ellipsoid (centre (0, 0.055, -0.015), radii w, h, d) at (x, y)."""
    v = 1.0 - (x / w) ** 2 - ((y - 0.055) / h) ** 2
    return -0.015 + d * math.sqrt(max(v, 0.0))


def _front_z(b: _Builder, slot: Slot, x: float, y: float) -> float:
    """Largest z where the line (x, y, z) meets primitive ``slot`` (-inf if it misses)."""
    c, q = b.center[slot], b.quad[slot]
    o = np.array([x, y, 0.0]) - c
    a, hb, cc = q[2, 2], float(q[2] @ o), float(o @ q @ o) - 1.0
    disc = hb * hb - a * cc
    return -math.inf if disc < 0 or a <= 0 else float((-hb + math.sqrt(disc)) / a)


def head_arrays(p: HeadParams) -> tuple[_Builder, np.ndarray, np.ndarray]:
    """Primitives, decal scalars and colours of one head (numpy, float64)."""
    s = p.shape
    b = _Builder()
    skin = skin_rgb(p.skin_tone)
    w, hgt, dep = 0.152 * s.head_width, 0.205 * s.head_height, 0.19 * s.head_depth
    # Skull and face masses. Face parts ride on the skull's front surface: dz is how far a
    # wider/deeper skull moves that surface, so eyes and nose are never swallowed by it.
    b.put(Slot.CRANIUM, (0.0, 0.055, -0.015), (w, hgt, dep), skin)
    dz = _skull_z(w, hgt, dep, 0.066, 0.03) - _skull_z(0.152, 0.205, 0.19, 0.066, 0.03)
    jw = 0.118 * s.jaw_width
    b.put(Slot.JAW, (0.0, -0.085, 0.015 + dz), (jw, 0.15, 0.15), skin, rot=_rot_x(-8))
    cr = 0.042 * s.chin
    b.put(Slot.CHIN, (0.0, -0.19, 0.088 + dz), (cr * 1.2, cr * 1.05, cr * 1.2), skin)
    ck = s.cheeks
    for slot, sx in ((Slot.CHEEK_L, 1.0), (Slot.CHEEK_R, -1.0)):
        b.put(slot, (sx * 0.064, -0.04, 0.058 + dz), (0.056 * ck, 0.05, 0.07 * ck), skin)
    # Nose: a bridge tilted so its lower end stands out, a tip, two wings.
    nl, nw, nd = s.nose_length, s.nose_width, s.nose_depth
    tip_y = 0.005 - 0.07 * nl
    b.put(Slot.NOSE_BRIDGE, (0.0, -0.01 - 0.005 * nl, 0.158 + dz), (0.019 * nw, 0.064 * nl, 0.032 * nd), skin,
          rot=_rot_x(-14))
    b.put(Slot.NOSE_TIP, (0.0, tip_y, 0.185 + dz + 0.01 * nd), (0.018 * nw, 0.018, 0.019 * nd), skin)
    for slot, sx in ((Slot.NOSE_WING_L, 1.0), (Slot.NOSE_WING_R, -1.0)):
        b.put(slot, (sx * 0.018 * nw, tip_y - 0.003, 0.167 + dz + 0.005 * nd), (0.012, 0.011, 0.012), skin)
    # Eyes (eyeballs; lids, iris, pupil are decals).
    ex, ey, er = 0.066 * s.eye_spacing, 0.03, 0.025 * s.eye_size
    ez = _skull_z(w, hgt, dep, ex, ey) - er + 0.0075  # eyeball stands slightly proud of the skull
    for slot, sx in ((Slot.EYE_L, 1.0), (Slot.EYE_R, -1.0)):
        b.put(slot, (sx * ex, ey, ez), (er, er, er), (0.93, 0.92, 0.9))
    # Ears.
    es = s.ear_size
    for slot, sx in ((Slot.EAR_L, 1.0), (Slot.EAR_R, -1.0)):
        b.put(slot, (sx * (w + 0.006), 0.005, -0.03), (0.016, 0.05 * es, 0.03 * es), skin,
              rot=_rot_y(sx * 15) @ _rot_x(-10))
    # Neck: a vertical elliptic cylinder between jaw and torso.
    nr = 0.064 * s.neck_width
    b.put(Slot.NECK, (0.0, -0.3, -0.025), (nr, math.inf, nr * 1.08), skin,
          clips=(((0, -1, 0), 0.12), ((0, 1, 0), -0.7)))
    sw = 0.4 * s.shoulder_width
    b.put(Slot.TORSO, (0.0, -0.48, -0.05), (sw, 0.2, 0.17), p.scene.clothes_rgb)

    # Hair. Cap: a shell around the skull, cut by a plane tilted up towards the face.
    h = p.hair
    style = h.style
    vol = 0.014 + 0.03 * h.volume
    cap_on = style in ("short", "fringe", "long", "bun")
    front_y = {"short": 0.165, "fringe": 0.095, "long": 0.16, "bun": 0.17}.get(style, 0.2)
    back_y = -0.16 if style != "bun" else -0.1
    # Plane through (y=front_y at z=+0.2) and (y=back_y at z=-0.2): n = (0, 0.4, -(front-back)).
    n = np.array([0.0, 0.4, -(front_y - back_y)])
    n /= np.linalg.norm(n)
    hcap = float(n[1] * (front_y + back_y) / 2)
    cap_vol = vol * (0.5 if style == "bun" else 1.0)
    b.put(Slot.HAIR_CAP, (0.0, 0.055 + cap_vol * 1.3, -0.02 - cap_vol * 0.3),
          (w + cap_vol, hgt + cap_vol, dep + cap_vol * 0.9), h.rgb,
          clips=((tuple(n), hcap),), enabled=cap_on)
    ln = h.length
    long_h = 0.2 + 0.13 * ln
    b.put(Slot.HAIR_LONG, (0.0, 0.13 - long_h, -0.055), (w + 0.03 + 0.03 * h.volume, long_h, dep - 0.01),
          h.rgb, clips=(((0, 0, -1), -0.035), ((0, -1, 0), -0.14)), enabled=style == "long")
    br = 0.055 + 0.025 * h.volume
    b.put(Slot.HAIR_BUN, (0.0, 0.2, -0.16), (br, br * 0.9, br), h.rgb, enabled=style == "bun")

    # Beard volume under the chin (full beard only); the rest of the beard is a decal.
    my = -0.128
    b.put(Slot.BEARD_CHIN, (0.0, -0.19, 0.075 + dz), (0.085 * s.jaw_width, 0.075, 0.09), p.beard.rgb,
          clips=(((0, -1, 0), -(my - 0.03)),), enabled=p.beard.style == "full")

    # Glasses: lens discs (thin ellipsoids), a bridge, two temples running back to the ears.
    g = p.glasses
    on = g.kind != "none"
    # The bridge rests on whichever is further forward at its height, the brow of the skull
    # or the nose bridge; the lenses sit just in front of that and of the eyeballs.
    ly = ey - 0.002
    rest = max(_skull_z(w, hgt, dep, 0.0, ly + 0.01), _front_z(b, Slot.NOSE_BRIDGE, 0.0, ly + 0.01))
    lz = max(ez + er + 0.01, rest + 0.012)
    lrx, lry = {"round": (0.034, 0.034), "oval": (0.039, 0.028), "rectangular": (0.04, 0.034)}[g.frame_shape]
    rect = g.frame_shape == "rectangular"
    lx = ex + 0.004
    for slot, sx in ((Slot.LENS_L, 1.0), (Slot.LENS_R, -1.0)):
        clips = (((0, -1, 0), -(ly + 0.72 * lry)), ((0, 1, 0), ly - 0.72 * lry)) if rect else ()
        b.put(slot, (sx * lx, ly, lz), (lrx, lry, 0.003), g.frame_rgb, rot=_rot_y(sx * 6), clips=clips,
              enabled=on)
    b.put(Slot.GLASSES_BRIDGE, (0.0, ly + 0.01, max(rest + 0.004, lz - 0.006)), (lx - lrx + 0.004, 0.0035, 0.0035), g.frame_rgb,
          enabled=on)
    for slot, sx in ((Slot.TEMPLE_L, 1.0), (Slot.TEMPLE_R, -1.0)):
        front = np.array([sx * (lx + lrx - 0.002), ly + 0.008, lz - 0.003])
        back = np.array([sx * (w + 0.008), ly + 0.01, -0.035])
        mid, seg = (front + back) / 2, back - front
        length = float(np.linalg.norm(seg))
        yaw = math.degrees(math.atan2(seg[0], seg[2]))
        b.put(slot, tuple(mid), (0.0035, 0.0035, length / 2), g.frame_rgb, rot=_rot_y(yaw), enabled=on)

    e = p.expression
    gy, gp = math.radians(p.eyes.gaze_yaw), math.radians(p.eyes.gaze_pitch)
    az, el = math.radians(p.scene.light_azimuth), math.radians(p.scene.light_elevation)
    decal = {
        "eye_x": ex, "eye_y": ey, "eye_z": ez, "eye_r": er, "eye_open": e.eye_open,
        "gaze_x": math.sin(gy) * math.cos(gp), "gaze_y": math.sin(gp), "gaze_z": math.cos(gy) * math.cos(gp),
        "brow_y": ey + 0.036 + 0.012 * e.brow_raise, "brow_thick": 0.0085 * s.brow_thickness,
        "mouth_y": my, "mouth_w": 0.04 * s.mouth_width * (1 + 0.18 * e.smile), "smile": e.smile,
        "mouth_open": e.mouth_open, "lip_thick": s.lip_thickness,
        "beard": BEARD_CODE[p.beard.style], "hair_style": HAIR_STYLE_CODE[style], "hairline_y": 0.16,
        "glasses": GLASSES_CODE[g.kind], "frame_rect": float(rect),
        "neck_v": float(p.scene.neckline == "v"), "neck_r": nr,
        "light_x": math.sin(az) * math.cos(el), "light_y": math.sin(el), "light_z": math.cos(az) * math.cos(el),
        "ambient": p.scene.ambient, "background": BACKGROUND_CODE[p.scene.background], "nose_tip_y": tip_y,
        # Side parting for short and fringe styles, placed by the head's own hair record.
        "part_x": (0.045 if h.length > 0.5 else -0.045) if style in ("short", "fringe") else 9.0,
    }
    colors = {
        "skin": skin, "lip": p.lip_rgb, "brow": p.brow_rgb, "iris": p.eyes.iris_rgb, "hair": h.rgb,
        "beard": p.beard.rgb, "frame": g.frame_rgb, "clothes": p.scene.clothes_rgb, "bg1": p.scene.bg_rgb1,
        "bg2": p.scene.bg_rgb2, "light": p.scene.light_rgb,
    }
    return (
        b,
        np.array([decal[k] for k in DECAL_KEYS], dtype=np.float64),
        np.array([colors[k] for k in COLOR_KEYS], dtype=np.float64),
    )


def build_scene(heads: list[HeadParams], device: torch.device | str = "cpu") -> Scene:
    """Stack heads into a :class:`Scene` (float32 tensors on ``device``)."""
    if not heads:
        raise ValueError("build_scene needs at least one head")
    parts = [head_arrays(h) for h in heads]

    def st(get: object) -> torch.Tensor:
        arr = np.stack([get(x) for x in parts])  # type: ignore[operator]
        return torch.from_numpy(arr).to(device=device, dtype=torch.float32)

    return Scene(
        center=st(lambda x: x[0].center),
        quad=st(lambda x: x[0].quad),
        clip_n=st(lambda x: x[0].clip_n),
        clip_h=st(lambda x: x[0].clip_h),
        enabled=torch.from_numpy(np.stack([x[0].enabled for x in parts])).to(device),
        color=st(lambda x: x[0].color),
        decal=st(lambda x: x[1]),
        colors=st(lambda x: x[2]),
    )
