"""Scenes stored as ``opencv_cameras.json`` folders (Long-LRM layout), and the DL3DV-140 protocol.

A scene folder holds ``opencv_cameras.json``::

    {"scene_name": str,
     "frames": [{"file_path": "images_undistort/frame_00001.png",   # relative to the scene folder
                 "w2c": 4×4 (OpenCV axes), "h": int, "w": int,
                 "fx": float, "fy": float, "cx": float, "cy": float}, ...]}

and the images. Frame indices (k-means inputs, every-8th targets) index ``frames`` in file order.

DL3DV protocol (SPEC): 540×960 frames → 544×960; inputs from the k-means index file
(``fold_8_kmeans_{16,32}_input``), targets frames 0, 8, 16, ...; poses normalised with
:func:`ilrm.cameras.normalize_poses` (scale taken after re-centring, as the DL3DV code does).

Resizing to 544×960: the authors' ``wide`` branch stretches the image with ``cv2.resize`` (bilinear)
to exactly 544×960 and scales fx, cx by W'/W and fy, cy by H'/H (``resize="stretch"``, the default,
needed to match their numbers). ``resize="crop"`` instead resizes to cover with PIL Lanczos and
centre-crops (:func:`ilrm.cameras.resize_crop_params`: 540×960 → 544×967 → crop 3 columns each side),
which keeps the aspect ratio.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from ..camera_files import read_opencv_cameras_file
from ..cameras import Views, normalize_poses, resize_crop_intrinsics, resize_crop_pil, scale_intrinsics
from ..errors import ILRMInputError
from .example import Example
from .sampling import DL3DVIndexSampler, SkipScene, ViewSampler

DL3DV_SIZE = (544, 960)
ResizeMode = Literal["stretch", "crop"]
CAMERAS_FILE = "opencv_cameras.json"


@dataclass
class OpenCVFrame:
    """One frame of an ``opencv_cameras.json`` scene: absolute image path, pixel intrinsics K (3, 3)
    float64 for an image of size (h, w), and c2w (4, 4) float64 (inverse of the stored w2c)."""

    path: Path
    K: Tensor
    c2w: Tensor
    h: int
    w: int


@dataclass
class OpenCVScene:
    """A parsed scene folder."""

    scene_name: str
    root: Path
    frames: list[OpenCVFrame]

    def __len__(self) -> int:
        return len(self.frames)


def read_opencv_cameras(scene_dir: str | Path) -> OpenCVScene:
    """Parse ``<scene_dir>/opencv_cameras.json`` (or the given JSON file itself).

    Read through :func:`ilrm.camera_files.read_opencv_cameras_file`, which keeps the stored
    numbers: c2w is inverted here with torch from the stored w2c, not re-orthonormalised, so that
    evaluation inputs stay bit-identical to the earlier reader's (numpy's inverse differs from
    torch's in the last bits on 7 of mydesk's 12 frames).
    """
    p = Path(scene_dir)
    path = p if p.is_file() else p / CAMERAS_FILE
    if not path.exists():
        raise ILRMInputError(f"no {CAMERAS_FILE} in {p} (expected a scene folder in the Long-LRM layout)")
    stored = read_opencv_cameras_file(path)
    frames = []
    for f in stored.frames:
        try:
            c2w = torch.linalg.inv(torch.from_numpy(f.w2c))
        except RuntimeError as e:  # torch.linalg.LinAlgError: a singular w2c
            raise ILRMInputError(f"{path}: the w2c of {f.file_path} is not invertible") from e
        frames.append(OpenCVFrame(path.parent / f.file_path, torch.from_numpy(f.K), c2w, f.height, f.width))
    return OpenCVScene(stored.scene_name or path.parent.name, path.parent, frames)


def load_frame(
    frame: OpenCVFrame, image_size: tuple[int, int], resize: ResizeMode = "stretch"
) -> tuple[Tensor, Tensor]:
    """Read and resize one frame. Returns image (3, H, W) uint8 and pixel intrinsics (3, 3) float64."""
    try:
        im = Image.open(frame.path).convert("RGB")
    except OSError as e:
        raise ILRMInputError(f"cannot read image {frame.path}: {e}") from e
    K = frame.K
    if (im.height, im.width) != (frame.h, frame.w):
        # The JSON's intrinsics are for (h, w); follow the image actually stored.
        K = scale_intrinsics(K, im.width / frame.w, im.height / frame.h)
    H, W = image_size
    if resize == "stretch":
        import cv2  # opencv: the authors resize with cv2.resize (bilinear)

        arr = np.asarray(im)
        if arr.shape[:2] != (H, W):
            arr = cv2.resize(arr, (W, H), interpolation=cv2.INTER_LINEAR)
        K = scale_intrinsics(K, W / im.width, H / im.height)
    elif resize == "crop":
        K = resize_crop_intrinsics(K, (im.height, im.width), (H, W))
        arr = np.asarray(resize_crop_pil(im, (H, W)))
    else:
        raise ILRMInputError(f"resize must be 'stretch' or 'crop', got {resize!r}")
    return torch.from_numpy(np.array(arr, copy=True)).permute(2, 0, 1), K


def load_scene_views(
    scene: OpenCVScene, indices: Sequence[int], image_size: tuple[int, int] = DL3DV_SIZE, resize: ResizeMode = "stretch"
) -> tuple[Tensor, Tensor, Tensor]:
    """Frames ``indices`` of a scene: images (V, 3, H, W) float32 in [0, 1], pixel K (V, 3, 3) float64,
    raw (un-normalised) c2w (V, 4, 4) float64."""
    ims, Ks = zip(*(load_frame(scene.frames[i], image_size, resize) for i in indices))
    c2w = torch.stack([scene.frames[i].c2w for i in indices])
    return torch.stack(ims).to(torch.float32) / 255.0, torch.stack(Ks), c2w


def scene_example(
    scene: OpenCVScene,
    context: Sequence[int],
    target: Sequence[int],
    image_size: tuple[int, int] = DL3DV_SIZE,
    *,
    resize: ResizeMode = "stretch",
    scale_before_recentre: bool = False,
) -> Example:
    """An :class:`Example` (batch 1) from frame indices of a scene; poses normalised (SPEC).

    Frames used by both context and target are read once.
    """
    unique = sorted(set(context) | set(target))
    ims, K, c2w = load_scene_views(scene, unique, image_size, resize)
    pos = {f: j for j, f in enumerate(unique)}
    ci, ti = [pos[f] for f in context], [pos[f] for f in target]
    ctx_c2w, tgt_c2w, _ = normalize_poses(c2w[ci], c2w[ti], scale_before_recentre=scale_before_recentre)

    def views(idx: list[int], poses: Tensor) -> Views:
        return Views(ims[idx][None], K[idx].to(torch.float32)[None], poses.to(torch.float32)[None])

    return Example(views(ci, ctx_c2w), views(ti, tgt_c2w), scene.scene_name)


def find_scene_dirs(root: str | Path) -> list[Path]:
    """Scene folders under ``root``: ``root`` itself if it holds ``opencv_cameras.json``, else its
    sub-folders (one level) that do, sorted by name."""
    root = Path(root)
    if (root / CAMERAS_FILE).exists():
        return [root]
    if not root.is_dir():
        raise ILRMInputError(f"{root} is not a folder")
    return sorted(p.parent for p in root.glob(f"*/{CAMERAS_FILE}"))


class DL3DVScenes(Dataset):
    """DL3DV-140 evaluation scenes (or any ``opencv_cameras.json`` folders) as :class:`Example` s.

    root: a folder of scene folders (or one scene folder), each with ``opencv_cameras.json``.
    index_path: the k-means input file; scenes are visited in its order, scenes it does not list are
        ignored (:meth:`unindexed`), listed scenes without a folder are reported by :meth:`missing`.
    num_input: 32 or 16 (which k-means list); targets every ``target_every`` frames.
    sampler: instead of the index, any :class:`~ilrm.data.sampling.ViewSampler` (all scenes visited).
    resize: ``"stretch"`` (authors, default) or ``"crop"``; see the module docstring.
    scale_before_recentre: pose-normalisation variant (False = DL3DV code).
    seed: RNG seed for random samplers (scene ``i`` uses ``seed + i``).

    ``__getitem__`` raises :class:`~ilrm.data.sampling.SkipScene` if the sampler cannot sample a scene
    and :class:`~ilrm.errors.ILRMInputError` if its files are broken.
    """

    def __init__(
        self,
        root: str | Path,
        index_path: str | Path | None = None,
        num_input: int = 32,
        image_size: tuple[int, int] = DL3DV_SIZE,
        *,
        sampler: ViewSampler | None = None,
        scenes: Iterable[str] | None = None,
        target_every: int = 8,
        resize: ResizeMode = "stretch",
        scale_before_recentre: bool = False,
        seed: int = 0,
    ) -> None:
        dirs = find_scene_dirs(root)
        by_name: dict[str, Path] = {}
        for d in dirs:
            # The scene name in the JSON is what the index uses; fall back to the folder name.
            try:
                name = read_opencv_cameras_file(d / CAMERAS_FILE).scene_name or d.name
            except ILRMInputError:
                name = d.name
            by_name[str(name)] = d
        self._missing: list[str] = []
        self._unindexed: list[str] = []
        if sampler is None:
            if index_path is None:
                raise ILRMInputError("DL3DVScenes needs index_path (the k-means input file) or a sampler")
            sampler = DL3DVIndexSampler(index_path, num_input=num_input, target_every=target_every)
        if isinstance(sampler, DL3DVIndexSampler):
            order = list(sampler.index)
            self._missing = [n for n in order if n not in by_name]
            self._unindexed = sorted(n for n in by_name if n not in sampler.index)
            names = [n for n in order if n in by_name]
        else:
            names = sorted(by_name)
        if scenes is not None:
            keep = set(scenes)
            names = [n for n in names if n in keep]
        self.names = names
        self.dirs = by_name
        self.sampler = sampler
        self.image_size = tuple(image_size)
        self.resize: ResizeMode = resize
        self.scale_before_recentre = scale_before_recentre
        self.seed = seed

    def __len__(self) -> int:
        return len(self.names)

    def missing(self) -> list[str]:
        """Scenes listed in the index with no folder under ``root``."""
        return list(self._missing)

    def unindexed(self) -> list[str]:
        """Scene folders under ``root`` that the index does not list (not visited)."""
        return list(self._unindexed)

    def indices(self, i: int) -> tuple[list[int], list[int]]:
        """(context, target) frame indices of scene ``i`` without loading images."""
        scene = read_opencv_cameras(self.dirs[self.names[i]])
        return self.sampler.sample(len(scene), scene_id=self.names[i], rng=self.seed + i)

    def __getitem__(self, i: int) -> Example:
        name = self.names[i]
        scene = read_opencv_cameras(self.dirs[name])
        scene.scene_name = name
        ctx, tgt = self.sampler.sample(len(scene), scene_id=name, rng=self.seed + i)
        if not ctx or not tgt:
            raise SkipScene(f"scene {name!r}: empty context or target set")
        return scene_example(
            scene,
            ctx,
            tgt,
            self.image_size,
            resize=self.resize,
            scale_before_recentre=self.scale_before_recentre,
        )
