import numpy as np
import pytest

from engine.api import StyleContext
from engine.registry import build_engine
from engine.styles.basic import Bronze, PassThrough


def _ctx(intensity: float) -> StyleContext:
    return StyleContext(intensity=intensity, timestamp=0.0, state=None)


@pytest.mark.parametrize("shape", [(480, 640, 3), (479, 641, 3), (1, 1, 3), (9, 17, 3)])
def test_bronze_keeps_shape_and_grades_warm(shape):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, shape, dtype=np.uint8)
    out = Bronze().apply(frame, _ctx(1.0))
    assert out.shape == frame.shape and out.dtype == np.uint8
    r, g, b = (out[..., c].astype(float).mean() for c in range(3))
    assert r > g > b  # a metal palette: red over green over blue everywhere


def test_bronze_intensity_blends_between_input_and_grade():
    frame = np.full((8, 8, 3), (40, 90, 200), dtype=np.uint8)
    b = Bronze()
    zero, half, full = (b.apply(frame, _ctx(i)).astype(int) for i in (0.0, 0.5, 1.0))
    np.testing.assert_array_equal(zero, frame)
    np.testing.assert_allclose(half, (frame.astype(int) + full) / 2, atol=1)


def test_pass_through_is_identity_and_registry_orders_styles():
    frame = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    assert PassThrough().apply(frame, _ctx(0.0)) is frame
    names = build_engine().registry.names()
    assert names[:2] == ["none", "bronze"]


def test_build_engine_validates_bundle_and_device(tmp_path, caplog):
    from engine.api import EngineError
    from engine.bundle import BundleError
    from engine.triplane.generator import TriplaneGenerator
    from engine.triplane.io import save_generator
    from engine.triplane.presets import tiny

    with pytest.raises(BundleError, match="no manifest"):
        build_engine(tmp_path / "missing")
    good = tmp_path / "tiny"
    save_generator(good, TriplaneGenerator(tiny()), preset="tiny")
    engine = build_engine(good)
    assert "none" in engine.registry and "valid" in caplog.text
    (good / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        build_engine(good)
    for bad in ("gpu", "cuda:99"):
        with pytest.raises(EngineError):
            build_engine(device=bad)
