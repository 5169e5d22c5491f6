"""Photos (ilrm.photos): every bad input gets a message that says what to do; photos + cameras become
model input consistently (ilrm.photos.photo_cameras → ilrm.pipeline.prepare_views)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import ExifTags, Image

from ilrm.camera_files import CameraSet, NamedCamera, load_camera_files
from ilrm.config import ILRMConfig
from ilrm.errors import ILRMInputError
from ilrm.photos import load_photos, photo_cameras
from ilrm.pipeline import prepare_views

ROOT = Path(__file__).resolve().parents[1]
MYDESK = ROOT / "demo" / "examples" / "mydesk"


def save(path: Path, array: np.ndarray, **kwargs) -> Path:
    Image.fromarray(array).save(path, **kwargs)
    return path


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_count_limits(tmp_path):
    one = [save(tmp_path / "a.png", noise(8, 8))]
    with pytest.raises(ILRMInputError, match="at least 2 photos"):
        load_photos(one)
    many = [save(tmp_path / f"{i}.png", noise(8, 8, i)) for i in range(33)]
    with pytest.raises(ILRMInputError, match=r"at most 32 photos \(got 33\)"):
        load_photos(many)
    assert len(load_photos(many[:32])) == 32


def test_non_image_renamed_jpg(tmp_path):
    good = save(tmp_path / "a.jpg", noise(16, 16))
    fake = tmp_path / "notes.jpg"
    fake.write_text("these are my notes, not a photo\n" * 20)
    with pytest.raises(ILRMInputError, match=r"'notes\.jpg' is not an image"):
        load_photos([good, fake])


def test_truncated_jpeg(tmp_path):
    good = save(tmp_path / "a.jpg", noise(256, 256), quality=90)
    data = good.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ILRMInputError, match=r"'cut\.jpg' is damaged"):
        load_photos([good, cut])


def test_empty_heic_and_duplicate_names(tmp_path):
    good = save(tmp_path / "a.png", noise(8, 8))
    empty = tmp_path / "b.png"
    empty.write_bytes(b"")
    with pytest.raises(ILRMInputError, match="empty"):
        load_photos([good, empty])
    heic = tmp_path / "c.HEIC"
    heic.write_bytes(b"0" * 100)
    with pytest.raises(ILRMInputError, match="HEIC.*JPEG"):
        load_photos([good, heic])
    (tmp_path / "sub").mkdir()
    dup = save(tmp_path / "sub" / "A.png", noise(8, 8))
    with pytest.raises(ILRMInputError, match="rename"):
        load_photos([good, dup])


def test_different_sizes(tmp_path):
    a = save(tmp_path / "a.png", noise(20, 30))
    b = save(tmp_path / "b.png", noise(30, 20))
    with pytest.raises(ILRMInputError, match=r"same size.*30×20: a\.png.*20×30: b\.png"):
        load_photos([a, b])


def test_huge_image_downscaled_with_exif_focal(tmp_path):
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.FocalLengthIn35mmFilm] = 24
    arr = np.zeros((2000, 3000, 3), np.uint8)
    arr[:, :1500] = 200
    paths = [save(tmp_path / f"{i}.jpg", arr, quality=85, exif=exif.tobytes()) for i in range(2)]
    ims = load_photos(paths, max_side=1024)
    im = ims[0]
    assert im.array.shape == (683, 1024, 3) and im.array.dtype == np.uint8
    assert im.original_size == (2000, 3000)
    assert im.scale == pytest.approx((683 / 2000, 1024 / 3000))
    assert im.exif_focal_px == pytest.approx(24 / 36 * 1024)
    # content survived the reduced-scale decode: left half bright, right half dark
    assert im.array[:, :500].mean() > 190 and im.array[:, 530:].mean() < 10


def test_exif_orientation_applied(tmp_path):
    arr = np.zeros((40, 60, 3), np.uint8)
    arr[:10, :10] = 255  # marker in the stored top-left corner
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # "rotate 90° clockwise to display"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.FocalLengthIn35mmFilm] = 36
    paths = [save(tmp_path / f"{i}.png", arr, exif=exif.tobytes()) for i in range(2)]
    im = load_photos(paths)[0]
    assert im.array.shape == (60, 40, 3) and im.original_size == (60, 40)
    assert im.array[:10, -10:].mean() > 250  # marker moved to the top-right corner
    assert im.exif_focal_px == pytest.approx(60.0)  # f35 = 36 mm → focal = long side


def test_alpha_grey_and_16bit_become_rgb(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:4, ..., 3] = 255  # top half opaque red, bottom half transparent
    p1 = save(tmp_path / "rgba.png", rgba)
    p2 = save(tmp_path / "grey.png", np.full((8, 8), 100, np.uint8))
    p3 = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(p3)
    a, b, c = load_photos([p1, p2, p3])
    assert a.array.shape == (8, 8, 3)
    np.testing.assert_array_equal(a.array[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(a.array[7, 0], [255, 255, 255])  # over white
    np.testing.assert_array_equal(b.array[0, 0], [100, 100, 100])
    np.testing.assert_array_equal(c.array[0, 0], [round(40000 / 257)] * 3)


# ---- photos + cameras → model input ----------------------------------------------------------------------


def synthetic_scene(tmp_path: Path, h: int = 60, w: int = 90):
    """Two cameras looking at a 3D point; photos with a bright dot at its projection."""
    X = np.array([0.3, -0.2, 4.0])
    cams, paths = [], []
    K = np.array([[70.0, 0, 41.0], [0, 70.0, 33.0], [0, 0, 1]])
    for i, tx in enumerate([0.0, 0.5]):
        c2w = np.eye(4)
        c2w[0, 3] = tx
        x = K @ (np.linalg.inv(c2w) @ np.append(X, 1))[:3]
        u, v = x[:2] / x[2]
        img = np.zeros((h, w, 3), np.uint8)
        img[int(v), int(u)] = 255  # the pixel containing (u, v)
        paths.append(save(tmp_path / f"v{i}.png", img))
        cams.append(NamedCamera(f"v{i}.png", c2w, K.copy(), w, h))
    return X, CameraSet(cams, source="test"), paths


class Assembled:
    """What the old assemble_views returned, rebuilt from the library's two steps (same assertions)."""

    def __init__(self, images, cameras, size):
        self.posed = photo_cameras(images, cameras)
        prep = prepare_views(self.posed.images, self.posed.intrinsics, self.posed.c2w, ILRMConfig(), size=size)
        self.views, self.transform = prep.views, prep.transform.float()
        self.c2w_original = prep.c2w_user.float()
        self.intrinsics_original = self.posed.intrinsics.float()
        self.scale = float(torch.linalg.det(self.transform[:3, :3].double()) ** (1 / 3))

    def points_to_original(self, points: torch.Tensor) -> torch.Tensor:
        """(N, 3) points in the model frame → the camera file's frame."""
        back = torch.linalg.inv(self.transform.double())
        return points.double() @ back[:3, :3].T + back[:3, 3]


def assemble_views(images, cameras, size):
    return Assembled(images, cameras, size)


def test_assemble_views_geometry(tmp_path):
    X, cams, paths = synthetic_scene(tmp_path)
    images = load_photos(paths)
    out = assemble_views(images, cams, (30, 30))
    v = out.views
    assert v.images.shape == (1, 2, 3, 30, 30) and v.intrinsics.shape == (1, 2, 3, 3)
    # the normalised cameras: centres map like points, rotations by the transform's rotation
    T, s = out.transform, out.scale
    centres = out.c2w_original[:, :3, 3] @ T[:3, :3].T + T[:3, 3]
    torch.testing.assert_close(v.c2w[0, :, :3, 3], centres, atol=1e-5, rtol=0)
    torch.testing.assert_close(v.c2w[0, :, :3, :3], (T[:3, :3] / s) @ out.c2w_original[:, :3, :3], atol=1e-5, rtol=0)
    assert v.c2w[0, :, :3, 3].abs().max() == pytest.approx(1.0, abs=1e-5)
    Xn = out.transform.double() @ torch.tensor([*X, 1.0], dtype=torch.float64)
    torch.testing.assert_close(out.points_to_original(Xn[None, :3]).squeeze(0), torch.tensor(X), atol=1e-5, rtol=0)
    for i in range(2):
        w2c = torch.linalg.inv(v.c2w[0, i].double())
        x = v.intrinsics[0, i].double() @ (w2c @ Xn)[:3]
        u, vv = (x[:2] / x[2]).tolist()
        img = v.images[0, i].sum(0)
        peak = divmod(int(img.argmax()), 30)  # (row, col)
        assert abs(peak[1] + 0.5 - u) < 1.0 and abs(peak[0] + 0.5 - vv) < 1.0


def test_assemble_views_downscaled_photos_keep_intrinsics(tmp_path):
    """Cameras are for the full-size photos; loaded copies are downscaled: intrinsics follow."""
    cams = load_camera_files(MYDESK / "opencv_cameras.json")
    paths = sorted((MYDESK / "images").iterdir())[:3]
    full = assemble_views(load_photos(paths, max_side=1024), cams, (64, 96))
    small = assemble_views(load_photos(paths, max_side=480), cams, (64, 96))
    torch.testing.assert_close(small.views.intrinsics, full.views.intrinsics, atol=1e-3, rtol=0)
    torch.testing.assert_close(small.views.c2w, full.views.c2w)
    assert small.intrinsics_original[0, 0, 0] == pytest.approx(829.217 / 2, abs=1e-2)
    assert (small.views.images - full.views.images).abs().mean() < 0.03


def test_assemble_views_mismatch_message(tmp_path):
    data = json.loads((MYDESK / "opencv_cameras.json").read_text())
    p = tmp_path / "opencv_cameras.json"
    p.write_text(json.dumps(data))
    images = load_photos([save(tmp_path / "x.png", noise(54, 96)), save(tmp_path / "y.png", noise(54, 96, 1))])
    with pytest.raises(ILRMInputError, match=r"no camera.*'x\.png'.*frame0\.jpg"):
        assemble_views(images, load_camera_files(p), (32, 32))


def test_exif_focal_from_focal_plane_resolution():
    from ilrm.photos import exif_focal_px

    exif = Image.Exif()
    ifd = exif.get_ifd(ExifTags.IFD.Exif)
    ifd[ExifTags.Base.FocalLength] = 4.2  # mm
    ifd[ExifTags.Base.FocalPlaneXResolution] = 625.0  # pixels per mm (a 6.4 mm wide, 4000 px sensor)
    ifd[ExifTags.Base.FocalPlaneResolutionUnit] = 4  # mm
    ifd[ExifTags.Base.ExifImageWidth], ifd[ExifTags.Base.ExifImageHeight] = 4000, 3000
    assert exif_focal_px(exif, (750, 1000)) == pytest.approx(4.2 * 625 / 4)
    ifd[ExifTags.Base.FocalLength] = 400.0  # a 1.3° field of view: implausible for this use, ignored
    assert exif_focal_px(exif, (750, 1000)) is None
    assert exif_focal_px(Image.Exif(), (750, 1000)) is None
