"""Camera files next to photos, read into one :class:`CameraSet`, and matched to the photos by name.

One convention comes out of every reader: c2w in OpenCV axes (x right, y down, z forward) and
pixel intrinsics ``K`` with continuous pixel coordinates (the centre of the top-left pixel is
(0.5, 0.5), which is COLMAP's convention too, so COLMAP intrinsics are used unchanged). Formats:

- our ``opencv_cameras.json``: ``{scene_name?, frames: [{file_path, w2c (4×4), h, w, fx, fy, cx, cy}]}``
- nerfstudio / instant-ngp / NeRF-synthetic ``transforms.json``: c2w ``transform_matrix`` in OpenGL
  axes (x right, y up, z back), converted by negating the camera's y and z axes; intrinsics
  ``fl_x, fl_y, cx, cy, w, h`` shared at the top level or per frame, or ``camera_angle_x`` (and
  optionally ``camera_angle_y``) when no focal length is given.
- COLMAP models, text (``cameras.txt`` + ``images.txt``) or binary (``cameras.bin`` +
  ``images.bin``), loose, in a model folder or in a zip; parsed by ``pycolmap``. Lens distortion
  parameters are ignored with a warning; fisheye and other non-pinhole models are refused.

Entry points: :func:`read_camera_set` (a file or a folder, format detected), :func:`find_scene`
(a scene folder's photos and cameras), :func:`load_camera_files` (uploaded files), and
:func:`match_cameras` (cameras in the photos' order with intrinsics for their size). Every problem
raises :class:`~ilrm.errors.ILRMInputError` with a message that says what to fix.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from .errors import ILRMInputError

__all__ = [
    "NamedCamera",
    "CameraSet",
    "MatchedCameras",
    "SceneFiles",
    "OpenCVFrameEntry",
    "OpenCVCamerasFile",
    "read_camera_set",
    "find_camera_file",
    "find_scene",
    "load_camera_files",
    "read_opencv_cameras_file",
    "parse_camera_json",
    "parse_opencv_cameras",
    "parse_transforms",
    "parse_colmap_text",
    "parse_colmap_binary",
    "match_cameras",
    "name_list",
    "IMAGE_EXTENSIONS",
    "MAX_FILE_BYTES",
]

#: Largest camera file we read, and the most bytes we take out of one zip, in bytes (a COLMAP
#: images file holds every 2D point, so it can be large; anything beyond this is refused).
MAX_FILE_BYTES = 512 * 1024 * 1024
#: Photo file name endings that :func:`find_scene` picks up.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")

# OpenGL camera axes (y up, z back) → OpenCV (y down, z forward): negate the camera's y and z columns.
_GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])
# COLMAP perspective models whose first parameters are (f | fx, fy), cx, cy; the rest is distortion.
_PINHOLE_LIKE = {"SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "FULL_OPENCV"}
_FORMATS_HINT = (
    "Use opencv_cameras.json, a nerfstudio transforms.json, or a COLMAP model "
    "(cameras.txt + images.txt, cameras.bin + images.bin, or a zip of them)."
)


# ---- named cameras ---------------------------------------------------------------------------


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


# ---- entry points: a path, a scene folder ----------------------------------------------------


def find_camera_file(folder: str | Path) -> Path | None:
    """The camera file of a scene folder, or ``None`` when it has none.

    Looked for in this order: ``opencv_cameras.json``, ``transforms.json``, then a COLMAP model
    folder (``sparse/0``, ``sparse``, ``colmap/sparse/0`` or the folder itself) holding
    ``cameras`` + ``images`` as ``.bin`` or ``.txt``. Returns the JSON file or the model folder.
    """
    found = _camera_candidates(Path(folder))
    return found[0] if found else None


def _camera_candidates(folder: Path) -> list[Path]:
    out = [folder / n for n in ("opencv_cameras.json", "transforms.json") if (folder / n).is_file()]
    for d in (folder / "sparse" / "0", folder / "sparse", folder / "colmap" / "sparse" / "0", folder):
        if any((d / f"cameras{e}").is_file() and (d / f"images{e}").is_file() for e in (".bin", ".txt")):
            out.append(d)
            break
    return out


def read_camera_set(
    path: str | Path, image_names: Sequence[str] | None = None, *, allow_unused: bool = True
) -> CameraSet:
    """Read the cameras of a camera file, a COLMAP model folder, a zip, or a scene folder.

    path: ``opencv_cameras.json`` / ``transforms.json`` (any ``.json`` name), a ``.zip`` of one
        camera file or COLMAP model, one file of a COLMAP model or its folder, or a scene folder
        (see :func:`find_camera_file`; when it holds several camera files the first is read and
        the others are named in ``warnings``).
    image_names: photo file names; when given, the result holds one camera per photo, in this
        order (matched by name as in :func:`match_cameras`; cameras without a photo are dropped
        with a warning, or refused when ``allow_unused`` is False).
    Returns a validated :class:`CameraSet` (c2w OpenCV, pixel K); raises :class:`ILRMInputError`.
    """
    p = Path(path)
    warnings: list[str] = []
    if p.is_dir():
        found = _camera_candidates(p)
        if not found:
            raise ILRMInputError(
                f"{p} holds no camera file. {_FORMATS_HINT} "
                "Without a camera file, the cameras can be estimated from the photos instead."
            )
        if len(found) > 1:
            ignored = ", ".join(str(f.relative_to(p)) or "." for f in found[1:])
            warnings.append(f"{p.name} also holds {ignored}; the cameras were read from {found[0].name}")
        p = found[0]
    if p.is_dir():
        cams = load_camera_files(_colmap_model_files(p))
    elif p.is_file() and PurePosixPath(p.name.lower()).stem in ("cameras", "images", "points3d", "rigs", "frames"):
        cams = load_camera_files(_colmap_model_files(p.parent))
    else:
        cams = load_camera_files(p)
    cams.warnings[:0] = warnings
    return cams if image_names is None else _for_photos(cams, image_names, allow_unused=allow_unused)


def _for_photos(cams: CameraSet, photos: Sequence[str], *, allow_unused: bool) -> CameraSet:
    """The cameras of ``photos`` in their order (see :func:`match_cameras`)."""
    chosen, _, warnings = _pair_by_name(cams, photos, allow_unused=allow_unused)
    return CameraSet(chosen, source=cams.source, warnings=warnings, scene_name=cams.scene_name)


def _colmap_model_files(folder: Path) -> list[Path]:
    """cameras + images of the COLMAP model in ``folder``; binary first, as COLMAP prefers it."""
    for ext in (".bin", ".txt"):
        files = [folder / f"cameras{ext}", folder / f"images{ext}"]
        if all(f.is_file() for f in files):
            return files
    raise ILRMInputError(
        f"{folder} holds no complete COLMAP model: it needs cameras.txt + images.txt or cameras.bin + images.bin"
    )


@dataclass
class SceneFiles:
    """A scene folder's photos and their cameras (:func:`find_scene`).

    root: the scene folder. images: the photos, (V,) paths, in the camera file's order when it
    names them, else sorted by name. camera_file: the JSON file or COLMAP model folder read, or
    ``None`` when the folder has none. cameras: one camera per photo in ``images`` order, or
    ``None`` without a camera file (cameras must then be estimated).
    """

    root: Path
    images: list[Path]
    camera_file: Path | None = None
    cameras: CameraSet | None = None


def find_scene(folder: str | Path) -> SceneFiles:
    """Find a scene folder's photos and read its camera file, if any.

    Photos are the files the camera file names (``file_path`` relative to a JSON file's folder,
    COLMAP names relative to ``<folder>/images/``) when they all exist; otherwise the
    image files in ``<folder>/images/`` (or in the folder itself), matched to cameras by name.
    Raises :class:`ILRMInputError` when there are no photos or photos and cameras do not match.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ILRMInputError(f"{root} is not a folder; give the scene folder that holds the photos")
    camera_file = find_camera_file(root)
    cams = None if camera_file is None else read_camera_set(root)
    images: list[Path] | None = None
    if cams is not None:
        # JSON file paths are relative to the file; COLMAP names to the image folder, images/.
        images = _named_photos(cams, root / "images" if camera_file.is_dir() else camera_file.parent)
    if images is None:
        listed = root / "images" if (root / "images").is_dir() else root
        images = sorted(p for p in listed.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise ILRMInputError(f"{root} holds no photos (looked in {root / 'images'} and {root}); add the images")
    cameras = None if cams is None else _for_photos(cams, [p.name for p in images], allow_unused=True)
    return SceneFiles(root, images, camera_file, cameras)


def _named_photos(cams: CameraSet, base: Path) -> list[Path] | None:
    """The photos the cameras name, under ``base``; ``None`` unless every one exists."""
    out = []
    for c in cams:
        p = base / c.name.replace("\\", "/")
        if not p.is_file() and not p.suffix:  # NeRF-synthetic names frames without an extension
            p = next((p.with_name(p.name + e) for e in IMAGE_EXTENSIONS if p.with_name(p.name + e).is_file()), p)
        if not p.is_file():
            return None
        out.append(p)
    return out


# ---- uploaded files --------------------------------------------------------------------------

# A camera file's members: name (inside a zip: its path there) → a function that reads its bytes.
_Members = dict[str, Callable[[], bytes]]


def load_camera_files(paths: str | Path | Sequence[str | Path]) -> CameraSet:
    """Parse an uploaded camera file (or the files of one COLMAP model) into a validated CameraSet.

    paths: one ``.json`` file, one ``.zip``, or the loose files of a COLMAP model
    (``cameras.txt`` + ``images.txt`` or ``cameras.bin`` + ``images.bin``; ``points3D``, ``rigs``,
    ``frames`` files may come along and are not read). Raises :class:`ILRMInputError`.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ILRMInputError("no camera file given")
    files: _Members = {}
    for p in paths:
        if not p.is_file():
            raise ILRMInputError(f"camera file {p.name!r} cannot be read (not a file)")
        if p.stat().st_size > MAX_FILE_BYTES:
            raise ILRMInputError(f"camera file {p.name!r} is larger than {MAX_FILE_BYTES >> 20} MB")
        if p.suffix.lower() == ".zip" or zipfile.is_zipfile(p):
            if len(paths) > 1:
                raise ILRMInputError("upload either one zip of the camera files or the loose files, not both")
            with _zip_members(p) as members:
                return _from_members(members, p.name)
        files[p.name] = p.read_bytes
    return _from_members(files, ", ".join(sorted(files)))


@contextlib.contextmanager
def _zip_members(path: Path) -> Iterator[_Members]:
    """The camera-file members of a zip, read on demand, at most :data:`MAX_FILE_BYTES` in all.

    Only the members a format needs are ever decompressed (never ``points3D``), and reading stops
    past the budget, so a zip bomb is refused instead of unpacked.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [
                i
                for i in zf.infolist()
                if not i.is_dir()
                and not PurePosixPath(i.filename).name.startswith(".")
                and "__MACOSX" not in i.filename
                and i.filename.lower().endswith((".json", ".txt", ".bin"))
            ]
            budget = [MAX_FILE_BYTES]

            def reader(info: zipfile.ZipInfo) -> Callable[[], bytes]:
                def read() -> bytes:
                    # The declared size first (cheap), then the real one: zipfile stops at the
                    # declared size, and a lying header fails its CRC check.
                    if info.file_size > budget[0]:
                        raise ILRMInputError(
                            f"{path.name!r} unpacks to more than {MAX_FILE_BYTES >> 20} MB of camera files "
                            f"({info.filename} alone is {info.file_size >> 20} MB); zip only the camera files"
                        )
                    with zf.open(info) as f:
                        data = f.read(budget[0] + 1)
                    if len(data) > budget[0]:
                        raise ILRMInputError(f"{path.name!r} unpacks to more than {MAX_FILE_BYTES >> 20} MB")
                    budget[0] -= len(data)
                    return data

                return read

            yield {i.filename: reader(i) for i in infos}
    except zipfile.BadZipFile as e:
        raise ILRMInputError(f"{path.name!r} is not a readable zip file ({e}); zip the camera files again") from e


def _from_members(files: _Members, label: str) -> CameraSet:
    """Pick the format from the member names (and, for JSON, its keys) and parse it."""
    by_base: dict[str, list[str]] = {}
    for name in files:
        by_base.setdefault(PurePosixPath(name).name.lower(), []).append(name)

    def one(base: str) -> Callable[[], bytes] | None:
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
        return parse_colmap_binary(cams_bin(), imgs_bin())
    if cams_txt is not None or imgs_txt is not None:
        if cams_txt is None or imgs_txt is None:
            raise ILRMInputError("a text COLMAP model needs both cameras.txt and images.txt; upload both (or a zip)")
        return parse_colmap_text(_decode(cams_txt(), "cameras.txt"), _decode(imgs_txt(), "images.txt"))
    jsons = [n for n in files if n.lower().endswith(".json")]
    if len(jsons) == 1:
        name = PurePosixPath(jsons[0]).name
        return parse_camera_json(_load_json(files[jsons[0]](), name), name)
    if len(jsons) > 1:
        raise ILRMInputError(f"{label} holds several JSON files ({', '.join(jsons[:5])}); upload just one camera file")
    raise ILRMInputError(f"{label} is not a camera file this app reads. {_FORMATS_HINT}")


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


# ---- COLMAP (parsed by pycolmap) -------------------------------------------------------------


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
    base = _base(name)
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
    chosen, unused, warnings = _pair_by_name(cameras, [n for n, _ in images], allow_unused=allow_unused)
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


def _pair_by_name(
    cameras: CameraSet, photos: Sequence[str], *, allow_unused: bool
) -> tuple[list[NamedCamera], list[str], list[str]]:
    """(camera per photo, names of cameras without a photo, warnings); the rules of :func:`match_cameras`."""
    by_base: dict[str, NamedCamera] = {}
    by_stem: dict[str, list[NamedCamera]] = {}
    for c in cameras:
        by_base[_base(c.name)] = c
        by_stem.setdefault(_stem(c.name), []).append(c)
    seen_photo: dict[str, str] = {}
    chosen: list[NamedCamera] = []
    missing, ambiguous, dup_photo = [], [], []
    for name in photos:
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
    for name, cam in zip(photos, chosen):
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
    return chosen, unused, warnings
