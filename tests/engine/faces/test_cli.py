import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from streamer.cli import main


def _write(tmp_path: Path, name: str, arr: np.ndarray) -> Path:
    p = tmp_path / name
    Image.fromarray(arr).save(p)
    return p


def test_inspect_json_and_out(tmp_path, astronaut, capsys):
    img = _write(tmp_path, "a.png", astronaut)
    out = tmp_path / "out"
    assert main(["inspect", str(img), "--json", "--out", str(out), "--crop-size", "128"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["image"]["width"] == 512 and res["image"]["height"] == 512
    assert len(res["faces"]) == 1
    f = res["faces"][0]
    assert len(f["camera"]) == 25 and f["landmarks"] == 478 and len(f["bbox"]) == 4
    assert all(isinstance(f[k], float) for k in ("yaw", "pitch", "roll"))
    crop = np.asarray(Image.open(out / "crop_0.png"))
    assert crop.shape == (128, 128, 3)
    assert np.asarray(Image.open(out / "overlay.png")).shape == (512, 512, 3)


def test_inspect_no_face_and_human_summary(tmp_path, capsys):
    img = _write(tmp_path, "blank.png", np.full((120, 160, 3), 200, np.uint8))
    assert main(["inspect", str(img), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["faces"] == []
    assert main(["inspect", str(img)]) == 0
    assert "0 face(s)" in capsys.readouterr().out


@pytest.mark.parametrize("content", [None, b"not an image at all"])
def test_inspect_unreadable_input_fails_clearly(tmp_path, capsys, content):
    p = tmp_path / "bad.png"
    if content is not None:
        p.write_bytes(content)
    assert main(["inspect", str(p), "--json"]) != 0
    cap = capsys.readouterr()
    assert cap.out == "" and "cannot read image" in cap.err
