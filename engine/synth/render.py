"""Batched analytic renderer of synthetic heads: closed-form ray-quadric hits, local shading.

Per pixel: intersect the ray with every primitive slot in closed form, keep the nearest
valid hit among opaque slots (and, separately, among the lens slots), then shade that one
hit from its position, normal and the head's decal parameters. No shadows, no light
transport between parts, no randomness: a pixel's value depends only on which primitive it
hits and that primitive's own parameters, so an edit cannot leak outside its region.

Outputs follow EG3D's camera (engine/camera.py): depth is Euclidean distance along the unit
ray; background depth is :data:`BACKGROUND_DEPTH`; normals are unit vectors in the world
frame (zero on background).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engine import camera
from engine.synth.head import (
    CK,
    DK,
    LENS_SLOTS,
    NUM_OPAQUE,
    NUM_SLOTS,
    SLOT_CLASS,
    Scene,
    Slot,
    build_scene,
)
from engine.synth.params import HeadParams, SemanticClass

log = logging.getLogger(__name__)

BACKGROUND_DEPTH = 4.0  # beyond EG3D's ray_end (3.3); alpha says what is background
NEAR = 0.5
# Slots that carry clip planes; every other slot's planes are the always-true default.
CLIP_SLOTS = (Slot.NECK, Slot.HAIR_CAP, Slot.HAIR_LONG, Slot.BEARD_CHIN, Slot.LENS_L, Slot.LENS_R)
# Elements of the (heads x slots x pixels) working tensors per chunk: bounds peak memory.
CHUNK_ELEMENTS = 3_000_000

C = SemanticClass
# Specular strength and exponent per semantic class.
_SPEC = {
    C.SKIN: (0.05, 12.0), C.HAIR: (0.07, 8.0), C.EYES: (0.45, 90.0), C.BROWS: (0.0, 1.0),
    C.MOUTH: (0.12, 24.0), C.NOSE: (0.07, 14.0), C.EARS: (0.04, 10.0), C.EYEGLASSES: (0.35, 50.0),
    C.BEARD: (0.02, 6.0), C.NECK: (0.04, 10.0), C.CLOTHES: (0.03, 6.0), C.BACKGROUND: (0.0, 1.0),
}


@dataclass
class RenderOutput:
    """rgb (N,3,R,R) in [0,1]; depth (N,1,R,R); normal (N,3,R,R); alpha (N,1,R,R) in [0,1];
    label (N,R,R) uint8 SemanticClass values."""

    rgb: torch.Tensor
    depth: torch.Tensor
    normal: torch.Tensor
    alpha: torch.Tensor
    label: torch.Tensor


@dataclass
class _Hits:
    t: torch.Tensor  # (N, M) nearest opaque hit (inf = none)
    slot: torch.Tensor  # (N, M) long
    lens_t: torch.Tensor  # (N, M)
    lens_slot: torch.Tensor  # (N, M) index into LENS_SLOTS


def _quad6(q: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) symmetric -> (..., 6) coefficients of d^T Q d over monomials of :func:`_mono`."""
    return torch.stack(
        [q[..., 0, 0], q[..., 1, 1], q[..., 2, 2], 2 * q[..., 0, 1], 2 * q[..., 0, 2], 2 * q[..., 1, 2]], dim=-1
    )


def _mono(d: torch.Tensor) -> torch.Tensor:
    """(N, M, 3) -> (N, 6, M) quadratic monomials of the directions."""
    x, y, z = d.unbind(-1)
    return torch.stack([x * x, y * y, z * z, x * y, x * z, y * z], dim=1)


def intersect(scene: Scene, origin: torch.Tensor, dirs: torch.Tensor) -> _Hits:
    """Nearest valid hit per ray. origin (N,3) (one pinhole per image), dirs (N,M,3) unit."""
    oc = origin[:, None, :] - scene.center  # (N,P,3)
    qoc = torch.einsum("npij,npj->npi", scene.quad, oc)
    cc = (oc * qoc).sum(-1, keepdim=True) - 1.0  # (N,P,1)
    # A disabled slot gets an origin "infinitely" outside it: the discriminant goes negative.
    cc = torch.where(scene.enabled[..., None], cc, 1e30)
    dt = dirs.transpose(1, 2)  # (N,3,M)
    nb = torch.bmm(-qoc, dt)  # (N,P,M): -d^T Q (o - c)
    a = torch.bmm(_quad6(scene.quad), _mono(dirs))  # d^T Q d > 0 for every ray we cast
    disc = (nb * nb).addcmul_(a, cc, value=-1.0)
    hit = disc > 0
    sq = disc.clamp_min_(0.0).sqrt_()  # (sqrt of negatives is slow on CPU: clamp first)
    t1 = (nb - sq).div_(a)
    t = torch.where(hit & (t1 > NEAR), t1, math.inf)

    # Clipped slots: the near root must pass every plane, else the far root (looking into
    # a cut shell shows its inside, e.g. hair behind the face).
    cs = torch.tensor([int(s) for s in CLIP_SLOTS], device=dirs.device)
    cn = scene.clip_n[:, cs]  # (N,S,K,3)
    n_s, k_s = cn.shape[1], cn.shape[2]
    base = (cn * origin[:, None, None, :]).sum(-1) - scene.clip_h[:, cs]  # (N,S,K)
    nd = torch.bmm(cn.reshape(cn.shape[0], n_s * k_s, 3), dt).reshape(cn.shape[0], n_s, k_s, -1)
    t1c, t2c = t1[:, cs], (nb[:, cs] + sq[:, cs]) / a[:, cs]
    hc = hit[:, cs]
    ok1 = ((base[..., None] + t1c[:, :, None] * nd) >= 0).all(dim=2) & (t1c > NEAR) & hc
    ok2 = ((base[..., None] + t2c[:, :, None] * nd) >= 0).all(dim=2) & (t2c > NEAR) & hc
    t[:, cs] = torch.where(ok1, t1c, torch.where(ok2, t2c, math.inf))

    t_op, slot = t[:, :NUM_OPAQUE].min(dim=1)
    lens_t, lens_slot = t[:, NUM_OPAQUE:].min(dim=1)
    return _Hits(t_op, slot, lens_t, lens_slot)


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (N,P,F), idx (N,M) -> (N,M,F)."""
    return torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[-1]))


def _normal_at(scene: Scene, slot: torch.Tensor, x: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Unit quadric gradient at x, turned to face the viewer."""
    n, p = scene.quad.shape[:2]
    c = _gather(scene.center, slot)
    q = _gather(scene.quad.reshape(n, p, 9), slot).reshape(*slot.shape, 3, 3)
    g = torch.einsum("nmij,nmj->nmi", q, x - c)
    g = torch.nn.functional.normalize(g, dim=-1)
    facing = (g * dirs).sum(-1, keepdim=True) > 0
    return torch.where(facing, -g, g)


# Skin masses (cranium, jaw, chin, cheeks) whose creases the shading normal blends over, and
# the blend's reach in world units (about 10 px across a 128^2 face).
SKIN_MASS_SLOTS = int(Slot.CHEEK_R) + 1
SKIN_BLEND = 0.035


def _skin_shading_normal(
    scene: Scene, slot: torch.Tensor, x: torch.Tensor, nrm: torch.Tensor
) -> torch.Tensor:
    """Shading normal that rounds off the creases where the skin masses meet.

    On a skin-mass hit, the unit gradients of all skin masses are averaged with weights that
    fall from 1 at a mass's surface to 0 at :data:`SKIN_BLEND` (first-order distance
    ``f / |grad f|`` of the quadric ``f = (x-c)^T Q (x-c) - 1``): the gradient of a smooth
    union, so cheek/jaw/chin seams read as gentle bulges rather than ridges. Only shading
    uses it (the output normal map stays the true surface normal), and it depends only on
    the head's shape, never on an editable attribute, so edit pairs stay bit-identical
    outside their masks. Elementwise arithmetic only (no matmul), for per-pixel determinism.
    """
    k = SKIN_MASS_SLOTS
    c = scene.center[:, :k, None, :]  # (N,K,1,3)
    q = scene.quad[:, :k, None, :, :]  # (N,K,1,3,3), symmetric: column j = row j
    r = x[:, None, :, :] - c  # (N,K,M,3)
    g = q[..., 0, :] * r[..., 0:1] + q[..., 1, :] * r[..., 1:2] + q[..., 2, :] * r[..., 2:3]  # Q r
    f = (r * g).sum(-1) - 1.0
    gl = g.norm(dim=-1).clamp_min(1e-6)
    dist = f / (2.0 * gl)
    w = (1.0 - dist.clamp(min=0.0) / SKIN_BLEND).clamp(min=0.0) ** 2
    w = w * scene.enabled[:, :k, None].float()
    blend = (w[..., None] * g / gl[..., None]).sum(1)
    blend = torch.nn.functional.normalize(blend, dim=-1)
    blend = torch.where((blend * nrm).sum(-1, keepdim=True) > 0, blend, nrm)
    return torch.where((slot < k)[..., None], blend, nrm)


def _mix(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return a + (b - a) * w


def _shade_surface(
    scene: Scene, hits: _Hits, origin: torch.Tensor, dirs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Albedo, class, normal, hit point and hit mask of the nearest opaque surface."""
    dev = dirs.device
    slot = hits.slot
    has = torch.isfinite(hits.t)
    t = torch.where(has, hits.t, BACKGROUND_DEPTH)
    x = origin[:, None, :] + t[..., None] * dirs  # (N,M,3)
    nrm = _normal_at(scene, slot, x, dirs)
    slot_class = torch.tensor([int(c) for c in SLOT_CLASS], device=dev, dtype=torch.uint8)
    cls = slot_class[slot]
    col = _gather(scene.color, slot)
    px, py, pz = x.unbind(-1)
    ax = px.abs()
    dec = scene.decal

    def d(key: str) -> torch.Tensor:
        return dec[:, DK[key], None]

    def k(key: str) -> torch.Tensor:
        return scene.colors[:, CK[key], None, :]

    skin_prim = slot <= int(Slot.CHEEK_R)
    front = skin_prim & (pz > 0.06)

    # Hair: strands along the hair's run, slow clumps, a side parting and a sheen band where
    # the surface turns up towards the light (all functions of the hit point and normal only).
    hair_slot = (slot >= int(Slot.HAIR_CAP)) & (slot <= int(Slot.HAIR_BUN))
    az = torch.atan2(px - d("part_x"), pz + 0.03)
    strands_cap = torch.sin(150.0 * az + 35.0 * py) * 0.6 + torch.sin(17.0 * az + 11.0 * py) * 0.4
    strands_long = torch.sin(330.0 * px + 60.0 * pz) * 0.6 + torch.sin(45.0 * px + 13.0 * py) * 0.4
    strands = torch.where(slot == int(Slot.HAIR_LONG), strands_long, strands_cap)
    parting = (slot == int(Slot.HAIR_CAP)) & ((px - d("part_x")).abs() < 0.004) & (pz > -0.05) & (py > 0.15)
    sheen = (1.0 - ((nrm[..., 1] - 0.55) / 0.25) ** 2).clamp(min=0) * 0.25
    hair_col = col * (0.86 + 0.14 * strands - 0.35 * parting.float())[..., None] + sheen[..., None] * (0.35 + col)
    col = torch.where(hair_slot[..., None], hair_col, col)

    # Buzz cut: hair painted on the skull above a hairline that slopes down to the nape.
    buzz = (slot == int(Slot.CRANIUM)) & (d("hair_style") == 1) & (py > 0.17 - 0.85 * (0.2 - pz))
    buzz_col = k("hair") * (0.9 + 0.1 * torch.sin(260.0 * px + 90.0 * py) * torch.sin(240.0 * pz - 70.0 * py))[..., None]
    col = torch.where(buzz[..., None], buzz_col, col)
    cls = torch.where(buzz, int(C.HAIR), cls)

    # Eye sockets: soft darkening of the skin around the eyes (a painted-in occlusion).
    sock = (1.0 - ((ax - d("eye_x")) / 0.05) ** 2 - ((py - d("eye_y") - 0.004) / 0.04) ** 2).clamp(0, 1)
    col = torch.where(skin_prim[..., None], col * (1.0 - 0.15 * sock)[..., None], col)

    # Beard: stubble or full beard on the lower face, up the cheeks to sideburns.
    beard = d("beard")
    top = d("mouth_y") + 0.03 + 0.13 * (ax / 0.15) ** 2
    in_beard = skin_prim & (py < top) & (pz > -0.03) & (beard > 0)
    grain = torch.sin(1300.0 * px + 170.0 * py) * torch.sin(1100.0 * py - 900.0 * pz)
    fine = torch.sin(310.0 * px + 90.0 * py) * torch.sin(270.0 * py - 150.0 * pz)
    stubble = _mix(col, k("beard"), (0.38 + 0.08 * fine)[..., None])
    full = k("beard") * (0.85 + 0.15 * grain)[..., None]
    beard_col = torch.where((beard == 2)[..., None], full, stubble)
    col = torch.where(in_beard[..., None], beard_col, col)
    cls = torch.where(in_beard, int(C.BEARD), cls)
    chin_beard = slot == int(Slot.BEARD_CHIN)
    col = torch.where(chin_beard[..., None], col * (0.85 + 0.15 * grain)[..., None], col)

    # Brows: an arched band above each eye, thinning towards the tail.
    u = (ax - (d("eye_x") - 0.03)) / 0.066
    yb = d("brow_y") + 0.008 * torch.sin(2.8 * u) - 0.004 * u
    thick = d("brow_thick") * (1.2 - 0.6 * u)
    brow = front & (u > 0) & (u < 1) & ((py - yb).abs() < thick / 2)
    brow_col = k("brow") * (0.85 + 0.15 * torch.sin(1200.0 * px))[..., None]
    col = torch.where(brow[..., None], brow_col, col)
    cls = torch.where(brow, int(C.BROWS), cls)

    # Mouth: lips around a centre line that curves up with the smile; dark interior, teeth.
    mx = px / d("mouth_w")
    s = (1.0 - mx * mx).clamp(min=0)
    rs = s.sqrt()
    cline = d("mouth_y") + d("smile") * 0.014 * (mx * mx - 0.35)
    gap = d("mouth_open") * 0.02 * rs
    dy = py - cline
    tu = 0.0075 * d("lip_thick") * rs * (1.0 + 0.25 * (1.0 - (mx.abs() - 0.25).abs() * 3).clamp(min=0))
    tl = 0.0105 * d("lip_thick") * rs
    inside = front & (mx.abs() < 1) & (pz > 0.09)
    interior = inside & (dy.abs() <= gap)
    lips = inside & (((dy > gap) & (dy < gap + tu)) | ((dy < -gap) & (dy > -gap - tl)))
    seam = lips & ((dy.abs() - gap) < 0.0012)
    teeth = interior & (dy > gap * 0.3 - 0.002)
    lip_col = k("lip") * (1.0 - 0.35 * seam.float())[..., None]
    col = torch.where(lips[..., None], lip_col, col)
    mouth_in = torch.tensor([0.25, 0.06, 0.07], device=dev)
    teeth_col = torch.tensor([0.9, 0.88, 0.82], device=dev)
    col = torch.where(interior[..., None], torch.where(teeth[..., None], teeth_col, mouth_in), col)
    cls = torch.where(lips | interior, int(C.MOUTH), cls)

    # Nostrils: dark where the nose's underside faces down, either side of the septum.
    nose = (slot == int(Slot.NOSE_TIP)) | (slot == int(Slot.NOSE_WING_L)) | (slot == int(Slot.NOSE_WING_R))
    nostril = nose & (nrm[..., 1] < -0.45) & (ax > 0.006) & (ax < 0.024)
    col = torch.where(nostril[..., None], col * 0.35, col)

    # Eyes: lids (skin) outside an almond opening, lash line, sclera, iris, pupil.
    eye = (slot == int(Slot.EYE_L)) | (slot == int(Slot.EYE_R))
    ec = _gather(scene.center, slot)
    q = (x - ec) / d("eye_r")[..., None]
    qx, qy, qz = q.unbind(-1)
    f = (1.0 - (qx / 0.95) ** 2).clamp(min=0) ** 0.6
    upper = (-0.5 + 1.05 * d("eye_open")) * f
    lower = -0.42 * f
    opening = (qy < upper) & (qy > lower) & (qz > 0)
    lash = opening & (qy > upper - 0.14)
    gaze = dec[:, DK["gaze_x"]: DK["gaze_z"] + 1][:, None, :]
    cosg = (q * gaze).sum(-1)
    iris_col = k("iris") * (0.75 + 0.25 * torch.sin(40.0 * torch.atan2(qx, qy))[..., None] ** 2)
    limbal = k("iris") * 0.45
    sclera = torch.tensor([0.93, 0.91, 0.88], device=dev)
    pupil = torch.tensor([0.02, 0.02, 0.02], device=dev)
    eye_col = torch.where(
        (cosg > 0.975)[..., None], pupil,
        torch.where((cosg > 0.9)[..., None], iris_col, torch.where((cosg > 0.87)[..., None], limbal, sclera)),
    )
    eye_col = torch.where(lash[..., None], torch.tensor([0.06, 0.04, 0.04], device=dev), eye_col)
    lid_col = k("skin") * 0.9
    col = torch.where(eye[..., None], torch.where(opening[..., None], eye_col, lid_col), col)
    cls = torch.where(eye & ~opening, int(C.SKIN), cls)

    # Neckline: skin shows at the collar (crew or V).
    torso = slot == int(Slot.TORSO)
    nr = d("neck_r")
    crew = (ax < 1.35 * nr) & (py > -0.31 + 0.02 * (ax / (1.35 * nr)) ** 2)
    vee = (ax < 1.5 * nr) & (py > -0.31 - 0.09 * (1.0 - ax / (1.5 * nr)))
    collar = torso & (pz > 0) & torch.where(d("neck_v") > 0, vee, crew)
    col = torch.where(collar[..., None], k("skin") * 0.92, col)
    cls = torch.where(collar, int(C.NECK), cls)

    cls = torch.where(has, cls, int(C.BACKGROUND))
    return col, cls, nrm, x, has


def _light(
    scene: Scene, albedo: torch.Tensor, cls: torch.Tensor, nrm: torch.Tensor, dirs: torch.Tensor
) -> torch.Tensor:
    """Wrapped Lambert + Blinn specular under one directional light and hemispheric ambient."""
    dev = dirs.device
    dec = scene.decal
    light = torch.nn.functional.normalize(dec[:, DK["light_x"]: DK["light_z"] + 1], dim=-1)[:, None, :]
    lrgb = scene.colors[:, CK["light"], None, :]
    amb = dec[:, DK["ambient"], None, None]
    ndl = (nrm * light).sum(-1, keepdim=True)
    diffuse = ((ndl + 0.3) / 1.3).clamp(min=0)
    hemi = 0.8 + 0.2 * nrm[..., 1:2]
    h = torch.nn.functional.normalize(light - dirs, dim=-1)
    table = torch.zeros(len(C), 2, device=dev)
    for c, (strength, exponent) in _SPEC.items():
        table[int(c)] = torch.tensor([strength, exponent])
    ks, shin = table[cls.long()].unbind(-1)
    spec = ks[..., None] * (nrm * h).sum(-1, keepdim=True).clamp(min=0).pow(shin[..., None])
    return albedo * (amb * hemi + (1.0 - amb) * diffuse * lrgb) + spec * lrgb


def _background(scene: Scene, dirs: torch.Tensor) -> torch.Tensor:
    """Flat, gradient or texture backdrop as a function of the world ray direction."""
    dec = scene.decal
    kind = dec[:, DK["background"], None, None]
    c1, c2 = scene.colors[:, CK["bg1"], None, :], scene.colors[:, CK["bg2"], None, :]
    dx, dy = dirs[..., 0:1], dirs[..., 1:2]
    grad = (0.5 + 4.0 * dy + 1.0 * dx).clamp(0, 1)
    tex = 0.5 + 0.5 * torch.sin(55.0 * dx + 4.0 * torch.sin(35.0 * dy)) * torch.sin(45.0 * dy)
    w = torch.where(kind == 0, torch.zeros_like(grad), torch.where(kind == 1, grad, tex))
    return _mix(c1, c2, w)


def _lens_overlay(
    scene: Scene, hits: _Hits, origin: torch.Tensor, dirs: torch.Tensor, rgb: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Composite the lens layer over the opaque image. Returns rgb, lens mask, lens t, lens normal."""
    dec = scene.decal
    lens_on = torch.isfinite(hits.lens_t) & (hits.lens_t < hits.t)
    t = torch.where(lens_on, hits.lens_t, BACKGROUND_DEPTH)
    x = origin[:, None, :] + t[..., None] * dirs
    slot = hits.lens_slot + NUM_OPAQUE
    nrm = _normal_at(scene, slot, x, dirs)
    c = _gather(scene.center, slot)
    # In-plane elliptical radius of the hit on the (nearly frontal) lens disc.
    lx, ly = scene.quad[:, int(Slot.LENS_L), 0, 0], scene.quad[:, int(Slot.LENS_L), 1, 1]
    rho2 = (x[..., 0] - c[..., 0]) ** 2 * lx[:, None] + (x[..., 1] - c[..., 1]) ** 2 * ly[:, None]
    rect_rim = (dec[:, DK["frame_rect"], None] > 0) & ((x[..., 1] - c[..., 1]).abs() * ly[:, None].sqrt() > 0.6)
    rim = (rho2 > 0.84 ** 2) | rect_rim
    frame_cls = torch.full_like(hits.slot, int(C.EYEGLASSES), dtype=torch.uint8)
    frame_col = _light(scene, scene.colors[:, CK["frame"], None, :].expand_as(x), frame_cls, nrm, dirs)
    light = torch.nn.functional.normalize(dec[:, DK["light_x"]: DK["light_z"] + 1], dim=-1)[:, None, :]
    h = torch.nn.functional.normalize(light - dirs, dim=-1)
    glint = (nrm * h).sum(-1, keepdim=True).clamp(min=0).pow(60.0)
    sun = dec[:, DK["glasses"], None, None] == 2
    clear_col = rgb * 0.9 + 0.04 + 0.5 * glint
    sun_col = rgb * 0.12 + torch.tensor([0.04, 0.04, 0.05], device=dirs.device) + 0.7 * glint
    glass = torch.where(sun, sun_col, clear_col)
    out = torch.where(lens_on[..., None], torch.where(rim[..., None], frame_col, glass), rgb)
    return out, lens_on, t, nrm


def render_scene(scene: Scene, labels: torch.Tensor, resolution: int) -> RenderOutput:
    """Render one chunk. labels (N,25) on the scene's device; no supersampling."""
    origins, dirs = camera.rays(labels, resolution)
    origin = origins[:, 0]
    hits = intersect(scene, origin, dirs)
    albedo, cls, nrm, x, has = _shade_surface(scene, hits, origin, dirs)
    rgb = _light(scene, albedo, cls, _skin_shading_normal(scene, hits.slot, x, nrm), dirs)
    rgb = torch.where(has[..., None], rgb, _background(scene, dirs))
    rgb, lens_on, lens_t, lens_n = _lens_overlay(scene, hits, origin, dirs, rgb)
    cls = torch.where(lens_on, int(C.EYEGLASSES), cls)
    depth = torch.where(lens_on, lens_t, torch.where(has, hits.t, BACKGROUND_DEPTH))
    nrm = torch.where(lens_on[..., None], lens_n, torch.where(has[..., None], nrm, 0.0))
    alpha = (has | lens_on).float()
    n, r = labels.shape[0], resolution

    def img(v: torch.Tensor) -> torch.Tensor:
        return v.reshape(n, r, r, -1).permute(0, 3, 1, 2).contiguous()

    return RenderOutput(
        rgb=img(rgb.clamp(0, 1)), depth=img(depth[..., None]), normal=img(nrm), alpha=img(alpha[..., None]),
        label=cls.reshape(n, r, r),
    )


def render(
    heads: Sequence[HeadParams],
    labels: torch.Tensor,
    resolution: int,
    supersample: int = 1,
    device: torch.device | str | None = None,
) -> RenderOutput:
    """Render heads through EG3D cameras.

    Args:
        heads: N attribute records.
        labels: ``(N, 25)`` camera labels (engine/camera.py convention).
        resolution: image side R (>= 4).
        supersample: s >= 1; RGB and alpha average an s x s grid of sub-pixel rays; depth,
            normal and label come from the pixel-centre ray (hard labels).
        device: where to render (default: labels' device).

    Returns:
        :class:`RenderOutput` on ``device`` (rgb (N,3,R,R), depth (N,1,R,R), normal (N,3,R,R),
        alpha (N,1,R,R), label (N,R,R) uint8).
    """
    if labels.ndim != 2 or labels.shape[1] != camera.LABEL_SIZE:
        raise ValueError(f"labels must be (N, 25), got {tuple(labels.shape)}")
    if len(heads) != labels.shape[0]:
        raise ValueError(f"{len(heads)} heads but {labels.shape[0]} camera labels")
    if resolution < 4:
        raise ValueError(f"resolution must be >= 4, got {resolution}")
    if supersample < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    dev = torch.device(device) if device is not None else labels.device
    labels = labels.to(device=dev, dtype=torch.float32)
    per = max(1, CHUNK_ELEMENTS // (NUM_SLOTS * resolution * resolution * supersample * supersample))
    outs: list[RenderOutput] = []
    with torch.no_grad():
        for i in range(0, len(heads), per):
            scene = build_scene(list(heads[i: i + per]), dev)
            lab = labels[i: i + per]
            out = render_scene(scene, lab, resolution)
            if supersample > 1:
                hi = render_scene(scene, lab, resolution * supersample)
                out.rgb = torch.nn.functional.avg_pool2d(hi.rgb, supersample)
                out.alpha = torch.nn.functional.avg_pool2d(hi.alpha, supersample)
            outs.append(out)
    return RenderOutput(
        **{f: torch.cat([getattr(o, f) for o in outs]) for f in ("rgb", "depth", "normal", "alpha", "label")}
    )


__all__ = ["BACKGROUND_DEPTH", "LENS_SLOTS", "RenderOutput", "render", "render_scene", "intersect"]
