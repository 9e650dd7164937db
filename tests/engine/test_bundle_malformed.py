"""A malformed manifest or a corrupted file is a BundleError naming the field, never anything else.

Table-driven cases edit the shipped ``core-tiny`` manifest (and a small bundle with a style bank)
one way each and check ``BundleError.field``; hypothesis then throws random edits at the same
bundles through the edits of ``scripts/fuzz_bundles.py``.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.bundle import BundleError, build_on_meta, load_bundle
from engine.triplane.config import (
    ConfigError,
    GeneratorConfig,
    SuperResConfig,
    config_from_dict,
)
from engine.triplane.core import DEFAULT_BUNDLE, load_core
from engine.triplane.encoder import EncoderConfig

REPO = Path(__file__).resolve().parents[2]


def _fuzz_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_bundles", REPO / "scripts" / "fuzz_bundles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


fb = _fuzz_module()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("malformed")


@pytest.fixture(scope="module")
def targets(workdir: Path) -> dict[str, Any]:
    """Pristine bundles (the shipped core, a micro generator, a small generic bundle), copied once."""
    return {t.name: t for t in fb.make_targets(workdir, ["core", "generator", "bundle"])}


def _load(target: Any, manifest: Any) -> None:
    target.reset()
    target.write_manifest(manifest)
    target.load(target.directory)


# -- one edit each, on the shipped core -----------------------------------------------------------

TENSOR = "low_in.0.weight"
"""A key of the core's encoder listing."""


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    keys = path.split("/")

    def edit(m: dict[str, Any]) -> None:
        fb.get(m, tuple(keys[:-1]))[keys[-1]] = value

    return edit


def _del(path: str) -> Callable[[dict[str, Any]], None]:
    keys = path.split("/")

    def edit(m: dict[str, Any]) -> None:
        del fb.get(m, tuple(keys[:-1]))[keys[-1]]

    return edit


def _rename_component(m: dict[str, Any]) -> None:
    m["components"]["../evil"] = m["components"].pop("encoder")


def _add_style_entry(m: dict[str, Any]) -> None:
    m["style_bank"]["entries"]["x"] = {"kind": "direction", "space": "s", "description": "", "metadata": {}}


G = "config/generator"
E = "config/encoder"
ENC = "components/encoder"
CORE_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    # sections missing or of the wrong type
    ("no config", _del("config"), "config"),
    ("no generator config", _del(G), "config.generator"),
    ("no encoder config", _del(E), "config.encoder"),
    ("no w_encoder config", _del("config/w_encoder"), "config.w_encoder"),
    ("no render_resolution", _del("config/render_resolution"), "config.render_resolution"),
    ("config a list", _set("config", []), "config"),
    ("render config a list", _set(f"{G}/render", []), "config.generator.render"),
    ("w_encoder a number", _set("config/w_encoder", 64), "config.w_encoder"),
    ("no provenance", _del("provenance"), "provenance"),
    ("provenance a list", _set("provenance", []), "provenance"),
    ("provenance a string", _set("provenance", "trained"), "provenance"),
    ("no components", _del("components"), "components"),
    ("no style bank", _del("style_bank"), "style_bank"),
    ("style bank a list", _set("style_bank", []), "style_bank"),
    ("style bank without file", _del("style_bank/file"), "style_bank.file"),
    ("style bank file a number", _set("style_bank/file", 5), "style_bank.file"),
    ("style entries a list", _set("style_bank/entries", []), "style_bank.entries"),
    ("style entry without tensor", _add_style_entry, "style_bank.entries"),
    # missing fields: every manifest this code writes lists them all, defaults included
    ("missing int", _del(f"{G}/mapping/z_dim"), "config.generator.mapping.z_dim"),
    ("missing optional", _del(f"{G}/synthesis/conv_clamp"), "config.generator.synthesis.conv_clamp"),
    ("missing tuple", _del(f"{E}/low_channels"), "config.encoder.low_channels"),
    # wrong types
    ("string for int", _set(f"{G}/synthesis/plane_channels", "16"), "config.generator.synthesis.plane_channels"),
    ("float for int", _set(f"{G}/synthesis/plane_channels", 16.0), "config.generator.synthesis.plane_channels"),
    ("bool for int", _set(f"{G}/mapping/num_layers", True), "config.generator.mapping.num_layers"),
    ("null for int", _set("config/attribute_dim", None), "config.attribute_dim"),
    ("float for int (top)", _set("config/render_resolution", 64.5), "config.render_resolution"),
    ("string for float", _set(f"{G}/render/ray_end", "3.3"), "config.generator.render.ray_end"),
    ("bool for float", _set(f"{E}/surface_sigma", False), "config.encoder.surface_sigma"),
    ("list for optional float", _set(f"{G}/superres/conv_clamp", [256]), "config.generator.superres.conv_clamp"),
    # wrong tuple lengths and items
    ("tuple too short", _set(f"{E}/low_channels", [32, 64]), "config.encoder.low_channels"),
    ("tuple too long", _set(f"{E}/low_channels", [32, 64, 96, 128]), "config.encoder.low_channels"),
    ("tuple item a string", _set(f"{E}/low_channels", [32, "64", 96]), "config.encoder.low_channels[1]"),
    ("tuple item a bool", _set(f"{G}/superres/channels", [32, True]), "config.generator.superres.channels[1]"),
    ("tuple a number", _set(f"{E}/fuse_channels", 48), "config.encoder.fuse_channels"),
    ("tuple an object", _set(f"{G}/superres/channels", {"0": 32, "1": 16}), "config.generator.superres.channels"),
    # numbers out of range
    ("negative size", _set(f"{G}/decoder/hidden", -32), "config.generator.decoder.hidden"),
    ("zero size", _set(f"{E}/lift_points", 0), "config.encoder.lift_points"),
    ("huge size", _set(f"{G}/mapping/z_dim", 2**40), "config.generator.mapping.z_dim"),
    ("zero tuple item", _set(f"{E}/fuse_channels", [48, 0]), "config.encoder.fuse_channels[1]"),
    ("NaN", _set(f"{G}/render/ray_start", math.nan), "config.generator.render.ray_start"),
    ("infinity", _set(f"{G}/render/ray_end", math.inf), "config.generator.render.ray_end"),
    ("float overflowing", _set(f"{E}/box_warp", 10**400), "config.encoder.box_warp"),
    ("zero rate", _set(f"{G}/mapping/lr_multiplier", 0.0), "config.generator.mapping.lr_multiplier"),
    ("EMA decay above 1", _set(f"{G}/mapping/w_avg_beta", 1.5), "config.generator.mapping.w_avg_beta"),
    ("negative clamp", _set(f"{G}/superres/conv_clamp", -1.0), "config.generator.superres.conv_clamp"),
    # unknown keys
    ("unknown config key", _set(f"{G}/synthesis/nope", 1), "config.generator.synthesis.nope"),
    ("unknown top config key", _set("config/extra", {}), "config.extra"),
    ("unknown root key", _set("signature", "abc"), "signature"),
    ("unknown file-entry key", _set(f"{ENC}/compression", "none"), "components.encoder.compression"),
    ("unknown tensor key", _set(f"{ENC}/tensors/{TENSOR}/stride", [1]), f"components.encoder.tensors.{TENSOR}.stride"),
    ("unknown style-bank key", _set("style_bank/version", 1), "style_bank.version"),
    # relations within the generator config
    ("plane side not a power of two", _set(f"{G}/synthesis/plane_resolution", 48),
     "config.generator.synthesis.plane_resolution"),
    ("decoder width vs planes", _set(f"{G}/decoder/feature_channels", 8), "config.generator.decoder.feature_channels"),
    ("SR output vs render", _set(f"{G}/superres/output_resolution", 256), "config.generator.superres.output_resolution"),
    ("ray start past end", _set(f"{G}/render/ray_start", 4.0), "config.generator.render.ray_start"),
    ("no channels left for the last block", _set(f"{G}/synthesis/channel_base", 32),
     "config.generator.synthesis.channel_base"),
    ("buffers no weight backs too big", _set(f"{E}/lift_points", 60000), "config"),
    ("module count too big", _set(f"{G}/mapping/num_layers", 65), "config.generator.mapping.num_layers"),
    # relations between the parts of the core that no weight shape pins down
    ("encoder channels vs generator", _set(f"{E}/plane_channels", 8), "config.encoder.plane_channels"),
    ("encoder planes vs generator", _set(f"{E}/plane_resolution", 32), "config.encoder.plane_resolution"),
    ("encoder box vs renderer", _set(f"{E}/box_warp", 2.0), "config.encoder.box_warp"),
    ("W encoder width vs mapping", _set("config/w_encoder/w_dim", 32), "config.w_encoder.w_dim"),
    ("W encoder ws vs generator", _set("config/w_encoder/num_ws", 5), "config.w_encoder.num_ws"),
    ("W encoder crop vs encoder", _set("config/w_encoder/input_size", 32), "config.w_encoder.input_size"),
    ("attribute size", _set("config/attribute_dim", 71), "config.attribute_dim"),
    # format, kind, preset
    ("version a bool", _set("format_version", True), "format_version"),
    ("version a string", _set("format_version", "1"), "format_version"),
    ("version unknown", _set("format_version", 2), "format_version"),
    ("kind a number", _set("kind", 7), "kind"),
    ("no kind", _del("kind"), "kind"),
    ("other kind", _set("kind", "triplane-generator"), "kind"),
    ("preset null", _set("preset", None), "preset"),
    # file entries
    ("component a string", _set(ENC, "encoder.safetensors"), "components.encoder"),
    ("component missing", _del(ENC), "components"),
    ("component name escapes", _rename_component, "components.../evil"),
    ("negative bytes", _set(f"{ENC}/bytes", -1), "components.encoder.bytes"),
    ("bool bytes", _set(f"{ENC}/bytes", True), "components.encoder.bytes"),
    ("float bytes", _set(f"{ENC}/bytes", 3346688.0), "components.encoder.bytes"),
    ("string bytes", _set(f"{ENC}/bytes", "3346688"), "components.encoder.bytes"),
    ("wrong bytes", _set(f"{ENC}/bytes", 3346687), "components.encoder.bytes"),
    ("no sha256", _del(f"{ENC}/sha256"), "components.encoder.sha256"),
    ("short sha256", _set(f"{ENC}/sha256", "abc"), "components.encoder.sha256"),
    ("wrong sha256", _set(f"{ENC}/sha256", "0" * 64), "components.encoder.sha256"),
    ("file outside", _set(f"{ENC}/file", "../encoder.safetensors"), "components.encoder.file"),
    ("another component's file", _set(f"{ENC}/file", "decoder.safetensors"), "components.encoder.file"),
    ("tensor listing a list", _set(f"{ENC}/tensors", []), "components.encoder.tensors"),
    ("tensor entry a list", _set(f"{ENC}/tensors/{TENSOR}", [32, 8, 3, 3]), f"components.encoder.tensors.{TENSOR}"),
    ("shape a number", _set(f"{ENC}/tensors/{TENSOR}/shape", 32), f"components.encoder.tensors.{TENSOR}.shape"),
    ("shape a negative", _set(f"{ENC}/tensors/{TENSOR}/shape", [-32, 8, 3, 3]),
     f"components.encoder.tensors.{TENSOR}.shape"),
    ("shape of bools", _set(f"{ENC}/tensors/{TENSOR}/shape", [True, 8, 3, 3]),
     f"components.encoder.tensors.{TENSOR}.shape"),
    ("no dtype", _del(f"{ENC}/tensors/{TENSOR}/dtype"), f"components.encoder.tensors.{TENSOR}.dtype"),
    ("dtype unlike the file", _set(f"{ENC}/tensors/{TENSOR}/dtype", "float16"), f"components.encoder.tensors.{TENSOR}"),
    ("shape unlike the file", _set(f"{ENC}/tensors/{TENSOR}/shape", [32, 8, 3]), f"components.encoder.tensors.{TENSOR}"),
    ("tensor not in the file", _set(f"{ENC}/tensors/extra", {"shape": [1], "dtype": "float32"}),
     "components.encoder.tensors"),
]


@pytest.mark.parametrize(("edit", "field"), [c[1:] for c in CORE_CASES], ids=[c[0] for c in CORE_CASES])
def test_core_manifest_edit_names_the_field(
    targets: dict[str, Any], edit: Callable[[dict[str, Any]], None], field: str
) -> None:
    core = targets["core"]
    manifest = copy.deepcopy(core.manifest)
    edit(manifest)
    with pytest.raises(BundleError) as info:
        _load(core, manifest)
    assert info.value.field == field, str(info.value)
    assert repr(field) in str(info.value) or field in str(info.value)
    assert info.value.path is not None and Path(info.value.path).is_relative_to(core.directory)


def test_config_mismatching_the_weights_is_left_to_the_shape_check(targets: dict[str, Any]) -> None:
    """A well-typed size that disagrees with the weights names the tensor that does not fit."""
    core = targets["core"]
    manifest = copy.deepcopy(core.manifest)
    manifest["config"]["generator"]["decoder"]["hidden"] = 31
    with pytest.raises(BundleError, match="wrong shape") as info:
        _load(core, manifest)
    assert info.value.field is not None and info.value.field.startswith("components.decoder.tensors.")
    manifest = copy.deepcopy(core.manifest)
    manifest["config"]["encoder"]["low_channels"] = [32, 64, 80]
    with pytest.raises(BundleError) as info:
        _load(core, manifest)
    assert info.value.field is not None and info.value.field.startswith("components.encoder.tensors.")


def test_shipped_core_still_loads_and_a_late_field_may_be_absent(targets: dict[str, Any]) -> None:
    core = targets["core"]
    manifest = copy.deepcopy(core.manifest)
    _load(core, manifest)
    del manifest["config"]["generator"]["superres"]["conv_clamp"]  # added after bundles were first written
    _load(core, manifest)
    assert load_core().generator.config.superres.conv_clamp is None


def test_unparsable_manifests(targets: dict[str, Any]) -> None:
    core = targets["core"]
    path = core.directory / "manifest.json"
    for text, match in (
        ('{"kind": "a", "kind": "b"}', "duplicate key 'kind'"),
        ("1" * 5000, "not valid JSON"),
        ("[" * 100_000, "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (b"\xff\xfe{}", "not valid JSON"),
    ):
        core.reset()
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(BundleError, match=match) as info:
            load_core(core.directory)
        assert info.value.field is None and info.value.path == str(path)


# -- one edit each, on a small bundle with a style bank, and a generator bundle ------------------

def _long_component(m: dict[str, Any]) -> None:
    # The file system refuses the name (ENAMETOOLONG) when the loader looks for the file.
    m["components"]["n" * 300] = {**m["components"]["net"], "file": "n" * 300 + ".safetensors"}


BANK = "style_bank/entries/bronze"
SMALL_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("metadata a list", _set(f"{BANK}/metadata", [["strength", 0.5]]), "style_bank.entries.bronze.metadata"),
    ("metadata a string", _set(f"{BANK}/metadata", "strong"), "style_bank.entries.bronze.metadata"),
    ("no metadata", _del(f"{BANK}/metadata"), "style_bank.entries.bronze.metadata"),
    ("description a number", _set(f"{BANK}/description", 5), "style_bank.entries.bronze.description"),
    ("no description", _del(f"{BANK}/description"), "style_bank.entries.bronze.description"),
    ("no kind", _del(f"{BANK}/kind"), "style_bank.entries.bronze.kind"),
    ("unknown entry key", _set(f"{BANK}/weight", 1.0), "style_bank.entries.bronze.weight"),
    ("entry a string", _set(BANK, "direction"), "style_bank.entries.bronze"),
    ("entry without tensor", _del(BANK), "style_bank.entries"),
    ("bank file renamed", _set("style_bank/file/file", "bank.safetensors"), "style_bank.file.file"),
    ("bank bytes a bool", _set("style_bank/file/bytes", False), "style_bank.file.bytes"),
    ("component named styles", lambda m: m["components"].update(styles=m["components"]["net"]), "components.styles"),
    ("component named manifest", lambda m: m["components"].update(manifest=m["components"]["net"]),
     "components.manifest"),
    ("component name too long", _long_component, "components." + "n" * 300 + ".file"),
]


@pytest.mark.parametrize(("edit", "field"), [c[1:] for c in SMALL_CASES], ids=[c[0] for c in SMALL_CASES])
def test_small_bundle_edit_names_the_field(
    targets: dict[str, Any], edit: Callable[[dict[str, Any]], None], field: str
) -> None:
    small = targets["bundle"]
    manifest = copy.deepcopy(small.manifest)
    edit(manifest)
    with pytest.raises(BundleError) as info:
        _load(small, manifest)
    assert info.value.field == field, str(info.value)


GENERATOR_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("missing section", _del("config/render"), "config.render"),
    ("wrong type", _set("config/synthesis/plane_channels", "4"), "config.synthesis.plane_channels"),
    ("tuple length", _set("config/superres/channels", [4]), "config.superres.channels"),
    ("unknown key", _set("config/renderer", {}), "config.renderer"),
    ("core kind", _set("kind", "tricam-core"), "kind"),
]


@pytest.mark.parametrize(("edit", "field"), [c[1:] for c in GENERATOR_CASES], ids=[c[0] for c in GENERATOR_CASES])
def test_generator_bundle_edit_names_the_field(
    targets: dict[str, Any], edit: Callable[[dict[str, Any]], None], field: str
) -> None:
    gen = targets["generator"]
    manifest = copy.deepcopy(gen.manifest)
    edit(manifest)
    with pytest.raises(BundleError, match="bad generator config|kind") as info:
        _load(gen, manifest)
    assert info.value.field == field, str(info.value)


def test_file_edits_name_the_field(targets: dict[str, Any]) -> None:
    small = targets["bundle"]
    head = small.files["head.safetensors"]
    for op, resigned, field in (
        ("truncate", False, "components.head.bytes"),
        ("flip", False, "components.head.sha256"),
        ("delete", False, "components.head.file"),
        ("overwrite", True, "components.head.file"),  # garbage with a matching hash: safetensors refuses it
        ("header", True, "components.head.file"),
    ):
        small.reset()
        manifest = copy.deepcopy(small.manifest)
        data = fb.corrupt_bytes(head, op, 0.5, b"\x07" * 8)
        small.write_file("head.safetensors", data)
        if resigned:
            assert data is not None
            fb.resign(manifest, "head.safetensors", data)
        small.write_manifest(manifest)
        with pytest.raises(BundleError) as info:
            load_bundle(small.directory)
        assert info.value.field == field, (op, str(info.value))
        assert info.value.path == str(small.directory / "head.safetensors")


# -- the error and config APIs ----------------------------------------------------------------------


def test_bundle_error_api() -> None:
    plain = BundleError("something is off")
    assert str(plain) == "something is off" and plain.field is None and plain.path is None
    e = BundleError("x: field 'a.b' bad", field="a.b", path=Path("/tmp/b"))
    assert e.path == "/tmp/b"
    back = pickle.loads(pickle.dumps(e))
    assert (str(back), back.field, back.path) == (str(e), "a.b", "/tmp/b")


def test_a_model_that_refuses_its_config_is_a_bundle_error(tmp_path: Path) -> None:
    def gain() -> float:
        return 1.0 / math.sqrt(0)  # what a layer with no inputs computes

    with pytest.raises(BundleError, match="cannot be built") as info:
        build_on_meta(gain, path=tmp_path / "manifest.json", field="config.generator")
    assert info.value.field == "config.generator"


def test_config_from_dict_is_typed_and_strict_on_request() -> None:
    full = json.loads((DEFAULT_BUNDLE / "manifest.json").read_text())["config"]
    assert config_from_dict(EncoderConfig, full["encoder"], strict=True) == EncoderConfig(
        **{**full["encoder"], "low_channels": (32, 64, 96), "fuse_channels": (48, 64)}
    )
    partial = {k: v for k, v in full["encoder"].items() if k != "lift_points"}
    assert config_from_dict(EncoderConfig, partial).lift_points == EncoderConfig().lift_points  # lenient default
    with pytest.raises(ConfigError, match="missing") as info:
        config_from_dict(EncoderConfig, partial, strict=True)
    assert info.value.field == "lift_points"
    with pytest.raises(ConfigError) as info:
        config_from_dict(GeneratorConfig, {**full["generator"], "mapping": {"z_dim": True}})
    assert info.value.field == "mapping.z_dim" and isinstance(info.value, ValueError)
    assert config_from_dict(SuperResConfig, {"channels": [8, 4], "output_resolution": 32}, strict=True).conv_clamp is None


# -- hypothesis: random edits ----------------------------------------------------------------------

_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
)
json_values = st.recursive(
    _leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _draw_path(data: st.DataObject, doc: dict[str, Any]) -> tuple[str | int, ...]:
    # The config twice as often as any other section: the tensor listings would drown it.
    section = data.draw(st.sampled_from(["config", "config", *doc]))
    if section not in doc:
        return (section,) if doc else ()
    paths = [(section,), *((section, *p) for p in fb.json_paths(doc[section]))]
    path: tuple[str | int, ...] = data.draw(st.sampled_from(paths))
    return path


def _edit_manifest(data: st.DataObject, doc: dict[str, Any]) -> None:
    path = _draw_path(data, doc)
    if not path or path[0] not in doc:
        return
    value = fb.get(doc, path)
    op = data.draw(st.sampled_from(["delete", "set", "retype", "add_key", "resize"]))
    if op == "delete":
        fb.delete(doc, path)
    elif op == "set":
        fb.set_value(doc, path, data.draw(json_values))
    elif op == "retype":
        fb.set_value(doc, path, fb.retype(value, data.draw(st.integers(0, 7))))
    elif op == "add_key":
        fb.add_key(doc, path, data.draw(st.text(max_size=6)), data.draw(json_values))
    else:
        fb.resize(doc, path, data.draw(st.sampled_from([-2, -1, 1, 2])))


def _edit_file(data: st.DataObject, target: Any, manifest: dict[str, Any]) -> None:
    name = data.draw(st.sampled_from(sorted(target.files)))
    op = data.draw(st.sampled_from(fb.FILE_EDITS))
    payload = data.draw(st.binary(max_size=64))
    corrupted = fb.corrupt_bytes(target.files[name], op, data.draw(st.floats(0, 1)), payload)
    target.write_file(name, corrupted)
    if corrupted is not None and data.draw(st.booleans()):
        fb.resign(manifest, name, corrupted)


def _only_bundle_errors(data: st.DataObject, target: Any, *, file_edits: bool) -> None:
    target.reset()
    manifest = copy.deepcopy(target.manifest)
    for _ in range(data.draw(st.integers(1, 3))):
        if file_edits and data.draw(st.booleans()):
            _edit_file(data, target, manifest)
        else:
            _edit_manifest(data, manifest)
    target.write_manifest(manifest)
    if file_edits and data.draw(st.integers(0, 9)) == 0:  # the manifest's own bytes
        target.corrupt_manifest(data.draw(st.sampled_from(fb.FILE_EDITS)), data.draw(st.floats(0, 1)),
                                data.draw(st.binary(max_size=16)))
    try:
        target.load(target.directory)
    except BundleError as e:
        assert e.path is not None, str(e)
        if not file_edits:  # the manifest still parses as JSON, so some field is at fault
            assert e.field, str(e)


FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
LONG = settings(max_examples=3000, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FAST
@given(data=st.data())
def test_fuzz_core_manifest(targets: dict[str, Any], data: st.DataObject) -> None:
    _only_bundle_errors(data, targets["core"], file_edits=False)


@FAST
@given(data=st.data(), name=st.sampled_from(["bundle", "generator"]))
def test_fuzz_small_bundles_manifest_and_files(targets: dict[str, Any], data: st.DataObject, name: str) -> None:
    _only_bundle_errors(data, targets[name], file_edits=True)


@pytest.mark.slow
@LONG
@given(data=st.data(), name=st.sampled_from(["core", "bundle", "generator"]))
def test_fuzz_long(targets: dict[str, Any], data: st.DataObject, name: str) -> None:
    _only_bundle_errors(data, targets[name], file_edits=True)


@pytest.mark.slow
def test_fuzz_script_finds_nothing_but_bundle_errors() -> None:
    counts = fb.run(seconds=60, seed=1)
    assert counts["other"] == 0, counts["other_examples"]
    assert counts["loaded"] > 0 and counts["bundle_error"] > 0


def test_fuzz_script_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fb.main(["--max-inputs", "12", "--seconds", "60", "--targets", "bundle,generator", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["inputs"] == 12 and counts["other"] == 0
    assert counts["loaded"] + counts["bundle_error"] == 12

