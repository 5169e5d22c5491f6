"""JSON camera files: our ``opencv_cameras.json`` and nerfstudio / instant-ngp / NeRF-synthetic
``transforms.json`` (OpenGL c2w, converted to OpenCV by negating the camera's y and z axes)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ILRMInputError
from .sets import CameraSet, NamedCamera

# OpenGL camera axes (y up, z back) → OpenCV (y down, z forward): negate the camera's y and z columns.
_GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


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


@dataclass
class OpenCVFrameEntry:
    """One frame of an ``opencv_cameras.json`` as stored, before any conversion.

    file_path: the image path relative to the file's folder. w2c: (4, 4) float64 world-to-camera,
    OpenCV axes, exactly as written. K: (3, 3) float64 pixel intrinsics for ``height`` × ``width``.
    """

    file_path: str
    w2c: np.ndarray
    K: np.ndarray
    width: int
    height: int


@dataclass
class OpenCVCamerasFile:
    """An ``opencv_cameras.json`` as stored (:func:`read_opencv_cameras_file`): its ``scene_name``
    (``None`` when absent) and its frames in file order (frame indices index this list)."""

    scene_name: str | None
    frames: list[OpenCVFrameEntry]


def _opencv_entries(data: dict, name: str) -> list[OpenCVFrameEntry]:
    frames = data.get("frames")
    if not isinstance(frames, list):
        raise ILRMInputError(f"{name} has no 'frames' list")
    out = []
    for i, f in enumerate(frames):
        where = f"{name}, frame {i}"
        if not isinstance(f, dict) or "file_path" not in f:
            raise ILRMInputError(f"{where} lacks 'file_path'")
        where = f"{name}, frame {i} ({f['file_path']})"
        w2c = _matrix(f.get("w2c"), (4, 4), f"{where}: 'w2c'")
        fx, fy, cx, cy = (_number(f, k, where) for k in ("fx", "fy", "cx", "cy"))
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)
        w, h = (int(_number(f, k, where)) for k in ("w", "h"))
        out.append(OpenCVFrameEntry(str(f["file_path"]), w2c, K, w, h))
    return out


def read_opencv_cameras_file(path: str | Path) -> OpenCVCamerasFile:
    """Read an ``opencv_cameras.json`` without converting or validating its poses.

    For datasets that need the stored numbers as they are (the DL3DV reader inverts ``w2c``
    itself); everything else wants :func:`read_camera_set`. Raises :class:`ILRMInputError`.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ILRMInputError(f"cannot read {p}: {e}") from e
    data = _load_json(raw, str(p))
    scene_name = data.get("scene_name")
    return OpenCVCamerasFile(None if scene_name is None else str(scene_name), _opencv_entries(data, str(p)))


def parse_opencv_cameras(data: dict, name: str = "opencv_cameras.json") -> CameraSet:
    """Our layout: frames with ``file_path``, world-to-camera ``w2c`` (4×4, OpenCV), ``h, w, fx, fy, cx, cy``."""
    cams = []
    for e in _opencv_entries(data, name):
        with np.errstate(all="ignore"):
            ok = np.isfinite(e.w2c).all() and abs(np.linalg.det(e.w2c)) > 1e-12
            c2w = np.linalg.inv(e.w2c) if ok else e.w2c * np.nan
        cams.append(NamedCamera(e.file_path, c2w, e.K, e.width, e.height))
    scene_name = data.get("scene_name")
    out = CameraSet(cams, source=name, scene_name=None if scene_name is None else str(scene_name))
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
