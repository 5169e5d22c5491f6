"""Named cameras and camera sets: the one convention every reader produces.

c2w in OpenCV axes (x right, y down, z forward) and pixel intrinsics ``K`` with continuous pixel
coordinates (the centre of the top-left pixel is (0.5, 0.5)). Also the name helpers shared by
validation and matching (:func:`name_list`, ``_base``, ``_stem``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np

from ..errors import ILRMInputError


@dataclass
class NamedCamera:
    """One camera of a camera file (or of an estimate), belonging to the image called ``name``.

    name: the image's file name as the source gives it (may include folders, may lack an extension).
    c2w: (4, 4) float64 camera-to-world, OpenCV axes.
    K: (3, 3) float64 pixel intrinsics for an image of ``width`` × ``height``; ``None`` when the
        source only gives a field of view (NeRF-synthetic ``camera_angle_x``).
    width, height: the image size the intrinsics are stated for; ``None`` when the source does not
        say (``K`` is then taken to describe the image at whatever size it is uploaded).
    fov_x, fov_y: full fields of view in radians, used only when ``K`` is ``None``.
    """

    name: str
    c2w: np.ndarray
    K: np.ndarray | None = None
    width: int | None = None
    height: int | None = None
    fov_x: float | None = None
    fov_y: float | None = None

    def intrinsics_for(self, height: int, width: int) -> np.ndarray:
        """Pixel intrinsics (3, 3) for this camera's image at ``height`` × ``width``.

        Rescales when the stated size differs with the same aspect ratio (within 1 %); raises
        :class:`ILRMInputError` when the aspect ratio differs.
        """
        if self.K is None:
            if self.fov_x is None:
                raise ILRMInputError(f"camera {self.name!r} has neither intrinsics nor a field of view")
            fx = 0.5 * width / math.tan(0.5 * self.fov_x)
            fy = 0.5 * height / math.tan(0.5 * self.fov_y) if self.fov_y is not None else fx
            return np.array([[fx, 0, width / 2], [0, fy, height / 2], [0, 0, 1]], dtype=np.float64)
        if self.width is None or self.height is None:
            return self.K.copy()
        sx, sy = width / self.width, height / self.height
        if abs(sx / sy - 1.0) > 0.01:
            hint = ""
            if abs((height / self.width) / (width / self.height) - 1.0) <= 0.01:
                hint = (
                    " The photo looks rotated by 90° relative to the camera file (an EXIF orientation tag "
                    "is applied on upload): upload the photos as the camera file saw them."
                )
            raise ILRMInputError(
                f"photo {self.name!r} is {width}×{height} but its camera in the camera file is for "
                f"{self.width}×{self.height}, a different aspect ratio. Upload the photos at the size the "
                f"camera file was made for (or a uniformly scaled copy).{hint}"
            )
        K = self.K.copy()
        K[0, :] *= sx
        K[1, :] *= sy
        K[2, :] = (0.0, 0.0, 1.0)
        return K


@dataclass
class CameraSet:
    """Cameras keyed by image name, from a camera file or from :func:`ilrm.poses.estimate_poses`.

    source: where they came from, e.g. ``"opencv_cameras.json"``, ``"COLMAP binary model"``.
    warnings: things the user may want to know (ignored lens distortion, ...), for display.
    scene_name: the scene's name when the file states one (``opencv_cameras.json``), else ``None``.
    """

    cameras: list[NamedCamera]
    source: str = ""
    warnings: list[str] = field(default_factory=list)
    scene_name: str | None = None

    def __len__(self) -> int:
        return len(self.cameras)

    def __iter__(self) -> Iterator[NamedCamera]:
        return iter(self.cameras)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    def get(self, name: str) -> NamedCamera:
        """The camera called exactly ``name`` (KeyError when absent)."""
        for c in self.cameras:
            if c.name == name:
                return c
        raise KeyError(name)

    def c2w(self) -> np.ndarray:
        """All c2w stacked, (V, 4, 4) float64, in list order."""
        return np.stack([c.c2w for c in self.cameras])

    def validate(self, rotation_tol: float = 1e-2) -> None:
        """Raise :class:`ILRMInputError` for unusable cameras; re-orthonormalise near-rotations.

        Checks: at least one camera; finite poses and intrinsics; positive focal lengths and sizes;
        rotations orthonormal within ``rotation_tol`` with determinant +1 (a reflection means a
        wrong axis convention); bottom row (0, 0, 0, 1); no two cameras for the same file name.
        """
        if not self.cameras:
            raise ILRMInputError(f"the camera file ({self.source or 'unknown format'}) holds no cameras")
        bad_pose, bad_rot, bad_K = [], [], []
        for c in self.cameras:
            c.c2w = np.asarray(c.c2w, dtype=np.float64)
            if c.c2w.shape != (4, 4) or not np.isfinite(c.c2w).all():
                bad_pose.append(c.name)
                continue
            if not np.allclose(c.c2w[3], (0, 0, 0, 1), atol=1e-6):
                bad_pose.append(c.name)
                continue
            R = c.c2w[:3, :3]
            if np.abs(R.T @ R - np.eye(3)).max() > rotation_tol or np.linalg.det(R) < 0:
                bad_rot.append(c.name)
                continue
            # Small numerical drift (text files with few digits): snap to the nearest rotation so
            # downstream code can rely on R^T R = I.
            U, _, Vt = np.linalg.svd(R)
            c.c2w[:3, :3] = U @ Vt
            if c.K is not None:
                c.K = np.asarray(c.K, dtype=np.float64)
                if c.K.shape != (3, 3) or not np.isfinite(c.K).all() or c.K[0, 0] <= 0 or c.K[1, 1] <= 0:
                    bad_K.append(c.name)
            elif c.fov_x is None or not (0 < c.fov_x < math.pi):
                bad_K.append(c.name)
            if (c.width is not None and c.width <= 0) or (c.height is not None and c.height <= 0):
                bad_K.append(c.name)
        src = f" in {self.source}" if self.source else ""
        if bad_pose:
            raise ILRMInputError(
                f"camera poses{src} are missing, NaN/infinite or malformed for: {name_list(bad_pose)}. "
                "Fix or remove these cameras (COLMAP writes no pose for images it could not register)."
            )
        if bad_rot:
            raise ILRMInputError(
                f"camera rotations{src} are not proper rotations (not orthonormal, or a mirror image) for: "
                f"{name_list(bad_rot)}. Check the file's axis convention and that the matrices are not scaled."
            )
        if bad_K:
            raise ILRMInputError(
                f"camera intrinsics{src} are missing or invalid (focal length must be positive and finite) "
                f"for: {name_list(bad_K)}."
            )
        seen: dict[str, str] = {}
        dups = []
        for c in self.cameras:
            key = _base(c.name)
            if key in seen:
                dups.append(f"{seen[key]!r} and {c.name!r}")
            seen[key] = c.name
        if dups:
            raise ILRMInputError(
                f"the camera file{src} has several cameras for the same image file name ({'; '.join(dups[:5])}); "
                "images are matched to cameras by file name, so each name must appear once."
            )


def name_list(names: Sequence[str], limit: int = 8) -> str:
    """``'a', 'b' and 3 more``: names quoted for a message, at most ``limit`` of them."""
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _stem(name: str) -> str:
    base = _base(name)
    return base.rsplit(".", 1)[0] if "." in base else base


def _base(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).name.lower()
