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
