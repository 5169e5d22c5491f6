"""``python -m ilrm reconstruct DIR`` on every kind of scene folder: a COLMAP text model beside
``images/``, a nerfstudio ``transforms.json``, ``opencv_cameras.json``, and photos without cameras.

The same photos and poses, written in three formats, must give the same Gaussians: the readers all
land in one convention and the folder path runs the one Reconstructor."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ilrm.gaussian_files import load_ply
from ilrm.gaussians import rotmat_to_quat

ROOT = Path(__file__).resolve().parents[1]
MYDESK = ROOT / "demo" / "examples" / "mydesk"
FRAMES = [0, 4, 8, 11]  # 4 of the 12 photos (file order); the 1st and 3rd are the input, the others held out
SIZE_ARGS = ["--size", "64x112", "--video-frames", "0"]


def _mydesk_frames() -> list[dict]:
    data = json.loads((MYDESK / "opencv_cameras.json").read_text())
    return [data["frames"][i] for i in FRAMES]


def _small_images(dst: Path, frames: list[dict]) -> None:
    """The photos at a quarter size (240×135) so the CPU test stays fast; intrinsics scale with them."""
    dst.mkdir(parents=True)
    for f in frames:
        im = Image.open(MYDESK / f["file_path"])
        im.resize((240, 135), Image.LANCZOS).save(dst / Path(f["file_path"]).name, quality=95)


def _scaled(f: dict) -> dict:
    s = 240 / f["w"]
    return {**f, "w": 240, "h": 135, "fx": f["fx"] * s, "fy": f["fy"] * 135 / f["h"], "cx": f["cx"] * s,
            "cy": f["cy"] * 135 / f["h"]}


def write_colmap_text(folder: Path) -> Path:
    frames = [_scaled(f) for f in _mydesk_frames()]
    _small_images(folder / "images", frames)
    model = folder / "sparse" / "0"
    model.mkdir(parents=True)
    cams = ["# Camera list", *(f"{i + 1} PINHOLE {f['w']} {f['h']} {f['fx']} {f['fy']} {f['cx']} {f['cy']}"
                                for i, f in enumerate(frames))]
    (model / "cameras.txt").write_text("\n".join(cams) + "\n")
    lines = ["# Image list with two lines of data per image"]
    for i, f in enumerate(frames):
        w2c = np.array(f["w2c"])
        q = rotmat_to_quat(__import__("torch").from_numpy(w2c[:3, :3].copy()).double()[None])[0].numpy()  # wxyz
        t = w2c[:3, 3]
        lines += [f"{i + 1} {q[0]} {q[1]} {q[2]} {q[3]} {t[0]} {t[1]} {t[2]} {i + 1} {Path(f['file_path']).name}", ""]
    (model / "images.txt").write_text("\n".join(lines) + "\n")
    (model / "points3D.txt").write_text("# empty\n")
    return folder


def write_transforms(folder: Path) -> Path:
    frames = [_scaled(f) for f in _mydesk_frames()]
    _small_images(folder / "images", frames)
    out = []
    for f in frames:
        c2w = np.linalg.inv(np.array(f["w2c"])) @ np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV → OpenGL axes
        out.append({"file_path": f["file_path"], "transform_matrix": c2w.tolist(), "fl_x": f["fx"], "fl_y": f["fy"],
                    "cx": f["cx"], "cy": f["cy"], "w": f["w"], "h": f["h"]})
    (folder / "transforms.json").write_text(json.dumps({"camera_model": "OPENCV", "frames": out}))
    return folder


def write_opencv(folder: Path) -> Path:
    frames = [_scaled(f) for f in _mydesk_frames()]
    _small_images(folder / "images", frames)
    (folder / "opencv_cameras.json").write_text(json.dumps({"scene_name": "mydesk-small", "frames": frames}))
    return folder


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ilrm", "reconstruct", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)


@pytest.fixture(scope="module")
def posed_runs(tmp_path_factory):
    """Each camera format reconstructed from the same inputs (photos 0 and 2 of the folder's 4)."""
    results = {}
    for kind, write in [("colmap", write_colmap_text), ("transforms", write_transforms), ("opencv", write_opencv)]:
        scene = write(tmp_path_factory.mktemp(kind))
        out = scene / "out"
        done = run_cli(str(scene), "--out", str(out), "--views", "0,2", *SIZE_ARGS)
        assert done.returncode == 0, done.stderr[-3000:]
        results[kind] = (json.loads((out / "summary.json").read_text()), out)
    return results


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["colmap", "transforms", "opencv"])
def test_each_camera_format_reconstructs(posed_runs, kind):
    summary, out = posed_runs[kind]
    names = [Path(f["file_path"]).name for f in _mydesk_frames()]
    assert summary["context_names"] == [names[0], names[2]]
    assert summary["input_size"] == [64, 112]
    assert (out / "gaussians.ply").stat().st_size > 0 and (out / "gaussians.splat").stat().st_size > 0
    assert [t["name"] for t in summary["targets"]] == [names[1], names[3]]
    assert all(np.isfinite(t["psnr"]) and t["psnr"] > 8 for t in summary["targets"])  # real renders, not blank


@pytest.mark.slow
def test_formats_agree(posed_runs):
    """The same scene in three formats: the same Gaussians in the same (user) frame."""
    ref = load_ply(posed_runs["opencv"][1] / "gaussians.ply")
    for kind in ("colmap", "transforms"):
        g = load_ply(posed_runs[kind][1] / "gaussians.ply")
        assert g.num_gaussians == ref.num_gaussians
        np.testing.assert_allclose(g.means.numpy(), ref.means.numpy(), atol=2e-3 * float(ref.means.abs().max()))
        for a, b in zip(posed_runs[kind][0]["targets"], posed_runs["opencv"][0]["targets"]):
            assert a["psnr"] == pytest.approx(b["psnr"], abs=0.05)


@pytest.mark.slow
def test_unposed_photos_are_estimated(tmp_path):
    """No camera file: the cameras come from pycolmap, and no held-out renders are made."""
    scene = tmp_path / "unposed"
    (scene / "images").mkdir(parents=True)
    photos = sorted((MYDESK / "images").iterdir(), key=lambda p: int(p.stem.removeprefix("frame")))
    for src in photos[:8:2]:  # neighbouring mydesk photos, half size: enough overlap for matching
        Image.open(src).resize((480, 270), Image.LANCZOS).save(scene / "images" / src.name, quality=95)
    out = tmp_path / "out"
    done = run_cli(str(scene), "--out", str(out), "--fov", "60", *SIZE_ARGS)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cameras"].startswith("estimated with pycolmap")
    assert summary["targets"] == [] and len(summary["context"]) == 4
    assert load_ply(out / "gaussians.ply").num_gaussians == 4 * 64 * 112 // 4  # tiny: one per 2×2 pixels


def test_bad_folders_get_messages(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run_cli(str(empty), "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "holds no photos" in done.stderr and "Traceback" not in done.stderr
    done = run_cli(str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "not a folder" in done.stderr
    scene = write_opencv(tmp_path / "scene")
    done = run_cli(str(scene), "--out", str(tmp_path / "o"), "--views", "0,9", *SIZE_ARGS)
    assert done.returncode == 2 and "out of range" in done.stderr
    shutil.rmtree(scene)
