import numpy as np
import pytest

from engine.faces import OneEuroFilter, OneEuroParams
from engine.faces.tracker import TrackerSettings

FPS = 30.0


def trajectory(n: int = 600) -> np.ndarray:
    """Head-like motion in pixels: holds and slow constant-speed moves (2 px/frame = 60 px/s)."""
    x = np.zeros(n)
    v = 0.0
    for i in range(1, n):
        phase = (i // 75) % 4  # 2.5 s segments: hold, move right, hold, move left
        v = {0: 0.0, 1: 2.0, 2: 0.0, 3: -2.0}[phase]
        x[i] = x[i - 1] + v
    return x


def run(params: OneEuroParams, signal: np.ndarray) -> np.ndarray:
    f = OneEuroFilter(params)
    return np.array([f(s, i / FPS)[()] for i, s in enumerate(signal)])


def test_one_euro_cuts_jitter_with_little_lag():
    clean = trajectory()
    noisy = clean + np.random.default_rng(1).normal(0, 1.0, clean.shape)
    out = run(TrackerSettings().landmarks, noisy)
    seg = np.arange(len(clean)) // 75 % 4
    settle = (np.arange(len(clean)) % 75) >= 20  # skip the first 20 frames after each change
    hold = (seg % 2 == 0) & settle
    move = (seg % 2 == 1) & settle
    jitter_raw = np.std((noisy - clean)[hold])
    jitter_out = np.std((out - clean)[hold])
    assert jitter_raw / jitter_out >= 3.0, (jitter_raw, jitter_out)
    # Lag in frames while moving: how far behind the clean path the output runs, over its speed.
    speed = np.abs(np.gradient(clean))[move]
    lag = np.mean(np.sign(np.gradient(clean))[move] * (clean - out)[move] / speed)
    assert lag <= 1.0, lag


def test_one_euro_passes_constants_and_restarts_on_reset():
    f = OneEuroFilter(OneEuroParams())
    for i in range(10):
        np.testing.assert_allclose(f(np.array([3.0, -2.0]), i / FPS), [3.0, -2.0])
    f.reset()
    np.testing.assert_allclose(f(np.array([100.0, 0.0]), 1.0), [100.0, 0.0])
    # A step is smoothed (not passed at once) and approached monotonically.
    a = f(np.array([0.0, 0.0]), 1.0 + 1 / FPS)[0]
    b = f(np.array([0.0, 0.0]), 1.0 + 2 / FPS)[0]
    assert 0.0 < b < a < 100.0


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError):
        OneEuroParams(min_cutoff=0.0)
    with pytest.raises(ValueError):
        OneEuroParams(beta=-1.0)
