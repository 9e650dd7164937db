"""EG3D pickle import: restricted unpickling, key map, config inference, CLI.

The test pickles are built the way EG3D's are: persistent networks reduce to
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with ``module_src`` text and an
``nn.Module``-style state (``_parameters``/``_buffers``/``_modules`` OrderedDicts of real
tensors); OSGDecoder, the renderer, ray marcher and ray sampler are pickled by reference,
``nn.Sequential``/``nn.Softplus`` are the real torch classes and kwargs are ``dnnlib.EasyDict``.
Fake ``torch_utils``/``dnnlib``/``training`` modules exist in ``sys.modules`` only while
pickling. Both the fake persistence hook and ``module_src`` write a marker file if run.
The structure (names, nesting, attributes) follows NVlabs/eg3d's triplane.py,
networks_stylegan2.py and superresolution.py; the weights come from a micro TriplaneGenerator.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import logging
import os
import pickle
import re
import subprocess
import sys
import types
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engine.triplane import presets
from engine.triplane.config import GeneratorConfig
from engine.triplane.eg3d_import import (
    EG3DImportError,
    convert,
    eg3d_key_to_ours,
    expected_eg3d_shapes,
    expected_filter_keys,
    extract_network,
    load_eg3d_pickle,
    our_key_to_eg3d,
)
from engine.triplane.generator import TriplaneGenerator
from engine.triplane.io import COMPONENTS, load_generator
from engine.triplane.layers import FullyConnected, SynthesisBlock, SynthesisLayer, ToRGB
from engine.triplane.renderer import RenderNoise
from tests.engine.triplane.conftest import cameras, micro_config

REPO = Path(__file__).resolve().parents[3]

# EG3D's upfirdn2d.setup_filter([1,3,3,1]): the outer product normalised to sum 1.
_F = torch.tensor([1.0, 3.0, 3.0, 1.0])
FIR = torch.outer(_F, _F) / 64.0
# EG3D's renderer.generate_planes().
PLANE_AXES = torch.tensor(
    [[[1, 0, 0], [0, 1, 0], [0, 0, 1]], [[1, 0, 0], [0, 0, 1], [0, 1, 0]], [[0, 0, 1], [1, 0, 0], [0, 1, 0]]],
    dtype=torch.float32,
)
BY_REFERENCE = (
    "training.triplane.OSGDecoder",
    "training.volumetric_rendering.renderer.ImportanceRenderer",
    "training.volumetric_rendering.ray_marcher.MipRayMarcher2",
    "training.volumetric_rendering.ray_sampler.RaySampler",
)


class FakeEG3D:
    """EG3D-like modules, installed in sys.modules only while pickling."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker
        self.module_src = f"open({str(marker)!r}, 'w').write('module_src was executed')\n"
        self.modules: dict[str, types.ModuleType] = {}
        marker_path = str(marker)

        def _reconstruct_persistent_obj(meta: Any) -> Any:
            Path(marker_path).write_text("the persistence hook was called")
            raise RuntimeError("EG3D's persistence hook ran")

        _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
        _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
        self.hook = _reconstruct_persistent_obj
        self._module("torch_utils")
        self._module("torch_utils.persistence")._reconstruct_persistent_obj = self.hook  # type: ignore[attr-defined]
        self._module("dnnlib")
        self.EasyDict: type[dict[str, Any]] = type("EasyDict", (dict,), {"__module__": "dnnlib.util"})
        self._module("dnnlib.util").EasyDict = self.EasyDict  # type: ignore[attr-defined]
        self._module("training")
        self._module("training.volumetric_rendering")
        self.classes: dict[str, type] = {}
        for qual in BY_REFERENCE:
            modname, name = qual.rsplit(".", 1)
            cls = type(name, (), {"__module__": modname})
            setattr(self._module(modname), name, cls)
            self.classes[name] = cls

    def _module(self, name: str) -> types.ModuleType:
        if name not in self.modules:
            self.modules[name] = types.ModuleType(name)
        return self.modules[name]

    def obj(self, name: str, state: dict[str, Any]) -> Any:
        """An instance of a by-reference class (pickles as NEWOBJ + BUILD)."""
        o: Any = object.__new__(self.classes[name])
        o.__dict__.update(state)
        return o

    def dumps(self, top: Any, monkeypatch: pytest.MonkeyPatch, protocol: int = 4) -> bytes:
        with monkeypatch.context() as mp:
            for name, module in self.modules.items():
                mp.setitem(sys.modules, name, module)
            return pickle.dumps(top, protocol=protocol)


class Persistent:
    """Pickles like an instance of an EG3D ``@persistence.persistent_class``."""

    def __init__(self, env: FakeEG3D, class_name: str, state: dict[str, Any]) -> None:
        self.env, self.class_name, self.state = env, class_name, state

    def __reduce__(self) -> tuple[Any, ...]:
        meta = dict(
            type="class",
            version=6,
            module_src=self.env.module_src,
            class_name=self.class_name,
            state=self.state,
        )
        return (self.env.hook, (meta,))


def module_state(
    params: dict[str, torch.Tensor] | None = None,
    buffers: dict[str, torch.Tensor] | None = None,
    modules: dict[str, Any] | None = None,
    **attrs: Any,
) -> dict[str, Any]:
    """An ``nn.Module.__dict__`` as EG3D's pickles carry it."""
    state = dict(torch.nn.Module().__dict__)
    state["_parameters"] = OrderedDict(
        (k, torch.nn.Parameter(v.detach().clone(), requires_grad=False)) for k, v in (params or {}).items()
    )
    state["_buffers"] = OrderedDict((k, v.detach().clone()) for k, v in (buffers or {}).items())
    state["_modules"] = OrderedDict(modules or {})
    state.update(attrs)
    return state


def clamp_attr(value: float | None) -> float | int | None:
    """A conv_clamp as EG3D pickles it (``256 if use_fp16 else None``: an int when whole)."""
    return int(value) if value is not None and float(value).is_integer() else value


def eg3d_generator(
    env: FakeEG3D,
    g: TriplaneGenerator,
    *,
    sr_class: str = "SuperresolutionHybrid8XDC",
    rendering: dict[str, Any] | None = None,
) -> Persistent:
    """A TriPlaneGenerator record laid out like EG3D's, holding ``g``'s weights."""
    cfg = g.config

    def p(name: str, state: dict[str, Any]) -> Persistent:
        return Persistent(env, name, state)

    def fc(layer: FullyConnected, activation: str, lr: float) -> Persistent:
        out_f, in_f = layer.weight.shape
        return p(
            "FullyConnectedLayer",
            module_state(
                {"weight": layer.weight, "bias": layer.bias},
                in_features=in_f,
                out_features=out_f,
                activation=activation,
                weight_gain=lr / np.sqrt(in_f),  # np.float64, as in EG3D
                bias_gain=lr,
            ),
        )

    def synthesis_layer(layer: SynthesisLayer, *, up: int, resolution: int) -> Persistent:
        return p(
            "SynthesisLayer",
            module_state(
                {"weight": layer.mod.weight, "noise_strength": layer.noise_strength, "bias": layer.bias},
                {"resample_filter": FIR, "noise_const": layer.noise_const},
                {"affine": fc(layer.mod.affine, "linear", 1.0)},
                in_channels=layer.mod.in_channels,
                out_channels=layer.mod.out_channels,
                resolution=resolution,
                up=up,
                use_noise=True,
                activation="lrelu",
                conv_clamp=clamp_attr(layer.conv_clamp),
                padding=1,
                act_gain=np.sqrt(2),
            ),
        )

    def torgb(layer: ToRGB) -> Persistent:
        c_in = layer.mod.in_channels
        return p(
            "ToRGBLayer",
            module_state(
                {"weight": layer.mod.weight, "bias": layer.bias},
                None,
                {"affine": fc(layer.mod.affine, "linear", 1.0)},
                conv_clamp=clamp_attr(layer.conv_clamp),
                weight_gain=1 / np.sqrt(c_in),
            ),
        )

    def block(b: SynthesisBlock, *, is_last: bool) -> Persistent:
        params: dict[str, torch.Tensor] = {}
        mods: dict[str, Any] = {}
        if b.conv0 is None:
            params["const"] = b.const
        else:
            mods["conv0"] = synthesis_layer(b.conv0, up=2, resolution=b.resolution)
        mods["conv1"] = synthesis_layer(b.conv1, up=1, resolution=b.resolution)
        mods["torgb"] = torgb(b.torgb)
        return p(
            "SynthesisBlock",
            module_state(
                params,
                {"resample_filter": FIR},
                mods,
                in_channels=b.in_channels,
                resolution=b.resolution,
                architecture="skip",
                is_last=is_last,
                use_fp16=b.conv1.conv_clamp is not None,
                num_conv=b.num_conv,
                num_torgb=1,
            ),
        )

    res = g.backbone.resolutions
    img_channels = 3 * cfg.synthesis.plane_channels
    synthesis = p(
        "SynthesisNetwork",
        module_state(
            modules={
                f"b{r}": block(b, is_last=r == res[-1])
                for r, b in zip(res, g.backbone.blocks, strict=True)
                if isinstance(b, SynthesisBlock)
            },
            w_dim=cfg.mapping.w_dim,
            img_resolution=res[-1],
            img_channels=img_channels,
            num_fp16_res=0,
            block_resolutions=list(res),
            num_ws=g.num_ws,
        ),
    )
    m = g.mapping
    assert m.embed is not None
    mapping_mods: dict[str, Any] = {"embed": fc(m.embed, "linear", 1.0)}
    for i, layer in enumerate(m.layers):
        assert isinstance(layer, FullyConnected)
        mapping_mods[f"fc{i}"] = fc(layer, "lrelu", cfg.mapping.lr_multiplier)
    mapping = p(
        "MappingNetwork",
        module_state(
            None,
            {"w_avg": m.w_avg},
            mapping_mods,
            z_dim=cfg.mapping.z_dim,
            c_dim=cfg.mapping.c_dim,
            w_dim=cfg.mapping.w_dim,
            num_ws=g.num_ws,
            num_layers=cfg.mapping.num_layers,
            w_avg_beta=cfg.mapping.w_avg_beta,
        ),
    )
    backbone = p(
        "Generator",
        module_state(modules={"synthesis": synthesis, "mapping": mapping}, z_dim=cfg.mapping.z_dim),
    )
    net = torch.nn.Sequential()
    net._modules["0"] = fc(g.decoder.fc0, "linear", cfg.decoder.lr_multiplier)  # type: ignore[assignment]
    net._modules["1"] = torch.nn.Softplus()
    net._modules["2"] = fc(g.decoder.fc1, "linear", cfg.decoder.lr_multiplier)  # type: ignore[assignment]
    decoder = env.obj("OSGDecoder", module_state(modules={"net": net}, hidden_dim=cfg.decoder.hidden))
    superres = p(
        sr_class,
        module_state(
            modules={
                "block0": block(g.superres.block0, is_last=False),
                "block1": block(g.superres.block1, is_last=True),
            },
            input_resolution=cfg.render.resolution,
            sr_antialias=True,
        ),
    )
    renderer = env.obj(
        "ImportanceRenderer",
        module_state(
            modules={"ray_marcher": env.obj("MipRayMarcher2", module_state())}, plane_axes=PLANE_AXES
        ),
    )
    ray_sampler = env.obj("RaySampler", module_state(ray_origins_h=None, ray_directions=None, depths=None))
    rk: dict[str, Any] = dict(
        image_resolution=cfg.superres.output_resolution,
        disparity_space_sampling=False,
        clamp_mode="softplus",
        superresolution_module=f"training.superresolution.{sr_class}",
        c_gen_conditioning_zero=False,
        gpc_reg_prob=0.5,
        c_scale=1,
        superresolution_noise_mode="none",
        density_reg=0.25,
        density_reg_p_dist=0.004,
        reg_type="l1",
        decoder_lr_mul=1,
        sr_antialias=True,
        depth_resolution=cfg.render.depth_samples,
        depth_resolution_importance=cfg.render.importance_samples,
        ray_start=cfg.render.ray_start,
        ray_end=cfg.render.ray_end,
        box_warp=1,
        avg_camera_radius=2.7,
        avg_camera_pivot=[0, 0, 0.2],
    )
    rk.update(rendering or {})
    ed = env.EasyDict
    init_kwargs = ed(
        z_dim=cfg.mapping.z_dim,
        w_dim=cfg.mapping.w_dim,
        mapping_kwargs=ed(num_layers=cfg.mapping.num_layers),
        channel_base=cfg.synthesis.channel_base,
        channel_max=cfg.synthesis.channel_max,
        fused_modconv_default="inference_only",
        rendering_kwargs=rk,
        num_fp16_res=0,
        conv_clamp=clamp_attr(cfg.synthesis.conv_clamp),
        sr_num_fp16_res=0 if cfg.superres.conv_clamp is None else 4,
        sr_kwargs=ed(channel_base=cfg.synthesis.channel_base, channel_max=cfg.synthesis.channel_max),
        c_dim=cfg.mapping.c_dim,
        img_resolution=cfg.superres.output_resolution,
        img_channels=3,
    )
    return p(
        "TriPlaneGenerator",
        module_state(
            modules={
                "renderer": renderer,
                "ray_sampler": ray_sampler,
                "backbone": backbone,
                "superresolution": superres,
                "decoder": decoder,
            },
            z_dim=cfg.mapping.z_dim,
            c_dim=cfg.mapping.c_dim,
            w_dim=cfg.mapping.w_dim,
            img_resolution=cfg.superres.output_resolution,
            img_channels=3,
            neural_rendering_resolution=cfg.render.resolution,
            rendering_kwargs=rk,
            _last_planes=None,
            _init_args=(),
            _init_kwargs=init_kwargs,
        ),
    )


def snapshot(env: FakeEG3D, g_ema: TriplaneGenerator, g: TriplaneGenerator, **kwargs: Any) -> dict[str, Any]:
    """EG3D's training-loop snapshot dict."""
    return {
        "training_set_kwargs": {"class_name": "training.dataset.ImageFolderDataset", "path": "ffhq.zip"},
        "G": eg3d_generator(env, g, **kwargs),
        "D": Persistent(
            env, "DualDiscriminator", module_state({"w": torch.randn(4, 4)}, {"resample_filter": FIR})
        ),
        "G_ema": eg3d_generator(env, g_ema, **kwargs),
        "augment_pipe": None,
    }


def state_of(obj: Any, path: str) -> dict[str, Any]:
    """The state dict of the record at ``path`` (dotted, EG3D module names)."""
    for part in path.split(".") if path else []:
        obj = (obj.state if isinstance(obj, Persistent) else obj.__dict__)["_modules"][part]
    return obj.state if isinstance(obj, Persistent) else obj.__dict__


def make_generator(seed: int, config: GeneratorConfig | None = None) -> TriplaneGenerator:
    torch.manual_seed(seed)
    g = TriplaneGenerator(config or micro_config()).eval()
    with torch.no_grad():
        g.mapping.w_avg.normal_()
        for name, p in g.named_parameters():
            if name.endswith("noise_strength"):
                p.uniform_(-0.2, 0.2)
    return g


@pytest.fixture
def env(tmp_path: Path) -> FakeEG3D:
    return FakeEG3D(tmp_path / "executed.txt")


@pytest.fixture
def source() -> TriplaneGenerator:
    return make_generator(0)


def write_pickle(
    env: FakeEG3D, monkeypatch: pytest.MonkeyPatch, path: Path, source: TriplaneGenerator, **kwargs: Any
) -> Path:
    path.write_bytes(env.dumps(snapshot(env, source, make_generator(1), **kwargs), monkeypatch))
    return path


def test_test_pickle_takes_eg3ds_persistence_path(
    env: FakeEG3D, source: TriplaneGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = env.dumps(snapshot(env, source, source), monkeypatch)
    for needle in (b"torch_utils.persistence", b"_reconstruct_persistent_obj", b"OSGDecoder", b"dnnlib.util"):
        assert needle in data
    assert env.module_src.encode() in data
    # An ordinary unpickler would hand the record to the persistence hook (which execs module_src).
    with monkeypatch.context() as mp:
        for name, module in env.modules.items():
            mp.setitem(sys.modules, name, module)
        with pytest.raises(RuntimeError, match="persistence hook ran"):
            pickle.loads(data)
    assert env.marker.exists()


def test_convert_round_trips_weights_and_renders_identically(
    env: FakeEG3D, source: TriplaneGenerator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pkl = write_pickle(env, monkeypatch, tmp_path / "net.pkl", source)
    result = convert(pkl, preset="auto", semantic_classes=5, seed=3)
    assert not env.marker.exists(), "pickled code ran"
    g = result.generator
    assert g.config == source.config
    assert result.preset == "eg3d-import"
    for comp in COMPONENTS:
        ref, got = getattr(source, comp).state_dict(), getattr(g, comp).state_dict()
        assert ref.keys() == got.keys()
        for k in ref:
            if not k.startswith("semantic."):
                assert torch.equal(ref[k], got[k]), f"{comp}.{k}"
    assert not torch.equal(source.decoder.semantic.weight, g.decoder.semantic.weight)  # left at its init

    z, cam = torch.randn(2, 16), cameras(2)
    noise = RenderNoise.deterministic(source.config.render, batch=2)
    with torch.no_grad():
        a = source(z=z, camera=cam, noise=noise, truncation_psi=0.7)
        b = g(z=z, camera=cam, noise=noise, truncation_psi=0.7)
    for name in ("image", "image_raw", "features", "depth", "opacity"):
        torch.testing.assert_close(getattr(b, name), getattr(a, name), rtol=0, atol=0)

    prov = result.provenance
    assert prov["semantic_head"] == "untrained (EG3D has none)"
    assert prov["source_sha256"] == hashlib.sha256(pkl.read_bytes()).hexdigest()
    assert prov["network"] == "G_ema" and prov["superresolution_module"] == "SuperresolutionHybrid8XDC"
    src_sha = hashlib.sha256(env.module_src.encode()).hexdigest()
    assert prov["eg3d_module_src_sha256"]["TriPlaneGenerator"] == src_sha
    assert "backbone.synthesis.b8.conv0.resample_filter" in prov["dropped_eg3d_buffers"]
    assert prov["notes"] == []


def test_sr_conv_clamp_is_read_into_the_config(
    env: FakeEG3D, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # EG3D pickles the clamp as an int (``256 if use_fp16 else None``); 1 is small enough to bite here.
    base = micro_config()
    config = dataclasses.replace(base, superres=dataclasses.replace(base.superres, conv_clamp=1.0))
    source = make_generator(0, config)
    top = snapshot(env, source, make_generator(1, config))
    assert state_of(top["G_ema"], "superresolution.block1.torgb")["conv_clamp"] == 1
    assert state_of(top["G_ema"], "backbone.synthesis.b8.conv0")["conv_clamp"] is None
    pkl = tmp_path / "clamped.pkl"
    pkl.write_bytes(env.dumps(top, monkeypatch))

    result = convert(pkl, preset="auto", semantic_classes=5)
    g = result.generator
    assert g.config == config and g.config.superres.conv_clamp == 1.0
    assert g.config.synthesis.conv_clamp is None
    assert g.superres.block0.conv0 is not None and g.superres.block0.conv0.conv_clamp == 1.0
    assert g.superres.block1.torgb.conv_clamp == 1.0
    assert result.notes == [] and not env.marker.exists()

    unclamped = make_generator(0)  # same weights, no SR clamp
    z, cam = torch.randn(2, 16), cameras(2)
    noise = RenderNoise.deterministic(config.render, batch=2)
    with torch.no_grad():
        a = source(z=z, camera=cam, noise=noise)
        b = g(z=z, camera=cam, noise=noise)
        c = unclamped(z=z, camera=cam, noise=noise)
    torch.testing.assert_close(b.image, a.image, rtol=0, atol=0)
    assert torch.equal(c.image_raw, a.image_raw)  # the clamp touches only the SR
    assert (c.image - a.image).abs().max() > 1e-3  # and there it matters

    # A pickle whose SR layers disagree on the clamp is refused, naming the values.
    state_of(top["G_ema"], "superresolution.block0.conv1")["conv_clamp"] = 256
    pkl.write_bytes(env.dumps(top, monkeypatch))
    with pytest.raises(
        EG3DImportError, match=re.escape("SR: layers use different conv_clamp values ['1', '256']")
    ):
        convert(pkl, preset="auto", semantic_classes=5)


def test_eg3d_preset_clamps_sr_like_ffhq512() -> None:
    # EG3D's train.py: --sr_num_fp16_res defaults to 4 -> SuperresolutionHybrid8XDC blocks get
    # conv_clamp=256; --g_num_fp16_res 0 -> the backbone has none.
    assert presets.eg3d().superres.conv_clamp == 256.0
    assert presets.eg3d().synthesis.conv_clamp is None
    assert presets.tiny().superres.conv_clamp is None


def test_state_dict_has_eg3d_names(
    env: FakeEG3D, source: TriplaneGenerator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    net = extract_network(load_eg3d_pickle(write_pickle(env, monkeypatch, tmp_path / "n.pkl", source)))
    sd = net.state_dict
    for key in (
        "backbone.mapping.embed.weight",
        "backbone.mapping.fc1.bias",
        "backbone.mapping.w_avg",
        "backbone.synthesis.b4.const",
        "backbone.synthesis.b4.conv1.affine.weight",
        "backbone.synthesis.b8.conv0.noise_const",
        "backbone.synthesis.b16.torgb.weight",
        "decoder.net.0.weight",
        "decoder.net.2.bias",
        "superresolution.block0.conv0.weight",
        "superresolution.block1.torgb.affine.bias",
    ):
        assert key in sd, key
    assert not any(k.startswith(("renderer", "ray_sampler")) for k in sd)
    first = source.backbone.blocks[0]
    assert isinstance(first, SynthesisBlock)
    assert torch.equal(sd["backbone.synthesis.b4.const"], first.const)
    init_kwargs = net.root.attrs["_init_kwargs"]
    assert isinstance(init_kwargs, dict) and init_kwargs["mapping_kwargs"]["num_layers"] == 2
    gain = net.root.child("backbone").child("mapping").child("fc0").attrs["weight_gain"]
    assert type(gain) is float and gain == pytest.approx(0.01 / np.sqrt(32))
    assert net.rendering_kwargs["superresolution_module"].endswith("Hybrid8XDC")
    assert net.neural_rendering_resolution == 8


def test_key_map_covers_the_eg3d_preset() -> None:
    config = presets.eg3d()
    shapes = expected_eg3d_shapes(config)
    # Shapes of EG3D's ffhq512 TriPlaneGenerator (networks_stylegan2.py, triplane.py, superresolution.py).
    facts = {
        "backbone.mapping.embed.weight": (512, 25),
        "backbone.mapping.fc0.weight": (512, 1024),
        "backbone.mapping.fc1.weight": (512, 512),
        "backbone.mapping.w_avg": (512,),
        "backbone.synthesis.b4.const": (512, 4, 4),
        "backbone.synthesis.b4.conv1.weight": (512, 512, 3, 3),
        "backbone.synthesis.b128.conv0.weight": (256, 512, 3, 3),
        "backbone.synthesis.b256.conv1.noise_const": (256, 256),
        "backbone.synthesis.b256.torgb.weight": (96, 128, 1, 1),
        "backbone.synthesis.b256.torgb.affine.weight": (128, 512),
        "decoder.net.0.weight": (64, 32),
        "decoder.net.2.weight": (33, 64),
        "superresolution.block0.conv0.weight": (256, 32, 3, 3),
        "superresolution.block0.conv0.affine.weight": (32, 512),
        "superresolution.block1.conv1.weight": (128, 128, 3, 3),
        "superresolution.block1.conv1.noise_const": (512, 512),
        "superresolution.block1.torgb.weight": (3, 128, 1, 1),
    }
    for key, shape in facts.items():
        assert shapes[key] == shape, key
    assert not any("semantic" in k or "fir" in k for k in shapes)
    with torch.device("meta"):
        g = TriplaneGenerator(config)
    for comp in COMPONENTS:
        for key in getattr(g, comp).state_dict():
            eg3d = our_key_to_eg3d(comp, key)
            if eg3d is None:
                assert (comp, key) in {("decoder", "semantic.weight"), ("decoder", "semantic.bias")}
            else:
                assert eg3d_key_to_ours(eg3d) == (comp, key)
    filters = expected_filter_keys(config, superres_class="SuperresolutionHybrid8XDC")
    assert len(filters) == 7 + 13 + 2 + 4  # blocks, backbone conv layers, SR blocks, SR conv layers
    assert eg3d_key_to_ours("backbone.synthesis.b8.skip.weight") is None


def _reduce(func: Callable[..., Any], *args: Any) -> bytes:
    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (func, args)

    return pickle.dumps(Payload(), protocol=4)


def _write_cmd(marker: str) -> str:
    return f"open({marker!r}, 'w').write('pwned')"


HOSTILE: dict[str, tuple[str, Callable[[str], bytes]]] = {
    "os.system": ("refused global 'os.system'", lambda m: f"cos\nsystem\n(Vtouch {m}\ntR.".encode()),
    "builtins.eval": ("refused global 'builtins.eval'", lambda m: _reduce(eval, _write_cmd(m))),
    "subprocess.Popen": (
        "refused global 'subprocess.Popen'",
        lambda m: _reduce(subprocess.Popen, ["touch", m]),
    ),
    "posix.system": ("refused global 'posix.system'", lambda m: _reduce(os.system, f"touch {m}")),
    "builtins.exec": ("refused global 'builtins.exec'", lambda m: _reduce(exec, _write_cmd(m))),
    "call a record class": ("refused call", lambda m: b"ctraining.triplane\nOSGDecoder\n(tR."),
    "BUILD on a class": ("refused to set the state", lambda m: b"ccollections\nOrderedDict\n}b."),
    "INST opcode": ("refused pickle opcode", lambda m: b"(itraining.triplane\nOSGDecoder\n."),
    "persistent id": ("refused persistent id", lambda m: b"Pstorage0\n."),
    "storage bytes": (
        "restricted loader",
        lambda m: _reduce(torch.storage._load_from_bytes, _reduce(os.system, f"touch {m}")),
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_pickles_are_refused(case: str, tmp_path: Path) -> None:
    message, payload = HOSTILE[case]
    marker = tmp_path / "pwned"
    pkl = tmp_path / "hostile.pkl"
    pkl.write_bytes(payload(str(marker)))
    with pytest.raises(EG3DImportError, match=re.escape(message)):
        convert(pkl)
    assert not marker.exists()


def test_hostile_global_nested_in_a_network_is_refused(
    env: FakeEG3D, source: TriplaneGenerator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (eval, (_write_cmd(str(marker)),))

    top = snapshot(env, source, source)
    state_of(top["G_ema"], "superresolution.block1.conv1")["conv_clamp"] = Evil()
    pkl = tmp_path / "n.pkl"
    pkl.write_bytes(env.dumps(top, monkeypatch))
    with pytest.raises(EG3DImportError, match="refused global 'builtins.eval'"):
        convert(pkl)
    assert not marker.exists() and not env.marker.exists()


def _drop_bias(top: dict[str, Any]) -> None:
    state_of(top["G_ema"], "backbone.synthesis.b8.conv1.affine")["_parameters"].pop("bias")


def _bad_kernel(top: dict[str, Any]) -> None:
    state_of(top["G_ema"], "backbone.synthesis.b8.conv0")["_parameters"]["weight"] = torch.zeros(16, 16, 1, 1)


def _resnet_skip(top: dict[str, Any]) -> None:
    skip = Persistent(top["G_ema"].env, "Conv2dLayer", module_state({"weight": torch.zeros(16, 16, 1, 1)}))
    state_of(top["G_ema"], "backbone.synthesis.b8")["_modules"]["skip"] = skip


def _other_filter(top: dict[str, Any]) -> None:
    state_of(top["G_ema"], "backbone.synthesis.b4")["_buffers"]["resample_filter"] = torch.ones(4, 4) / 16


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_drop_bias, "missing keys ['backbone.synthesis.b8.conv1.affine.bias']"),
        (_bad_kernel, "shape mismatch: 'backbone.synthesis.b8.conv0.weight' is (16, 16, 1, 1)"),
        (_resnet_skip, "unexpected keys ['backbone.synthesis.b8.skip.weight']"),
        (_other_filter, "'backbone.synthesis.b4.resample_filter' is not the normalised [1,3,3,1] FIR"),
    ],
)
def test_weights_that_do_not_fit_name_the_key(
    mutate: Callable[[dict[str, Any]], None],
    message: str,
    env: FakeEG3D,
    source: TriplaneGenerator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    top = snapshot(env, source, source)
    mutate(top)
    pkl = tmp_path / "n.pkl"
    pkl.write_bytes(env.dumps(top, monkeypatch))
    with pytest.raises(EG3DImportError, match=re.escape(message)):
        convert(pkl, preset="auto", semantic_classes=5)


@pytest.mark.parametrize(
    ("kwargs", "convert_kwargs", "message"),
    [
        ({"sr_class": "SuperresolutionHybrid4X"}, {}, "SuperresolutionHybrid4X is not supported"),
        ({"rendering": {"ray_start": "auto"}}, {}, "ray_start='auto'"),
        ({"rendering": {"clamp_mode": "relu"}}, {}, "clamp_mode='relu'"),
        ({"rendering": {"depth_resolution": "48"}}, {}, "rendering_kwargs['depth_resolution'] = '48'"),
        ({}, {"preset": "eg3d"}, "decoder.hidden: pickle 8 vs preset 64"),
        ({}, {"network": "G_avg"}, "the pickle has no 'G_avg'"),
    ],
)
def test_unsupported_networks_are_refused(
    kwargs: dict[str, Any],
    convert_kwargs: dict[str, Any],
    message: str,
    env: FakeEG3D,
    source: TriplaneGenerator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    pkl = write_pickle(env, monkeypatch, tmp_path / "n.pkl", source, **kwargs)
    with pytest.raises(EG3DImportError, match=re.escape(message)):
        convert(pkl, **{"preset": "auto", "semantic_classes": 5, **convert_kwargs})


def test_low_neural_rendering_resolution_needs_opt_in(
    env: FakeEG3D, source: TriplaneGenerator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    top = snapshot(env, source, source)
    state_of(top["G_ema"], "")["neural_rendering_resolution"] = 4
    pkl = tmp_path / "n.pkl"
    pkl.write_bytes(env.dumps(top, monkeypatch))
    with pytest.raises(EG3DImportError, match="render_at_sr_input"):
        convert(pkl, preset="auto", semantic_classes=5)
    result = convert(pkl, preset="auto", semantic_classes=5, render_at_sr_input=True)
    assert result.generator.config.render.resolution == 8
    assert any("rendered at 4^2" in n for n in result.notes)


def test_disabled_pose_conditioning_is_folded_into_the_embedding(
    env: FakeEG3D, source: TriplaneGenerator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pkl = write_pickle(
        env, monkeypatch, tmp_path / "n.pkl", source, rendering={"c_gen_conditioning_zero": True}
    )
    g = convert(pkl, preset="auto", semantic_classes=5).generator
    assert g.mapping.embed is not None and not g.mapping.embed.weight.any()
    z, cam = torch.randn(3, 16), cameras(3)
    with torch.no_grad():
        torch.testing.assert_close(g.map(z=z, c=cam), source.map(z=z, c=torch.zeros_like(cam)))


def _cli() -> Callable[[list[str]], int]:
    spec = importlib.util.spec_from_file_location("convert_eg3d", REPO / "scripts" / "convert_eg3d.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    main: Callable[[list[str]], int] = module.main
    return main


def test_cli_writes_a_loadable_bundle_and_refuses_with_exit_2(
    env: FakeEG3D,
    source: TriplaneGenerator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    main = _cli()
    pkl = write_pickle(env, monkeypatch, tmp_path / "net.pkl", source)
    out = tmp_path / "bundle"
    args = [str(pkl), "--out", str(out), "--preset", "auto", "--semantic-classes", "5"]
    assert main(args) == 0
    loaded, bundle = load_generator(out)
    assert bundle.preset == "eg3d-import"
    assert bundle.provenance["semantic_head"] == "untrained (EG3D has none)"
    assert bundle.provenance["converter"] == "engine.triplane.eg3d_import"
    assert all(
        torch.equal(v, source.backbone.state_dict()[k]) for k, v in loaded.backbone.state_dict().items()
    )
    assert not env.marker.exists()

    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert main(args) == 2
    assert "exists and is not an empty directory" in caplog.text
    assert main([*args, "--overwrite"]) == 0
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert main([str(pkl), "--out", str(tmp_path / "b2")]) == 2  # default preset eg3d
    assert "does not match preset 'eg3d'" in caplog.text

    marker = tmp_path / "pwned"
    hostile = tmp_path / "hostile.pkl"
    hostile.write_bytes(_reduce(os.system, f"touch {marker}"))
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert main([str(hostile), "--out", str(tmp_path / "b3")]) == 2
    assert "refused global 'posix.system'" in caplog.text
    assert not marker.exists() and not (tmp_path / "b3").exists()
