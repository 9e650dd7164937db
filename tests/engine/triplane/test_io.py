from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.bundle import BundleError, StyleEntry
from engine.triplane.generator import TriplaneGenerator
from engine.triplane.io import load_generator, save_generator
from engine.triplane.renderer import RenderNoise
from tests.engine.triplane.conftest import cameras


def test_generator_bundle_round_trip(micro: TriplaneGenerator, tmp_path: Path) -> None:
    micro.mapping.w_avg.normal_()
    direction = torch.randn(micro.stylespace.size)
    save_generator(
        tmp_path,
        micro,
        preset="micro",
        provenance={"trainer": "none (random init)"},
        styles={"smile": direction},
        style_entries={"smile": StyleEntry(name="smile", kind="direction", space="s")},
    )
    loaded, bundle = load_generator(tmp_path)
    assert loaded.config == micro.config
    ref, got = micro.state_dict(), loaded.state_dict()
    assert ref.keys() == got.keys()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert torch.equal(bundle.styles["smile"], direction)
    z, cam = torch.randn(1, 16), cameras(1)
    noise = RenderNoise.deterministic(micro.config.render, batch=1)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(z=z, camera=cam, noise=noise).image,
            micro(z=z, camera=cam, noise=noise).image,
            rtol=0,
            atol=0,
        )


def test_config_that_does_not_fit_the_weights(micro: TriplaneGenerator, tmp_path: Path) -> None:
    save_generator(tmp_path, micro, preset="micro")
    path = tmp_path / "manifest.json"
    m = json.loads(path.read_text())
    m["config"]["decoder"]["hidden"] = 9
    path.write_text(json.dumps(m))
    with pytest.raises(BundleError, match="component 'decoder'.*wrong shape for 'fc0.weight'"):
        load_generator(tmp_path)
    m["config"]["decoder"]["hidden"] = "wide"
    path.write_text(json.dumps(m))
    with pytest.raises(BundleError, match="bad generator config"):
        load_generator(tmp_path)
