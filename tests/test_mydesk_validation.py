"""scripts/mydesk_validation.py on the real mydesk frames, small and on the CPU (a few seconds)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

from ilrm.cameras import resize_and_center_crop

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "mydesk_validation.py"
MYDESK = ROOT / "demo" / "examples" / "mydesk"
SIZE = (64, 112)


def _script() -> ModuleType:
    """The script as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("mydesk_validation", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("mydesk") / "result.json"
    code = _script().main([
        "--scene", str(MYDESK), "--model", "random-tiny=preset:tiny", "--size", *map(str, SIZE),
        "--limit-pairs", "1", "--no-lpips", "--device", "cpu", "--quiet", "--out", str(out),
    ])
    assert code == 0
    return json.loads(out.read_text())


def test_output_structure(result: dict) -> None:
    assert result["image_size"] == list(SIZE)
    assert len(result["frames"]) == 12
    assert result["settings"]["2-neighbours"]["pairs"] == [[0, 1]]
    assert result["settings"]["8-spread"] == {"inputs": [0, 2, 3, 5, 6, 8, 9, 11], "targets": [1, 4, 7, 10]}
    assert [m["label"] for m in result["methods"]] == ["random-tiny", "copy-nearest"]
    assert result["models"][0]["weights"] == "random weights (preset: random initialisation, not a trained model)"
    assert result["metrics"]["lpips"]["enabled"] is False
    rows = {(r["setting"], r["subset"], r["method"]): r for r in result["results"]}
    assert set(rows) == {
        (s, sub, m)
        for s, sub in (("2-neighbours", "all-others"), ("2-neighbours", "adjacent"), ("8-spread", "held-out"))
        for m in ("random-tiny", "copy-nearest")
    }
    assert rows[("2-neighbours", "all-others", "copy-nearest")]["num_views"] == 10
    assert rows[("2-neighbours", "adjacent", "copy-nearest")]["num_views"] == 1  # frame 2 (frame -1 does not exist)
    assert rows[("8-spread", "held-out", "copy-nearest")]["num_views"] == 4
    for r in rows.values():
        assert r["lpips"] is None
        assert math.isfinite(r["psnr"]) and -1.0 <= r["ssim"] <= 1.0
        if r["method"] == "copy-nearest":
            assert 8.0 < r["psnr"] < 40.0
            assert r["margin_vs_copy_nearest"]["psnr"] == 0.0
        else:
            copy = rows[(r["setting"], r["subset"], "copy-nearest")]
            assert r["margin_vs_copy_nearest"]["psnr"] == pytest.approx(r["psnr"] - copy["psnr"])
    assert "| 8-spread | held-out | copy-nearest |" in result["table_markdown"]
    assert len(result["splits"]) == 2


def _camera_centre(frame: dict) -> np.ndarray:
    w2c = np.asarray(frame["w2c"], dtype=np.float64)
    return -w2c[:3, :3].T @ w2c[:3, 3]


def _image(path: Path) -> torch.Tensor:
    """The frame resized to SIZE by the library's cover-and-crop resize (as the script documents)."""
    im = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
    out, _ = resize_and_center_crop(im[None], torch.eye(3)[None], SIZE)
    return out[0].double()


def test_copy_nearest_psnr_by_hand(result: dict) -> None:
    """Pair (0, 1), target frame 5: nearest input by camera centre from the raw JSON, PSNR in numpy."""
    cams = json.loads((MYDESK / "opencv_cameras.json").read_text())["frames"]
    target = 5
    dists = [np.linalg.norm(_camera_centre(cams[i]) - _camera_centre(cams[target])) for i in (0, 1)]
    nearest = (0, 1)[int(np.argmin(dists))]
    copied, gt = _image(MYDESK / cams[nearest]["file_path"]), _image(MYDESK / cams[target]["file_path"])
    mse = float(((copied.clamp(0, 1) - gt.clamp(0, 1)) ** 2).mean())
    expected = -10 * math.log10(mse)
    split = result["splits"][0]
    assert split["inputs"] == [0, 1]
    view = next(v for v in split["methods"]["copy-nearest"]["views"] if v["frame"] == target)
    assert view["copied_frame"] == nearest
    assert view["psnr"] == pytest.approx(expected, abs=1e-4)
    assert 8.0 < view["psnr"] < 40.0


def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main = _script().main
    common = ["--size", *map(str, SIZE), "--limit-pairs", "1", "--no-lpips", "--device", "cpu", "--quiet"]
    assert main(["--scene", str(tmp_path / "missing"), "--model", "preset:tiny", *common]) == 2
    assert "does not exist" in capsys.readouterr().err
    broken = tmp_path / "broken_ckpt"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    (broken / "model.safetensors").write_bytes(b"garbage")
    assert main(["--scene", str(MYDESK), "--model", str(broken), *common]) == 2
    err = capsys.readouterr().err
    # the loader's own message: which file, and what to do
    assert err.startswith("error: ") and "config.json cannot be read" in err and "Traceback" not in err
    assert main(["--scene", str(MYDESK), "--model", str(tmp_path / "nothing_here"), *common]) == 2
    assert "not found" in capsys.readouterr().err
