"""Pose estimation for unposed photos (pycolmap, CPU) on the real mydesk example, and pose comparison."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest

from ilrm.camera_files import load_camera_files, match_cameras
from ilrm.config import ILRMConfig
from ilrm.errors import ILRMInputError
from ilrm.photos import estimate_photo_cameras, load_photos, photo_cameras
from ilrm.pipeline import prepare_views
from ilrm.poses import align_similarity, estimate_poses, pose_errors

pytest.importorskip("pycolmap")

ROOT = Path(__file__).resolve().parents[1]
MYDESK = ROOT / "demo" / "examples" / "mydesk"
FRAMES = [f"frame{i}.jpg" for i in (0, 60, 100, 140, 180, 220, 260, 300, 340, 380, 420, 500)]
HALF = 480  # tests use half-size copies (480×270) for speed
FOCAL_HALF = 829.2 / 2  # the given cameras' focal length at that size


def given_c2w(names: list[str]) -> np.ndarray:
    cams = load_camera_files(MYDESK / "opencv_cameras.json")
    return match_cameras(cams, [(n, (540, 960)) for n in names]).c2w


def rotation(axis: np.ndarray, deg: float) -> np.ndarray:
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    t = math.radians(deg)
    return np.eye(3) + math.sin(t) * K + (1 - math.cos(t)) * K @ K


def random_c2w(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        out[i, :3, :3] = rotation(rng.normal(size=3), rng.uniform(0, 180))
        out[i, :3, 3] = rng.normal(size=3)
    return out


# ---- alignment and errors ------------------------------------------------------------------


@pytest.mark.parametrize("n,collinear", [(2, False), (5, False), (4, True)])
def test_align_similarity_recovers_transform(n, collinear):
    ref = random_c2w(n, seed=n)
    if collinear:  # centres on a line (camera walking forward): rotation must come from the axes
        ref[:, :3, 3] = np.linspace(0, 1, n)[:, None] * np.array([0.2, -0.1, 1.0])
    s, R, t = 2.5, rotation([1, 2, 3], 40), np.array([1.0, -2.0, 0.5])
    est = ref.copy()  # est = inverse similarity of ref, so aligning est recovers (s, R, t)
    est[:, :3, :3] = R.T @ ref[:, :3, :3]
    est[:, :3, 3] = (ref[:, :3, 3] - t) @ R / s
    s2, R2, t2 = align_similarity(est, ref)
    assert s2 == pytest.approx(s) and np.allclose(R2, R) and np.allclose(t2, t)
    e = pose_errors(est, ref)
    assert e.rotation_deg.max() < 1e-6 and e.relative_rotation_deg.max() < 1e-6
    assert e.translation_direction_deg.max() < 1e-6 and e.centre_error.max() < 1e-8


def test_pose_errors_see_a_perturbation():
    ref = random_c2w(4, seed=1)
    est = ref.copy()
    est[2, :3, :3] = rotation([0, 1, 0], 6.0) @ est[2, :3, :3]
    est[3, :3, 3] += np.array([0.3, 0, 0])
    e = pose_errors(est, ref)
    assert e.rotation_deg.max() > 3.0 and e.relative_rotation_deg.max() == pytest.approx(6.0)
    assert e.translation_direction_deg.max() > 3.0


# ---- estimation on the real example --------------------------------------------------------


@pytest.fixture(scope="module")
def half_images():
    return load_photos([MYDESK / "images" / f for f in FRAMES], max_side=HALF)


def test_multi_view_mydesk_pretend_unposed(half_images):
    """6 photos, focal guessed 20 % too short (50° instead of 60°): reconstruction recovers it."""
    images = half_images[::2]
    names = [im.name for im in images]
    before = {p.name for p in Path(tempfile.gettempdir()).glob("ilrm_poses_*")}
    est, note = estimate_photo_cameras(images, fov_deg=50.0)
    assert {p.name for p in Path(tempfile.gettempdir()).glob("ilrm_poses_*")} == before  # cleaned up
    assert "50° field of view (given)" in note
    assert est.method in ("incremental", "global") and est.cameras.names == names
    assert est.prior_focal_px == pytest.approx(0.5 * HALF / math.tan(math.radians(25)))
    assert est.focal_px == pytest.approx(FOCAL_HALF, rel=0.04)
    e = pose_errors(est.cameras.c2w(), given_c2w(names))
    assert e.rotation_deg.max() < 0.5 and e.relative_rotation_deg.max() < 1.0, e.summary()
    assert e.translation_direction_deg.mean() < 2.0 and e.translation_direction_deg.max() < 5.0, e.summary()
    assert est.seconds < 60
    # the estimate plugs straight into the model's input
    posed = photo_cameras(images, est.cameras)
    out = prepare_views(posed.images, posed.intrinsics, posed.c2w, ILRMConfig(), size=(64, 64))
    assert out.views.images.shape == (1, 6, 3, 64, 64)
    assert np.isfinite(out.views.c2w.numpy()).all()


def test_two_view_mydesk(half_images):
    """First and last frame (9.6° triangulation angle) with the focal length about right."""
    images = [half_images[0], half_images[-1]]
    est = estimate_poses([(im.name, im.array) for im in images], fov_deg=60.0)
    assert est.method == "two-view"
    c2w = est.cameras.c2w()
    np.testing.assert_allclose(c2w[0], np.eye(4))
    assert np.linalg.norm(c2w[1, :3, 3]) == pytest.approx(1.0)  # unit baseline
    e = pose_errors(c2w, given_c2w([im.name for im in images]))
    assert e.relative_rotation_deg.max() < 1.0 and e.translation_direction_deg.max() < 2.0, e.summary()


def test_two_view_too_close_is_rejected(half_images):
    """Consecutive frames (0.9° between rays): refused with advice to move sideways."""
    with pytest.raises(ILRMInputError, match="step sideways"):
        estimate_poses([(im.name, im.array) for im in half_images[:2]], fov_deg=60.0)


def test_two_view_rotation_only_is_rejected(half_images):
    """The second photo is the first seen by a camera turned 6° on the spot (a homography)."""
    import cv2

    a = half_images[5].array
    h, w = a.shape[:2]
    K = np.array([[FOCAL_HALF, 0, w / 2], [0, FOCAL_HALF, h / 2], [0, 0, 1]])
    H = K @ rotation([0.2, 1, 0], 6.0) @ np.linalg.inv(K)
    b = cv2.warpPerspective(a, H, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    with pytest.raises(ILRMInputError, match="do not only turn the camera"):
        estimate_poses([("a.jpg", a), ("b.jpg", b)], fov_deg=60.0)


def test_unrelated_photos_are_rejected():
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(2))
    with pytest.raises(ILRMInputError, match="too few matching features"):
        estimate_poses([("a.png", a), ("b.png", b)])
    with pytest.raises(ILRMInputError, match="none of the 3 photos"):
        estimate_poses([("a.png", a), ("b.png", b), ("c.png", rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))])


def test_bad_arguments():
    a = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ILRMInputError, match="at least 2"):
        estimate_poses([("a.png", a)])
    with pytest.raises(ILRMInputError, match="same size"):
        estimate_poses([("a.png", a), ("b.png", np.zeros((10, 12, 3), np.uint8))])
    with pytest.raises(ILRMInputError, match="field of view"):
        estimate_poses([("a.png", a), ("b.png", a)], fov_deg=0.0)


# ---- degenerate 3+-photo estimates ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["turned", "crops"])
def test_multi_view_rotation_or_crops_are_refused(half_images, mode):
    """4 photos from one spot (a camera turning 0-15°: homographies of one photo) or 4 crops of one
    photo: refused like the two-view path, never reconstructed silently."""
    import cv2

    a = half_images[5].array
    h, w = a.shape[:2]
    K = np.array([[FOCAL_HALF, 0, w / 2], [0, FOCAL_HALF, h / 2], [0, 0, 1]])
    big = cv2.resize(a, (2 * w, 2 * h))
    ims = []
    for i, deg in enumerate((0, 5, 10, 15)):
        if mode == "turned":
            H = K @ rotation([0.1, 1, 0], deg) @ np.linalg.inv(K)
            b = cv2.warpPerspective(a, H, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        else:
            b = np.ascontiguousarray(big[100 : 100 + h, 100 + 40 * i : 100 + 40 * i + w])
        ims.append((f"{mode}{i}.png", b))
    with pytest.raises(ILRMInputError, match="turn"):
        estimate_poses(ims, fov_deg=60.0)


def test_check_reconstruction_refuses_and_warns():
    from ilrm.poses import check_reconstruction

    good = {"points3D": 555, "triangulation_angle_deg": 4.8, "verified_pairs": 15, "homography_pairs": 7}
    assert check_reconstruction(good, 6) == []  # the mydesk numbers
    for bad, match in [({"points3D": 5}, "only 5 triangulated points"),
                       ({"triangulation_angle_deg": 0.4}, "almost the same place"),
                       ({"homography_pairs": 15}, "homography")]:
        with pytest.raises(ILRMInputError, match=match):
            check_reconstruction({**good, **bad}, 6)
    weak = check_reconstruction({**good, "points3D": 80, "triangulation_angle_deg": 1.5, "homography_pairs": 10}, 6)
    assert len(weak) == 3 and "80 triangulated points" in weak[0]
