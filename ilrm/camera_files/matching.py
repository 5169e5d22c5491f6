"""Matching cameras to photos by file name, with intrinsics for each photo's size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ILRMInputError
from .sets import CameraSet, NamedCamera, _base, _stem


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
