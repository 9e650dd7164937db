"""The S space (style space): every modulated layer's S codes concatenated, and where each one lies.

The flat vector is ``s_codes (N, S)`` (``s`` where it is the only one around); each layer's
slice of it is that layer's S codes (its modulation vector ``A(w)``). This is the generator's
S space, not a user-facing style. SAT3D edits ``s`` channel-wise and must leave toRGB and
super-resolution channels alone; :meth:`StyleSpaceTable.editable_mask` gives exactly the
channels it may touch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import Tensor

Component = Literal["synthesis", "superres"]
LayerKind = Literal["conv", "torgb"]


@dataclass(frozen=True)
class StyleSpaceSlice:
    """One layer's S codes inside the flat S vector."""

    name: str
    """Dotted layer name, e.g. ``synthesis.b64.conv0``."""
    component: Component
    """Which network consumes it."""
    kind: LayerKind
    """'conv' (modulated, demodulated 3x3) or 'torgb' (1x1, not demodulated)."""
    w_index: int
    """Which of the ws feeds its affine."""
    resolution: int
    """Output resolution of the layer."""
    offset: int
    """First index in S."""
    size: int
    """Number of channels (= the layer's input channels)."""

    @property
    def stop(self) -> int:
        return self.offset + self.size


class StyleSpaceTable:
    """Ordered, contiguous layout of S: synthesis layers first, then super-resolution."""

    def __init__(self, slices: Sequence[StyleSpaceSlice]) -> None:
        offset = 0
        for sl in slices:
            if sl.offset != offset or sl.size <= 0:
                raise ValueError(
                    f"S slice {sl.name} is not contiguous (offset {sl.offset}, expected {offset})"
                )
            offset = sl.stop
        self.slices: tuple[StyleSpaceSlice, ...] = tuple(slices)
        self.size = offset

    def __len__(self) -> int:
        return len(self.slices)

    def component_range(self, component: Component) -> tuple[int, int]:
        """[start, stop) of a component's entries (each component is contiguous)."""
        parts = [sl for sl in self.slices if sl.component == component]
        if not parts:
            return (0, 0)
        return parts[0].offset, parts[-1].stop

    def component_slices(self, component: Component) -> list[StyleSpaceSlice]:
        return [sl for sl in self.slices if sl.component == component]

    def locate(self, index: int) -> tuple[StyleSpaceSlice, int]:
        """The layer and channel of S entry ``index``."""
        if not 0 <= index < self.size:
            raise IndexError(f"S index {index} out of range [0, {self.size})")
        for sl in self.slices:
            if index < sl.stop:
                return sl, index - sl.offset
        raise AssertionError("unreachable: slices cover [0, size)")

    def editable_mask(self, *, include_torgb: bool = False, include_superres: bool = False) -> Tensor:
        """Bool ``(size,)``: True where SAT3D may edit (by default conv channels of the backbone)."""
        mask = torch.zeros(self.size, dtype=torch.bool)
        for sl in self.slices:
            ok = (sl.kind != "torgb" or include_torgb) and (sl.component != "superres" or include_superres)
            mask[sl.offset : sl.stop] = ok
        return mask

    def split(self, s: Tensor, *, component: Component | None = None) -> list[Tensor]:
        """``s (N, size)`` (or ``(N, component size)`` when ``component`` is given) -> per-layer ``(N, size_i)``."""
        slices = list(self.slices) if component is None else self.component_slices(component)
        start = 0 if component is None else self.component_range(component)[0]
        expected = sum(sl.size for sl in slices)
        if s.ndim != 2 or s.shape[1] != expected:
            raise ValueError(f"s must be (N, {expected}), got {tuple(s.shape)}")
        return [s[:, sl.offset - start : sl.stop - start] for sl in slices]

    def to_json(self) -> list[dict[str, Any]]:
        return [asdict(sl) for sl in self.slices]


def build_table(layers: Sequence[tuple[str, Component, LayerKind, int, int, int]]) -> StyleSpaceTable:
    """Table from ``(name, component, kind, w_index, resolution, size)`` rows in S order."""
    slices = []
    offset = 0
    for name, component, kind, w_index, resolution, size in layers:
        slices.append(StyleSpaceSlice(name, component, kind, w_index, resolution, offset, size))
        offset += size
    return StyleSpaceTable(slices)
