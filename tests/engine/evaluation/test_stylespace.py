"""The S-channel report on a random-initialised tiny core (a few channels, 2 heads, 16^2 renders)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from engine.evaluation.stylespace import CLASS_NAMES, _class_stats, channel_report, report_png
from engine.training.attributes import AttributeEmbedding
from engine.triplane import presets
from engine.triplane.core import CoreModel
from engine.triplane.encoder import EncoderConfig, TriplaneEncoder, WEncoder
from engine.triplane.generator import TriplaneGenerator
from engine.triplane.raw import RawImage


@pytest.fixture(scope="module")
def core() -> CoreModel:
    torch.manual_seed(0)
    g = TriplaneGenerator(presets.tiny()).eval()
    core = CoreModel(generator=g, encoder=TriplaneEncoder(EncoderConfig()).eval(),
                     w_encoder=WEncoder(num_ws=g.num_ws, w_dim=64, input_size=64).eval(),
                     embedding=AttributeEmbedding(z_dim=64).eval(), render_resolution=32, provenance={})
    return core


def pick_channels(core: CoreModel) -> list[int]:
    """First channel of three editable layers at different resolutions, plus one more in the last."""
    table = core.generator.stylespace
    convs = [sl for sl in table.slices if sl.component == "synthesis" and sl.kind == "conv"]
    return [convs[0].offset, convs[len(convs) // 2].offset, convs[-1].offset, convs[-1].offset + 3]


@pytest.fixture(scope="module")
def report(core: CoreModel) -> dict:
    return channel_report(core, heads=2, size=16, channels=pick_channels(core), std_heads=8, batch_items=4,
                          progress=False)


def test_report_keys_and_valid_channels(core: CoreModel, report: dict) -> None:
    chans = pick_channels(core)
    assert {"n_channels", "strength", "heads", "per_class", "channels"} <= set(report)
    assert report["n_channels"] == len(chans) and report["heads"] == 2 and report["strength"] == 3.0
    assert [r["channel"] for r in report["channels"]] == chans
    table = core.generator.stylespace
    assert report["per_class"], "every channel is attributed to some class"
    listed = 0
    for name, entries in report["per_class"].items():
        assert name in CLASS_NAMES
        assert 1 <= len(entries) <= 5
        assert [e["rgb_change"] for e in entries] == sorted((e["rgb_change"] for e in entries), reverse=True)
        for e in entries:
            assert set(e) >= {"channel", "layer", "rgb_change", "area_change"}
            assert e["channel"] in chans
            assert e["layer"] == table.locate(e["channel"])[0].name
            assert -1.0 <= e["area_change"] <= 1.0
        listed += len(entries)
    assert listed == len(chans)
    for r in report["channels"]:
        assert r["class"] in report["per_class"]
    json.dumps(report)  # JSON-ready


def test_pushing_a_channel_changes_the_render(report: dict) -> None:
    changes = [r["rgb_change"] for r in report["channels"]]
    assert all(c >= 0 for c in changes)
    assert max(changes) > 0
    assert max(r["rgb_mean"] for r in report["channels"]) > 0


def test_zero_strength_changes_nothing(core: CoreModel) -> None:
    rep = channel_report(core, heads=1, size=8, strength=0.0, channels=pick_channels(core)[:2], std_heads=4,
                         progress=False)
    # Batched renders differ from the unbatched reference only by float rounding.
    assert all(r["rgb_change"] < 1e-6 and r["area_change"] == 0 for r in rep["channels"])


def _raw(color: torch.Tensor, classes: list[int]) -> RawImage:
    """1 head, 2x2 pixels (row-major ``classes``), K = 3; class 0 = transparent."""
    op = torch.tensor([0.0 if c == 0 else 1.0 for c in classes]).reshape(1, 1, 2, 2)
    sem = torch.zeros(1, 3, 2, 2)
    for i, c in enumerate(classes):
        if c:
            sem[0, c, i // 2, i % 2] = 5.0
    return RawImage(color=color, opacity=op, depth=torch.zeros(1, 1, 2, 2), semantics=sem)


def test_class_stats_on_hand_made_renders() -> None:
    base_color = torch.zeros(1, 3, 2, 2)
    onehot = torch.nn.functional.one_hot(torch.tensor([[[1, 0], [0, 0]]]), 3).permute(0, 3, 1, 2).float()
    share = onehot.mean(dim=(0, 2, 3))
    edited = base_color.clone()
    edited[0, :, 0, 0] = 0.3  # colour changes on the class-1 pixel only
    rgb, area = _class_stats(_raw(edited, [1, 2, 0, 0]), base_color, onehot, share, n_edits=1)
    assert rgb[0, 1].item() == pytest.approx(0.3)
    assert rgb[0, 0].item() == 0.0
    assert torch.isnan(rgb[0, 2])  # class 2 is absent from the unedited render
    assert area[0].tolist() == pytest.approx([-0.25, 0.0, 0.25])  # pixel (0, 1): background -> class 2


def test_channel_out_of_range(core: CoreModel) -> None:
    with pytest.raises(ValueError, match="out of range"):
        channel_report(core, heads=1, size=8, channels=[core.generator.stylespace.size], progress=False)


def test_report_png(core: CoreModel, report: dict, tmp_path: Path) -> None:
    path = tmp_path / "report.png"
    report_png(core, report, path)
    im = Image.open(path)
    rows = len(report["per_class"])
    # 16^2 tiles, 2 px gaps, x4 upscaling: label + 2 heads x (base, +, -) = 7 columns.
    assert im.size == (7 * 18 * 4, rows * 18 * 4)
