from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine.faces.landmarks import LandmarkDetector

MEDIA = Path(__file__).resolve().parents[3] / ".." / "shared" / "media"


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (dev extra) provides the astronaut photo")
    return np.ascontiguousarray(skimage_data.astronaut())


@pytest.fixture(scope="session")
def detector() -> Iterator[LandmarkDetector]:
    with LandmarkDetector(tracking=False, max_faces=4) as d:
        yield d


@pytest.fixture(scope="session")
def media() -> Path:
    if not MEDIA.is_dir():
        pytest.skip(f"real face media not found at {MEDIA} (only present on the project's work machines)")
    return MEDIA.resolve()
