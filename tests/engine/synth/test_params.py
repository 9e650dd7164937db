import dataclasses
import json

import pytest

from engine.synth import params as P


def test_sampling_is_deterministic_by_seed():
    assert P.sample_head(7, 3) == P.sample_head(7, 3)
    assert P.sample_head(7, 3) != P.sample_head(8, 3)
    assert P.sample_views(7, 3, 4) == P.sample_views(7, 3, 4)


def test_attribute_streams_are_independent():
    # Changing one group's frequencies must not shift any other group's draw.
    a = P.sample_head(5, 11, P.Prior(glasses={"none": 1.0}))
    b = P.sample_head(5, 11, P.Prior(glasses={"sunglasses": 1.0}))
    assert a.glasses.kind == "none" and b.glasses.kind == "sunglasses"
    assert dataclasses.replace(b, glasses=a.glasses) == a


def test_record_round_trips_through_json():
    h = P.sample_head(1, 2)
    assert P.HeadParams.from_dict(json.loads(json.dumps(h.to_dict()))) == h
    with pytest.raises(ValueError):
        P.HeadParams.from_dict({"nonsense": 1})


def test_pose_prior_spread():
    poses = [p for i in range(300) for p in P.sample_views(0, i, 1)]
    yaws = [p.yaw_deg for p in poses]
    pitches = [p.pitch_deg for p in poses]
    assert 14 < float(__import__("numpy").std(yaws)) < 26
    assert 6 < float(__import__("numpy").std(pitches)) < 13
    assert max(abs(y) for y in yaws) <= 60 and max(abs(p) for p in pitches) <= 30


def test_captions_agree_with_attributes():
    for i in range(200):
        h = P.sample_head(3, i)
        c = P.caption(h)
        assert c.startswith("a face with ")
        assert ("sunglasses" in c) == (h.glasses.kind == "sunglasses")
        assert ("eyeglasses" in c) == (h.glasses.kind == "clear")
        assert ("a bald head" in c) == (h.hair.style == "bald")
        if h.hair.style != "bald":
            assert f"{h.hair.color} hair" in c
        assert ("in a bun" in c) == (h.hair.style == "bun")
        assert ("long " in c) == (h.hair.style == "long")
        assert ("stubble" in c) == (h.beard.style == "stubble")
        assert ("beard" in c) == (h.beard.style == "full")
        assert ("a smile" in c) == (h.expression.smile > 0.5)
        assert ("an open mouth" in c) == (h.expression.mouth_open > 0.3)
        assert ("raised eyebrows" in c) == (h.expression.brow_raise > 0.5)
        assert c.endswith(f"{P.skin_name(h.skin_tone)} skin")


def test_caption_example():
    h = P.HeadParams(
        hair=P.Hair(style="short", color="blond"), glasses=P.Glasses(kind="clear"),
        expression=P.Expression(smile=0.9), skin_tone=0.1,
    )
    assert P.caption(h) == "a face with short blond hair, eyeglasses, a smile and light skin"


@pytest.mark.parametrize("kind", P.EDIT_KINDS)
def test_edits_change_exactly_their_group(kind):
    rng = __import__("numpy").random.default_rng(0)
    for i in range(20):
        h = P.sample_head(9, i)
        e = P.make_edit(h, kind, rng)
        assert e != h
        changed = {f.name for f in dataclasses.fields(h) if getattr(h, f.name) != getattr(e, f.name)}
        group = {"hair_color": "hair", "hairstyle": "hair", "glasses": "glasses", "beard": "beard",
                 "expression": "expression", "skin_tone": "skin_tone"}[kind]
        assert changed == {group}


def test_prior_validation():
    with pytest.raises(ValueError):
        P.Prior(hairstyle={"mohawk": 1.0}).validate()
    with pytest.raises(ValueError):
        P.Prior(p_smile=2.0).validate()
