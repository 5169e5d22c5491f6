"""Camera files on disk: a file, a COLMAP model folder, a zip, or a scene folder (photos + cameras)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import ILRMInputError
from .archives import _FORMATS_HINT, load_camera_files
from .matching import _pair_by_name
from .sets import CameraSet

#: Photo file name endings that :func:`find_scene` picks up.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


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
