"""Camera files: every format parses to the same cameras; matching by name; errors say what to fix."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ilrm.camera_files import (
    CameraSet,
    NamedCamera,
    find_camera_file,
    find_scene,
    load_camera_files,
    match_cameras,
    parse_colmap_binary,
    parse_colmap_text,
    read_camera_set,
)
from ilrm.errors import ILRMInputError

ROOT = Path(__file__).resolve().parents[1]
MYDESK = ROOT / "demo" / "examples" / "mydesk"
GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def make_cameras(n: int = 3, seed: int = 0, w: int = 64, h: int = 48):
    """n (name, c2w OpenCV, K) triples with distinct random poses and intrinsics."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        c2w = np.eye(4)
        c2w[:3, :3] = random_rotation(rng)
        c2w[:3, 3] = rng.normal(size=3)
        fx, fy = 50 + 10 * i, 52 + 10 * i
        K = np.array([[fx, 0, 31.5 + i], [0, fy, 24.25 - i], [0, 0, 1]])
        out.append((f"img_{i:02d}.png", c2w, K, w, h))
    return out


def write_opencv_json(path: Path, cams) -> Path:
    frames = [
        {
            "file_path": f"images/{n}",
            "w2c": np.linalg.inv(c2w).tolist(),
            "h": h,
            "w": w,
            "fx": K[0, 0],
            "fy": K[1, 1],
            "cx": K[0, 2],
            "cy": K[1, 2],
        }
        for n, c2w, K, w, h in cams
    ]
    path.write_text(json.dumps({"scene_name": "test", "frames": frames}))
    return path


def check_same(cs: CameraSet, cams, atol: float = 1e-9) -> None:
    assert len(cs) == len(cams)
    for (n, c2w, K, w, h), c in zip(cams, cs):
        assert Path(c.name).name == n
        np.testing.assert_allclose(c.c2w, c2w, atol=atol)
        np.testing.assert_allclose(c.intrinsics_for(h, w), K, atol=atol)


# ---- formats -------------------------------------------------------------------------------


def test_opencv_json(tmp_path):
    cams = make_cameras()
    cs = load_camera_files(write_opencv_json(tmp_path / "opencv_cameras.json", cams))
    check_same(cs, cams)
    assert cs.source == "opencv_cameras.json"


def test_real_example_parses():
    cs = load_camera_files(MYDESK / "opencv_cameras.json")
    assert len(cs) == 12
    files = sorted(p.name for p in (MYDESK / "images").iterdir())
    m = match_cameras(cs, [(f, (540, 960)) for f in files], allow_unused=False)
    assert m.intrinsics.shape == (12, 3, 3) and m.c2w.shape == (12, 4, 4)
    assert np.all(np.abs(m.intrinsics[:, 0, 0] - 829.2) < 1.0)


def test_transforms_json_shared_and_per_frame_intrinsics(tmp_path):
    cams = make_cameras()
    frames = [{"file_path": f"./images/{n}", "transform_matrix": (c2w @ GL_TO_CV).tolist()} for n, c2w, *_ in cams]
    # frame 1 overrides the shared intrinsics
    n1, _, K1, *_ = cams[1]
    frames[1].update(fl_x=K1[0, 0], fl_y=K1[1, 1], cx=K1[0, 2], cy=K1[1, 2])
    K0 = cams[0][2]
    data = {"fl_x": K0[0, 0], "fl_y": K0[1, 1], "cx": K0[0, 2], "cy": K0[1, 2], "w": 64, "h": 48, "frames": frames}
    p = tmp_path / "transforms.json"
    p.write_text(json.dumps(data))
    cs = load_camera_files(p)
    for (_, c2w, *_), c in zip(cams, cs):
        np.testing.assert_allclose(c.c2w, c2w, atol=1e-9)
    np.testing.assert_allclose(cs.cameras[0].intrinsics_for(48, 64), K0)
    np.testing.assert_allclose(cs.cameras[1].intrinsics_for(48, 64), K1)
    np.testing.assert_allclose(cs.cameras[2].intrinsics_for(48, 64), K0)  # shared


def test_transforms_axes_convention(tmp_path):
    """An OpenGL camera with identity pose looks down world -z with y up: OpenCV forward = -z, down = -y."""
    data = {"camera_angle_x": 0.69, "frames": [{"file_path": "r_0", "transform_matrix": np.eye(4).tolist()}]}
    p = tmp_path / "transforms_train.json"
    p.write_text(json.dumps(data))
    c = load_camera_files(p).cameras[0]
    np.testing.assert_allclose(c.c2w[:3, 2], [0, 0, -1])
    np.testing.assert_allclose(c.c2w[:3, 1], [0, -1, 0])
    np.testing.assert_allclose(c.c2w[:3, 0], [1, 0, 0])
    # NeRF-synthetic: no size, focal from camera_angle_x at whatever size the photo has
    K = c.intrinsics_for(800, 800)
    assert K[0, 0] == pytest.approx(400 / np.tan(0.345)) and K[1, 1] == pytest.approx(K[0, 0])
    assert (K[0, 2], K[1, 2]) == (400, 400)
    # matched by stem: "r_0" <-> "r_0.png"
    m = match_cameras(load_camera_files(p), [("R_0.PNG", (800, 800))])
    np.testing.assert_allclose(m.intrinsics[0], K)


def test_transforms_field_of_view_with_stated_size(tmp_path):
    """``camera_angle_x`` with ``w``/``h``: fx = w / 2 / tan(angle_x / 2) for that size, fy = fx
    unless ``camera_angle_y`` (fy = h / 2 / tan(angle_y / 2)); non-square; scaled with the photo."""
    ax, ay = 0.9, 0.6
    c2w = np.eye(4)
    frames = [{"file_path": "a.png", "transform_matrix": (c2w @ GL_TO_CV).tolist()},
              {"file_path": "b.png", "transform_matrix": (c2w @ GL_TO_CV).tolist(), "camera_angle_y": ay}]
    p = tmp_path / "transforms.json"
    p.write_text(json.dumps({"camera_angle_x": ax, "w": 80, "h": 60, "cx": 41.0, "frames": frames}))
    a, b = load_camera_files(p).cameras
    fx = 40 / np.tan(ax / 2)  # 78.7 px for an 80 px wide image
    np.testing.assert_allclose(a.intrinsics_for(60, 80), [[fx, 0, 41.0], [0, fx, 30.0], [0, 0, 1]], rtol=1e-12)
    fy = 30 / np.tan(ay / 2)
    np.testing.assert_allclose(b.intrinsics_for(60, 80), [[fx, 0, 41.0], [0, fy, 30.0], [0, 0, 1]], rtol=1e-12)
    # photos uploaded at twice the stated size: the same field of view, twice the pixels
    np.testing.assert_allclose(a.intrinsics_for(120, 160), [[2 * fx, 0, 82.0], [0, 2 * fx, 60.0], [0, 0, 1]],
                               rtol=1e-12)
    # the field of view really spans the image: the left edge's ray is angle_x / 2 off the axis
    K = a.intrinsics_for(60, 80)
    assert np.arctan((K[0, 2] - 0) / K[0, 0]) + np.arctan((80 - K[0, 2]) / K[0, 0]) == pytest.approx(ax, abs=2e-3)


def test_transforms_field_of_view_without_size_non_square(tmp_path):
    """No ``w``/``h``: the angles apply to the photo at whatever size it has, x across the width."""
    ax, ay = 0.8, 0.5
    frames = [{"file_path": "a", "transform_matrix": np.eye(4).tolist()},
              {"file_path": "b", "transform_matrix": np.eye(4).tolist(), "camera_angle_y": ay}]
    p = tmp_path / "transforms.json"
    p.write_text(json.dumps({"camera_angle_x": ax, "frames": frames}))
    a, b = load_camera_files(p).cameras
    fx = 50 / np.tan(ax / 2)  # a 100 × 40 photo
    np.testing.assert_allclose(a.intrinsics_for(40, 100), [[fx, 0, 50], [0, fx, 20], [0, 0, 1]], rtol=1e-12)
    np.testing.assert_allclose(b.intrinsics_for(40, 100), [[fx, 0, 50], [0, 20 / np.tan(ay / 2), 20], [0, 0, 1]],
                               rtol=1e-12)


def test_transforms_distortion_warns_and_fisheye_refused(tmp_path):
    cams = make_cameras(2)
    frames = [{"file_path": n, "transform_matrix": (c2w @ GL_TO_CV).tolist()} for n, c2w, *_ in cams]
    data = {"fl_x": 50, "fl_y": 50, "cx": 32, "cy": 24, "w": 64, "h": 48, "k1": 0.1, "frames": frames}
    p = tmp_path / "transforms.json"
    p.write_text(json.dumps(data))
    assert any("distortion" in w for w in load_camera_files(p).warnings)
    p.write_text(json.dumps({**data, "camera_model": "OPENCV_FISHEYE"}))
    with pytest.raises(ILRMInputError, match="undistort"):
        load_camera_files(p)


def colmap_reconstruction(cams, model: str = "PINHOLE"):
    """A pycolmap Reconstruction holding ``cams`` (one camera per image) written by COLMAP itself."""
    pycolmap = pytest.importorskip("pycolmap")
    rec = pycolmap.Reconstruction()
    for i, (n, c2w, K, w, h) in enumerate(cams, start=1):
        cam = pycolmap.Camera.create_from_model_name(i, model, 1.0, w, h)
        if model == "PINHOLE":
            cam.params = [K[0, 0], K[1, 1], K[0, 2], K[1, 2]]
        elif model == "SIMPLE_RADIAL":
            cam.params = [K[0, 0], K[0, 2], K[1, 2], 0.01]
        elif model == "OPENCV":
            cam.params = [K[0, 0], K[1, 1], K[0, 2], K[1, 2], 0.0, 0.0, 0.0, 0.0]
        else:
            cam.params = [K[0, 0], K[0, 2], K[1, 2]] + [0.0] * (len(cam.params) - 3)
        rec.add_camera_with_trivial_rig(cam)
        w2c = np.linalg.inv(c2w)
        image = pycolmap.Image(name=n, camera_id=i, image_id=10 + i)
        rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(w2c[:3, :4]))
    return rec


def expected_K(K, model):
    if model == "SIMPLE_RADIAL":
        K = K.copy()
        K[1, 1] = K[0, 0]
    return K


@pytest.mark.parametrize("model", ["PINHOLE", "SIMPLE_RADIAL", "OPENCV"])
@pytest.mark.parametrize("kind", ["text", "binary"])
def test_colmap_models_written_by_pycolmap(tmp_path, kind, model):
    cams = make_cameras(4)
    rec = colmap_reconstruction(cams, model)
    out = tmp_path / "sparse" / "0"
    out.mkdir(parents=True)
    (rec.write_text if kind == "text" else rec.write_binary)(str(out))
    ext = "txt" if kind == "text" else "bin"
    cs = load_camera_files(sorted(out.iterdir()))  # all files of the model, extras included
    check_same(cs, [(n, c2w, expected_K(K, model), w, h) for n, c2w, K, w, h in cams], atol=1e-7)
    assert ("distortion" in " ".join(cs.warnings)) == (model == "SIMPLE_RADIAL")
    # and as a zip with the model in a subfolder
    z = tmp_path / "model.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in out.iterdir():
            zf.write(f, f"project/sparse/0/{f.name}")
    cs2 = load_camera_files(z)
    np.testing.assert_allclose(cs2.c2w(), cs.c2w())
    assert cs2.source.endswith(kind + " model") and ext in {"txt", "bin"}


def test_colmap_text_without_point_lines_and_comments():
    cams_txt = "# comment\n1 SIMPLE_PINHOLE 100 50 80 50 25\n"
    imgs_txt = "# IMAGE_ID ...\n1 1 0 0 0 0 0 0 1 a.jpg\n2 1 0 0 0 1 0 0 1 b.jpg\n1.0 2.0 -1 3.0 4.0 5\n"
    cs = parse_colmap_text(cams_txt, imgs_txt)
    assert cs.names == ["a.jpg", "b.jpg"]
    np.testing.assert_allclose(cs.cameras[1].c2w[:3, 3], [-1, 0, 0])  # c = -R^T t
    np.testing.assert_allclose(cs.cameras[0].intrinsics_for(50, 100), [[80, 0, 50], [0, 80, 25], [0, 0, 1]])


def test_colmap_errors(tmp_path):
    cams = make_cameras(2)
    rec = colmap_reconstruction(cams, "PINHOLE")
    rec.write_binary(str(tmp_path))
    cb, ib = (tmp_path / "cameras.bin").read_bytes(), (tmp_path / "images.bin").read_bytes()
    with pytest.raises(ILRMInputError, match="truncated"):
        parse_colmap_binary(cb, ib[:-10])
    with pytest.raises(ILRMInputError, match="images.bin"):
        load_camera_files([tmp_path / "cameras.bin"])
    fisheye = colmap_reconstruction(cams, "OPENCV_FISHEYE")
    d = tmp_path / "fish"
    d.mkdir()
    fisheye.write_text(str(d))
    with pytest.raises(ILRMInputError, match="OPENCV_FISHEYE.*undistort"):
        load_camera_files([d / "cameras.txt", d / "images.txt"])


def test_not_a_camera_file(tmp_path):
    p = tmp_path / "notes.json"
    p.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ILRMInputError, match="frames"):
        load_camera_files(p)
    p.write_text("{not json")
    with pytest.raises(ILRMInputError, match="not valid JSON"):
        load_camera_files(p)
    q = tmp_path / "readme.txt"
    q.write_text("hello")
    with pytest.raises(ILRMInputError, match="opencv_cameras.json"):
        load_camera_files(q)


# ---- validation ----------------------------------------------------------------------------


def test_nan_pose_named(tmp_path):
    cams = make_cameras()
    c2w = cams[1][1].copy()
    c2w[0, 3] = np.nan
    cams[1] = (cams[1][0], c2w, *cams[1][2:])
    with pytest.raises(ILRMInputError, match=r"NaN.*img_01\.png"):
        load_camera_files(write_opencv_json(tmp_path / "opencv_cameras.json", cams))


def test_non_orthonormal_and_mirrored_rotations(tmp_path):
    cams = make_cameras()
    scaled = cams[0][1].copy()
    scaled[:3, :3] *= 1.5
    with pytest.raises(ILRMInputError, match=r"not proper rotations.*img_00"):
        load_camera_files(write_opencv_json(tmp_path / "a.json", [(cams[0][0], scaled, *cams[0][2:])]))
    mirrored = cams[0][1] @ np.diag([-1.0, 1, 1, 1])
    with pytest.raises(ILRMInputError, match="mirror"):
        load_camera_files(write_opencv_json(tmp_path / "b.json", [(cams[0][0], mirrored, *cams[0][2:])]))
    # tiny drift (few printed digits) is accepted and snapped to a rotation
    drift = cams[0][1].copy()
    drift[:3, :3] *= 1.0005
    c = load_camera_files(write_opencv_json(tmp_path / "c.json", [(cams[0][0], drift, *cams[0][2:])])).cameras[0]
    np.testing.assert_allclose(c.c2w[:3, :3].T @ c.c2w[:3, :3], np.eye(3), atol=1e-12)


def test_duplicate_camera_names(tmp_path):
    cams = make_cameras(2)
    cams[1] = ("IMG_00.png", *cams[1][1:])  # same as img_00.png up to case
    with pytest.raises(ILRMInputError, match="same image file name"):
        load_camera_files(write_opencv_json(tmp_path / "opencv_cameras.json", cams))


# ---- matching ------------------------------------------------------------------------------


def test_matching_by_name_order_and_rescale(tmp_path):
    cams = make_cameras(3)
    cs = load_camera_files(write_opencv_json(tmp_path / "opencv_cameras.json", cams))
    # photos in another order, other case, another extension for one, at half size
    m = match_cameras(cs, [("IMG_02.PNG", (24, 32)), ("img_00.jpg", (24, 32)), ("img_01.png", (24, 32))])
    assert m.camera_names == ["images/img_02.png", "images/img_00.png", "images/img_01.png"]
    np.testing.assert_allclose(m.c2w[0], cams[2][1])
    K = cams[2][2].copy()
    K[:2] *= 0.5
    np.testing.assert_allclose(m.intrinsics[0], K)


def test_matching_errors(tmp_path):
    cams = make_cameras(3)
    cs = load_camera_files(write_opencv_json(tmp_path / "opencv_cameras.json", cams))
    with pytest.raises(ILRMInputError, match=r"no camera.*'holiday\.jpg'.*img_00\.png"):
        match_cameras(cs, [("img_00.png", (48, 64)), ("holiday.jpg", (48, 64))])
    with pytest.raises(ILRMInputError, match=r"aspect ratio"):
        match_cameras(cs, [("img_00.png", (48, 48))])
    with pytest.raises(ILRMInputError, match=r"without an uploaded photo.*img_02"):
        match_cameras(cs, [("img_00.png", (48, 64)), ("img_01.png", (48, 64))], allow_unused=False)
    m = match_cameras(cs, [("img_00.png", (48, 64)), ("img_01.png", (48, 64))])
    assert m.unused == ["images/img_02.png"] and any("no uploaded photo" in w for w in m.warnings)
    with pytest.raises(ILRMInputError, match="same camera"):
        match_cameras(cs, [("img_00.png", (48, 64)), ("img_00.jpg", (48, 64))])
    # two cameras with the same stem make the extension-less fallback ambiguous
    amb = CameraSet(
        [NamedCamera("a.png", np.eye(4), np.eye(3), 1, 1), NamedCamera("a.jpg", np.eye(4), np.eye(3), 1, 1)]
    )
    with pytest.raises(ILRMInputError, match="several cameras"):
        match_cameras(amb, [("a.webp", (1, 1))])


def test_rotated_photo_hint():
    cam = NamedCamera("a.jpg", np.eye(4), np.array([[100.0, 0, 200], [0, 100, 150], [0, 0, 1]]), 400, 300)
    with pytest.raises(ILRMInputError, match="EXIF orientation"):
        cam.intrinsics_for(400, 300)


# ---- COLMAP through pycolmap: what we guard around it ------------------------------------------


def test_colmap_text_names_with_spaces_and_unnormalised_quaternions():
    """pycolmap cuts names at a space and uses quaternions as written; we keep the old results."""
    cams_txt = "1 PINHOLE 100 50 80 81 50 25\n"
    imgs_txt = "1 2 0 0 0 0 0 0 1 IMG 1.jpg\n\n2 0.7 0.1 0 0 1 0 0 1 IMG 2.jpg\n1 2 -1\n"
    cs = parse_colmap_text(cams_txt, imgs_txt)
    assert cs.names == ["IMG 1.jpg", "IMG 2.jpg"]
    w, x = np.array([0.7, 0.1]) / np.hypot(0.7, 0.1)
    R = np.array([[1, 0, 0], [0, 1 - 2 * x * x, -2 * w * x], [0, 2 * w * x, 1 - 2 * x * x]])  # w2c
    np.testing.assert_allclose(cs.cameras[1].c2w[:3, :3], R.T, atol=1e-12)
    np.testing.assert_allclose(cs.cameras[1].c2w[:3, 3], -R.T @ [1, 0, 0], atol=1e-12)


def test_colmap_binary_counts_checked_before_pycolmap(tmp_path):
    """A stated point count far beyond the file's size is refused at once (pycolmap would allocate it)."""
    colmap_reconstruction(make_cameras(2)).write_binary(str(tmp_path))
    cb, ib = (tmp_path / "cameras.bin").read_bytes(), bytearray((tmp_path / "images.bin").read_bytes())
    end = ib.index(b"\0", 8 + 64) + 1  # after the first image's name: its number of 2D points
    ib[end : end + 8] = struct.pack("<Q", 2**40)
    with pytest.raises(ILRMInputError, match="images.bin is truncated"):
        parse_colmap_binary(cb, bytes(ib))
    with pytest.raises(ILRMInputError, match="cameras.bin is truncated"):
        parse_colmap_binary(cb[:-5], (tmp_path / "images.bin").read_bytes())
    bad = bytearray(cb)
    bad[12:16] = struct.pack("<i", 99)  # the first camera's model id
    with pytest.raises(ILRMInputError, match="unknown camera model id 99"):
        parse_colmap_binary(bytes(bad), (tmp_path / "images.bin").read_bytes())


def test_colmap_text_errors_say_what_to_fix():
    with pytest.raises(ILRMInputError, match="CAMERA_ID MODEL WIDTH HEIGHT"):
        parse_colmap_text("1 NOT_A_MODEL 100 50 80 50 25\n", "1 1 0 0 0 0 0 0 1 a.jpg\n\n")
    with pytest.raises(ILRMInputError, match="camera ids that the cameras file does not define"):
        parse_colmap_text("1 SIMPLE_PINHOLE 100 50 80 50 25\n", "1 1 0 0 0 0 0 0 7 a.jpg\n\n")


def test_zip_reads_only_camera_members_and_refuses_a_bomb(tmp_path, monkeypatch):
    import ilrm.camera_files.archives as camera_archives

    cams = make_cameras(2)
    d = tmp_path / "model"
    d.mkdir()
    colmap_reconstruction(cams).write_text(str(d))
    monkeypatch.setattr(camera_archives, "MAX_FILE_BYTES", 64 * 1024)
    z = tmp_path / "with_points.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in d.iterdir():
            if f.stem != "points3D":
                zf.write(f, f"sparse/0/{f.name}")
        zf.writestr("sparse/0/points3D.txt", " " * (1 << 20))  # never unpacked: over the cap on its own
    check_same(load_camera_files(z), cams, atol=1e-7)
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(d / "cameras.txt", "cameras.txt")
        zf.writestr("images.txt", (d / "images.txt").read_text() + "\n" * (1 << 20))
    assert bomb.stat().st_size < 64 * 1024
    with pytest.raises(ILRMInputError, match="unpacks to more than"):
        load_camera_files(bomb)


# ---- format detection: read_camera_set, find_camera_file, find_scene ---------------------------


def write_photos(folder: Path, cams) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for n, *_, w, h in cams:
        Image.new("RGB", (w, h)).save(folder / n)


@pytest.mark.parametrize("layout", ["colmap_text", "colmap_binary", "transforms", "opencv"])
def test_scene_folder_formats_detected(tmp_path, layout):
    cams = make_cameras(3)
    root = tmp_path / "scene"
    write_photos(root / "images", cams)
    if layout.startswith("colmap"):
        model = root / "sparse" / "0"
        model.mkdir(parents=True)
        rec = colmap_reconstruction(cams)
        (rec.write_text if layout == "colmap_text" else rec.write_binary)(str(model))
        expected_file, source = model, "COLMAP " + layout.split("_")[1] + " model"
    elif layout == "transforms":
        frames = [
            {"file_path": f"images/{n}", "transform_matrix": (c2w @ GL_TO_CV).tolist(),
             "fl_x": K[0, 0], "fl_y": K[1, 1], "cx": K[0, 2], "cy": K[1, 2]}
            for n, c2w, K, *_ in cams
        ]
        (root / "transforms.json").write_text(json.dumps({"w": 64, "h": 48, "frames": frames}))
        expected_file, source = root / "transforms.json", "transforms.json"
    else:
        expected_file = write_opencv_json(root / "opencv_cameras.json", cams)
        source = "opencv_cameras.json"
    assert find_camera_file(root) == expected_file
    cs = read_camera_set(root)
    assert cs.source == source
    check_same(cs, cams, atol=1e-7)
    # the same through the file (or model folder) itself, and in the photos' order when names are given
    np.testing.assert_allclose(read_camera_set(expected_file).c2w(), cs.c2w())
    picked = read_camera_set(root, ["img_02.png", "img_00.png"])
    np.testing.assert_allclose(picked.c2w(), cs.c2w()[[2, 0]], atol=1e-12)
    assert any("not used" in w for w in picked.warnings)
    scene = find_scene(root)
    assert scene.camera_file == expected_file
    assert [p.name for p in scene.images] == [n for n, *_ in cams]
    assert all(p.is_file() for p in scene.images)
    check_same(scene.cameras, cams, atol=1e-7)


def test_scene_folder_without_cameras(tmp_path):
    cams = make_cameras(2)
    write_photos(tmp_path / "images", cams)
    (tmp_path / "notes.txt").write_text("not a camera file")
    assert find_camera_file(tmp_path) is None
    scene = find_scene(tmp_path)
    assert scene.cameras is None and scene.camera_file is None
    assert [p.name for p in scene.images] == ["img_00.png", "img_01.png"]
    with pytest.raises(ILRMInputError, match="no camera file.*estimated"):
        read_camera_set(tmp_path)
    with pytest.raises(ILRMInputError, match="no photos"):
        find_scene(_empty(tmp_path / "empty"))


def _empty(folder: Path) -> Path:
    folder.mkdir()
    return folder


def test_scene_folder_photos_named_by_the_camera_file_and_several_files(tmp_path):
    """DL3DV-style paths (images_undistort/...) are followed; a second camera file is named in a warning."""
    cams = make_cameras(2)
    write_photos(tmp_path / "images_undistort", cams)
    frames = json.loads(write_opencv_json(tmp_path / "opencv_cameras.json", cams).read_text())
    for f in frames["frames"]:
        f["file_path"] = f["file_path"].replace("images/", "images_undistort/")
    (tmp_path / "opencv_cameras.json").write_text(json.dumps(frames))
    colmap_reconstruction(cams).write_text(str(_empty(tmp_path / "sparse")))
    scene = find_scene(tmp_path)
    assert scene.images == [tmp_path / "images_undistort" / n for n, *_ in cams]
    assert scene.cameras.source == "opencv_cameras.json" and scene.cameras.scene_name == "test"
    assert any("also holds sparse" in w for w in scene.cameras.warnings)
    # photos the camera file does not know are named in the message
    write_photos(tmp_path / "images", [("holiday.png", None, None, 64, 48)])
    (tmp_path / "opencv_cameras.json").write_text(json.dumps({"frames": frames["frames"][:1]}))
    (tmp_path / "images_undistort" / "img_00.png").unlink()
    with pytest.raises(ILRMInputError, match="holiday.png"):
        find_scene(tmp_path)
