import numpy as np
import pytest
import torch

from engine import camera
from engine.synth import params as P
from engine.synth.dataset import Job, render_jobs
from engine.synth.head import Slot, head_arrays
from engine.synth.render import BACKGROUND_DEPTH, render

C = P.SemanticClass


def _labels(poses):
    return torch.tensor(np.stack([camera.orbit_label(y, p) for y, p in poses]), dtype=torch.float32)


def test_outputs_shapes_dtypes_ranges_and_determinism():
    heads = [P.sample_head(0, i) for i in range(3)]
    lab = _labels([(0, 0), (20, -5), (-30, 10)])
    a = render(heads, lab, 40)
    b = render(heads, lab, 40)
    assert a.rgb.shape == (3, 3, 40, 40) and a.rgb.dtype == torch.float32
    assert a.depth.shape == (3, 1, 40, 40) and a.normal.shape == (3, 3, 40, 40)
    assert a.alpha.shape == (3, 1, 40, 40) and a.label.shape == (3, 40, 40) and a.label.dtype == torch.uint8
    assert 0 <= float(a.rgb.min()) and float(a.rgb.max()) <= 1
    assert int(a.label.max()) < P.NUM_CLASSES
    bg = a.label == C.BACKGROUND
    assert torch.all(a.depth[:, 0][bg] == BACKGROUND_DEPTH) and torch.all(a.alpha[:, 0][bg] == 0)
    fg = ~bg
    assert torch.all(a.depth[:, 0][fg] > 2.0) and torch.all(a.depth[:, 0][fg] < 3.6)
    n = a.normal.norm(dim=1)
    assert torch.allclose(n[fg], torch.ones_like(n[fg]), atol=1e-4) and torch.all(n[bg] == 0)
    for f in ("rgb", "depth", "normal", "alpha", "label"):
        assert torch.equal(getattr(a, f), getattr(b, f))
    ss = render(heads, lab, 40, supersample=2)
    assert torch.equal(ss.label, a.label) and ss.rgb.shape == a.rgb.shape


def test_lookat_at_centre_and_depth_matches_geometry():
    head = P.HeadParams()
    lab = camera.orbit_label(0, 0)
    assert camera.project(np.array([camera.LOOKAT]), lab)[0] == pytest.approx([0.5, 0.5])
    out = render([head], torch.tensor(lab[None], dtype=torch.float32), 64)
    # The pivot (0, 0, 0.2) sits on the nose bridge: the centre pixels see the nose.
    assert set(out.label[0, 31:33, 31:33].flatten().tolist()) == {int(C.NOSE)}
    # Depth at the centre = radius minus the face's front extent there, from the primitive itself.
    o, d = camera.rays(torch.tensor(lab[None], dtype=torch.float32), 64)
    m = 31 * 64 + 31
    depth = float(out.depth[0, 0, 31, 31])
    x = (o[0, m] + depth * d[0, m]).numpy().astype(np.float64)
    prims = head_arrays(head)[0]
    s = int(Slot.NOSE_BRIDGE)
    v = (x - prims.center[s]) @ prims.quad[s] @ (x - prims.center[s])
    assert v == pytest.approx(1.0, abs=1e-3)
    assert 2.7 - 0.24 < depth < 2.7 - 0.15


@pytest.mark.parametrize("yaw", [30.0, -30.0])
def test_yaw_moves_nose_to_matching_side(yaw):
    head = P.HeadParams()
    lab = camera.orbit_label(yaw, 0)
    out = render([head], torch.tensor(lab[None], dtype=torch.float32), 64)
    cols = torch.nonzero(out.label[0] == C.NOSE)[:, 1].float()
    face_cols = torch.nonzero(out.label[0] != C.BACKGROUND)[:, 1].float()
    nose_u = (float(cols.mean()) + 0.5) / 64
    # engine/camera.py: positive yaw = camera towards the person's left (+x); the face then
    # looks towards image left, so the nose sits left of the head's centre.
    tip_u = camera.project(np.array([[0.0, -0.05, 0.2]]), lab)[0, 0]
    centre_u = camera.project(np.array([[0.0, 0.0, 0.0]]), lab)[0, 0]
    assert abs(nose_u - tip_u) < 3 / 64
    if yaw > 0:
        assert tip_u < centre_u and float(cols.mean()) < float(face_cols.mean())
    else:
        assert tip_u > centre_u and float(cols.mean()) > float(face_cols.mean())


def test_every_class_appears_in_200_images():
    n = 200
    heads = [P.sample_head(11, i) for i in range(n)]
    poses = [P.sample_views(11, i, 1)[0] for i in range(n)]
    out = render(heads, _labels([(p.yaw_deg, p.pitch_deg) for p in poses]), 48)
    present = set(torch.unique(out.label).tolist())
    assert present == set(range(P.NUM_CLASSES)), sorted(set(range(P.NUM_CLASSES)) - present)
    # Attributes agree with pixels: glasses and beards are visible exactly when present.
    for i, h in enumerate(heads):
        has = set(torch.unique(out.label[i]).tolist())
        assert (int(C.EYEGLASSES) in has) == (h.glasses.kind != "none")
        if h.beard.style == "none":
            assert int(C.BEARD) not in has
        if h.hair.style == "bald":
            assert int(C.HAIR) not in has


@pytest.mark.parametrize("kind", P.EDIT_KINDS)
def test_edit_pairs_differ_only_inside_edited_masks(kind):
    rng = np.random.default_rng(42)
    jobs = []
    for i in range(12):
        before = P.sample_head(21, i)
        after = P.make_edit(before, kind, rng)
        pose = P.Pose(float(rng.uniform(-40, 40)), float(rng.uniform(-15, 15)))
        meta = {"edit": kind}
        jobs += [Job(before, pose, {**meta, "side": "before"}), Job(after, pose, {**meta, "side": "after"})]
    arr = render_jobs(jobs, 48)
    changed_any = False
    for i in range(0, len(jobs), 2):
        cls = P.edit_classes(kind, jobs[i].head, jobs[i + 1].head)
        lb, la = arr["labels"][i], arr["labels"][i + 1]
        mask = np.isin(lb, [int(c) for c in cls]) | np.isin(la, [int(c) for c in cls])
        keep = ~mask
        for key in ("images", "depth", "labels", "alpha"):
            a, b = arr[key][i], arr[key][i + 1]
            assert np.array_equal(a[keep], b[keep]), (kind, i, key)
        changed_any |= not np.array_equal(arr["images"][i], arr["images"][i + 1])
    assert changed_any


def test_render_rejects_bad_input():
    lab = _labels([(0, 0)])
    with pytest.raises(ValueError):
        render([P.HeadParams(), P.HeadParams()], lab, 32)
    with pytest.raises(ValueError):
        render([P.HeadParams()], lab[:, :16], 32)
    with pytest.raises(ValueError):
        render([P.HeadParams()], lab, 32, supersample=0)
