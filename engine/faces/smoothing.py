"""One Euro filter (Casiez, Roussel & Vogel, CHI 2012), vectorised over arrays.

A low-pass whose cutoff rises with speed: at rest it smooths hard (little jitter), in motion
it opens up (little lag). Per element:

* ``dx = (x − x̂_prev) / dt``, smoothed by a low-pass at ``d_cutoff`` Hz → ``dx̂``;
* ``cutoff = min_cutoff + beta·|dx̂|``;
* ``x̂ = x̂_prev + α(cutoff)·(x − x̂_prev)`` with ``α = 1 / (1 + 1/(2π·cutoff·dt))``.

``min_cutoff`` (Hz) sets the smoothing at rest, ``beta`` (per unit of the signal's speed)
how fast it opens up, ``d_cutoff`` (Hz) the smoothing of the speed estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class OneEuroParams:
    min_cutoff: float = 1.0
    """Cutoff at rest, Hz: lower = steadier when still."""
    beta: float = 0.05
    """Speed coefficient, 1/(signal unit): higher = less lag when moving."""
    d_cutoff: float = 1.0
    """Cutoff of the speed estimate, Hz."""

    def __post_init__(self) -> None:
        if self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
            raise ValueError(f"invalid One Euro parameters: {self}")


def _alpha(cutoff: FloatArray | float, dt: float) -> FloatArray:
    return np.asarray(1.0 / (1.0 + 1.0 / (2.0 * math.pi * np.asarray(cutoff) * dt)))


class OneEuroFilter:
    """Filters a fixed-shape array signal sampled at (possibly irregular) timestamps."""

    def __init__(self, params: OneEuroParams | None = None, default_dt: float = 1.0 / 30.0) -> None:
        self.params = params or OneEuroParams()
        self.default_dt = default_dt
        self._x: FloatArray | None = None
        self._dx: FloatArray | None = None
        self._t: float | None = None

    def reset(self) -> None:
        self._x = self._dx = None
        self._t = None

    @property
    def value(self) -> FloatArray | None:
        return self._x

    def __call__(self, x: npt.ArrayLike, t: float) -> FloatArray:
        xa = np.asarray(x, dtype=np.float64)
        if self._x is None or self._x.shape != xa.shape or self._t is None or self._dx is None:
            self._x, self._dx, self._t = xa.copy(), np.zeros_like(xa), t
            return xa.copy()
        dt = t - self._t
        if not dt > 0:  # repeated or out-of-order timestamps: assume the nominal frame interval
            dt = self.default_dt
        p = self.params
        dx = (xa - self._x) / dt
        self._dx = self._dx + _alpha(p.d_cutoff, dt) * (dx - self._dx)
        cutoff = p.min_cutoff + p.beta * np.abs(self._dx)
        self._x = self._x + _alpha(cutoff, dt) * (xa - self._x)
        self._t = t
        return self._x.copy()
