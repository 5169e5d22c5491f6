"""Camera poses for unposed photos (pycolmap on the CPU), and errors of poses against reference ones.

Conventions as everywhere in ``ilrm``: c2w in OpenCV axes (x right, y down, z forward), intrinsics
``K`` in pixels with continuous pixel coordinates (the centre of the top-left pixel is (0.5, 0.5),
which is also COLMAP's convention, so COLMAP intrinsics are used unchanged).

Pose estimation (:func:`estimate_poses`):

- 3 or more photos: SIFT features, exhaustive matching and COLMAP's incremental reconstruction with
  one shared ``SIMPLE_PINHOLE`` camera whose focal length starts from a prior (EXIF or a field of
  view) and is refined by bundle adjustment; global reconstruction (GLOMAP) is the fallback when
  the incremental one leaves photos out.
- exactly 2 photos: COLMAP's reconstruction returns nothing for 2 images, so the relative pose
  comes from an essential matrix with the given focal length (unit baseline). Pairs that a
  homography explains (a flat scene, or a camera that only turned) are rejected with a message
  that says what to shoot instead, as are pairs whose rays meet at tiny angles.
- 3 or more photos get the same checks on the reconstruction (:func:`check_reconstruction`): too
  few triangulated points, a median triangulation angle below the two-view minimum, or every
  photo pair explained by a homography (turning on the spot, one flat surface, crops of one photo)
  are refused with the same advice; borderline numbers are reconstructed with a warning
  (``PoseEstimate.warnings``, also on the returned :class:`CameraSet`, so they reach the report).

All files live in a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .camera_files import CameraSet, NamedCamera, name_list
from .errors import ILRMInputError

#: Field of view across the long image side assumed when neither EXIF nor the user gives one
#: (between a phone's main camera, ~69°, and a normal lens, ~40°).
DEFAULT_FOV_DEG = 60.0


# ---- pose estimation -------------------------------------------------------------------------


@dataclass
class PoseEstimate:
    """Result of :func:`estimate_poses`.

    cameras: one camera per input image, in input order, with the input names; K for the input size.
    method: ``"incremental"``, ``"global"`` or ``"two-view"``.
    seconds: wall time of the whole estimate; stage_seconds: per stage.
    focal_px: the final (shared) focal length in pixels; prior_focal_px: the one we started from.
    stats: numbers worth showing (inlier matches, triangulation angle in degrees, points, reprojection error).
    warnings: sentences for the user about a weak but accepted estimate (few points, small angles).
    """

    cameras: CameraSet
    method: str
    seconds: float
    focal_px: float
    prior_focal_px: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


#: 3+ photos: fewer triangulated points than this are refused (the two-view path needs 30 inliers) ...
MIN_POINTS3D = 30
#: ... and fewer than this reconstruct with a warning.
WARN_POINTS3D = 200


def focal_from_fov(fov_deg: float, height: int, width: int) -> float:
    """Focal length in pixels for a full field of view ``fov_deg`` across the long image side."""
    if not (1.0 < fov_deg < 179.0):
        raise ILRMInputError(f"field of view must be between 1 and 179 degrees, got {fov_deg}")
    return 0.5 * max(height, width) / math.tan(math.radians(fov_deg) / 2)


@contextlib.contextmanager
def _colmap_log_level(verbose: bool) -> Iterator[None]:
    """Silence COLMAP's C++ log (it prints to stderr) unless ``verbose``; restore it afterwards."""
    import pycolmap

    old = pycolmap.logging.minloglevel
    if not verbose:
        pycolmap.logging.minloglevel = 3  # FATAL only; failures become our own messages
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = old


def estimate_poses(
    images: Sequence[tuple[str, np.ndarray]],
    *,
    focal_px: float | None = None,
    fov_deg: float | None = None,
    max_image_size: int = 1024,
    min_triangulation_angle_deg: float = 1.0,
    seed: int = 0,
    num_threads: int = -1,
    verbose: bool = False,
) -> PoseEstimate:
    """Estimate cameras for unposed photos on the CPU.

    images: (name, uint8 array (H, W, 3)) pairs, all the same size, 2 or more.
    focal_px: prior focal length in pixels for that size (e.g. from EXIF); else ``fov_deg`` (full
        field of view across the long side); else :data:`DEFAULT_FOV_DEG`. With 3+ photos the focal
        length is refined, with 2 it is used as given (it should be within ~10-20 %).
    max_image_size: long side used for SIFT (COLMAP rescales keypoints back to full size).
    min_triangulation_angle_deg: 2 photos whose median ray angle is below this are rejected.
    Returns a :class:`PoseEstimate`; raises :class:`ILRMInputError` with advice when it fails.
    """
    import pycolmap

    t_start = time.perf_counter()
    if len(images) < 2:
        raise ILRMInputError(f"pose estimation needs at least 2 photos of the scene, got {len(images)}")
    sizes = {np.asarray(a).shape[:2] for _, a in images}
    if len(sizes) != 1:
        raise ILRMInputError("pose estimation needs photos that all have the same size (one camera)")
    height, width = next(iter(sizes))
    for name, a in images:
        if np.asarray(a).ndim != 3 or np.asarray(a).shape[2] != 3:
            raise ILRMInputError(f"image {name!r} must be an RGB array (H, W, 3)")
    if focal_px is None:
        focal_px = focal_from_fov(fov_deg if fov_deg is not None else DEFAULT_FOV_DEG, height, width)
    if not (math.isfinite(focal_px) and focal_px > 0):
        raise ILRMInputError(f"focal length must be a positive number of pixels, got {focal_px}")
    names = [n for n, _ in images]
    stage: dict[str, float] = {}

    with tempfile.TemporaryDirectory(prefix="ilrm_poses_") as tmp, _colmap_log_level(verbose):
        tmp_path = Path(tmp)
        image_dir = tmp_path / "images"
        image_dir.mkdir()
        # Our own file names: safe characters, unique even when the uploads' names are not.
        files = [f"{i:03d}.png" for i in range(len(images))]
        t = time.perf_counter()
        from PIL import Image

        for f, (_, a) in zip(files, images):
            Image.fromarray(np.ascontiguousarray(a, dtype=np.uint8)).save(image_dir / f, compress_level=1)
        stage["write"] = time.perf_counter() - t

        db = tmp_path / "database.db"
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = "SIMPLE_PINHOLE"
        reader.camera_params = f"{focal_px},{width / 2},{height / 2}"
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.max_image_size = max_image_size
        extraction.num_threads = num_threads
        t = time.perf_counter()
        pycolmap.set_random_seed(seed)
        pycolmap.extract_features(
            db,
            image_dir,
            image_names=files,
            camera_mode=pycolmap.CameraMode.SINGLE,
            reader_options=reader,
            extraction_options=extraction,
            device=pycolmap.Device.cpu,
        )
        stage["features"] = time.perf_counter() - t
        t = time.perf_counter()
        matching = pycolmap.FeatureMatchingOptions()
        matching.num_threads = num_threads
        pycolmap.match_exhaustive(db, matching_options=matching, device=pycolmap.Device.cpu)
        stage["matching"] = time.perf_counter() - t

        t = time.perf_counter()
        warnings: list[str] = []
        if len(images) == 2:
            cams, stats, f_final = _two_view(db, files, names, min_triangulation_angle_deg, seed)
            method = "two-view"
        else:
            cams, stats, f_final, method = _reconstruct(db, image_dir, tmp_path, files, names, seed, num_threads)
            warnings = check_reconstruction(stats, len(images), min_triangulation_angle_deg)
        stage["mapping"] = time.perf_counter() - t

    result = CameraSet(cams, source=f"estimated ({method}, pycolmap {pycolmap.__version__})", warnings=list(warnings))
    result.validate()
    return PoseEstimate(
        cameras=result,
        method=method,
        seconds=time.perf_counter() - t_start,
        focal_px=f_final,
        prior_focal_px=float(focal_px),
        stage_seconds=stage,
        stats=stats,
        warnings=warnings,
    )


def _c2w_from_cam_from_world(m34: np.ndarray) -> np.ndarray:
    w2c = np.eye(4)
    w2c[:3, :4] = m34
    return np.linalg.inv(w2c)


_SHOOT_ADVICE = (
    "Take the photos from different positions: step sideways between shots (about 10-20 % of the "
    "distance to the subject) while keeping the subject in view, and do not only turn the camera "
    "on the spot. Include objects at different depths, not just one flat surface (a wall, a poster, "
    "a table top seen from above)."
)


def _two_view(
    db: Path, files: list[str], names: list[str], min_tri_deg: float, seed: int
) -> tuple[list[NamedCamera], dict[str, float], float]:
    """Relative pose of 2 photos from an essential matrix with the prior focal length."""
    import pycolmap

    Config = pycolmap.TwoViewGeometryConfiguration
    with pycolmap.Database.open(str(db)) as database:
        by_name = {im.name: im for im in database.read_all_images()}
        a, b = by_name[files[0]], by_name[files[1]]
        camera = database.read_camera(a.camera_id)
        kp_a = np.asarray(database.read_keypoints(a.image_id))[:, :2].astype(np.float64)
        kp_b = np.asarray(database.read_keypoints(b.image_id))[:, :2].astype(np.float64)
        matches = np.asarray(database.read_matches(a.image_id, b.image_id)).astype(np.uint32).reshape(-1, 2)
    if len(matches) < 30:
        raise ILRMInputError(
            f"the two photos share too few matching features ({len(matches)}) to estimate their cameras. "
            "Make sure both show the same part of the scene with plenty of overlap (60-80 %) and texture, "
            "or add a camera file. " + _SHOOT_ADVICE
        )
    options = pycolmap.TwoViewGeometryOptions()
    options.compute_relative_pose = True
    options.ransac.random_seed = seed
    geom = pycolmap.estimate_calibrated_two_view_geometry(camera, kp_a, camera, kp_b, matches, options)
    config = Config(int(geom.config))
    n_inliers = len(geom.inlier_matches)
    tri_deg = math.degrees(float(geom.tri_angle)) if geom.tri_angle is not None else 0.0
    if config in (Config.PLANAR, Config.PANORAMIC, Config.PLANAR_OR_PANORAMIC):
        # COLMAP's planar/panoramic labels are not reliable apart (a camera turning on the spot is
        # often labelled planar), so name both causes.
        raise ILRMInputError(
            "cannot estimate cameras from these two photos: one image maps onto the other by a homography, "
            "which happens when the camera only turned or barely moved between the shots, or when the scene is "
            f"one flat surface. {_SHOOT_ADVICE}"
        )
    if config != Config.CALIBRATED or n_inliers < 30:
        raise ILRMInputError(
            f"could not relate the two photos ({n_inliers} consistent matches). Check that they show the "
            "same scene with plenty of overlap; if the field of view was guessed, set it closer to the real "
            "one (or upload photos with EXIF data), or add a camera file. " + _SHOOT_ADVICE
        )
    if tri_deg < min_tri_deg:
        raise ILRMInputError(
            f"the two photos were taken from almost the same place (rays meet at {tri_deg:.2f}°, need at least "
            f"{min_tri_deg:g}°), so depth cannot be recovered. {_SHOOT_ADVICE}"
        )
    cam2_from_cam1 = np.asarray(geom.cam2_from_cam1.matrix(), dtype=np.float64)
    t = cam2_from_cam1[:, 3]
    cam2_from_cam1[:, 3] = t / max(np.linalg.norm(t), 1e-12)  # unit baseline (scale is unknown)
    K = np.asarray(camera.calibration_matrix(), dtype=np.float64)
    cams = [
        NamedCamera(names[0], np.eye(4), K.copy(), camera.width, camera.height),
        NamedCamera(names[1], _c2w_from_cam_from_world(cam2_from_cam1), K.copy(), camera.width, camera.height),
    ]
    stats = {"inlier_matches": float(n_inliers), "matches": float(len(matches)), "triangulation_angle_deg": tri_deg}
    return cams, stats, float(camera.mean_focal_length())


def _reconstruct(
    db: Path, image_dir: Path, tmp: Path, files: list[str], names: list[str], seed: int, num_threads: int
) -> tuple[list[NamedCamera], dict[str, float], float, str]:
    """Incremental reconstruction; global (GLOMAP) when the incremental one leaves photos out."""
    import pycolmap

    inc = pycolmap.IncrementalPipelineOptions()
    inc.min_model_size = 3
    inc.random_seed = seed
    inc.num_threads = num_threads
    inc.extract_colors = False
    # Walking towards the subject is a common way to shoot; COLMAP's default (0.95) refuses such
    # initial pairs, which left e.g. consecutive frames of the mydesk example unreconstructed.
    inc.mapper.init_max_forward_motion = 0.99
    best: tuple[int, object, str] | None = None
    for method in ("incremental", "global"):
        out = tmp / f"sparse_{method}"
        out.mkdir()
        try:
            if method == "incremental":
                recs = pycolmap.incremental_mapping(db, image_dir, out, inc)
            else:
                glob = pycolmap.GlobalPipelineOptions()
                glob.random_seed = seed
                glob.num_threads = num_threads
                recs = pycolmap.global_mapping(db, image_dir, out, glob)
        except Exception:  # noqa: BLE001 - a failed mapper is reported below with advice
            recs = {}
        for rec in recs.values():
            n = sum(1 for im in rec.images.values() if im.has_pose)
            if best is None or n > best[0]:
                best = (n, rec, method)
        if best is not None and best[0] == len(files):
            break
    if best is None or best[0] < 2:
        raise ILRMInputError(_diagnose_failure(db, len(files)))
    n_reg, rec, method = best
    by_file = {im.name: im for im in rec.images.values() if im.has_pose}
    missing = [n for f, n in zip(files, names) if f not in by_file]
    if missing:
        raise ILRMInputError(
            f"could not place {len(missing)} of the {len(files)} photos: {name_list(missing)}. They share too "
            "few features with the others: remove them, or add photos in between so that every photo overlaps "
            "its neighbours. " + _SHOOT_ADVICE
        )
    cams = []
    for f, n in zip(files, names):
        im = by_file[f]
        cam = rec.cameras[im.camera_id]
        K = np.asarray(cam.calibration_matrix(), dtype=np.float64)
        c2w = _c2w_from_cam_from_world(np.asarray(im.cam_from_world().matrix(), dtype=np.float64))
        cams.append(NamedCamera(n, c2w, K, cam.width, cam.height))
    focal = float(np.mean([rec.cameras[by_file[f].camera_id].mean_focal_length() for f in files]))
    stats = {
        "registered": float(n_reg),
        "points3D": float(rec.num_points3D()),
        "reprojection_error_px": float(rec.compute_mean_reprojection_error()),
        "triangulation_angle_deg": _median_triangulation_angle_deg(rec),
        **_pair_geometry_stats(db),
    }
    return cams, stats, focal, method


def _median_triangulation_angle_deg(rec) -> float:
    """Median over the 3D points of the largest angle between the rays from the point to the cameras
    that see it (COLMAP's triangulation angle; 0 without points)."""
    centres = {im_id: np.asarray(im.projection_center(), np.float64) for im_id, im in rec.images.items()
               if im.has_pose}
    angles = []
    for point in rec.points3D.values():
        x = np.asarray(point.xyz, np.float64)
        rays = [centres[e.image_id] - x for e in point.track.elements if e.image_id in centres]
        if len(rays) < 2:
            continue
        r = np.stack(rays)
        r /= np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-12)
        cos = np.clip(r @ r.T, -1.0, 1.0)
        angles.append(math.degrees(math.acos(float(cos.min()))))
    return float(np.median(angles)) if angles else 0.0


def _pair_geometry_stats(db: Path) -> dict[str, float]:
    """How many photo pairs have a verified geometry, and how many of them a homography explains
    (COLMAP's planar / panoramic labels: a camera that only turned, a flat scene, crops of one photo)."""
    import pycolmap

    Config = pycolmap.TwoViewGeometryConfiguration
    with pycolmap.Database.open(str(db)) as database:
        _, geoms = database.read_two_view_geometries()
    configs = [Config(int(g.config)) for g in geoms if len(g.inlier_matches) >= 15]
    flat = sum(c in (Config.PLANAR, Config.PANORAMIC, Config.PLANAR_OR_PANORAMIC) for c in configs)
    return {"verified_pairs": float(len(configs)), "homography_pairs": float(flat)}


def check_reconstruction(stats: dict[str, float], n_images: int, min_tri_deg: float = 1.0) -> list[str]:
    """Refuse a degenerate 3+-photo reconstruction, as the two-view path does; warn about a weak one.

    stats: :func:`_reconstruct`'s numbers (points3D, triangulation_angle_deg, verified_pairs,
    homography_pairs). Raises :class:`ILRMInputError` when there are fewer than :data:`MIN_POINTS3D`
    points, the median triangulation angle is below ``min_tri_deg`` or every verified pair is a
    homography; returns warnings for fewer than :data:`WARN_POINTS3D` points, an angle below
    2 × ``min_tri_deg`` or mostly homography pairs.
    """
    points = int(stats.get("points3D", 0))
    tri = float(stats.get("triangulation_angle_deg", 0.0))
    pairs, flat = int(stats.get("verified_pairs", 0)), int(stats.get("homography_pairs", 0))
    if points < MIN_POINTS3D:
        raise ILRMInputError(
            f"the cameras of these {n_images} photos rest on only {points} triangulated points (need at least "
            f"{MIN_POINTS3D}), so their positions are guesses: this happens when the camera only turned on the "
            f"spot, or the photos barely overlap. {_SHOOT_ADVICE}"
        )
    if tri < min_tri_deg:
        raise ILRMInputError(
            f"the photos were taken from almost the same place (rays meet at {tri:.2f}° at the median point, need "
            f"at least {min_tri_deg:g}°), so depth cannot be recovered. {_SHOOT_ADVICE}"
        )
    if pairs and flat == pairs:
        raise ILRMInputError(
            f"cannot estimate cameras from these photos: each of the {pairs} overlapping pairs maps one image onto "
            "the other by a homography, which happens when the camera only turned on the spot, the photos are "
            f"crops of one picture, or the scene is one flat surface. {_SHOOT_ADVICE}"
        )
    warnings = []
    if points < WARN_POINTS3D:
        warnings.append(
            f"the estimated cameras rest on only {points} triangulated points; they may be inaccurate. Add a "
            "camera file or more overlapping photos taken from different positions."
        )
    if tri < 2 * min_tri_deg:
        warnings.append(
            f"the photos were taken from nearly the same place (median triangulation angle {tri:.2f}°): depth is "
            "poorly determined. Step sideways between shots for a better reconstruction."
        )
    if pairs and 2 * flat > pairs:
        warnings.append(
            f"{flat} of the {pairs} overlapping photo pairs look like the camera only turned (or a flat scene); "
            "the estimated camera positions may be unreliable."
        )
    return warnings


def _diagnose_failure(db: Path, n_images: int) -> str:
    """A message for a reconstruction that produced nothing, from the pairwise geometries."""
    import pycolmap

    Config = pycolmap.TwoViewGeometryConfiguration
    with pycolmap.Database.open(str(db)) as database:
        _, geoms = database.read_two_view_geometries()
    configs = [Config(int(g.config)) for g in geoms if len(g.inlier_matches) >= 15]
    good = sum(c in (Config.CALIBRATED, Config.UNCALIBRATED) for c in configs)
    flat = sum(c in (Config.PLANAR, Config.PANORAMIC, Config.PLANAR_OR_PANORAMIC) for c in configs)
    if not configs:
        return (
            f"could not estimate cameras: none of the {n_images} photos share enough matching features. Make sure "
            "they show the same scene with plenty of overlap (60-80 % between neighbours) and texture, or add a "
            "camera file."
        )
    if flat >= good:
        return (
            "could not estimate cameras: the photos look like one flat surface or were taken from one spot by "
            f"turning the camera. {_SHOOT_ADVICE}"
        )
    return (
        "could not estimate cameras from these photos. Add more photos with overlap between neighbours, or set "
        f"the field of view closer to the real one, or add a camera file. {_SHOOT_ADVICE}"
    )


# ---- comparing camera sets -------------------------------------------------------------------


def _rotation_angle_deg(R: np.ndarray) -> np.ndarray:
    """Rotation angle in degrees of (..., 3, 3) rotation matrices (atan2: accurate near 0° too)."""
    cos = (np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0
    v = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    return np.degrees(np.arctan2(np.linalg.norm(v, axis=-1) / 2.0, cos))


def align_similarity(src_c2w: np.ndarray, dst_c2w: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) mapping the ``src`` cameras onto ``dst``: ``x_dst ≈ s R x_src + t``.

    src_c2w, dst_c2w: (V, 4, 4), V ≥ 2, same order. Umeyama on the camera centres, with each
    camera's three axes added as direction correspondences so that the rotation stays determined
    when the centres are (nearly) collinear (2 views, a camera walking forward). Returns s > 0,
    R (3, 3), t (3,).
    """
    src_c2w, dst_c2w = np.asarray(src_c2w, np.float64), np.asarray(dst_c2w, np.float64)
    cs, cd = src_c2w[:, :3, 3], dst_c2w[:, :3, 3]
    ms, md = cs.mean(0), cd.mean(0)
    xs, xd = cs - ms, cd - md
    ns, nd = np.sqrt((xs**2).sum(1).mean()), np.sqrt((xd**2).sum(1).mean())
    # Cross-covariance of unit-RMS centres plus the camera axes (each axis pair weighs like a centre).
    H = (xd / max(nd, 1e-12)).T @ (xs / max(ns, 1e-12))
    H += np.einsum("vik,vjk->ij", dst_c2w[:, :3, :3], src_c2w[:, :3, :3])
    U, _, Vt = np.linalg.svd(H)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    denom = (xs**2).sum()
    s = float(((xd * (xs @ R.T)).sum()) / denom) if denom > 1e-24 else 1.0
    s = max(s, 1e-12)
    t = md - s * R @ ms
    return s, R, t


@dataclass
class PoseErrors:
    """Errors of estimated cameras against reference ones.

    rotation_deg: (V,) angle between each estimated camera rotation, after the similarity alignment
        of :func:`align_similarity`, and the reference one.
    relative_rotation_deg: (P,) for every pair i < j, the angle between the estimated and reference
        relative rotations ``R_iᵀ R_j`` (needs no alignment).
    translation_direction_deg: (P,) for every pair i < j, the angle between the estimated and
        reference directions from camera i to camera j, expressed in camera i's frame
        (``R_iᵀ (c_j − c_i)``; needs no alignment, blind to scale).
    centre_error: (V,) aligned centre distance divided by the reference cameras' RMS spread.
    scale: the similarity's scale (reference units per estimated unit).
    """

    rotation_deg: np.ndarray
    relative_rotation_deg: np.ndarray
    translation_direction_deg: np.ndarray
    centre_error: np.ndarray
    scale: float

    def summary(self) -> dict[str, float]:
        """Means and maxima, for logs and reports."""
        out = {}
        for key in ("rotation_deg", "relative_rotation_deg", "translation_direction_deg", "centre_error"):
            v = getattr(self, key)
            out[f"{key}_mean"], out[f"{key}_max"] = float(v.mean()), float(v.max())
        return out


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.atan2(float(np.linalg.norm(np.cross(a, b))), float(a @ b)))


def pose_errors(est_c2w: np.ndarray, ref_c2w: np.ndarray) -> PoseErrors:
    """Compare ``est_c2w`` (V, 4, 4) with ``ref_c2w`` (V, 4, 4), same order, V >= 2 (see :class:`PoseErrors`)."""
    est_c2w, ref_c2w = np.asarray(est_c2w, np.float64), np.asarray(ref_c2w, np.float64)
    if est_c2w.shape != ref_c2w.shape or est_c2w.shape[0] < 2:
        raise ValueError(f"need two (V >= 2, 4, 4) stacks of the same shape, got {est_c2w.shape}, {ref_c2w.shape}")
    s, R, t = align_similarity(est_c2w, ref_c2w)
    R_e, c_e = est_c2w[:, :3, :3], est_c2w[:, :3, 3]
    R_r, c_r = ref_c2w[:, :3, :3], ref_c2w[:, :3, 3]
    rot = _rotation_angle_deg(np.swapaxes(R_r, -1, -2) @ R @ R_e)
    rel_rot, tdir = [], []
    for i, j in itertools.combinations(range(len(c_r)), 2):
        rel_rot.append(float(_rotation_angle_deg((R_e[i].T @ R_e[j]).T @ (R_r[i].T @ R_r[j]))))
        tdir.append(_angle_deg(R_e[i].T @ (c_e[j] - c_e[i]), R_r[i].T @ (c_r[j] - c_r[i])))
    c_aligned = s * c_e @ R.T + t
    spread = np.sqrt(((c_r - c_r.mean(0)) ** 2).sum(1).mean())
    centre = np.linalg.norm(c_aligned - c_r, axis=1) / max(spread, 1e-12)
    return PoseErrors(rot, np.asarray(rel_rot), np.asarray(tdir), centre, s)
