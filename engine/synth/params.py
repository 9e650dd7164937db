"""Attribute record of a synthetic head, its prior, edits and captions.

A head is one frozen :class:`HeadParams` (JSON round-trippable). Sampling draws every
attribute group from its own RNG stream, keyed by ``(seed, index, group)``, so changing
one group's frequencies in :class:`Prior` (or editing one field afterwards) never shifts
the others: the basis of exact edit pairs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np

RGB = tuple[float, float, float]


class SemanticClass(IntEnum):
    """Fixed semantic label table (values are what the label maps and shards store)."""

    BACKGROUND = 0
    SKIN = 1
    HAIR = 2
    EYES = 3
    BROWS = 4
    MOUTH = 5  # lips and mouth interior (teeth included)
    NOSE = 6
    EARS = 7
    EYEGLASSES = 8  # frames, temples and lenses (clear lenses are see-through but labelled here)
    BEARD = 9  # full beard and stubble
    NECK = 10  # neck and any skin the neckline shows
    CLOTHES = 11


NUM_CLASSES = len(SemanticClass)

HAIRSTYLES = ("bald", "buzz", "short", "fringe", "long", "bun")
BEARDS = ("none", "stubble", "full")
GLASSES = ("none", "clear", "sunglasses")
FRAME_SHAPES = ("round", "oval", "rectangular")
BACKGROUNDS = ("flat", "gradient", "texture")

# Named palettes (sRGB in [0, 1]); a sample jitters the base colour a little.
HAIR_COLORS: dict[str, RGB] = {
    "black": (0.06, 0.05, 0.05),
    "dark brown": (0.20, 0.12, 0.07),
    "brown": (0.38, 0.23, 0.12),
    "auburn": (0.50, 0.20, 0.10),
    "red": (0.72, 0.30, 0.12),
    "blond": (0.86, 0.70, 0.42),
    "platinum": (0.90, 0.88, 0.80),
    "grey": (0.55, 0.55, 0.55),
    "white": (0.90, 0.90, 0.88),
    "blue": (0.15, 0.30, 0.80),
    "pink": (0.92, 0.45, 0.65),
}
IRIS_COLORS: dict[str, RGB] = {
    "brown": (0.35, 0.20, 0.08),
    "dark": (0.12, 0.08, 0.05),
    "blue": (0.30, 0.50, 0.80),
    "green": (0.30, 0.55, 0.30),
    "hazel": (0.50, 0.40, 0.18),
    "grey": (0.50, 0.55, 0.58),
}
FRAME_COLORS: dict[str, RGB] = {
    "black": (0.05, 0.05, 0.05),
    "tortoise": (0.35, 0.20, 0.10),
    "gold": (0.80, 0.65, 0.30),
    "silver": (0.75, 0.75, 0.78),
    "red": (0.70, 0.10, 0.10),
    "blue": (0.15, 0.25, 0.65),
}
# Skin tone t in [0, 1], light to dark; colour interpolates these stops.
SKIN_STOPS: tuple[RGB, ...] = (
    (0.96, 0.80, 0.69),
    (0.89, 0.68, 0.55),
    (0.76, 0.55, 0.40),
    (0.58, 0.39, 0.26),
    (0.38, 0.24, 0.16),
    (0.24, 0.15, 0.10),
)


def skin_rgb(tone: float) -> RGB:
    """sRGB of skin tone ``tone`` in [0, 1] (piecewise-linear through SKIN_STOPS)."""
    x = min(max(tone, 0.0), 1.0) * (len(SKIN_STOPS) - 1)
    i = min(int(x), len(SKIN_STOPS) - 2)
    f = x - i
    a, b = SKIN_STOPS[i], SKIN_STOPS[i + 1]
    return (a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2]))


def skin_name(tone: float) -> str:
    """Caption word for a skin tone (three even bins)."""
    return "light" if tone < 1 / 3 else ("medium" if tone < 2 / 3 else "dark")


@dataclass(frozen=True)
class Shape:
    """Identity: multipliers around 1 on the template head's proportions."""

    head_width: float = 1.0
    head_height: float = 1.0
    head_depth: float = 1.0
    jaw_width: float = 1.0
    chin: float = 1.0
    cheeks: float = 1.0
    nose_length: float = 1.0
    nose_width: float = 1.0
    nose_depth: float = 1.0
    ear_size: float = 1.0
    eye_spacing: float = 1.0
    eye_size: float = 1.0
    mouth_width: float = 1.0
    lip_thickness: float = 1.0
    brow_thickness: float = 1.0
    neck_width: float = 1.0
    shoulder_width: float = 1.0


@dataclass(frozen=True)
class Expression:
    smile: float = 0.0  # 0 neutral .. 1 broad smile (mouth corners up, mouth wider)
    mouth_open: float = 0.0  # 0 closed .. 1 wide open
    eye_open: float = 0.85  # 0 closed .. 1 wide
    brow_raise: float = 0.0  # -1 frown .. 1 raised


@dataclass(frozen=True)
class Eyes:
    iris: str = "brown"
    iris_rgb: RGB = IRIS_COLORS["brown"]
    gaze_yaw: float = 0.0  # degrees, positive = towards the person's left (+x)
    gaze_pitch: float = 0.0  # degrees, positive = up


@dataclass(frozen=True)
class Hair:
    style: str = "short"
    color: str = "brown"
    rgb: RGB = HAIR_COLORS["brown"]
    length: float = 0.5  # 0..1; long hair: how far it falls; others: thickness of the cap
    volume: float = 0.5  # 0..1; how far the hair stands off the skull


@dataclass(frozen=True)
class Beard:
    style: str = "none"
    color: str = "brown"
    rgb: RGB = HAIR_COLORS["brown"]


@dataclass(frozen=True)
class Glasses:
    kind: str = "none"
    frame_shape: str = "round"
    frame_color: str = "black"
    frame_rgb: RGB = FRAME_COLORS["black"]


@dataclass(frozen=True)
class Scene:
    background: str = "flat"
    bg_rgb1: RGB = (0.5, 0.5, 0.5)
    bg_rgb2: RGB = (0.3, 0.3, 0.3)
    clothes_rgb: RGB = (0.2, 0.3, 0.5)
    neckline: str = "crew"  # crew | v
    light_azimuth: float = 20.0  # degrees about +y from the face direction, + = person's left
    light_elevation: float = 30.0  # degrees above the horizon
    ambient: float = 0.35  # 0..1 share of ambient light
    light_rgb: RGB = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class HeadParams:
    """The full attribute record of one synthetic head (camera excluded)."""

    shape: Shape = field(default_factory=Shape)
    skin_tone: float = 0.3
    lip_rgb: RGB = (0.70, 0.35, 0.35)
    brow_rgb: RGB = HAIR_COLORS["dark brown"]
    expression: Expression = field(default_factory=Expression)
    eyes: Eyes = field(default_factory=Eyes)
    hair: Hair = field(default_factory=Hair)
    beard: Beard = field(default_factory=Beard)
    glasses: Glasses = field(default_factory=Glasses)
    scene: Scene = field(default_factory=Scene)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> HeadParams:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on unknown or missing keys."""
        return _from_dict(HeadParams, d)

    def validate(self) -> None:
        """Raise ``ValueError`` if a categorical field is outside its table."""
        checks = [
            ("hair.style", self.hair.style, HAIRSTYLES),
            ("beard.style", self.beard.style, BEARDS),
            ("glasses.kind", self.glasses.kind, GLASSES),
            ("glasses.frame_shape", self.glasses.frame_shape, FRAME_SHAPES),
            ("scene.background", self.scene.background, BACKGROUNDS),
        ]
        for name, value, table in checks:
            if value not in table:
                raise ValueError(f"{name} must be one of {table}, got {value!r}")


def _from_dict(cls: type, d: Mapping[str, Any]) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    extra = set(d) - set(names)
    if extra:
        raise ValueError(f"unknown keys for {cls.__name__}: {sorted(extra)}")
    kwargs: dict[str, Any] = {}
    for name in names:
        if name not in d:
            continue
        v = d[name]
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            kwargs[name] = _from_dict(type(default), v)
        elif isinstance(default, tuple):
            kwargs[name] = tuple(float(x) for x in v)
        elif isinstance(default, float):
            kwargs[name] = float(v)
        else:
            kwargs[name] = v
    return cls(**kwargs)


# ----------------------------------------------------------------------------- prior


@dataclass(frozen=True)
class Prior:
    """Attribute frequencies and pose spread for sampling. Weights need not sum to 1."""

    hairstyle: Mapping[str, float] = field(
        default_factory=lambda: {"bald": 0.07, "buzz": 0.1, "short": 0.3, "fringe": 0.15, "long": 0.28, "bun": 0.1}
    )
    hair_color: Mapping[str, float] = field(
        default_factory=lambda: {
            "black": 0.25, "dark brown": 0.2, "brown": 0.17, "auburn": 0.06, "red": 0.05, "blond": 0.12,
            "platinum": 0.03, "grey": 0.06, "white": 0.03, "blue": 0.015, "pink": 0.015,
        }
    )
    beard: Mapping[str, float] = field(default_factory=lambda: {"none": 0.7, "stubble": 0.15, "full": 0.15})
    glasses: Mapping[str, float] = field(default_factory=lambda: {"none": 0.7, "clear": 0.2, "sunglasses": 0.1})
    background: Mapping[str, float] = field(default_factory=lambda: {"flat": 0.35, "gradient": 0.4, "texture": 0.25})
    p_smile: float = 0.45
    p_mouth_open: float = 0.2
    p_eyes_closed: float = 0.05
    p_brow_raise: float = 0.15
    yaw_sd: float = 20.0  # degrees; FFHQ-like spread
    pitch_sd: float = 10.0
    yaw_max: float = 60.0  # clip
    pitch_max: float = 30.0
    roll_sd: float = 0.0  # FFHQ crops are roll-aligned
    gaze_sd: float = 8.0

    def validate(self) -> None:
        for name, table in (
            ("hairstyle", HAIRSTYLES), ("hair_color", tuple(HAIR_COLORS)), ("beard", BEARDS),
            ("glasses", GLASSES), ("background", BACKGROUNDS),
        ):
            weights = getattr(self, name)
            bad = set(weights) - set(table)
            if bad:
                raise ValueError(f"prior {name}: unknown values {sorted(bad)}")
            if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
                raise ValueError(f"prior {name}: weights must be >= 0 with a positive sum")
        for name in ("p_smile", "p_mouth_open", "p_eyes_closed", "p_brow_raise"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"prior {name} must be in [0, 1], got {p}")


# Stream ids: one independent RNG per attribute group.
_STREAMS = {
    "shape": 1, "skin": 2, "expression": 3, "eyes": 4, "hair": 5, "beard": 6, "glasses": 7, "scene": 8,
    "camera": 9, "video": 10, "edit": 11,
}


def stream(seed: int, index: int, group: str, sub: int = 0) -> np.random.Generator:
    """The RNG of one attribute group of one sample: independent of every other group."""
    return np.random.default_rng([seed & 0xFFFFFFFF, index, _STREAMS[group], sub])


def _choice(rng: np.random.Generator, weights: Mapping[str, float]) -> str:
    names = list(weights)
    p = np.asarray([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _jitter(rng: np.random.Generator, rgb: RGB, amount: float) -> RGB:
    j = rng.normal(0.0, amount, 3) + rng.normal(0.0, amount)  # per-channel + brightness
    return tuple(float(min(max(c + d, 0.0), 1.0)) for c, d in zip(rgb, j, strict=True))  # type: ignore[return-value]


def _rand_rgb(rng: np.random.Generator, lo: float = 0.05, hi: float = 0.95) -> RGB:
    return (float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi)))


def sample_shape(rng: np.random.Generator) -> Shape:
    vals = {f.name: float(np.clip(rng.normal(1.0, 0.07), 0.8, 1.2)) for f in dataclasses.fields(Shape)}
    return Shape(**vals)


def sample_expression(rng: np.random.Generator, prior: Prior) -> Expression:
    smile = float(rng.uniform(0.55, 1.0)) if rng.random() < prior.p_smile else float(rng.uniform(0.0, 0.2))
    mouth = float(rng.uniform(0.5, 1.0)) if rng.random() < prior.p_mouth_open else 0.0
    eye = float(rng.uniform(0.0, 0.15)) if rng.random() < prior.p_eyes_closed else float(rng.uniform(0.65, 1.0))
    brow = float(rng.uniform(0.6, 1.0)) if rng.random() < prior.p_brow_raise else float(rng.uniform(-0.4, 0.3))
    return Expression(smile=smile, mouth_open=mouth, eye_open=eye, brow_raise=brow)


def sample_hair(rng: np.random.Generator, prior: Prior) -> Hair:
    style = _choice(rng, prior.hairstyle)
    color = _choice(rng, prior.hair_color)
    return Hair(
        style=style, color=color, rgb=_jitter(rng, HAIR_COLORS[color], 0.03),
        length=float(rng.uniform(0.0, 1.0)), volume=float(rng.uniform(0.0, 1.0)),
    )


def sample_head(seed: int, index: int, prior: Prior | None = None) -> HeadParams:
    """Sample head ``index`` of dataset ``seed``; each group from its own stream."""
    prior = prior or Prior()
    r = stream(seed, index, "skin")
    tone = float(r.uniform(0.0, 1.0))
    base_lip = skin_rgb(tone)
    lip = (base_lip[0] * 0.85 + 0.08, base_lip[1] * 0.55, base_lip[2] * 0.6)
    lip = _jitter(r, lip, 0.04)
    brow = _jitter(r, HAIR_COLORS[str(r.choice(["black", "dark brown", "brown", "blond"]))], 0.03)

    r = stream(seed, index, "eyes")
    iris = str(r.choice(list(IRIS_COLORS)))
    eyes = Eyes(
        iris=iris, iris_rgb=_jitter(r, IRIS_COLORS[iris], 0.03),
        gaze_yaw=float(np.clip(r.normal(0, prior.gaze_sd), -25, 25)),
        gaze_pitch=float(np.clip(r.normal(0, prior.gaze_sd * 0.6), -15, 15)),
    )

    r = stream(seed, index, "beard")
    bstyle = _choice(r, prior.beard)
    bcolor = _choice(r, {"black": 3, "dark brown": 3, "brown": 2, "auburn": 0.5, "blond": 1, "grey": 1, "white": 0.5})
    beard = Beard(style=bstyle, color=bcolor, rgb=_jitter(r, HAIR_COLORS[bcolor], 0.03))

    r = stream(seed, index, "glasses")
    fcolor = str(r.choice(list(FRAME_COLORS)))
    glasses = Glasses(
        kind=_choice(r, prior.glasses), frame_shape=str(r.choice(list(FRAME_SHAPES))),
        frame_color=fcolor, frame_rgb=_jitter(r, FRAME_COLORS[fcolor], 0.02),
    )

    r = stream(seed, index, "scene")
    bg = _choice(r, prior.background)
    warm = float(r.uniform(-1.0, 1.0))
    scene = Scene(
        background=bg, bg_rgb1=_rand_rgb(r, 0.15, 0.95), bg_rgb2=_rand_rgb(r, 0.05, 0.8),
        clothes_rgb=_rand_rgb(r, 0.05, 0.9), neckline=str(r.choice(["crew", "v"])),
        light_azimuth=float(r.uniform(-70, 70)), light_elevation=float(r.uniform(0, 50)),
        ambient=float(r.uniform(0.25, 0.55)),
        light_rgb=(1.0, float(1.0 - 0.06 * abs(warm)), float(1.0 - 0.15 * warm if warm > 0 else 1.0)),
    )

    return HeadParams(
        shape=sample_shape(stream(seed, index, "shape")),
        skin_tone=tone, lip_rgb=lip, brow_rgb=brow,
        expression=sample_expression(stream(seed, index, "expression"), prior),
        eyes=eyes, hair=sample_hair(stream(seed, index, "hair"), prior), beard=beard, glasses=glasses, scene=scene,
    )


# ----------------------------------------------------------------------------- cameras


@dataclass(frozen=True)
class Pose:
    yaw_deg: float
    pitch_deg: float
    roll_deg: float = 0.0


def sample_pose(rng: np.random.Generator, prior: Prior) -> Pose:
    """FFHQ-like pose: normal yaw and pitch, clipped."""
    yaw = float(np.clip(rng.normal(0.0, prior.yaw_sd), -prior.yaw_max, prior.yaw_max))
    pitch = float(np.clip(rng.normal(0.0, prior.pitch_sd), -prior.pitch_max, prior.pitch_max))
    roll = float(rng.normal(0.0, prior.roll_sd)) if prior.roll_sd > 0 else 0.0
    return Pose(yaw, pitch, roll)


def sample_views(seed: int, index: int, views: int, prior: Prior | None = None) -> list[Pose]:
    """``views`` independent cameras of one head (each from the pose prior)."""
    prior = prior or Prior()
    rng = stream(seed, index, "camera")
    return [sample_pose(rng, prior) for _ in range(views)]


def sample_video(
    seed: int, index: int, frames: int, head: HeadParams, prior: Prior | None = None
) -> tuple[list[HeadParams], list[Pose]]:
    """A smooth clip: pose follows a sum of slow sinusoids, the expression drifts, eyes blink.

    Returns one record and one pose per frame (same identity, hair, lighting...).
    """
    prior = prior or Prior()
    rng = stream(seed, index, "video")
    t = np.arange(frames, dtype=np.float64)

    def wave(amp: float, lo: float = 60.0, hi: float = 200.0) -> np.ndarray:
        out = np.zeros(frames)
        for _ in range(2):
            period = rng.uniform(lo, hi)
            out += amp / 2 * np.sin(2 * math.pi * t / period + rng.uniform(0, 2 * math.pi))
        return out

    base = sample_pose(rng, Prior(yaw_sd=prior.yaw_sd / 2, pitch_sd=prior.pitch_sd / 2))
    yaw = np.clip(base.yaw_deg + wave(prior.yaw_sd * 1.5), -prior.yaw_max, prior.yaw_max)
    pitch = np.clip(base.pitch_deg + wave(prior.pitch_sd), -prior.pitch_max, prior.pitch_max)
    smile = np.clip(head.expression.smile + wave(0.8, 40, 120), 0.0, 1.0)
    mouth = np.clip(wave(1.0, 30, 90) - 0.2, 0.0, 1.0)
    brow = np.clip(head.expression.brow_raise + wave(0.6, 50, 150), -1.0, 1.0)
    eye = np.full(frames, max(head.expression.eye_open, 0.6))
    blink_every = int(rng.integers(40, 90))
    start = int(rng.integers(0, blink_every))
    for b in range(start, frames, blink_every):  # a blink: close over 2 frames, reopen over 3
        for k, f in enumerate((0.5, 0.05, 0.3, 0.6, 0.85)):
            if b + k < frames:
                eye[b + k] = min(eye[b + k], f * eye[0])
    records, poses = [], []
    for i in range(frames):
        ex = Expression(smile=float(smile[i]), mouth_open=float(mouth[i]), eye_open=float(eye[i]),
                        brow_raise=float(brow[i]))
        records.append(dataclasses.replace(head, expression=ex))
        poses.append(Pose(float(yaw[i]), float(pitch[i])))
    return records, poses


# ----------------------------------------------------------------------------- edits

EDIT_KINDS = ("hair_color", "hairstyle", "glasses", "beard", "expression", "skin_tone")

# Classes whose pixels an edit may change. Lenses (clear, and faintly sunglasses) are
# see-through, so EYEGLASSES pixels may also change when either side wears glasses.
EDIT_CLASSES: dict[str, frozenset[SemanticClass]] = {
    "hair_color": frozenset({SemanticClass.HAIR}),
    "hairstyle": frozenset({SemanticClass.HAIR}),
    "glasses": frozenset({SemanticClass.EYEGLASSES}),
    "beard": frozenset({SemanticClass.BEARD}),
    "expression": frozenset({SemanticClass.EYES, SemanticClass.BROWS, SemanticClass.MOUTH}),
    "skin_tone": frozenset(
        {SemanticClass.SKIN, SemanticClass.NOSE, SemanticClass.EARS, SemanticClass.NECK, SemanticClass.BEARD}
    ),
}


def edit_classes(kind: str, before: HeadParams, after: HeadParams) -> frozenset[SemanticClass]:
    """Classes outside whose before/after masks a pair's pixels are bit-identical."""
    cls = EDIT_CLASSES[kind]
    if before.glasses.kind != "none" or after.glasses.kind != "none":
        cls = cls | {SemanticClass.EYEGLASSES}
    return cls


def _other(rng: np.random.Generator, options: Sequence[str], current: str) -> str:
    return str(rng.choice([o for o in options if o != current]))


def make_edit(head: HeadParams, kind: str, rng: np.random.Generator) -> HeadParams:
    """The same head with one attribute group changed (always a visible change)."""
    if kind == "hair_color":
        style = head.hair.style if head.hair.style != "bald" else "short"  # bald has no colour to edit
        c = _other(rng, list(HAIR_COLORS), head.hair.color)
        return dataclasses.replace(head, hair=dataclasses.replace(head.hair, style=style, color=c, rgb=HAIR_COLORS[c]))
    if kind == "hairstyle":
        s = _other(rng, HAIRSTYLES, head.hair.style)
        return dataclasses.replace(head, hair=dataclasses.replace(head.hair, style=s))
    if kind == "glasses":
        g = "none" if head.glasses.kind != "none" else str(rng.choice(["clear", "sunglasses"]))
        return dataclasses.replace(head, glasses=dataclasses.replace(head.glasses, kind=g))
    if kind == "beard":
        b = _other(rng, BEARDS, head.beard.style)
        return dataclasses.replace(head, beard=dataclasses.replace(head.beard, style=b))
    if kind == "expression":
        e = head.expression
        smiling = e.smile > 0.5
        ex = Expression(
            smile=float(rng.uniform(0.0, 0.2)) if smiling else float(rng.uniform(0.7, 1.0)),
            mouth_open=float(rng.uniform(0.5, 1.0)) if e.mouth_open < 0.3 else 0.0,
            eye_open=e.eye_open if rng.random() < 0.7 else (0.05 if e.eye_open > 0.5 else 0.9),
            brow_raise=float(rng.uniform(0.6, 1.0)) if e.brow_raise < 0.5 else 0.0,
        )
        return dataclasses.replace(head, expression=ex)
    if kind == "skin_tone":
        t = head.skin_tone
        new = float(rng.uniform(0.55, 1.0)) if t < 0.5 else float(rng.uniform(0.0, 0.45))
        return dataclasses.replace(head, skin_tone=new)
    raise ValueError(f"unknown edit kind {kind!r}; choose from {EDIT_KINDS}")


# ----------------------------------------------------------------------------- captions

HAIRSTYLE_WORDS = {"buzz": "buzz-cut", "short": "short", "fringe": "short", "long": "long", "bun": ""}


def caption_phrases(head: HeadParams) -> list[str]:
    """The caption's phrases in order: hair, beard, glasses, expression, skin.

    Grammar: ``"a face with " + join(phrases)`` where join uses ", " and a final " and ".
    Hair: "a bald head" | "{short|long|buzz-cut} {colour} hair" | "short {colour} hair with a fringe"
    | "{colour} hair in a bun"; beard: "stubble" | "a full {colour} beard"; glasses:
    "eyeglasses" | "sunglasses"; expression: "a smile", "an open mouth", "closed eyes",
    "raised eyebrows" (each when its value passes the threshold in :data:`THRESHOLDS`);
    skin: "{light|medium|dark} skin".
    """
    h, e = head.hair, head.expression
    out: list[str] = []
    if h.style == "bald":
        out.append("a bald head")
    elif h.style == "bun":
        out.append(f"{h.color} hair in a bun")
    elif h.style == "fringe":
        out.append(f"short {h.color} hair with a fringe")
    else:
        out.append(f"{HAIRSTYLE_WORDS[h.style]} {h.color} hair")
    if head.beard.style == "stubble":
        out.append("stubble")
    elif head.beard.style == "full":
        out.append(f"a full {head.beard.color} beard")
    if head.glasses.kind == "clear":
        out.append("eyeglasses")
    elif head.glasses.kind == "sunglasses":
        out.append("sunglasses")
    if e.smile > THRESHOLDS["smile"]:
        out.append("a smile")
    if e.mouth_open > THRESHOLDS["mouth_open"]:
        out.append("an open mouth")
    if e.eye_open < THRESHOLDS["eyes_closed"] and head.glasses.kind != "sunglasses":
        out.append("closed eyes")
    if e.brow_raise > THRESHOLDS["brow_raise"]:
        out.append("raised eyebrows")
    out.append(f"{skin_name(head.skin_tone)} skin")
    return out


THRESHOLDS = {"smile": 0.5, "mouth_open": 0.3, "eyes_closed": 0.3, "brow_raise": 0.5}


def caption(head: HeadParams) -> str:
    """E.g. "a face with short blond hair, eyeglasses and a smile" (SAT3D's "a face with {}")."""
    p = caption_phrases(head)
    body = p[0] if len(p) == 1 else ", ".join(p[:-1]) + " and " + p[-1]
    return "a face with " + body
