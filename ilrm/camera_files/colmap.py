"""COLMAP models, text (``cameras.txt`` + ``images.txt``) or binary (``cameras.bin`` +
``images.bin``), parsed by ``pycolmap``, with the checks that keep pycolmap from misreading them.

COLMAP's intrinsics use the same pixel convention as ours, so they are used unchanged. Lens
distortion parameters are ignored with a warning; fisheye and other non-pinhole models are refused.
"""

from __future__ import annotations

import functools
import struct
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ILRMInputError
from .sets import CameraSet, NamedCamera

# COLMAP perspective models whose first parameters are (f | fx, fy), cx, cy; the rest is distortion.
_PINHOLE_LIKE = {"SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "FULL_OPENCV"}


def parse_colmap_text(cameras_txt: str, images_txt: str) -> CameraSet:
    """COLMAP text model: the contents of ``cameras.txt`` and ``images.txt``, read by pycolmap.

    ``images.txt`` has two lines per image (the pose line, then 2D points, possibly empty); pose
    lines are told apart from point lines by their file name (point lines hold only numbers), so
    files written without the point lines also parse.
    """
    # Measured with pycolmap 4.2.1, two reasons to rewrite images.txt before pycolmap reads it:
    # its reader takes every second line as a pose line, so a file without point lines silently
    # lost two of three images; and it cuts names at the first space ("IMG 1.jpg" → "IMG").
    # So we hand it each pose line with a space-free stand-in name and no 2D points (not needed).
    lines, names = [], {}
    for line in images_txt.splitlines():
        tok = line.split(None, 10)  # enough to classify; point lines can be very long
        if tok and not tok[0].startswith("#") and _is_pose_line(tok):
            key = f"image_{len(names)}"
            names[key] = " ".join(line.split()[9:])
            lines += [" ".join([*tok[:9], key]), ""]
    files = {"cameras.txt": cameras_txt.encode(), "images.txt": "\n".join(lines).encode() + b"\n"}
    return _read_colmap(files, "text", names)


def _is_pose_line(tok: list[str]) -> bool:
    if len(tok) < 10:
        return False
    try:
        float(tok[9])
    except ValueError:
        return True  # a file name: a pose line
    return False  # all numbers: a 2D point line (x y point3D_id ...)


def parse_colmap_binary(cameras_bin: bytes, images_bin: bytes) -> CameraSet:
    """COLMAP binary model: the bytes of ``cameras.bin`` and ``images.bin``, read by pycolmap.

    cameras.bin: u64 count; per camera i32 id, i32 model id, u64 width, u64 height, f64 params[n(model)].
    images.bin: u64 count; per image i32 id, f64 qw qx qy qz, f64 tx ty tz, i32 camera id,
    NUL-terminated name, u64 number of 2D points, then 24 bytes per point (f64 x, f64 y, i64 point id).
    """
    _check_binary_layout(cameras_bin, images_bin)
    return _read_colmap({"cameras.bin": cameras_bin, "images.bin": images_bin}, "binary", {})


@functools.cache
def _colmap_num_params(model_id: int) -> int | None:
    """Number of parameters of a COLMAP camera model id (from pycolmap), ``None`` if unknown."""
    import pycolmap

    try:
        return int(pycolmap.Camera.create_from_model_id(0, pycolmap.CameraModelId(model_id), 1.0, 1, 1).params.size)
    except (ValueError, TypeError):
        return None


def _check_binary_layout(cameras_bin: bytes, images_bin: bytes) -> None:
    """Check that the counts in a binary model fit the files' sizes, without reading values.

    Measured with pycolmap 4.2.1: it trusts the counts, so a 300-byte images.bin claiming 2^25
    points made it allocate 1.8 GB before failing, and a truncated cameras.bin read as valid.
    """

    def need(data: bytes, pos: int, n: int, name: str) -> int:
        if pos + n > len(data):
            raise ILRMInputError(f"{name} is truncated or not a COLMAP binary file; export the model again")
        return pos + n

    pos = need(cameras_bin, 0, 8, "cameras.bin")
    for _ in range(struct.unpack_from("<Q", cameras_bin)[0]):
        cam_id, model_id = struct.unpack_from("<ii", cameras_bin, need(cameras_bin, pos, 24, "cameras.bin") - 24)
        n = _colmap_num_params(model_id)
        if n is None:
            raise ILRMInputError(f"cameras.bin: unknown camera model id {model_id} (camera {cam_id})")
        pos = need(cameras_bin, pos, 24 + 8 * n, "cameras.bin")
    pos = need(images_bin, 0, 8, "images.bin")
    for _ in range(struct.unpack_from("<Q", images_bin)[0]):
        end = images_bin.find(b"\0", need(images_bin, pos, 64, "images.bin"))
        if end < 0:
            need(images_bin, len(images_bin), 1, "images.bin")
        pos = need(images_bin, end + 1, 8, "images.bin")
        pos = need(images_bin, pos, 24 * struct.unpack_from("<Q", images_bin, pos - 8)[0], "images.bin")


def _read_colmap(files: dict[str, bytes], kind: str, names: dict[str, str]) -> CameraSet:
    """Write the model's cameras and images to a temporary folder and read it with pycolmap.

    files: {"cameras.txt"|"cameras.bin": bytes, "images.*": bytes}; names: stand-in → real image
    name (text models, see :func:`parse_colmap_text`).
    """
    import pycolmap

    source = f"COLMAP {kind} model"
    ext = ".bin" if kind == "binary" else ".txt"
    with tempfile.TemporaryDirectory(prefix="ilrm_colmap_") as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        # pycolmap refuses a model without points3D; ours is empty (2D-3D tracks are not needed).
        (Path(tmp) / f"points3D{ext}").write_bytes(struct.pack("<Q", 0) if kind == "binary" else b"")
        try:
            rec = pycolmap.Reconstruction(tmp)
        except IndexError as e:  # pycolmap: "Rig with ID n does not exist"
            raise ILRMInputError(
                f"{source}: the images file refers to camera ids that the cameras file does not define ({e}). "
                "Upload the cameras and images files of the same model."
            ) from e
        except (ValueError, RuntimeError, MemoryError) as e:
            raise ILRMInputError(
                f"the {source} cannot be read ({str(e).split('] ')[-1].strip() or type(e).__name__}): cameras{ext} "
                "needs 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...' with a known COLMAP model and its number of "
                f"parameters, images{ext} 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME'. Export the model again."
            ) from e
    cams, distorted = [], set()
    for image_id in sorted(rec.images):  # COLMAP's order; pycolmap's dict is unordered
        im = rec.images[image_id]
        cam = rec.cameras[im.camera_id]
        model = cam.model.name
        if model not in _PINHOLE_LIKE:
            raise ILRMInputError(
                f"COLMAP camera {im.camera_id} uses the {model} model, which this app cannot use: undistort the "
                "images to a pinhole model first (colmap image_undistorter), then upload the undistorted images "
                "and model"
            )
        if any(abs(float(cam.params[i])) > 1e-9 for i in cam.extra_params_idxs()):
            distorted.add(f"{im.camera_id} ({model})")
        c2w = np.full((4, 4), np.nan)  # no pose: unregistered (reported by validate)
        if im.has_pose:
            pose = im.cam_from_world()
            rotation = pycolmap.Rotation3d(pose.rotation.quat)
            rotation.normalize()  # COLMAP uses the quaternion as written; text files may round it
            w2c = np.eye(4)
            w2c[:3, :3], w2c[:3, 3] = rotation.matrix(), pose.translation
            with np.errstate(all="ignore"):
                c2w = np.linalg.inv(w2c) if np.isfinite(w2c).all() else w2c
        K = np.asarray(cam.calibration_matrix(), dtype=np.float64)
        cams.append(NamedCamera(names.get(im.name, im.name), c2w, K, int(cam.width), int(cam.height)))
    warnings = []
    if distorted:
        warnings.append(
            f"COLMAP camera(s) {', '.join(sorted(distorted))} have lens distortion, which is ignored (only focal "
            "length and principal point are used); undistorted images (colmap image_undistorter) give better results."
        )
    out = CameraSet(cams, source=source, warnings=warnings)
    out.validate()
    return out
