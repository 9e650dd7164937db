from __future__ import annotations

import pytest
import torch

from engine.triplane.config import GeneratorConfig, config_from_dict, config_to_dict
from engine.triplane.generator import TriplaneGenerator
from engine.triplane.layers import ModulatedConv, fir_kernel, upsample2d
from engine.triplane.presets import eg3d, preset, tiny
from engine.triplane.renderer import RenderNoise
from tests.engine.triplane.conftest import cameras, micro_config


def _ws(g: TriplaneGenerator, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.randn(n, g.config.mapping.z_dim, generator=torch.Generator().manual_seed(seed))
    cam = cameras(n)
    return g.map(z=z, c=cam), cam


def test_stylespace_covers_every_entry_once(micro: TriplaneGenerator) -> None:
    table = micro.stylespace
    ws, _ = _ws(micro, 2)
    s = micro.affine(ws=ws)
    assert s.shape == (2, table.size)
    counts = torch.zeros(table.size, dtype=torch.int64)
    for sl in table.slices:
        counts[sl.offset : sl.stop] += 1
    assert torch.all(counts == 1)
    for i in range(table.size):
        sl, ch = table.locate(i)
        assert sl.offset + ch == i and 0 <= ch < sl.size
    with pytest.raises(IndexError):
        table.locate(table.size)
    # 5 backbone blocks (4..16 px: 2 + 3 + 3 layers) and 6 super-resolution layers.
    assert len(table) == 2 + 3 * 2 + 6
    mask = table.editable_mask()
    for sl in table.slices:
        editable = sl.kind == "conv" and sl.component == "synthesis"
        assert bool(mask[sl.offset : sl.stop].all()) == editable
        assert bool(mask[sl.offset : sl.stop].any()) == editable
    assert table.editable_mask(include_torgb=True, include_superres=True).all()


def test_w_index_of_each_slice_is_the_w_it_reads(micro: TriplaneGenerator) -> None:
    ws, _ = _ws(micro, 1)
    s0 = micro.affine(ws=ws)
    for k in range(micro.num_ws):
        bumped = ws.clone()
        bumped[:, k] += 1.0
        changed = (micro.affine(ws=bumped) != s0)[0]
        for sl in micro.stylespace.slices:
            assert bool(changed[sl.offset : sl.stop].any()) == (sl.w_index == k), (sl.name, k)


def test_eg3d_w_layout() -> None:
    g = TriplaneGenerator(eg3d())
    assert g.num_ws == 14
    by_name = {sl.name: sl for sl in g.stylespace.slices}
    assert [by_name[f"synthesis.b256.{n}"].w_index for n in ("conv0", "conv1", "torgb")] == [11, 12, 13]
    assert [by_name[f"synthesis.b4.{n}"].w_index for n in ("conv1", "torgb")] == [0, 1]
    assert by_name["synthesis.b128.conv0"].size == 512 and by_name["synthesis.b256.conv0"].size == 256
    assert by_name["synthesis.b256.conv1"].size == 128
    assert {sl.w_index for sl in g.stylespace.component_slices("superres")} == {13}
    assert by_name["superres.block0.conv0"].size == 32 and by_name["superres.block1.conv1"].size == 128


def test_rendering_from_affine_w_equals_synthesis_w(micro: TriplaneGenerator) -> None:
    ws, cam = _ws(micro, 2)
    ws = ws + torch.randn_like(ws) * 0.3  # distinct ws per layer, as after inversion
    with torch.no_grad():
        s = micro.affine(ws=ws)
        torch.testing.assert_close(micro.synthesis_from_s(s=s), micro.synthesis(ws=ws), rtol=0, atol=0)
        noise = RenderNoise.deterministic(micro.config.render, batch=2)
        a = micro.render_from_s(s=s, camera=cam, noise=noise)
        b = micro.render(ws=ws, camera=cam, noise=noise)
    for name in ("image", "image_raw", "depth", "opacity", "semantics"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0)


def test_editing_one_s_channel_changes_the_planes(micro: TriplaneGenerator) -> None:
    ws, _ = _ws(micro, 1)
    with torch.no_grad():
        s = micro.affine(ws=ws)
        base = micro.synthesis_from_s(s=s)
        idx = int(torch.nonzero(micro.stylespace.editable_mask())[3])
        edited = s.clone()
        edited[0, idx] += 2.0
        assert (micro.synthesis_from_s(s=edited) - base).abs().max() > 1e-4
        # Super-resolution entries do not reach the planes.
        a, b = micro.stylespace.component_range("superres")
        sr_edit = s.clone()
        sr_edit[:, a:b] += 1.0
        torch.testing.assert_close(micro.synthesis_from_s(s=sr_edit), base, rtol=0, atol=0)


def test_output_shapes(micro: TriplaneGenerator) -> None:
    z = torch.randn(2, 16)
    with torch.no_grad():
        out = micro(z=z, camera=cameras(2))
    assert out.image.shape == (2, 3, 32, 32)
    assert out.image_raw.shape == (2, 3, 8, 8) and out.features.shape == (2, 4, 8, 8)
    assert out.depth.shape == (2, 1, 8, 8) and out.opacity.shape == (2, 1, 8, 8)
    assert out.semantics.shape == (2, 5, 8, 8)
    assert torch.isfinite(out.image).all() and torch.isfinite(out.depth).all()
    assert (out.depth >= 2.25).all() and (out.depth <= 3.3 + 1.05 / 5).all()


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    g = TriplaneGenerator(micro_config()).train()
    out = g(z=torch.randn(2, 16), camera=cameras(2), noise_mode="random", sr_noise_mode="random")
    loss = out.image.square().mean() + out.semantics.square().mean() + out.depth.mean() + out.image_raw.mean()
    loss.backward()
    dead = [
        n
        for n, p in g.named_parameters()
        if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().max() == 0
    ]
    assert not dead


def test_batch_of_one_and_four_agree(micro: TriplaneGenerator) -> None:
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(5))
    cam = cameras(4)
    cfg = micro.config.render
    noise = RenderNoise.random(cfg, batch=4, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        batched = micro(z=z, camera=cam, noise=noise)
        for i in range(4):
            one = micro(
                z=z[i : i + 1],
                camera=cam[i : i + 1],
                noise=RenderNoise(jitter=noise.jitter[i : i + 1], importance_u=noise.importance_u[i : i + 1]),
            )
            torch.testing.assert_close(one.image, batched.image[i : i + 1], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(one.semantics, batched.semantics[i : i + 1], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(one.depth, batched.depth[i : i + 1], atol=1e-5, rtol=1e-5)


def test_fixed_seed_gives_identical_output() -> None:
    def run() -> torch.Tensor:
        torch.manual_seed(42)
        g = TriplaneGenerator(micro_config())
        with torch.no_grad():
            return g(z=torch.randn(1, 16), camera=cameras(1), noise_mode="random").image

    a, b = run(), run()
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.manual_seed(43)
    g = TriplaneGenerator(micro_config())
    with torch.no_grad():
        c = g(z=torch.randn(1, 16), camera=cameras(1), noise_mode="random").image
    assert (a - c).abs().max() > 1e-3


def test_truncation_to_w_avg(micro: TriplaneGenerator) -> None:
    micro.mapping.w_avg.fill_(0.25)
    ws = micro.map(z=torch.randn(3, 16), c=cameras(3), truncation_psi=0.0, truncation_cutoff=4)
    assert torch.all(ws[:, :4] == 0.25)
    assert not torch.all(ws[:, 4:] == 0.25)


def test_demodulation_is_scale_invariant() -> None:
    torch.manual_seed(0)
    conv = ModulatedConv(4, 6, w_dim=3, kernel_size=3, up=2)
    x, s = torch.randn(2, 4, 5, 5), torch.rand(2, 4) + 0.5
    y = conv.conv(x, s=s)
    assert y.shape == (2, 6, 10, 10)
    # d_o divides out any common scale of s, and the conv stays linear in x.
    torch.testing.assert_close(conv.conv(x, s=3 * s), y)
    torch.testing.assert_close(conv.conv(3 * x, s=s), 3 * y)
    assert (conv.conv(x, s=s * torch.tensor([3.0, 1, 1, 1])) - y).abs().max() > 1e-3


def test_fir_upsampling_preserves_constants_inside() -> None:
    up = upsample2d(torch.full((1, 2, 6, 6), 2.0), fir_kernel())
    assert up.shape == (1, 2, 12, 12)
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.full((1, 2, 8, 8), 2.0))


def test_presets_and_config_round_trip() -> None:
    for cfg in (tiny(), eg3d(semantic_classes=19)):
        assert config_from_dict(GeneratorConfig, config_to_dict(cfg)) == cfg
    assert eg3d().render.depth_samples == 48 and eg3d().superres.output_resolution == 512
    assert tiny().superres.output_resolution == 128
    with pytest.raises(KeyError, match="known"):
        preset("huge")
    with pytest.raises(ValueError, match="unknown fields"):
        config_from_dict(GeneratorConfig, {"nope": 1})
    with pytest.raises(ValueError, match="4x"):
        GeneratorConfig(render=tiny().render)
