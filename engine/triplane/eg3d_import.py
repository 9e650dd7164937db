"""Import an EG3D network pickle (NVlabs/eg3d, e.g. ``ffhq512-128.pkl``) as a tricam generator.

No pickled code ever runs. EG3D pickles are plain :mod:`pickle` streams of a dict (``G``,
``D``, ``G_ema``, ``augment_pipe``, ``training_set_kwargs``); their networks are
"persistent" objects that unpickle through
``torch_utils.persistence._reconstruct_persistent_obj(meta)``, where ``meta`` carries the
class's whole Python module as source text (``module_src``) next to the object's state
(``_parameters`` / ``_buffers`` / ``_modules`` plus plain attributes). A normal
``pickle.load`` would ``exec`` that source. Here a restricted unpickler (the pure-Python
``pickle._Unpickler`` with its global look-up and object-building opcodes overridden)
admits only an allow-list:

* ``collections.OrderedDict``; ``builtins.set`` / ``frozenset``; ``_codecs.encode`` (latin-1
  only, old protocols' bytes);
* tensors: ``torch._utils._rebuild_tensor[_v2]``, ``torch._utils._rebuild_parameter[_with_state]``
  (re-implemented here: bounds-checked views, no hooks, no metadata) and
  ``torch.storage._load_from_bytes``, whose inner bytes (a legacy ``torch.save`` of one
  storage) go to ``torch.load(..., weights_only=True)``, torch's own restricted loader;
  ``torch.Size`` and the ``torch.<dtype>`` constants;
* numpy scalars (``numpy.dtype`` of a plain numeric code + ``numpy[._]core.multiarray.scalar``),
  e.g. the ``np.float64`` weight gains, decoded to Python numbers;
* ``torch_utils.persistence._reconstruct_persistent_obj``, mapped to a function that returns
  a :class:`PersistentRecord` (class name, state, sha256 of ``module_src``) and never compiles
  the source;
* by-reference classes EG3D pickles without the persistence decorator (``OSGDecoder``, the
  renderer, ray marcher and sampler, ``torch.nn`` containers/activations) and
  ``dnnlib.EasyDict``, mapped to inert :class:`ObjectRecord` / :class:`EasyDict` types that
  only store their state.

Every other global (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ...) raises
:class:`EG3DImportError` naming ``module.name``. ``REDUCE`` only calls the allow-listed
functions, ``NEWOBJ`` only builds the inert record types, ``BUILD`` only fills records;
``INST``/``OBJ``/extension codes and persistent ids are refused.

The network (``G_ema`` by default) is then walked like ``nn.Module.state_dict()`` to get
EG3D's flat key names, the tri-plane config is inferred from shapes, attributes and
``rendering_kwargs``, and the weights are mapped onto :class:`TriplaneGenerator` (see
:func:`eg3d_key_to_ours`). Any missing/unexpected key or shape mismatch is an error naming
the key. EG3D's ``resample_filter`` buffers have no counterpart (ours is a fixed,
non-persistent [1,3,3,1] FIR): each is checked to be exactly that filter, then dropped. Our
decoder's semantic head has no EG3D counterpart: it keeps its (seeded) initialisation and
the bundle's provenance says it is untrained.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from engine.triplane import presets
from engine.triplane.config import (
    DecoderConfig,
    GeneratorConfig,
    MappingConfig,
    RenderConfig,
    SuperResConfig,
    SynthesisConfig,
    config_to_dict,
)
from engine.triplane.eg3d_pickle import (
    BY_REFERENCE_CLASSES,
    EG3DImportError,
    ObjectRecord,
    PersistentRecord,
    allowed_globals,
    load_eg3d_pickle,
)
from engine.triplane.generator import TriplaneGenerator
from engine.triplane.io import COMPONENTS, save_generator
from engine.triplane.layers import FullyConnected, SynthesisLayer, ToRGB, fir_kernel

log = logging.getLogger(__name__)

CONVERTER = "engine.triplane.eg3d_import"
CONVERTER_VERSION = 2  # 2: the super-resolution conv_clamp is mapped (was a note)
SEMANTIC_HEAD_NOTE = "untrained (EG3D has none)"

SUPPORTED_SUPERRES = ("SuperresolutionHybrid8XDC", "SuperresolutionHybrid8X")
"""EG3D SR classes whose structure matches ours: block0 and block1 both up-sample x2."""
REFUSED_SUPERRES = {
    "SuperresolutionHybrid4X": "its block0 does not up-sample (SynthesisBlockNoUp)",
    "SuperresolutionHybrid2X": "its block0 does not up-sample (SynthesisBlockNoUp)",
    "SuperresolutionHybridDeepfp32": "its block0 does not up-sample (SynthesisBlockNoUp)",
}

EG3D_PLANE_AXES = torch.tensor(
    [
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        [[1, 0, 0], [0, 0, 1], [0, 1, 0]],
        [[0, 0, 1], [1, 0, 0], [0, 1, 0]],
    ],
    dtype=torch.float32,
)
"""EG3D's generate_planes(); our sampler hard-codes the projections these give."""



# --------------------------------------------------------------------------------------------
# Module tree and EG3D state dict
# --------------------------------------------------------------------------------------------

_MODULE_INTERNALS = frozenset(
    {
        "training",
        "_parameters",
        "_buffers",
        "_modules",
        "_non_persistent_buffers_set",
        "_backward_pre_hooks",
        "_backward_hooks",
        "_is_full_backward_hook",
        "_forward_hooks",
        "_forward_hooks_with_kwargs",
        "_forward_hooks_always_called",
        "_forward_pre_hooks",
        "_forward_pre_hooks_with_kwargs",
        "_state_dict_hooks",
        "_state_dict_pre_hooks",
        "_load_state_dict_pre_hooks",
        "_load_state_dict_post_hooks",
    }
)


@dataclass(frozen=True)
class ModuleNode:
    """One EG3D module: class name, plain attributes, tensors and children."""

    path: str
    """Dotted path from the network root ('' for the root)."""
    class_name: str
    attrs: dict[str, Any]
    parameters: dict[str, Tensor]
    buffers: dict[str, Tensor]
    """Persistent buffers only (what ``state_dict`` would hold)."""
    children: dict[str, ModuleNode]
    module_src_sha256: str | None = None
    """For persistent objects: sha256 of the (never executed) module source they carried."""

    def child(self, name: str) -> ModuleNode:
        try:
            return self.children[name]
        except KeyError:
            where = f"{self.path}.{name}" if self.path else name
            raise EG3DImportError(
                f"missing module {where!r} ({self.class_name} has {sorted(self.children)})"
            ) from None

    def walk(self) -> Iterator[ModuleNode]:
        yield self
        for c in self.children.values():
            yield from c.walk()

    def state_dict(self) -> dict[str, Tensor]:
        """Flat tensors with EG3D's key names, in ``nn.Module.state_dict()`` order."""
        out: dict[str, Tensor] = {}
        for node in self.walk():
            prefix = node.path[len(self.path) :].lstrip(".")
            prefix = f"{prefix}." if prefix else ""
            for name, t in (*node.parameters.items(), *node.buffers.items()):
                out[prefix + name] = t
        return out


def _tensor_dict(value: Any, where: str) -> dict[str, Tensor]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EG3DImportError(f"{where}: expected a dict of tensors")
    out: dict[str, Tensor] = {}
    for k, v in value.items():
        if v is None:
            continue
        if not isinstance(k, str) or not isinstance(v, Tensor):
            raise EG3DImportError(f"{where}: entry {k!r} is not a tensor")
        out[k] = v
    return out


def module_tree(obj: Any, path: str = "", *, _depth: int = 0) -> ModuleNode:
    """Turn a record (persistent or by-reference) into a :class:`ModuleNode` tree."""
    where = path or "<root>"
    if _depth > 64:
        raise EG3DImportError(f"{where}: module tree too deep (cyclic pickle?)")
    src_sha: str | None = None
    if isinstance(obj, PersistentRecord):
        class_name, state, src_sha = obj.class_name, obj.state, obj.module_src_sha256
    elif isinstance(obj, ObjectRecord):
        class_name, state = obj.qualname.rsplit(".", 1)[-1], obj.state
    else:
        raise EG3DImportError(f"{where}: expected a network module record, found {type(obj).__name__}")
    params = _tensor_dict(state.get("_parameters"), f"{where}._parameters")
    buffers = _tensor_dict(state.get("_buffers"), f"{where}._buffers")
    transient = state.get("_non_persistent_buffers_set") or set()
    if not isinstance(transient, set | frozenset | list | tuple):
        raise EG3DImportError(f"{where}: _non_persistent_buffers_set is not a set")
    buffers = {k: v for k, v in buffers.items() if k not in transient}
    modules = state.get("_modules") or {}
    if not isinstance(modules, dict):
        raise EG3DImportError(f"{where}: _modules is not a dict")
    children: dict[str, ModuleNode] = {}
    for name, sub in modules.items():
        if sub is None:
            continue
        if not isinstance(name, str):
            raise EG3DImportError(f"{where}: module name {name!r} is not a string")
        children[name] = module_tree(sub, f"{path}.{name}" if path else name, _depth=_depth + 1)
    attrs = {k: v for k, v in state.items() if k not in _MODULE_INTERNALS}
    return ModuleNode(
        path=path,
        class_name=class_name,
        attrs=attrs,
        parameters=params,
        buffers=buffers,
        children=children,
        module_src_sha256=src_sha,
    )


@dataclass(frozen=True)
class EG3DNetwork:
    """One network of an EG3D pickle, as data."""

    name: str
    """Key in the pickle's dict, e.g. ``G_ema``."""
    root: ModuleNode
    state_dict: dict[str, Tensor]
    """EG3D key names, as ``G.state_dict()`` would give them."""
    rendering_kwargs: dict[str, Any]
    neural_rendering_resolution: int | None


def extract_network(data: Any, network: str = "G_ema") -> EG3DNetwork:
    """Pick ``network`` out of an unpickled EG3D snapshot dict."""
    if not isinstance(data, dict):
        raise EG3DImportError(f"expected the pickle to hold a dict of networks, found {type(data).__name__}")
    if network not in data:
        raise EG3DImportError(f"the pickle has no {network!r} (keys: {sorted(map(str, data))})")
    root = module_tree(data[network])
    rk = root.attrs.get("rendering_kwargs")
    if rk is None:
        init_kwargs = root.attrs.get("_init_kwargs")
        rk = init_kwargs.get("rendering_kwargs") if isinstance(init_kwargs, dict) else None
    if not isinstance(rk, dict):
        raise EG3DImportError(f"{network}: no rendering_kwargs (is this an EG3D TriPlaneGenerator?)")
    nrr = root.attrs.get("neural_rendering_resolution")
    if nrr is not None and type(nrr) is not int:
        raise EG3DImportError(f"{network}: neural_rendering_resolution is not an integer: {nrr!r}")
    return EG3DNetwork(
        name=network,
        root=root,
        state_dict=root.state_dict(),
        rendering_kwargs=dict(rk),
        neural_rendering_resolution=nrr,
    )


# --------------------------------------------------------------------------------------------
# Key map: EG3D names <-> ours
# --------------------------------------------------------------------------------------------

_LAYER_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"const"), "const"),
    (re.compile(r"(conv0|conv1|torgb)\.affine\.(weight|bias)"), r"\1.mod.affine.\2"),
    (re.compile(r"(conv0|conv1|torgb)\.weight"), r"\1.mod.weight"),
    (re.compile(r"(conv0|conv1|torgb)\.bias"), r"\1.bias"),
    (re.compile(r"(conv0|conv1)\.(noise_const|noise_strength)"), r"\1.\2"),
)
_OUR_LAYER_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"const"), "const"),
    (re.compile(r"(conv0|conv1|torgb)\.mod\.affine\.(weight|bias)"), r"\1.affine.\2"),
    (re.compile(r"(conv0|conv1|torgb)\.mod\.weight"), r"\1.weight"),
    (re.compile(r"(conv0|conv1|torgb)\.bias"), r"\1.bias"),
    (re.compile(r"(conv0|conv1)\.(noise_const|noise_strength)"), r"\1.\2"),
)


def _apply(rules: tuple[tuple[re.Pattern[str], str], ...], key: str) -> str | None:
    for pattern, repl in rules:
        if pattern.fullmatch(key):
            return pattern.sub(repl, key)
    return None


def eg3d_key_to_ours(key: str) -> tuple[str, str] | None:
    """EG3D ``G.state_dict()`` key -> ``(component, key)`` in our bundle, or None if unknown.

    ``backbone.mapping.{embed,fcN,w_avg}`` -> mapping ``{embed, layers.N, w_avg}``;
    ``backbone.synthesis.b{R}.<layer>`` -> backbone ``blocks.{log2 R - 2}.<layer>``;
    ``superresolution.block{0,1}.<layer>`` -> superres ``block{0,1}.<layer>``, where a layer's
    ``affine.*``/``weight`` move under ``mod.``; ``decoder.net.{0,2}`` -> decoder ``fc{0,1}``.
    ``resample_filter`` buffers are not mapped (see :func:`expected_filter_keys`).
    """
    if m := re.fullmatch(r"backbone\.mapping\.embed\.(weight|bias)", key):
        return "mapping", f"embed.{m[1]}"
    if m := re.fullmatch(r"backbone\.mapping\.fc(\d+)\.(weight|bias)", key):
        return "mapping", f"layers.{int(m[1])}.{m[2]}"
    if key == "backbone.mapping.w_avg":
        return "mapping", "w_avg"
    if m := re.fullmatch(r"backbone\.synthesis\.b(\d+)\.(.+)", key):
        res = int(m[1])
        if res < 4 or res & (res - 1):
            return None
        inner = _apply(_LAYER_RULES, m[2])
        return None if inner is None else ("backbone", f"blocks.{int(math.log2(res)) - 2}.{inner}")
    if m := re.fullmatch(r"superresolution\.(block[01])\.(.+)", key):
        inner = _apply(_LAYER_RULES, m[2])
        return None if inner is None or inner == "const" else ("superres", f"{m[1]}.{inner}")
    if m := re.fullmatch(r"decoder\.net\.([02])\.(weight|bias)", key):
        return "decoder", f"fc{int(m[1]) // 2}.{m[2]}"
    return None


def our_key_to_eg3d(component: str, key: str) -> str | None:
    """Inverse of :func:`eg3d_key_to_ours`; None for our semantic head (no EG3D counterpart).

    Raises:
        ValueError: a key this map does not know (a model change the converter must follow).
    """
    eg3d: str | None = None
    if component == "mapping":
        if m := re.fullmatch(r"embed\.(weight|bias)", key):
            eg3d = f"backbone.mapping.embed.{m[1]}"
        elif m := re.fullmatch(r"layers\.(\d+)\.(weight|bias)", key):
            eg3d = f"backbone.mapping.fc{m[1]}.{m[2]}"
        elif key == "w_avg":
            eg3d = "backbone.mapping.w_avg"
    elif component == "backbone":
        if m := re.fullmatch(r"blocks\.(\d+)\.(.+)", key):
            inner = _apply(_OUR_LAYER_RULES, m[2])
            if inner is not None:
                eg3d = f"backbone.synthesis.b{2 ** (int(m[1]) + 2)}.{inner}"
    elif component == "superres":
        if m := re.fullmatch(r"(block[01])\.(.+)", key):
            inner = _apply(_OUR_LAYER_RULES, m[2])
            if inner is not None:
                eg3d = f"superresolution.{m[1]}.{inner}"
    elif component == "decoder":
        if re.fullmatch(r"semantic\.(weight|bias)", key):
            return None
        if m := re.fullmatch(r"fc([01])\.(weight|bias)", key):
            eg3d = f"decoder.net.{int(m[1]) * 2}.{m[2]}"
    if eg3d is None:
        raise ValueError(f"no EG3D counterpart known for {component}.{key}")
    return eg3d


def expected_filter_keys(config: GeneratorConfig, *, superres_class: str) -> list[str]:
    """EG3D ``resample_filter`` buffers (blocks and synthesis layers) for this structure."""
    keys: list[str] = []
    log2 = int(math.log2(config.synthesis.plane_resolution))
    for res in (2**i for i in range(2, log2 + 1)):
        keys.append(f"backbone.synthesis.b{res}.resample_filter")
        for conv in ("conv1",) if res == 4 else ("conv0", "conv1"):
            keys.append(f"backbone.synthesis.b{res}.{conv}.resample_filter")
    for block in ("block0", "block1"):
        keys.append(f"superresolution.{block}.resample_filter")
        keys += [f"superresolution.{block}.{conv}.resample_filter" for conv in ("conv0", "conv1")]
    if superres_class == "SuperresolutionHybrid8X":
        keys.append("superresolution.resample_filter")
    return keys


def expected_eg3d_shapes(config: GeneratorConfig) -> dict[str, tuple[int, ...]]:
    """EG3D key -> shape a pickle needs to fill a generator of ``config`` (filters excluded).

    Built on the meta device, so it costs no memory even for the eg3d preset.
    """
    with torch.device("meta"):
        g = TriplaneGenerator(config)
    out: dict[str, tuple[int, ...]] = {}
    for comp in COMPONENTS:
        for k, v in getattr(g, comp).state_dict().items():
            eg3d = our_key_to_eg3d(comp, k)
            if eg3d is not None:
                out[eg3d] = tuple(v.shape)
    return out


# --------------------------------------------------------------------------------------------
# Config inference
# --------------------------------------------------------------------------------------------


def _number(node: ModuleNode, name: str, default: float) -> float:
    value = node.attrs.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EG3DImportError(f"{node.path}: attribute {name} is not a number: {value!r}")
    return float(value)


def _rk(rk: Mapping[str, Any], name: str, kind: type, default: Any = ...) -> Any:
    if name not in rk:
        if default is ...:
            raise EG3DImportError(f"rendering_kwargs has no {name!r}")
        return default
    value = rk[name]
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise EG3DImportError(f"rendering_kwargs[{name!r}] = {value!r} is not a {kind.__name__}")
    return kind(value)


def _shape(sd: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    if key not in sd:
        raise EG3DImportError(f"missing EG3D tensor {key!r}")
    return tuple(sd[key].shape)


def _channel_rule(channels: dict[int, int], hint: Mapping[str, Any]) -> tuple[int, int]:
    """(channel_base, channel_max) reproducing ``min(base // res, max)`` for every block."""

    def fits(base: int, cmax: int) -> bool:
        return all(min(base // r, cmax) == c for r, c in channels.items())

    base_hint, max_hint = hint.get("channel_base"), hint.get("channel_max")
    if type(base_hint) is int and type(max_hint) is int and fits(base_hint, max_hint):
        return base_hint, max_hint
    cmax = max(channels.values())
    below = [(r, c) for r, c in sorted(channels.items()) if c < cmax]
    base = below[0][0] * below[0][1] if below else cmax * max(channels)
    if not fits(base, cmax):
        raise EG3DImportError(
            f"backbone channels {channels} do not follow min(channel_base // res, channel_max)"
        )
    return base, cmax


def _conv_clamp(nodes: list[ModuleNode], where: str) -> float | None:
    values = {n.attrs.get("conv_clamp") for n in nodes}
    if len(values) > 1:
        raise EG3DImportError(f"{where}: layers use different conv_clamp values {sorted(map(str, values))}")
    value = values.pop() if values else None
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise EG3DImportError(f"{where}: conv_clamp {value!r} is not a number")
    if value is not None and not 0 <= value < math.inf:
        raise EG3DImportError(f"{where}: conv_clamp {value!r} is not a finite number >= 0")
    return None if value is None else float(value)


@dataclass(frozen=True)
class InferredConfig:
    config: GeneratorConfig
    superres_class: str
    conditioning_scale: float
    """EG3D multiplies c by this before the mapping (0 when generator pose conditioning is off)."""
    notes: list[str]


def infer_config(
    net: EG3DNetwork, *, semantic_classes: int = 12, render_at_sr_input: bool = False
) -> InferredConfig:
    """Read our :class:`GeneratorConfig` off an EG3D TriPlaneGenerator (shapes + attributes + kwargs)."""
    root, sd, rk = net.root, net.state_dict, net.rendering_kwargs
    notes: list[str] = []
    if root.class_name != "TriPlaneGenerator":
        raise EG3DImportError(f"{net.name} is a {root.class_name}, not an EG3D TriPlaneGenerator")

    # Super-resolution class first: it decides whether we can represent the network at all.
    sr = root.child("superresolution")
    if sr.class_name in REFUSED_SUPERRES:
        raise EG3DImportError(
            f"super-resolution module {sr.class_name} is not supported: {REFUSED_SUPERRES[sr.class_name]}; "
            f"tricam's SuperResolution matches {', '.join(SUPPORTED_SUPERRES)}"
        )
    if sr.class_name not in SUPPORTED_SUPERRES:
        raise EG3DImportError(
            f"unknown super-resolution module {sr.class_name}; supported: {', '.join(SUPPORTED_SUPERRES)}"
        )
    sr_module = rk.get("superresolution_module")
    if isinstance(sr_module, str) and sr_module.rsplit(".", 1)[-1] != sr.class_name:
        notes.append(f"rendering_kwargs names {sr_module} but the pickled SR module is {sr.class_name}")

    # Mapping.
    backbone = root.child("backbone")
    mapping = backbone.child("mapping")
    fcs = sorted(
        int(m[1]) for k in sd if (m := re.fullmatch(r"backbone\.mapping\.fc(\d+)\.weight", k)) is not None
    )
    if not fcs or fcs != list(range(len(fcs))):
        raise EG3DImportError(f"mapping FC layers are not fc0..fcN: found {fcs}")
    w_dim = _shape(sd, f"backbone.mapping.fc{fcs[-1]}.weight")[0]
    embed_out, c_dim = 0, 0
    if "backbone.mapping.embed.weight" in sd:
        embed_out, c_dim = _shape(sd, "backbone.mapping.embed.weight")
    if embed_out not in (0, w_dim):
        raise EG3DImportError(f"mapping embed_features {embed_out} != w_dim {w_dim} (not supported)")
    z_dim = _shape(sd, "backbone.mapping.fc0.weight")[1] - embed_out
    w_avg_beta = _number(mapping, "w_avg_beta", 0.998)
    mapping_cfg = MappingConfig(
        z_dim=z_dim,
        c_dim=c_dim,
        w_dim=w_dim,
        num_layers=len(fcs),
        lr_multiplier=_number(mapping.child("fc0"), "bias_gain", 0.01),
        w_avg_beta=w_avg_beta,
    )

    # Backbone.
    synthesis = backbone.child("synthesis")
    blocks = sorted(int(m[1]) for name in synthesis.children if (m := re.fullmatch(r"b(\d+)", name)))
    if not blocks or blocks != [2**i for i in range(2, 2 + len(blocks))]:
        raise EG3DImportError(f"backbone blocks are not b4, b8, ...: found {blocks}")
    for res in blocks:
        arch = synthesis.child(f"b{res}").attrs.get("architecture", "skip")
        if arch != "skip":
            raise EG3DImportError(
                f"backbone block b{res} uses architecture {arch!r}; only 'skip' is supported"
            )
    plane_res = blocks[-1]
    img_channels = _shape(sd, f"backbone.synthesis.b{plane_res}.torgb.weight")[0]
    if img_channels % 3:
        raise EG3DImportError(f"backbone emits {img_channels} channels, not 3 planes")
    channels = {r: _shape(sd, f"backbone.synthesis.b{r}.conv1.weight")[0] for r in blocks}
    init_kwargs = root.attrs.get("_init_kwargs")
    base, cmax = _channel_rule(channels, init_kwargs if isinstance(init_kwargs, dict) else {})
    synth_layers = [n for n in synthesis.walk() if n.class_name in ("SynthesisLayer", "ToRGBLayer")]
    synthesis_cfg = SynthesisConfig(
        plane_resolution=plane_res,
        plane_channels=img_channels // 3,
        channel_base=base,
        channel_max=cmax,
        conv_clamp=_conv_clamp(synth_layers, "backbone"),
    )

    # Decoder.
    net_node = root.child("decoder").child("net")
    softplus = net_node.child("1")
    if softplus.class_name != "Softplus" or (
        _number(softplus, "beta", 1.0),
        _number(softplus, "threshold", 20.0),
    ) != (1.0, 20.0):
        raise EG3DImportError(
            f"decoder.net.1 is {softplus.class_name} {softplus.attrs}, expected Softplus(1, 20)"
        )
    hidden = _shape(sd, "decoder.net.0.weight")[0]
    decoder_cfg = DecoderConfig(
        hidden=hidden,
        feature_channels=_shape(sd, "decoder.net.2.weight")[0] - 1,
        semantic_classes=semantic_classes,
        lr_multiplier=_number(net_node.child("0"), "bias_gain", 1.0),
    )

    # Rendering.
    for name in ("ray_start", "ray_end"):
        if rk.get(name) == "auto":
            raise EG3DImportError(f"rendering_kwargs {name}='auto' (ray-box limits) is not supported")
    if rk.get("disparity_space_sampling"):
        raise EG3DImportError("rendering_kwargs disparity_space_sampling=True is not supported")
    if rk.get("clamp_mode", "softplus") != "softplus":
        raise EG3DImportError(f"rendering_kwargs clamp_mode={rk.get('clamp_mode')!r} is not supported")
    if rk.get("white_back"):
        raise EG3DImportError("rendering_kwargs white_back=True (ShapeNet) is not supported")
    importance = _rk(rk, "depth_resolution_importance", int)
    if importance <= 0:
        raise EG3DImportError("rendering_kwargs depth_resolution_importance must be > 0")
    noise = rk.get("density_noise", 0)
    if isinstance(noise, int | float) and noise > 0:
        notes.append(f"EG3D adds density noise {noise} (training only); tricam does not")

    sr_out = _shape(sd, "superresolution.block1.conv1.noise_const")[0]
    sr_in = sr_out // 4
    declared_in = sr.attrs.get("input_resolution", sr_in)
    if declared_in != sr_in:
        raise EG3DImportError(
            f"SR input_resolution {declared_in} but its blocks output {sr_out} (x4 = {sr_in})"
        )
    nrr = net.neural_rendering_resolution
    if nrr is None:
        notes.append(f"no neural_rendering_resolution in the pickle; rendering at the SR input {sr_in}")
        nrr = sr_in
    if nrr != sr_in:
        if not render_at_sr_input:
            raise EG3DImportError(
                f"EG3D renders at {nrr}^2 and resizes to the SR input {sr_in}^2; tricam renders at the SR "
                f"input directly. Pass render_at_sr_input (CLI --render-at-sr-input) to accept rendering "
                f"at {sr_in}^2"
            )
        notes.append(f"EG3D rendered at {nrr}^2 then resized to {sr_in}^2; this bundle renders at {sr_in}^2")
    render_cfg = RenderConfig(
        resolution=sr_in,
        depth_samples=_rk(rk, "depth_resolution", int),
        importance_samples=importance,
        ray_start=_rk(rk, "ray_start", float),
        ray_end=_rk(rk, "ray_end", float),
        box_warp=_rk(rk, "box_warp", float, 1.0),
    )
    sr_layers = [n for n in sr.walk() if n.class_name in ("SynthesisLayer", "ToRGBLayer")]
    superres_cfg = SuperResConfig(
        channels=(
            _shape(sd, "superresolution.block0.conv1.weight")[0],
            _shape(sd, "superresolution.block1.conv1.weight")[0],
        ),
        output_resolution=sr_out,
        # EG3D's SR blocks get conv_clamp=256 when sr_num_fp16_res > 0 (FFHQ's default, 4).
        conv_clamp=_conv_clamp(sr_layers, "SR"),
    )
    sr_noise = rk.get("superresolution_noise_mode", "none")
    if sr_noise != "none":
        notes.append(f"EG3D ran super-resolution with noise_mode={sr_noise!r}; pass sr_noise_mode to match")

    # Generator pose conditioning: EG3D feeds c * c_scale (0 when conditioning is off).
    scale = 0.0 if rk.get("c_gen_conditioning_zero") else _rk(rk, "c_scale", float, 0.0)
    if c_dim and scale != 1.0:
        notes.append(f"EG3D scales the conditioning camera by {scale:g}; folded into mapping.embed.weight")

    # Renderer plane axes (our sampler hard-codes EG3D's).
    renderer = root.children.get("renderer")
    axes = renderer.attrs.get("plane_axes") if renderer is not None else None
    if isinstance(axes, Tensor) and not torch.equal(axes.to(torch.float32), EG3D_PLANE_AXES):
        raise EG3DImportError(f"renderer.plane_axes differ from EG3D's generate_planes(): {axes.tolist()}")

    try:
        config = GeneratorConfig(
            mapping=mapping_cfg,
            synthesis=synthesis_cfg,
            decoder=decoder_cfg,
            render=render_cfg,
            superres=superres_cfg,
        )
    except ValueError as e:
        raise EG3DImportError(f"the EG3D network does not fit a tricam config: {e}") from e
    return InferredConfig(config=config, superres_class=sr.class_name, conditioning_scale=scale, notes=notes)


# --------------------------------------------------------------------------------------------
# Weight mapping and checks
# --------------------------------------------------------------------------------------------


def _listing(keys: list[str], limit: int = 12) -> str:
    return f"{keys[:limit]}{f' (+{len(keys) - limit} more)' if len(keys) > limit else ''}"


def map_state_dict(
    eg3d_sd: Mapping[str, Tensor], generator: TriplaneGenerator, *, superres_class: str
) -> tuple[dict[str, dict[str, Tensor]], list[str]]:
    """EG3D tensors -> our components' tensors (float32); also returns the dropped filter keys.

    Raises:
        EG3DImportError: missing or unexpected keys, wrong shapes, non-float weights, or a
            ``resample_filter`` that is not EG3D's normalised [1,3,3,1] FIR.
    """
    targets: dict[str, tuple[str, str]] = {}
    ours: dict[str, dict[str, Tensor]] = {}
    for comp in COMPONENTS:
        ours[comp] = getattr(generator, comp).state_dict()
        for k in ours[comp]:
            eg3d = our_key_to_eg3d(comp, k)
            if eg3d is not None:
                targets[eg3d] = (comp, k)
    filters = expected_filter_keys(generator.config, superres_class=superres_class)
    wanted = set(targets) | set(filters)
    missing = sorted(wanted - set(eg3d_sd))
    unexpected = sorted(set(eg3d_sd) - wanted)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_listing(unexpected)}")
        raise EG3DImportError(f"EG3D weights do not fit the inferred generator: {'; '.join(parts)}")
    fir = fir_kernel()
    for key in filters:
        f = eg3d_sd[key]
        if tuple(f.shape) != tuple(fir.shape) or not torch.allclose(f.float(), fir, rtol=0, atol=1e-7):
            raise EG3DImportError(f"{key!r} is not the normalised [1,3,3,1] FIR our layers use: {f.tolist()}")
    mismatched = []
    out: dict[str, dict[str, Tensor]] = {comp: {} for comp in COMPONENTS}
    for eg3d, (comp, k) in targets.items():
        src, dst = eg3d_sd[eg3d], ours[comp][k]
        if tuple(src.shape) != tuple(dst.shape):
            mismatched.append(f"{eg3d!r} is {tuple(src.shape)}, {comp}.{k} needs {tuple(dst.shape)}")
            continue
        if not src.is_floating_point():
            raise EG3DImportError(f"{eg3d!r} has dtype {src.dtype}, expected floating point")
        out[comp][k] = src.detach().to(torch.float32).contiguous()
    if mismatched:
        raise EG3DImportError(f"shape mismatch: {'; '.join(mismatched[:10])}")
    return out, sorted(filters)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


def check_layer_attributes(root: ModuleNode, generator: TriplaneGenerator) -> None:
    """Compare EG3D layer attributes (gains, activations, up-sampling, clamps) with ours.

    Raises on any difference that changes the maths, including each backbone and
    super-resolution layer's ``conv_clamp``.
    """
    for node in root.walk():
        if node.class_name == "FullyConnectedLayer":
            mapped = eg3d_key_to_ours(f"{node.path}.weight")
            if mapped is None:
                continue
            comp, key = mapped
            ours = generator.get_submodule(f"{comp}.{key.removesuffix('.weight')}")
            assert isinstance(ours, FullyConnected)
            for name in ("weight_gain", "bias_gain"):
                if name in node.attrs and not _close(_number(node, name, 0.0), float(getattr(ours, name))):
                    raise EG3DImportError(
                        f"{node.path}.{name} = {node.attrs[name]} but ours is {getattr(ours, name)} "
                        "(learning-rate multiplier or fan-in differs)"
                    )
            act = node.attrs.get("activation", "linear")
            ours_act = "linear" if node.path == "decoder.net.0" else ours.activation  # Softplus follows
            if act != ours_act:
                raise EG3DImportError(f"{node.path} activation {act!r}, ours {ours_act!r}")
        elif node.class_name in ("SynthesisLayer", "ToRGBLayer"):
            mapped = eg3d_key_to_ours(f"{node.path}.bias")
            if mapped is None:
                raise EG3DImportError(f"{node.path}: {node.class_name} at a place we do not know")
            comp, key = mapped
            layer = generator.get_submodule(f"{comp}.{key.removesuffix('.bias')}")
            assert isinstance(layer, SynthesisLayer | ToRGB)
            clamp = node.attrs.get("conv_clamp")
            if clamp != layer.conv_clamp:
                raise EG3DImportError(f"{node.path}.conv_clamp {clamp} but ours is {layer.conv_clamp}")
            if isinstance(layer, SynthesisLayer):
                up = 2 if node.path.endswith("conv0") else 1
                if node.attrs.get("up", up) != up or layer.mod.up != up:
                    raise EG3DImportError(f"{node.path}.up is {node.attrs.get('up')}, expected {up}")
                if node.attrs.get("activation", "lrelu") != "lrelu" or not node.attrs.get("use_noise", True):
                    raise EG3DImportError(f"{node.path}: only lrelu layers with noise inputs are supported")
            elif "weight_gain" in node.attrs and not _close(
                _number(node, "weight_gain", 0.0), layer.weight_gain
            ):
                raise EG3DImportError(
                    f"{node.path}.weight_gain {node.attrs['weight_gain']} != {layer.weight_gain}"
                )


# --------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _config_diff(a: GeneratorConfig, b: GeneratorConfig) -> list[str]:
    fa, fb = _flatten(config_to_dict(a)), _flatten(config_to_dict(b))
    return [
        f"{k}: pickle {fa.get(k)!r} vs preset {fb.get(k)!r}" for k in sorted(fa) if fa.get(k) != fb.get(k)
    ]


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return repr(value)


def sha256_of(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Conversion:
    """A converted generator plus what goes into its bundle."""

    generator: TriplaneGenerator
    preset: str
    provenance: dict[str, Any]
    notes: list[str]


def convert(
    source: str | os.PathLike[str],
    *,
    preset: str = "auto",
    semantic_classes: int = 12,
    network: str = "G_ema",
    render_at_sr_input: bool = False,
    seed: int = 0,
) -> Conversion:
    """Read an EG3D pickle and build the equivalent :class:`TriplaneGenerator`.

    Args:
        preset: ``auto`` takes the config read off the pickle (named after a preset it equals,
            else ``eg3d-import``); a preset name (``eg3d``, ``tiny``) also requires the pickle to
            match that preset exactly.
        semantic_classes: K of our semantic head (EG3D has none; it stays at its init).
        network: which network of the snapshot (``G_ema``, or ``G``).
        render_at_sr_input: accept checkpoints whose neural rendering resolution is below the
            SR input (EG3D resizes in between); the bundle renders at the SR input instead.
        seed: seeds the semantic head's initialisation.
    Raises:
        EG3DImportError: anything refused, malformed or not exactly representable.
    """
    path = Path(source)
    data = load_eg3d_pickle(path)
    net = extract_network(data, network)
    inferred = infer_config(net, semantic_classes=semantic_classes, render_at_sr_input=render_at_sr_input)
    config = inferred.config
    if preset == "auto":
        name = next(
            (n for n, f in presets.PRESETS.items() if f(semantic_classes=semantic_classes) == config),
            "eg3d-import",
        )
    else:
        try:
            wanted = presets.preset(preset, semantic_classes=semantic_classes)
        except KeyError as e:
            raise EG3DImportError(str(e.args[0])) from None
        diff = _config_diff(config, wanted)
        if diff:
            raise EG3DImportError(
                f"the pickle does not match preset {preset!r}: {'; '.join(diff)} (use preset 'auto' to keep "
                "the pickle's own config)"
            )
        name = preset

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = TriplaneGenerator(config)
    mapped, dropped = map_state_dict(net.state_dict, generator, superres_class=inferred.superres_class)
    for comp, tensors in mapped.items():
        module = getattr(generator, comp)
        full = module.state_dict()
        full.update(tensors)
        module.load_state_dict(full, strict=True)
    check_layer_attributes(net.root, generator)
    notes = list(inferred.notes)
    if generator.mapping.embed is not None and inferred.conditioning_scale != 1.0:
        with torch.no_grad():
            generator.mapping.embed.weight.mul_(inferred.conditioning_scale)
    generator.eval()

    root = net.root
    provenance: dict[str, Any] = {
        "converter": CONVERTER,
        "converter_version": CONVERTER_VERSION,
        "source_file": path.name,
        "source_sha256": sha256_of(path),
        "source_format": "EG3D network pickle, read with a restricted unpickler (no pickled code run)",
        "network": network,
        "eg3d_class": root.class_name,
        "eg3d_module_src_sha256": {
            n.class_name: n.module_src_sha256 for n in root.walk() if n.module_src_sha256 is not None
        },
        "superresolution_module": inferred.superres_class,
        "neural_rendering_resolution": net.neural_rendering_resolution,
        "rendering_kwargs": _jsonable(net.rendering_kwargs),
        "conditioning_scale_folded": inferred.conditioning_scale,
        "semantic_head": SEMANTIC_HEAD_NOTE,
        "semantic_head_init_seed": seed,
        "dropped_eg3d_buffers": dropped,
        "notes": notes,
    }
    return Conversion(generator=generator, preset=name, provenance=provenance, notes=notes)


def convert_to_bundle(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    **kwargs: Any,
) -> Conversion:
    """:func:`convert`, then write the bundle with :func:`engine.triplane.io.save_generator`.

    Raises:
        EG3DImportError: as :func:`convert`, or ``out_dir`` exists, is not empty and
            ``overwrite`` is False.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not overwrite)):
        raise EG3DImportError(f"{out} exists and is not an empty directory (pass overwrite to replace it)")
    result = convert(source, **kwargs)
    save_generator(out, result.generator, preset=result.preset, provenance=result.provenance)
    return result


__all__ = [
    "BY_REFERENCE_CLASSES",
    "Conversion",
    "EG3DImportError",
    "EG3DNetwork",
    "ModuleNode",
    "PersistentRecord",
    "allowed_globals",
    "check_layer_attributes",
    "convert",
    "convert_to_bundle",
    "eg3d_key_to_ours",
    "expected_eg3d_shapes",
    "expected_filter_keys",
    "extract_network",
    "infer_config",
    "load_eg3d_pickle",
    "map_state_dict",
    "module_tree",
    "our_key_to_eg3d",
]
