import json

import numpy as np
import pytest

from engine.synth import params as P
from engine.synth.dataset import load_index, load_shard
from streamer.cli import main


def _load_all(out):
    index = load_index(out)
    arrays, records = [], []
    for s in index["shards"]:
        a, r = load_shard(out / s["file"])
        assert len(r) == s["count"] == len(a["images"])
        arrays.append(a)
        records += r
    return index, {k: np.concatenate([a[k] for a in arrays]) for k in arrays[0]}, records


def test_cli_views_end_to_end(tmp_path):
    out = tmp_path / "ds"
    rc = main(["synth", "--count", "5", "--views", "2", "--size", "32", "--seed", "3", "--out", str(out),
               "--shard-size", "4", "--no-progress"])
    assert rc == 0
    assert (out / "contact_sheet.png").stat().st_size > 0
    index, arr, recs = _load_all(out)
    assert index["count"] == 10 and len(index["shards"]) == 3
    assert arr["images"].shape == (10, 32, 32, 3) and arr["images"].dtype == np.uint8
    assert arr["depth"].dtype == np.float16 and arr["labels"].dtype == np.uint8
    assert arr["cameras"].shape == (10, 25) and arr["cameras"].dtype == np.float32
    assert [r["id"] for r in recs] == list(range(10))
    assert [(r["head"], r["view"]) for r in recs] == [(i, v) for i in range(5) for v in range(2)]
    for r in recs:
        head = P.HeadParams.from_dict(r["attributes"])
        assert r["caption"] == P.caption(head)
        assert head == P.sample_head(3, r["head"])
    card = json.loads((out / "card.json").read_text())
    assert card["images"] == 10 and sum(card["histograms"]["glasses"].values()) == 10
    assert card["class_image_count"]["skin"] == 10


def test_cli_pairs_and_video(tmp_path):
    rc = main(["synth", "--count", "3", "--pairs", "--size", "24", "--out", str(tmp_path / "p"), "--no-progress"])
    assert rc == 0
    _, arr, recs = _load_all(tmp_path / "p")
    assert [r["side"] for r in recs] == ["before", "after"] * 3
    assert all(recs[i]["edit"] == recs[i + 1]["edit"] for i in range(0, 6, 2))
    assert np.array_equal(arr["cameras"][0::2], arr["cameras"][1::2])
    rc = main(["synth", "--count", "1", "--video", "12", "--size", "24", "--out", str(tmp_path / "v"),
               "--no-progress"])
    assert rc == 0
    _, arr, recs = _load_all(tmp_path / "v")
    assert [r["frame"] for r in recs] == list(range(12))
    yaw = np.array([r["pose"]["yaw_deg"] for r in recs])
    assert np.abs(np.diff(yaw)).max() < 5.0  # smooth trajectory


def test_cli_errors(tmp_path, caplog):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "something").write_text("x")
    assert main(["synth", "--count", "2", "--size", "24", "--out", str(out), "--no-progress"]) == 2
    assert "not empty" in caplog.text
    assert main(["synth", "--count", "2", "--size", "8", "--out", str(tmp_path / "b"), "--no-progress"]) == 2
    assert main(["synth", "--count", "2", "--views", "2", "--pairs", "--out", str(tmp_path / "c")]) == 2
    assert main(["synth", "--count", "1", "--size", "24", "--out", str(out), "--overwrite", "--no-progress"]) == 0


def test_load_rejects_foreign_files(tmp_path):
    (tmp_path / "index.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError):
        load_index(tmp_path)


def test_same_seed_same_dataset(tmp_path):
    from engine.synth.dataset import SynthConfig, generate

    for name in ("a", "b"):
        generate(SynthConfig(count=4, size=24, seed=9, views=2, shard_size=3), tmp_path / name)
    _, a, ra = _load_all(tmp_path / "a")
    _, b, rb = _load_all(tmp_path / "b")
    assert ra == rb
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    generate(SynthConfig(count=4, size=24, seed=10, views=2), tmp_path / "c")
    _, c, _ = _load_all(tmp_path / "c")
    assert not np.array_equal(a["images"], c["images"])
