"""Camera files uploaded next to the photos, parsed into one :class:`~ilrm.poses.CameraSet`.

Formats (all give OpenCV c2w and pixel intrinsics in the end):

- our ``opencv_cameras.json``: ``{scene_name?, frames: [{file_path, w2c (4×4), h, w, fx, fy, cx, cy}]}``
- nerfstudio / instant-ngp / NeRF-synthetic ``transforms.json``: c2w ``transform_matrix`` in OpenGL
  axes (x right, y up, z back), converted by negating the camera's y and z axes; intrinsics
  ``fl_x, fl_y, cx, cy, w, h`` shared at the top level or per frame, or ``camera_angle_x`` (and
  optionally ``camera_angle_y``) when no focal length is given.
- COLMAP models, text (``cameras.txt`` + ``images.txt``) or binary (``cameras.bin`` + ``images.bin``),
  loose or in a zip. COLMAP's pixel convention (centre of the top-left pixel at (0.5, 0.5)) is ours,
  so its principal point is used as is. Lens distortion parameters are ignored with a warning.

Images are matched to cameras by file name (:func:`match_cameras`).
"""

from __future__ import annotations

import json
import math
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from ilrm.errors import ILRMInputError
from ilrm.poses import CameraSet, NamedCamera

__all__ = [
    "CameraSet",
    "NamedCamera",
    "MatchedCameras",
    "load_camera_files",
    "parse_camera_json",
    "parse_opencv_cameras",
    "parse_transforms",
    "parse_colmap_text",
    "parse_colmap_binary",
    "match_cameras",
]

#: Largest camera file (or zip member) we read, in bytes; camera files are small, zips can hold points.
MAX_FILE_BYTES = 512 * 1024 * 1024

# OpenGL camera axes (y up, z back) → OpenCV (y down, z forward): negate the camera's y and z columns.
_GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])

# COLMAP camera models: id → (name, number of parameters). From COLMAP's model list (4.x).
_COLMAP_MODELS: dict[int, tuple[str, int]] = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
    7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5),
    10: ("THIN_PRISM_FISHEYE", 12),
    11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
    12: ("SIMPLE_DIVISION", 4),
    13: ("DIVISION", 5),
    14: ("SIMPLE_FISHEYE", 3),
    15: ("FISHEYE", 4),
    16: ("EUCM", 6),
    17: ("EQUIRECTANGULAR", 2),
}
_COLMAP_NAME_TO_ID = {name: i for i, (name, _) in _COLMAP_MODELS.items()}
# Perspective models whose first parameters are (f | fx, fy), cx, cy; the rest is distortion.
_SINGLE_FOCAL = {"SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"}
_DOUBLE_FOCAL = {"PINHOLE", "OPENCV", "FULL_OPENCV"}


# ---- entry point ---------------------------------------------------------------------------


def load_camera_files(paths: str | Path | Sequence[str | Path]) -> CameraSet:
    """Parse an uploaded camera file (or the files of one COLMAP model) into a validated CameraSet.

    paths: one ``.json`` file, one ``.zip``, or the loose files of a COLMAP model
    (``cameras.txt`` + ``images.txt`` or ``cameras.bin`` + ``images.bin``; ``points3D``, ``rigs``,
    ``frames`` files may come along and are ignored). Raises :class:`ILRMInputError`.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ILRMInputError("no camera file given")
    files: dict[str, bytes] = {}
    for p in paths:
        if not p.is_file():
            raise ILRMInputError(f"camera file {p.name!r} cannot be read (not a file)")
        if p.stat().st_size > MAX_FILE_BYTES:
            raise ILRMInputError(f"camera file {p.name!r} is larger than {MAX_FILE_BYTES >> 20} MB")
        if p.suffix.lower() == ".zip" or zipfile.is_zipfile(p):
            if len(paths) > 1:
                raise ILRMInputError("upload either one zip of the camera files or the loose files, not both")
            return _from_members(_read_zip(p), p.name)
        files[p.name] = p.read_bytes()
    return _from_members(files, ", ".join(sorted(files)))


def _read_zip(path: Path) -> dict[str, bytes]:
    """Members of a zip (paths inside it → bytes) without extracting anything to disk."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir() and not PurePosixPath(i.filename).name.startswith(".")]
            infos = [i for i in infos if "__MACOSX" not in i.filename]
            if sum(i.file_size for i in infos) > MAX_FILE_BYTES:
                raise ILRMInputError(f"{path.name!r} unpacks to more than {MAX_FILE_BYTES >> 20} MB")
            wanted = (".json", ".txt", ".bin")
            return {i.filename: zf.read(i) for i in infos if i.filename.lower().endswith(wanted)}
    except zipfile.BadZipFile as e:
        raise ILRMInputError(f"{path.name!r} is not a readable zip file ({e}); zip the camera files again") from e


def _from_members(files: dict[str, bytes], label: str) -> CameraSet:
    """Pick the format from the member names (and, for JSON, its keys) and parse it."""
    by_base: dict[str, list[str]] = {}
    for name in files:
        by_base.setdefault(PurePosixPath(name).name.lower(), []).append(name)

    def one(base: str) -> bytes | None:
        hits = by_base.get(base, [])
        if len(hits) > 1:
            folders = ", ".join(sorted(str(PurePosixPath(h).parent) for h in hits))
            raise ILRMInputError(
                f"{label} holds several {base} files (in {folders}); keep the one COLMAP model you want"
            )
        return files[hits[0]] if hits else None

    cams_bin, imgs_bin = one("cameras.bin"), one("images.bin")
    cams_txt, imgs_txt = one("cameras.txt"), one("images.txt")
    if cams_bin is not None or imgs_bin is not None:
        if cams_bin is None or imgs_bin is None:
            raise ILRMInputError("a binary COLMAP model needs both cameras.bin and images.bin; upload both (or a zip)")
        return parse_colmap_binary(cams_bin, imgs_bin)
    if cams_txt is not None or imgs_txt is not None:
        if cams_txt is None or imgs_txt is None:
            raise ILRMInputError("a text COLMAP model needs both cameras.txt and images.txt; upload both (or a zip)")
        return parse_colmap_text(_decode(cams_txt, "cameras.txt"), _decode(imgs_txt, "images.txt"))
    jsons = [n for n in files if n.lower().endswith(".json")]
    if len(jsons) == 1:
        data = _load_json(files[jsons[0]], PurePosixPath(jsons[0]).name)
        return parse_camera_json(data, PurePosixPath(jsons[0]).name)
    if len(jsons) > 1:
        raise ILRMInputError(f"{label} holds several JSON files ({', '.join(jsons[:5])}); upload just one camera file")
    raise ILRMInputError(
        f"{label} is not a camera file this app reads. Use opencv_cameras.json, a nerfstudio transforms.json, "
        "or a COLMAP model (cameras.txt + images.txt, cameras.bin + images.bin, or a zip of them)."
    )


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ILRMInputError(f"{name} is not a UTF-8 text file; upload the text model or the .bin files") from e


def _load_json(data: bytes, name: str) -> dict:
    try:
        obj = json.loads(_decode(data, name))
    except json.JSONDecodeError as e:
        raise ILRMInputError(f"{name} is not valid JSON ({e.msg} at line {e.lineno}); fix or re-export it") from e
    if not isinstance(obj, dict):
        raise ILRMInputError(f"{name} must hold a JSON object with a 'frames' list")
    return obj


def parse_camera_json(data: dict, name: str = "camera file") -> CameraSet:
    """Dispatch a JSON camera file: ``w2c`` in frames → opencv_cameras.json, else transforms.json."""
    frames = data.get("frames")
    if not isinstance(frames, list) or not frames:
        raise ILRMInputError(f"{name} has no 'frames' list; it is not an opencv_cameras.json or transforms.json")
    first = frames[0] if isinstance(frames[0], dict) else {}
    if "w2c" in first:
        return parse_opencv_cameras(data, name)
    if "transform_matrix" in first:
        return parse_transforms(data, name)
    raise ILRMInputError(
        f"{name}: frames have neither 'w2c' (opencv_cameras.json) nor 'transform_matrix' (transforms.json)"
    )


# ---- JSON formats --------------------------------------------------------------------------


def _number(frame: dict, key: str, where: str) -> float:
    if key not in frame:
        raise ILRMInputError(f"{where} lacks '{key}'")
    try:
        return float(frame[key])
    except (TypeError, ValueError) as e:
        raise ILRMInputError(f"{where}: '{key}' must be a number, got {frame[key]!r}") from e


def _matrix(value, shape: tuple[int, int], where: str) -> np.ndarray:
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ILRMInputError(f"{where} must be a {shape[0]}×{shape[1]} list of numbers") from e
    if m.shape == (3, 4) and shape == (4, 4):  # tolerated: the constant last row left out
        m = np.vstack([m, [0.0, 0.0, 0.0, 1.0]])
    if m.shape != shape:
        raise ILRMInputError(f"{where} must be {shape[0]}×{shape[1]}, got shape {m.shape}")
    return m


def parse_opencv_cameras(data: dict, name: str = "opencv_cameras.json") -> CameraSet:
    """Our layout: frames with ``file_path``, world-to-camera ``w2c`` (4×4, OpenCV), ``h, w, fx, fy, cx, cy``."""
    cams = []
    for i, f in enumerate(data.get("frames", [])):
        where = f"{name}, frame {i}"
        if not isinstance(f, dict) or "file_path" not in f:
            raise ILRMInputError(f"{where} lacks 'file_path'")
        where = f"{name}, frame {i} ({f['file_path']})"
        w2c = _matrix(f.get("w2c"), (4, 4), f"{where}: 'w2c'")
        with np.errstate(all="ignore"):
            c2w = np.linalg.inv(w2c) if np.isfinite(w2c).all() and abs(np.linalg.det(w2c)) > 1e-12 else w2c * np.nan
        fx, fy, cx, cy = (_number(f, k, where) for k in ("fx", "fy", "cx", "cy"))
        K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
        w, h = (int(_number(f, k, where)) for k in ("w", "h"))
        cams.append(NamedCamera(str(f["file_path"]), c2w, K, w, h))
    out = CameraSet(cams, source=name)
    out.validate()
    return out


def parse_transforms(data: dict, name: str = "transforms.json") -> CameraSet:
    """nerfstudio / instant-ngp / NeRF-synthetic ``transforms.json`` (OpenGL c2w) → OpenCV cameras.

    Per-frame intrinsics override the top-level ones. Without ``fl_x``, ``camera_angle_x`` gives the
    focal length (``fl_x = w / 2 / tan(camera_angle_x / 2)``, ``fl_y = fl_x`` unless
    ``camera_angle_y``); without ``w``/``h`` the image size comes from the uploaded photo; without
    ``cx``/``cy`` the principal point is the image centre.
    """
    warnings: list[str] = []
    model = str(data.get("camera_model", "OPENCV")).upper()
    if model in ("OPENCV_FISHEYE", "EQUIRECTANGULAR", "FISHEYE"):
        raise ILRMInputError(
            f"{name} describes {model} cameras; this model needs pinhole images: undistort them first "
            "(e.g. nerfstudio's ns-process-data or COLMAP's image_undistorter)"
        )
    cams = []
    distorted = []
    for i, f in enumerate(data.get("frames", [])):
        if not isinstance(f, dict) or "file_path" not in f:
            raise ILRMInputError(f"{name}, frame {i} lacks 'file_path'")
        where = f"{name}, frame {i} ({f['file_path']})"
        merged = {**data, **f}  # per-frame values override the shared ones
        get = merged.get
        c2w = _matrix(f.get("transform_matrix"), (4, 4), f"{where}: 'transform_matrix'") @ _GL_TO_CV
        w, h = get("w"), get("h")
        w = int(w) if w is not None else None
        h = int(h) if h is not None else None
        fl_x, fl_y = get("fl_x"), get("fl_y")
        if any(abs(float(get(k) or 0.0)) > 1e-6 for k in ("k1", "k2", "k3", "k4", "p1", "p2")):
            distorted.append(str(f["file_path"]))
        if fl_x is None and fl_y is None:
            ax, ay = get("camera_angle_x"), get("camera_angle_y")
            if ax is None:
                raise ILRMInputError(f"{where}: no intrinsics (needs 'fl_x' or 'camera_angle_x')")
            if w is not None and h is not None:
                fx = 0.5 * w / math.tan(0.5 * float(ax))
                fy = 0.5 * h / math.tan(0.5 * float(ay)) if ay is not None else fx
                cx, cy = get("cx"), get("cy")
                K = np.array(
                    [
                        [fx, 0, w / 2 if cx is None else float(cx)],
                        [0, fy, h / 2 if cy is None else float(cy)],
                        [0, 0, 1],
                    ]
                )
                cams.append(NamedCamera(str(f["file_path"]), c2w, K, w, h))
            else:
                cams.append(
                    NamedCamera(
                        str(f["file_path"]), c2w, None, fov_x=float(ax), fov_y=None if ay is None else float(ay)
                    )
                )
            continue
        fx = float(fl_x if fl_x is not None else fl_y)
        fy = float(fl_y if fl_y is not None else fl_x)
        cx, cy = get("cx"), get("cy")
        if (cx is None or cy is None) and (w is None or h is None):
            raise ILRMInputError(f"{where}: give 'cx' and 'cy', or 'w' and 'h' (the principal point is unknown)")
        cx = float(cx) if cx is not None else w / 2
        cy = float(cy) if cy is not None else h / 2
        K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
        cams.append(NamedCamera(str(f["file_path"]), c2w, K, w, h))
    if distorted:
        warnings.append(
            f"{name} lists lens distortion for {len(distorted)} camera(s); it is ignored. "
            "Undistorted images give better results."
        )
    out = CameraSet(cams, source=name, warnings=warnings)
    out.validate()
    return out


# ---- COLMAP --------------------------------------------------------------------------------


def _qvec_to_rotmat(q: Sequence[float]) -> np.ndarray:
    """COLMAP quaternion (w, x, y, z) → rotation matrix (normalised first)."""
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q)
    if not np.isfinite(n) or n < 1e-12:
        return np.full((3, 3), np.nan)
    w, x, y, z = q / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def _colmap_intrinsics(
    cam_id: int, model: str, width: int, height: int, params: Sequence[float]
) -> tuple[np.ndarray, bool]:
    """(K, has_distortion) from COLMAP camera parameters; fisheye and other models are refused."""
    p = [float(v) for v in params]
    if model in _SINGLE_FOCAL:
        fx = fy = p[0]
        cx, cy, extra = p[1], p[2], p[3:]
    elif model in _DOUBLE_FOCAL:
        fx, fy, cx, cy, extra = p[0], p[1], p[2], p[3], p[4:]
    else:
        raise ILRMInputError(
            f"COLMAP camera {cam_id} uses the {model} model, which this app cannot use: undistort the images to "
            "a pinhole model first (colmap image_undistorter), then upload the undistorted images and model"
        )
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
    return K, any(abs(v) > 1e-9 for v in extra)


def _colmap_set(
    cameras: dict[int, tuple[str, int, int, list[float]]],
    images: list[tuple[int, np.ndarray, np.ndarray, int, str]],
    source: str,
) -> CameraSet:
    """Build the CameraSet from parsed COLMAP cameras {id: (model, w, h, params)} and images."""
    intr: dict[int, tuple[np.ndarray, bool]] = {}
    cams, missing_cam, distorted = [], [], set()
    for _image_id, qvec, tvec, cam_id, name in images:
        if cam_id not in cameras:
            missing_cam.append(name)
            continue
        model, w, h, params = cameras[cam_id]
        if cam_id not in intr:
            intr[cam_id] = _colmap_intrinsics(cam_id, model, w, h, params)
        K, dist = intr[cam_id]
        if dist:
            distorted.add(f"{cam_id} ({model})")
        w2c = np.eye(4)
        w2c[:3, :3] = _qvec_to_rotmat(qvec)
        w2c[:3, 3] = tvec
        with np.errstate(all="ignore"):
            c2w = np.linalg.inv(w2c) if np.isfinite(w2c).all() else w2c
        cams.append(NamedCamera(name, c2w, K.copy(), w, h))
    if missing_cam:
        raise ILRMInputError(
            f"{source}: the images file refers to camera ids that the cameras file does not define (images "
            f"{', '.join(repr(n) for n in missing_cam[:8])}). Upload the cameras and images files of the same model."
        )
    warnings = []
    if distorted:
        warnings.append(
            f"COLMAP camera(s) {', '.join(sorted(distorted))} have lens distortion, which is ignored (only focal "
            "length and principal point are used); undistorted images (colmap image_undistorter) give better results."
        )
    out = CameraSet(cams, source=source, warnings=warnings)
    out.validate()
    return out


def parse_colmap_text(cameras_txt: str, images_txt: str) -> CameraSet:
    """COLMAP text model: the contents of ``cameras.txt`` and ``images.txt``.

    ``images.txt`` has two lines per image (the pose line, then 2D points, possibly empty); pose
    lines are told apart from point lines by their file name (point lines hold only numbers), so
    files written without the point lines also parse.
    """
    cameras: dict[int, tuple[str, int, int, list[float]]] = {}
    for lineno, line in enumerate(cameras_txt.splitlines(), 1):
        tok = line.split()
        if not tok or tok[0].startswith("#"):
            continue
        try:
            cam_id, model, w, h = int(tok[0]), tok[1].upper(), int(tok[2]), int(tok[3])
            params = [float(v) for v in tok[4:]]
        except (ValueError, IndexError) as e:
            raise ILRMInputError(f"cameras.txt line {lineno} is not 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...'") from e
        if model not in _COLMAP_NAME_TO_ID:
            raise ILRMInputError(f"cameras.txt line {lineno}: unknown camera model {model!r}")
        n = _COLMAP_MODELS[_COLMAP_NAME_TO_ID[model]][1]
        if len(params) != n:
            raise ILRMInputError(f"cameras.txt line {lineno}: {model} takes {n} parameters, got {len(params)}")
        cameras[cam_id] = (model, w, h, params)
    images = []
    for lineno, line in enumerate(images_txt.splitlines(), 1):
        tok = line.split()
        if not tok or tok[0].startswith("#") or not _is_pose_line(tok):
            continue
        try:
            vals = [float(v) for v in tok[1:8]]
            images.append((int(tok[0]), np.array(vals[:4]), np.array(vals[4:7]), int(tok[8]), " ".join(tok[9:])))
        except ValueError as e:
            raise ILRMInputError(
                f"images.txt line {lineno} is not 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME'"
            ) from e
    return _colmap_set(cameras, images, "COLMAP text model")


def _is_pose_line(tok: list[str]) -> bool:
    if len(tok) < 10:
        return False
    try:
        float(tok[9])
    except ValueError:
        return True  # a file name: a pose line
    return False  # all numbers: a 2D point line (x y point3D_id ...)


def parse_colmap_binary(cameras_bin: bytes, images_bin: bytes) -> CameraSet:
    """COLMAP binary model: the bytes of ``cameras.bin`` and ``images.bin`` (little-endian).

    cameras.bin: u64 count; per camera i32 id, i32 model id, u64 width, u64 height, f64 params[n(model)].
    images.bin: u64 count; per image i32 id, f64 qw qx qy qz, f64 tx ty tz, i32 camera id,
    NUL-terminated name, u64 number of 2D points, then 24 bytes per point (f64 x, f64 y, i64 point id).
    """
    cameras: dict[int, tuple[str, int, int, list[float]]] = {}
    try:
        r = _Reader(cameras_bin, "cameras.bin")
        for _ in range(r.unpack("<Q")[0]):
            cam_id, model_id, w, h = r.unpack("<iiQQ")
            if model_id not in _COLMAP_MODELS:
                raise ILRMInputError(f"cameras.bin: unknown camera model id {model_id} (camera {cam_id})")
            model, n = _COLMAP_MODELS[model_id]
            cameras[cam_id] = (model, int(w), int(h), list(r.unpack(f"<{n}d")))
        images = []
        r = _Reader(images_bin, "images.bin")
        for _ in range(r.unpack("<Q")[0]):
            image_id, qw, qx, qy, qz, tx, ty, tz, cam_id = r.unpack("<i7di")
            name = r.cstring()
            (n_points,) = r.unpack("<Q")
            r.skip(24 * n_points)
            images.append((image_id, np.array([qw, qx, qy, qz]), np.array([tx, ty, tz]), cam_id, name))
    except struct.error as e:
        raise ILRMInputError(f"{r.name} is truncated or not a COLMAP binary file; export the model again") from e
    return _colmap_set(cameras, images, "COLMAP binary model")


class _Reader:
    """Sequential little-endian reader over bytes; truncation raises struct.error."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.pos, self.name = data, 0, name

    def unpack(self, fmt: str) -> tuple:
        out = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return out

    def skip(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise struct.error("truncated")
        self.pos += n

    def cstring(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise struct.error("unterminated name")
        s = self.data[self.pos : end].decode("utf-8", errors="replace")
        self.pos = end + 1
        return s


# ---- matching photos to cameras ------------------------------------------------------------


@dataclass
class MatchedCameras:
    """Cameras in the order of the photos.

    names: photo names, (V,). intrinsics: (V, 3, 3) pixels for each photo at the size given to
    :func:`match_cameras`. c2w: (V, 4, 4) OpenCV, in the camera file's world frame.
    camera_names: the matched camera's name in the file, (V,). unused: cameras with no photo.
    warnings: the camera set's warnings plus ours, for display.
    """

    names: list[str]
    intrinsics: np.ndarray
    c2w: np.ndarray
    camera_names: list[str]
    unused: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _stem(name: str) -> str:
    base = PurePosixPath(name.replace("\\", "/")).name.lower()
    return base.rsplit(".", 1)[0] if "." in base else base


def _base(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).name.lower()


def match_cameras(
    cameras: CameraSet,
    images: Sequence[tuple[str, tuple[int, int]]],
    *,
    allow_unused: bool = True,
) -> MatchedCameras:
    """Give each photo its camera, by file name, with intrinsics for the photo's size.

    images: (photo name, (height, width)) in the order wanted. A photo matches the camera with the
    same base name (folders ignored, case-insensitive); failing that, the same name without the
    extension (``frame0.png`` ↔ ``images/frame0.jpg``, NeRF-synthetic ``./train/r_0``), when that is
    unambiguous. Intrinsics are rescaled to the photo's size (same aspect ratio required).
    allow_unused: when False, cameras without a photo are an error too (else they are listed in
    ``unused`` and a warning).
    Raises :class:`ILRMInputError` naming the photos without a camera (or the ambiguous ones).
    """
    by_base: dict[str, NamedCamera] = {}
    by_stem: dict[str, list[NamedCamera]] = {}
    for c in cameras:
        by_base[_base(c.name)] = c
        by_stem.setdefault(_stem(c.name), []).append(c)
    seen_photo: dict[str, str] = {}
    chosen: list[NamedCamera] = []
    missing, ambiguous, dup_photo = [], [], []
    for name, _ in images:
        if _base(name) in seen_photo:
            dup_photo.append(name)
        seen_photo[_base(name)] = name
        cam = by_base.get(_base(name))
        if cam is None:
            hits = by_stem.get(_stem(name), [])
            if len(hits) == 1:
                cam = hits[0]
            elif len(hits) > 1:
                ambiguous.append(f"{name!r} ({', '.join(repr(h.name) for h in hits)})")
            else:
                missing.append(name)
        if cam is not None:
            chosen.append(cam)
    if dup_photo:
        raise ILRMInputError(
            f"several photos are named {', '.join(repr(n) for n in dup_photo[:5])}; rename them so that each photo "
            "has its own file name (cameras are matched by name)"
        )
    if ambiguous:
        raise ILRMInputError(
            f"photos match several cameras in {cameras.source} when the extension is ignored: "
            f"{'; '.join(ambiguous[:5])}. Upload photos with the exact file names of the camera file."
        )
    if missing:
        examples = ", ".join(repr(_base(c.name)) for c in list(cameras)[:4])
        raise ILRMInputError(
            f"{len(missing)} photo(s) have no camera in {cameras.source}: {', '.join(repr(m) for m in missing[:8])}"
            f"{' ...' if len(missing) > 8 else ''}. The camera file names images such as {examples}; upload the "
            "photos under those names, or upload without the camera file to estimate cameras."
        )
    counts: dict[int, list[str]] = {}
    for (name, _), cam in zip(images, chosen):
        counts.setdefault(id(cam), []).append(name)
    twice = [names for names in counts.values() if len(names) > 1]
    if twice:
        raise ILRMInputError(
            f"photos {', '.join(repr(n) for n in twice[0])} all match the same camera; "
            "each photo needs its own camera (rename the photos to the camera file's names)"
        )
    used = {id(c) for c in chosen}
    unused = [c.name for c in cameras if id(c) not in used]
    warnings = list(cameras.warnings)
    if unused:
        if not allow_unused:
            raise ILRMInputError(
                f"{cameras.source} has {len(unused)} camera(s) without an uploaded photo: "
                f"{', '.join(repr(n) for n in unused[:8])}{' ...' if len(unused) > 8 else ''}. "
                "Upload those photos too, or remove those cameras from the file."
            )
        warnings.append(f"{len(unused)} camera(s) in {cameras.source} have no uploaded photo and are not used")
    K = np.stack([c.intrinsics_for(hw[0], hw[1]) for c, (_, hw) in zip(chosen, images)])
    if any(c.width is None and c.K is not None for c in chosen):
        warnings.append(f"{cameras.source} does not state the image size; its intrinsics are used as given")
    return MatchedCameras(
        names=[n for n, _ in images],
        intrinsics=K,
        c2w=np.stack([c.c2w for c in chosen]),
        camera_names=[c.name for c in chosen],
        unused=unused,
        warnings=warnings,
    )
