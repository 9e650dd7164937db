"""The trainers: a few steps lower the loss, an interrupted run resumes bit-exactly, runs pack into a bundle.

Everything here is tiny (a handful of 32^2 heads, narrow networks) so the whole file runs in
seconds; the real runs are `tricam train encoder|generator` (docs/core.md).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.synth.dataset import SynthConfig, generate
from engine.training import common
from engine.training.data import load_multiview
from engine.training.encoder import EncoderTrainConfig, _losses, _weighted, build_model, train_encoder
from engine.training.generator import GeneratorTrainConfig, train_generator
from engine.triplane.encoder import EncoderConfig

SMALL = EncoderConfig(input_size=32, lift_points=4, low_channels=(8, 8, 8), geometry_features=8, high_channels=8,
                      fuse_channels=(8, 8))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mv")
    generate(SynthConfig(count=4, views=3, size=32, seed=5), out)
    return out


def enc_cfg(data: Path, out: Path, **kw: object) -> EncoderTrainConfig:
    base = dict(data=data, out=out, encoder=SMALL, steps=4, batch=2, targets=2, patch=8, render_resolution=32,
                threads=1, checkpoint_every=100, val_every=1000, val_heads=2, augment=True, semantic_steps=2,
                semantic_patch=8)
    base.update(kw)
    return EncoderTrainConfig(**base)  # type: ignore[arg-type]


def state(modules: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v.clone() for n, m in modules.items() for k, v in m.state_dict().items()}


def test_encoder_steps_lower_the_loss_on_a_fixed_batch(data: Path, tmp_path: Path) -> None:
    cfg = enc_cfg(data, tmp_path, lr=3e-3, augment=False)
    torch.manual_seed(0)
    model, _ = build_model(cfg)
    mv = load_multiview(data)
    batch = mv.batch(np.array([0, 1]), np.array([[0, 1], [1, 2]]))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss() -> torch.Tensor:
        torch.manual_seed(1)  # the same jitter and patches every time
        return _weighted(_losses(model, batch, cfg, np.random.default_rng(0), None), cfg)

    with torch.no_grad():
        before = float(loss())
    for _ in range(15):
        opt.zero_grad()
        loss().backward()
        opt.step()
    with torch.no_grad():
        after = float(loss())
    assert after < 0.8 * before, (before, after)


def test_encoder_resumes_bit_exactly(data: Path, tmp_path: Path) -> None:
    straight = train_encoder(enc_cfg(data, tmp_path / "a"), progress=False)
    assert straight["steps"] == 6  # 4 steps + 2 of the semantic-head phase
    assert (tmp_path / "a" / "summary.json").is_file()
    assert (tmp_path / "a" / "losses.png").is_file()
    stopped = train_encoder(enc_cfg(data, tmp_path / "b"), progress=False, stop_at=2)
    assert stopped == {"steps": 2, "stopped": True}
    stopped = train_encoder(enc_cfg(data, tmp_path / "b"), progress=False, stop_at=5)  # inside the semantic phase
    assert stopped == {"steps": 5, "stopped": True}
    train_encoder(enc_cfg(data, tmp_path / "b"), progress=False)

    def weights(run: Path) -> dict[str, torch.Tensor]:
        model, _ = build_model(enc_cfg(data, run))
        modules = {"encoder": model.encoder, "decoder": model.decoder}
        common.load_checkpoint(run, modules=modules, optimizer=None, rng=None)
        return state(modules)

    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def encoder_run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("enc")
    train_encoder(enc_cfg(data, out, steps=3), progress=False)
    return out


def gen_cfg(data: Path, out: Path, encoder_run: Path, **kw: object) -> GeneratorTrainConfig:
    base = dict(data=data, out=out, encoder_run=encoder_run, steps=3, batch=2, views=2, patch=8, threads=1,
                checkpoint_every=100, val_every=1000, val_heads=2)
    base.update(kw)
    return GeneratorTrainConfig(**base)  # type: ignore[arg-type]


def test_generator_resumes_bit_exactly_and_keeps_the_decoder_frozen(data: Path, encoder_run: Path, tmp_path: Path) -> None:
    train_generator(gen_cfg(data, tmp_path / "a", encoder_run), progress=False)
    train_generator(gen_cfg(data, tmp_path / "b", encoder_run), progress=False, stop_at=1)
    summary = train_generator(gen_cfg(data, tmp_path / "b", encoder_run), progress=False)
    assert summary["steps"] == 3 and (tmp_path / "b" / "samples.png").is_file()
    from engine.training.generator import build

    def weights(run: Path) -> dict[str, torch.Tensor]:
        model, teacher = build(gen_cfg(data, run, encoder_run))
        modules = {"generator": model.generator, "embedding": model.embedding, "w_encoder": model.w_encoder}
        common.load_checkpoint(run, modules=modules, optimizer=None, rng=None)
        for k, v in teacher.decoder.state_dict().items():
            assert torch.equal(v, model.generator.decoder.state_dict()[k]), "decoder moved"
        return state(modules)

    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_runs_pack_into_a_core_bundle_that_loads_and_reconstructs(data: Path, encoder_run: Path, tmp_path: Path) -> None:
    from engine.training.package import package_core
    from engine.triplane.core import load_core

    gen_run = tmp_path / "g"
    train_generator(gen_cfg(data, gen_run, encoder_run, steps=1), progress=False)
    manifest = package_core(encoder_run, gen_run, tmp_path / "bundle", eval_count=2)
    figures = manifest["provenance"]["evaluation"]
    for key in ("psnr_input", "ssim_input", "psnr_side", "ssim_side", "depth_l1", "semantic_miou", "n_heads",
                "psnr_input_full", "psnr_side_full"):
        assert key in figures
    core = load_core(tmp_path / "bundle")
    mv = load_multiview(data)
    b = mv.batch(np.array([0]), np.array([[0, 1]]))
    with torch.no_grad():
        out = core.reconstruct(b["rgb"][:, 0], b["camera"][:, 0], b["camera"][0], 32)
    assert out.color.shape == (2, 3, 32, 32) and torch.isfinite(out.color).all()


def test_trainer_refuses_mismatched_data_and_checkpoints(data: Path, tmp_path: Path) -> None:
    with pytest.raises(common.TrainingError, match="32\\^2"):
        train_encoder(enc_cfg(data, tmp_path / "x", encoder=dataclasses.replace(SMALL, input_size=64)), progress=False)
    with pytest.raises(common.TrainingError, match="views per head"):
        train_encoder(enc_cfg(data, tmp_path / "y", targets=5), progress=False)
    train_encoder(enc_cfg(data, tmp_path / "z", steps=1), progress=False)
    wider = dataclasses.replace(SMALL, high_channels=12)
    with pytest.raises(common.TrainingError, match="does not fit"):
        train_encoder(enc_cfg(data, tmp_path / "z", encoder=wider), progress=False)
    with pytest.raises(common.TrainingError, match="no encoder checkpoint"):
        train_generator(gen_cfg(data, tmp_path / "g", tmp_path / "missing"), progress=False)
