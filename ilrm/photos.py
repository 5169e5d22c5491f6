"""Photos on disk → checked RGB arrays, and their cameras (from a camera file or estimated).

Rules (each failure is an :class:`ILRMInputError` that says what to do):

- between ``min_views`` (2) and ``max_views`` (32) photos, each with its own file name;
- every file must be an image Pillow can decode fully (JPEG, PNG, WebP, BMP, TIFF, ...);
- EXIF orientation is applied first, then every photo must have the **same size** (width × height):
  one camera shot them, and pose estimation uses one shared camera;
- photos larger than ``max_side`` on their long side are downscaled (the scale is kept, intrinsics
  follow it); greyscale, palette, 16-bit and CMYK photos become 8-bit RGB; transparent pixels are
  composited over white (the models' background colour).

:func:`photo_cameras` gives the photos their cameras in pixels of the loaded arrays, ready for
:meth:`ilrm.pipeline.Reconstructor.prepare`.
"""

from __future__ import annotations

import contextlib
import math
import struct
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from .camera_files import CameraSet, load_camera_files, match_cameras
from .errors import ILRMInputError
from .poses import DEFAULT_FOV_DEG, PoseEstimate, estimate_poses, focal_from_fov

__all__ = [
    "MAX_PIXELS",
    "Photo",
    "PosedPhotos",
    "downscale_warnings",
    "estimate_photo_cameras",
    "exif_focal_px",
    "load_photos",
    "photo_cameras",
]

#: Photos with more pixels than this are refused before decoding (memory); ~150 megapixels.
MAX_PIXELS = 150_000_000
# Extensions Pillow cannot open here, with the advice to give.
_UNSUPPORTED = {
    ".heic": "HEIC/HEIF photos (iPhone default) are not supported: export them as JPEG",
    ".heif": "HEIC/HEIF photos are not supported: export them as JPEG",
    ".avif": "AVIF photos are not supported: export them as JPEG or PNG",
    ".dng": "RAW photos are not supported: export them as JPEG",
    ".cr2": "RAW photos are not supported: export them as JPEG",
    ".nef": "RAW photos are not supported: export them as JPEG",
    ".arw": "RAW photos are not supported: export them as JPEG",
}


@dataclass
class Photo:
    """One photo, decoded.

    name: file name as uploaded (no folders). array: (H, W, 3) uint8 RGB, EXIF orientation applied,
    downscaled so that max(H, W) <= max_side. original_size: (height, width) of the full-size photo
    after EXIF orientation. exif_focal_px: focal length in pixels for ``array``'s size, from EXIF,
    or None.
    """

    name: str
    array: np.ndarray
    original_size: tuple[int, int]
    exif_focal_px: float | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of ``array``."""
        return int(self.array.shape[0]), int(self.array.shape[1])

    @property
    def scale(self) -> tuple[float, float]:
        """(sy, sx): ``array`` size / original size, per axis."""
        return self.array.shape[0] / self.original_size[0], self.array.shape[1] / self.original_size[1]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


#: Photos decoded at once by :func:`load_photos`.
DECODE_THREADS = 8


def load_photos(
    paths: Sequence[str | Path],
    *,
    max_side: int = 1024,
    min_views: int = 2,
    max_views: int = 32,
    names: Sequence[str] | None = None,
) -> list[Photo]:
    """Decode and check photos (see the module docstring for the rules).

    paths: the image files; names: their user-facing names (default: the paths' file names).
    Returns one :class:`Photo` per path, in order. Raises :class:`ILRMInputError`.
    """
    paths = [Path(p) for p in paths]
    names = [Path(p).name for p in paths] if names is None else list(names)
    if len(names) != len(paths):
        raise ILRMInputError(f"{len(names)} names for {len(paths)} photos: give one name per photo")
    if len(paths) < min_views:
        raise ILRMInputError(
            f"upload at least {min_views} photos of the scene (got {len(paths)}): the model reconstructs from "
            "several views taken from different positions"
        )
    if len(paths) > max_views:
        raise ILRMInputError(
            f"upload at most {max_views} photos (got {len(paths)}): remove {len(paths) - max_views}, keeping "
            "photos spread around the scene"
        )
    seen: dict[str, str] = {}
    for n in names:
        if n.lower() in seen:
            raise ILRMInputError(f"two photos are named {n!r}; rename one (photos are matched to cameras by name)")
        seen[n.lower()] = n
    # Pillow releases the GIL while it decodes, so photos decode side by side; map() keeps the order
    # and raises the first failing photo's error (in upload order).
    with ThreadPoolExecutor(max_workers=min(DECODE_THREADS, len(paths)), thread_name_prefix="ilrm-decode") as pool:
        images = list(pool.map(lambda pn: _load_one(pn[0], pn[1], max_side), zip(paths, names)))
    sizes: dict[tuple[int, int], list[str]] = {}
    for im in images:
        sizes.setdefault(im.original_size, []).append(im.name)
    if len(sizes) > 1:
        groups = "; ".join(
            f"{w}×{h}: {', '.join(ns[:3])}{' ...' if len(ns) > 3 else ''}" for (h, w), ns in sizes.items()
        )
        raise ILRMInputError(
            "all photos must have the same size (one camera, one orientation); got "
            f"{groups}. Upload photos from one camera, all landscape or all portrait, not cropped or resized."
        )
    return images


def _load_one(path: Path, name: str, max_side: int) -> Photo:
    """Decode one photo; every failure becomes an ILRMInputError naming the file."""
    ext = path.suffix.lower()
    if ext in _UNSUPPORTED:
        raise ILRMInputError(f"{name!r}: {_UNSUPPORTED[ext]}")
    if not path.is_file() or path.stat().st_size == 0:
        raise ILRMInputError(f"{name!r} is empty or missing; upload it again")
    try:
        with Image.open(path) as probe:
            probe.verify()  # structure checks without decoding all pixels
    except Image.DecompressionBombError as e:  # Pillow refuses to even open it: far beyond our cap
        raise ILRMInputError(
            f"{name!r} is too large: far more than {MAX_PIXELS / 1e6:.0f} megapixels; downscale it before uploading"
        ) from e
    except UnidentifiedImageError as e:
        raise ILRMInputError(
            f"{name!r} is not an image that can be read (JPEG, PNG, WebP, BMP or TIFF); it may be another kind "
            "of file with an image extension. Remove it or export it as JPEG/PNG."
        ) from e
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for damaged files
        raise ILRMInputError(f"{name!r} is damaged ({e}); export or upload it again") from e
    try:
        with contextlib.ExitStack() as stack, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we apply our own limit
            img = stack.enter_context(Image.open(path))
            w0, h0 = img.size
            if w0 * h0 > MAX_PIXELS:
                raise ILRMInputError(
                    f"{name!r} is {w0}×{h0} ({w0 * h0 / 1e6:.0f} megapixels), more than "
                    f"{MAX_PIXELS / 1e6:.0f}; downscale it before uploading"
                )
            exif = img.getexif()
            orientation = int(exif.get(ExifTags.Base.Orientation, 1) or 1)
            swapped = orientation in (5, 6, 7, 8)
            oh, ow = (w0, h0) if swapped else (h0, w0)  # the size the photo is shown at
            s = min(1.0, max_side / max(oh, ow))
            out_w, out_h = max(1, round(ow * s)), max(1, round(oh * s))
            if s < 1.0 and img.format == "JPEG":
                # Decode at a reduced DCT scale (≥ the target size): fast and light for huge JPEGs.
                want = (out_h, out_w) if swapped else (out_w, out_h)
                img.draft(None, want)
            img.load()
            focal = exif_focal_px(exif, (oh, ow))
            img = ImageOps.exif_transpose(img)
            img = _to_rgb(img)
            if img.size != (out_w, out_h):
                img = img.resize((out_w, out_h), Image.LANCZOS)
            array = np.asarray(img, dtype=np.uint8).copy()
    except ILRMInputError:
        raise
    except Image.DecompressionBombError as e:
        raise ILRMInputError(
            f"{name!r} is too large to decode safely (more than {MAX_PIXELS / 1e6:.0f} megapixels); downscale it "
            "before uploading"
        ) from e
    except (OSError, SyntaxError, ValueError, struct.error) as e:
        raise ILRMInputError(
            f"{name!r} is damaged or incomplete ({e}); the upload may have been cut off: export or upload it again"
        ) from e
    if focal is not None:
        focal *= max(out_h, out_w) / max(oh, ow)
    return Photo(name=name, array=array, original_size=(oh, ow), exif_focal_px=focal)


def _to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB; alpha composited over white; 16-bit greyscale scaled (not clipped) to 8 bits."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N") or (img.mode == "I" and np.asarray(img).max() <= 65535):
        a = np.asarray(img, dtype=np.float64) / 257.0
        return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L").convert("RGB")
    if img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        a = a * 255.0 if a.max() <= 1.0 else a
        return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img


def exif_focal_px(exif: Image.Exif, size_hw: tuple[int, int]) -> float | None:
    """Focal length in pixels for a photo of ``size_hw`` (height, width) as shown, from its EXIF.

    Prefers ``FocalLengthIn35mmFilm`` (f35): ``f_px = f35 / 36 mm × long side in pixels``, i.e. the
    35 mm-equivalent focal length taken across the long side of a 36 × 24 mm frame. Otherwise
    ``FocalLength`` (mm) × ``FocalPlaneXResolution`` (pixels per unit of ``FocalPlaneResolutionUnit``),
    rescaled from the sensor's pixel dimensions when EXIF gives them. Values giving a field of view
    outside 10°-150° across the long side are treated as absent (None).
    """
    try:
        ifd = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception:  # noqa: BLE001 - broken EXIF blocks are common; they only cost the prior
        return None
    long_side = max(size_hw)

    def num(tag: int) -> float | None:
        v = ifd.get(tag, exif.get(tag))
        try:
            v = float(v)
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        return v if math.isfinite(v) and v > 0 else None

    f_px = None
    f35 = num(ExifTags.Base.FocalLengthIn35mmFilm)
    if f35 is not None:
        f_px = f35 / 36.0 * long_side
    else:
        f_mm, res = num(ExifTags.Base.FocalLength), num(ExifTags.Base.FocalPlaneXResolution)
        unit = {2: 25.4, 3: 10.0, 4: 1.0, 5: 1e-3}.get(int(num(ExifTags.Base.FocalPlaneResolutionUnit) or 2))
        if f_mm is not None and res is not None and unit is not None:
            f_px = f_mm * res / unit  # pixels of the sensor image
            px, py = num(ExifTags.Base.ExifImageWidth), num(ExifTags.Base.ExifImageHeight)
            if px is not None and py is not None:
                f_px *= long_side / max(px, py)
    if f_px is None:
        return None
    fov = math.degrees(2 * math.atan(0.5 * long_side / f_px))
    return f_px if 10.0 <= fov <= 150.0 else None


# ---- cameras for the photos -------------------------------------------------------------------


def estimate_photo_cameras(
    images: Sequence[Photo], *, fov_deg: float | None = None, **kwargs
) -> tuple[PoseEstimate, str]:
    """Estimate cameras for unposed photos with :func:`ilrm.poses.estimate_poses`.

    The focal-length prior is the median EXIF focal length when every photo has one, else
    ``fov_deg`` (full field of view across the long side, e.g. from a slider), else
    :data:`ilrm.poses.DEFAULT_FOV_DEG`. Returns (estimate, a sentence saying which prior was used).
    """
    h, w = images[0].size
    focals = [im.exif_focal_px for im in images]
    if all(f is not None for f in focals):
        focal = float(np.median(focals))
        fov = math.degrees(2 * math.atan(0.5 * max(h, w) / focal))
        note = f"focal length from EXIF: {focal:.0f} px ({fov:.0f}° across the long side)"
    else:
        fov = DEFAULT_FOV_DEG if fov_deg is None else float(fov_deg)
        focal = focal_from_fov(fov, h, w)
        note = f"focal length from a {fov:.0f}° field of view ({'default' if fov_deg is None else 'given'})"
    est = estimate_poses([(im.name, im.array) for im in images], focal_px=focal, **kwargs)
    return est, note


def downscale_warnings(photos: Sequence[Photo], max_side: int, model_hw: tuple[int, int]) -> list[str]:
    """A sentence for the user when photos were downscaled on loading (model_hw: the model's input (H, W))."""
    shrunk = [im for im in photos if im.size != im.original_size]
    if not shrunk:
        return []
    (h0, w0), (h1, w1) = shrunk[0].original_size, shrunk[0].size
    return [
        f"{len(shrunk)} photo(s) were larger than {max_side} px and were downscaled "
        f"(e.g. {w0}×{h0} → {w1}×{h1}); the model itself works at {model_hw[1]}×{model_hw[0]}."
    ]


@dataclass
class PosedPhotos:
    """Photos with their cameras, in the photos' order.

    images: V tensors (3, H, W) float in [0, 1] (the loaded, possibly downscaled arrays).
    intrinsics: (V, 3, 3) float64 pixels of those arrays. c2w: (V, 4, 4) float64 OpenCV, in the camera
    file's (or the estimate's) world frame. source: where the cameras came from, for display.
    pose_info: the pose estimate's numbers, when the cameras were estimated.
    """

    images: list[Tensor]
    intrinsics: Tensor
    c2w: Tensor
    names: list[str]
    source: str
    warnings: list[str] = field(default_factory=list)
    pose_info: dict | None = None


def photo_cameras(
    photos: Sequence[Photo],
    cameras: CameraSet | str | Path | Sequence[str | Path] | None = None,
    *,
    fov_deg: float | None = None,
    allow_unused: bool = True,
) -> PosedPhotos:
    """Give each photo its camera: from ``cameras`` (a :class:`CameraSet` or camera file path(s),
    matched by file name), or, when ``cameras`` is None or empty, estimated with pycolmap
    (:func:`estimate_photo_cameras`; ``fov_deg`` is the focal prior for photos without EXIF).
    Raises :class:`ILRMInputError` when photos and cameras do not match or estimation fails."""
    pose_info = None
    if cameras is None or (not isinstance(cameras, (CameraSet, str, Path)) and len(cameras) == 0):
        estimate, note = estimate_photo_cameras(photos, fov_deg=fov_deg)
        cameras = estimate.cameras
        source = f"estimated with pycolmap ({estimate.method}; {note})"
        pose_info = {
            "method": estimate.method,
            "seconds": estimate.seconds,
            "focal_px": estimate.focal_px,
            "prior_focal_px": estimate.prior_focal_px,
            **estimate.stats,
        }
    else:
        cameras = cameras if isinstance(cameras, CameraSet) else load_camera_files(cameras)
        source = f"camera file ({cameras.source})"
    matched = match_cameras(cameras, [(im.name, im.original_size) for im in photos], allow_unused=allow_unused)
    Ks = []
    for im, K in zip(photos, matched.intrinsics):
        sy, sx = im.scale
        K = torch.from_numpy(K.copy()).double()
        K[0, :] *= sx  # from the original photo size to the loaded (possibly downscaled) array
        K[1, :] *= sy
        K[2, :] = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
        Ks.append(K)
    images = [torch.from_numpy(im.array).permute(2, 0, 1).float().div(255.0) for im in photos]
    warnings_ = list(cameras.warnings) + [w for w in matched.warnings if w not in cameras.warnings]
    return PosedPhotos(
        images, torch.stack(Ks), torch.from_numpy(matched.c2w).double(), [im.name for im in photos], source,
        warnings_, pose_info,
    )
