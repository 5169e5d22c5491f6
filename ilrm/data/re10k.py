"""RealEstate10K in pixelSplat's chunk format.

Layout: ``<root>/<split>/*.torch`` plus ``<root>/<split>/index.json`` (scene key → chunk file name).
Each chunk is a ``torch.save``'d list of scene records::

    {"url": str, "timestamps": int64[N], "cameras": float32[N, 18],
     "images": [uint8 1-D tensor of JPEG bytes (360×640)] * N, "key": str}

A camera row is ``fx fy cx cy`` normalised by the image width/height, two unused numbers, then the
3×4 world-to-camera matrix (OpenCV axes) row-major.

Protocol (SPEC, "Evaluation protocol"): frames are resized 360×640 → 256×455 with PIL Lanczos and
centre-cropped to 256×256; intrinsics become pixels of the output image; poses are normalised with
:func:`ilrm.cameras.normalize_poses` (by default with the RE10K code's ``scale_before_recentre``
quirk, which the released RE10K checkpoint was trained with).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from ..cameras import Views, normalize_poses, resize_crop_intrinsics, resize_crop_params, resize_crop_pil
from ..errors import ILRMInputError
from .example import Example
from .sampling import EvaluationIndexSampler, SkipScene, ViewSampler

RE10K_HW = (360, 640)
IntrinsicsMode = Literal["exact", "pixelsplat"]


# ---- files -------------------------------------------------------------------------------


def load_chunk(path: str | Path) -> list[dict[str, Any]]:
    """Load one ``.torch`` chunk (a list of scene records) without executing pickled code."""
    try:
        data = torch.load(Path(path), weights_only=True, map_location="cpu")
    except Exception as e:  # torch raises several types for bad/unsafe files
        raise ILRMInputError(f"cannot load RE10K chunk {path}: {e}") from e
    if not isinstance(data, list):
        raise ILRMInputError(f"{path}: a RE10K chunk must hold a list of scene dicts, got {type(data).__name__}")
    return data


def read_chunk_index(split_dir: str | Path) -> dict[str, str] | None:
    """``index.json`` of a split folder ({scene key: chunk file name}), or None if there is none."""
    path = Path(split_dir) / "index.json"
    if not path.exists():
        return None
    try:
        index = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ILRMInputError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(index, dict):
        raise ILRMInputError(f"{path} must map scene keys to chunk file names")
    return index


def decode_frame(jpeg: Tensor) -> Image.Image:
    """JPEG bytes (uint8 1-D tensor) → RGB PIL image; undecodable bytes raise :class:`ILRMInputError`."""
    data = jpeg.numpy().tobytes()
    try:
        return Image.open(io.BytesIO(data)).convert("RGB")
    except (OSError, Image.DecompressionBombError) as e:  # UnidentifiedImageError is an OSError
        # the message names the size, not the buffer object (whose repr changes every run)
        raise ILRMInputError(f"a frame of {len(data)} bytes is not a decodable image ({type(e).__name__})") from e


# ---- cameras -----------------------------------------------------------------------------


def parse_cameras(cameras: Tensor) -> tuple[Tensor, Tensor]:
    """Split pixelSplat camera rows.

    cameras: (N, 18). Returns normalised intrinsics (N, 3, 3) (fx/W, fy/H, cx/W, cy/H; multiply
    row 0 by W and row 1 by H for pixels) and c2w (N, 4, 4) float64 (inverse of the stored w2c).
    """
    if cameras.ndim != 2 or cameras.shape[1] != 18:
        raise ILRMInputError(f"RE10K cameras must be (N, 18), got {tuple(cameras.shape)}")
    cam = cameras.to(torch.float64)
    n = cam.shape[0]
    K = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2] = cam[:, 0], cam[:, 1], cam[:, 2], cam[:, 3]
    w2c = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    w2c[:, :3, :] = cam[:, 6:].reshape(n, 3, 4)
    return K, torch.linalg.inv(w2c)


def pixel_intrinsics(
    K_norm: Tensor, in_hw: tuple[int, int], out_hw: tuple[int, int], mode: IntrinsicsMode = "exact"
) -> Tensor:
    """Pixel intrinsics of the output of the resize + centre-crop from ``in_hw`` to ``out_hw``.

    K_norm: (..., 3, 3) normalised intrinsics. ``"exact"``: the geometric result
    (:func:`ilrm.cameras.resize_crop_intrinsics`; 360×640 → 256² gives fx = 455·fx_n, fy = 256·fy_n,
    cx = 455·cx_n − 99). ``"pixelsplat"``: what pixelSplat's crop shim (used by the authors) computes,
    which keeps the normalised principal point, i.e. cx = 256·cx_n — half a pixel off the exact value
    because 455 − 256 is odd.
    """
    K = K_norm.clone()
    if mode == "exact":
        K[..., 0, :] *= in_hw[1]
        K[..., 1, :] *= in_hw[0]
        K[..., 2, :] = K.new_tensor([0.0, 0.0, 1.0])
        return resize_crop_intrinsics(K, in_hw, out_hw)
    if mode == "pixelsplat":
        (rh, rw), _ = resize_crop_params(in_hw, out_hw)
        K[..., 0, 0] *= rw
        K[..., 1, 1] *= rh
        K[..., 0, 2] *= out_hw[1]
        K[..., 1, 2] *= out_hw[0]
        return K
    raise ILRMInputError(f"intrinsics mode must be 'exact' or 'pixelsplat', got {mode!r}")


def field_of_view_deg(K_norm: Tensor) -> Tensor:
    """Horizontal and vertical field of view in degrees of normalised intrinsics (..., 3, 3) → (..., 2)."""
    f = torch.stack([K_norm[..., 0, 0], K_norm[..., 1, 1]], dim=-1)
    return torch.rad2deg(2 * torch.atan(0.5 / f))


# ---- one scene ---------------------------------------------------------------------------


def load_record_views(
    record: dict[str, Any],
    indices: Sequence[int],
    image_size: tuple[int, int] = (256, 256),
    *,
    intrinsics: IntrinsicsMode = "exact",
    expected_hw: tuple[int, int] | None = RE10K_HW,
) -> tuple[Tensor, Tensor, Tensor]:
    """Decode and resize only the frames ``indices`` of a scene record.

    Returns images (V, 3, H, W) float32 in [0, 1], pixel intrinsics (V, 3, 3) float64 and raw
    (un-normalised) c2w (V, 4, 4) float64. Raises :class:`SkipScene` if a frame's size is not
    ``expected_hw`` (pixelSplat skips such scenes; pass None to accept any size).
    """
    K_norm, c2w = parse_cameras(record["cameras"])
    images, Ks = [], []
    for i in indices:
        im = decode_frame(record["images"][i])
        hw = (im.height, im.width)
        if expected_hw is not None and hw != tuple(expected_hw):
            raise SkipScene(f"scene {record.get('key')!r}: frame {i} is {hw[0]}×{hw[1]}, expected {expected_hw}")
        im = resize_crop_pil(im, image_size)
        images.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))
        Ks.append(pixel_intrinsics(K_norm[i], hw, image_size, intrinsics))
    ims = torch.stack(images).to(torch.float32) / 255.0
    return ims, torch.stack(Ks), c2w[list(indices)]


def make_example(
    record: dict[str, Any],
    context: Sequence[int],
    target: Sequence[int],
    image_size: tuple[int, int] = (256, 256),
    *,
    scale_before_recentre: bool = True,
    intrinsics: IntrinsicsMode = "exact",
    expected_hw: tuple[int, int] | None = RE10K_HW,
) -> Example:
    """An :class:`Example` (batch 1) from a scene record and frame indices; poses normalised (SPEC).

    Frames used by both context and target are decoded once.
    """
    unique = sorted(set(context) | set(target))
    ims, K, c2w = load_record_views(record, unique, image_size, intrinsics=intrinsics, expected_hw=expected_hw)
    pos = {f: j for j, f in enumerate(unique)}
    ci, ti = [pos[f] for f in context], [pos[f] for f in target]
    ctx_c2w, tgt_c2w, _ = normalize_poses(c2w[ci], c2w[ti], scale_before_recentre=scale_before_recentre)

    def views(idx: list[int], poses: Tensor) -> Views:
        return Views(ims[idx][None], K[idx].to(torch.float32)[None], poses.to(torch.float32)[None])

    return Example(views(ci, ctx_c2w), views(ti, tgt_c2w), str(record["key"]))


# ---- dataset -----------------------------------------------------------------------------


class RE10KChunks(IterableDataset):
    """Iterate RE10K scenes of one split as :class:`Example` s (batch dim 1).

    root: folder holding ``<split>/*.torch`` (and ``<split>/index.json``).
    index_path: a pixelSplat evaluation index; when given and ``sampler`` is None, its views are used
        and only scenes with a non-null entry are visited.
    sampler: any :class:`~ilrm.data.sampling.ViewSampler` (e.g. ``BoundedSampler`` for training).
    scenes: optional subset of scene keys to visit.
    scale_before_recentre: the RE10K pose-normalisation quirk (default True, as the authors' RE10K code).
    intrinsics: ``"exact"`` or ``"pixelsplat"`` (see :func:`pixel_intrinsics`).
    skip_bad_shape / max_fov_deg: skip scenes whose frames are not 360×640 or whose field of view
        exceeds ``max_fov_deg`` (pixelSplat's filters; None disables).
    shuffle, seed, repeat: training options (shuffle chunks and scenes per epoch; loop forever).
    rank, world_size: shard chunks across processes (DataLoader workers are sharded further).

    Only chunks that hold a wanted scene are loaded (using ``index.json``), one at a time; only the
    sampled frames are decoded. Scenes skipped by the protocol (sampler, shape, field of view) are
    listed in ``self.skipped`` and scenes that failed to load (corrupt data) in ``self.failed``, both
    as (key, reason) (per process: with DataLoader workers each worker keeps its own lists).
    Set ``self.step`` (an int, or an object with ``.value`` such as ``multiprocessing.Value`` to
    reach worker processes) so that warm-up schedules in the sampler see the training step.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        index_path: str | Path | None = None,
        sampler: ViewSampler | None = None,
        image_size: tuple[int, int] = (256, 256),
        *,
        scenes: Iterable[str] | None = None,
        scale_before_recentre: bool = True,
        intrinsics: IntrinsicsMode = "exact",
        skip_bad_shape: bool = True,
        max_fov_deg: float | None = 100.0,
        shuffle: bool = False,
        seed: int = 0,
        repeat: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        self.split_dir = Path(root) / split
        if not self.split_dir.is_dir():
            raise ILRMInputError(f"no RE10K split folder {self.split_dir} (expected <root>/{split}/*.torch)")
        if sampler is None:
            if index_path is None:
                raise ILRMInputError("RE10KChunks needs an evaluation index_path or a sampler")
            sampler = EvaluationIndexSampler(index_path)
        self.sampler = sampler
        self.image_size = tuple(image_size)
        self.scale_before_recentre = scale_before_recentre
        self.intrinsics: IntrinsicsMode = intrinsics
        self.expected_hw = RE10K_HW if skip_bad_shape else None
        self.max_fov_deg = max_fov_deg
        self.shuffle, self.seed, self.repeat = shuffle, seed, repeat
        self.rank, self.world_size = rank, world_size
        self.step: Any = 0
        self.epoch = 0
        self.skipped: list[tuple[str, str]] = []
        self.failed: list[tuple[str, str]] = []

        wanted = set(scenes) if scenes is not None else None
        if isinstance(sampler, EvaluationIndexSampler):
            usable = set(sampler.usable_scenes())
            wanted = usable if wanted is None else wanted & usable
        self.wanted = wanted
        self.chunk_index = read_chunk_index(self.split_dir)
        all_chunks = sorted(p.name for p in self.split_dir.glob("*.torch"))
        if not all_chunks:
            raise ILRMInputError(f"no .torch chunks in {self.split_dir}")
        if wanted is not None and self.chunk_index is not None:
            needed = {self.chunk_index[k] for k in wanted if k in self.chunk_index}
            self.chunks = [c for c in all_chunks if c in needed]
        else:
            self.chunks = all_chunks

    def scene_keys(self) -> list[str] | None:
        """Keys this dataset will try to visit (from ``index.json``), or None without an index.json."""
        if self.chunk_index is None:
            return None
        keys = [k for k, c in self.chunk_index.items() if c in set(self.chunks)]
        return [k for k in keys if self.wanted is None or k in self.wanted]

    def missing_scenes(self) -> list[str]:
        """Wanted scene keys that ``index.json`` does not list (so cannot be visited)."""
        if self.wanted is None or self.chunk_index is None:
            return []
        return sorted(k for k in self.wanted if k not in self.chunk_index)

    def _current_step(self) -> int:
        return int(getattr(self.step, "value", self.step))

    def _my_chunks(self) -> list[str]:
        chunks = list(self.chunks)
        if self.shuffle:
            # Same permutation in every rank and worker (seeded by epoch only), so the shards
            # taken below stay disjoint.
            perm = np.random.default_rng([self.seed, self.epoch]).permutation(len(chunks))
            chunks = [chunks[i] for i in perm]
        info = get_worker_info()
        workers, wid = (info.num_workers, info.id) if info is not None else (1, 0)
        shards, shard = self.world_size * workers, self.rank * workers + wid
        return chunks[shard::shards]

    def __iter__(self) -> Iterator[Example]:
        info = get_worker_info()
        wid = info.id if info is not None else 0
        while True:
            rng = np.random.default_rng([self.seed, self.epoch, self.rank, wid])
            yield from self._iter_epoch(rng)
            self.epoch += 1
            if not self.repeat:
                return

    def _iter_epoch(self, rng: np.random.Generator) -> Iterator[Example]:
        for name in self._my_chunks():
            chunk = load_chunk(self.split_dir / name)
            order = rng.permutation(len(chunk)) if self.shuffle else range(len(chunk))
            for i in order:
                record = chunk[i]
                key = str(record.get("key"))
                if self.wanted is not None and key not in self.wanted:
                    continue
                example = self._example(record, key, rng)
                if example is not None:
                    yield example
            del chunk  # keep one chunk in memory at a time

    def _example(self, record: dict[str, Any], key: str, rng: np.random.Generator) -> Example | None:
        try:
            n = len(record["images"])
            if len(record["cameras"]) != n:
                raise SkipScene(f"scene {key!r}: {len(record['cameras'])} cameras for {n} images")
            ctx, tgt = self.sampler.sample(n, scene_id=key, step=self._current_step(), rng=rng)
            if self.max_fov_deg is not None:
                K_norm, _ = parse_cameras(record["cameras"])
                fov = field_of_view_deg(K_norm)
                if bool((fov > self.max_fov_deg).any()) or not math.isfinite(float(fov.max())):
                    raise SkipScene(f"scene {key!r}: field of view {float(fov.max()):.1f}° > {self.max_fov_deg}°")
            return make_example(
                record,
                ctx,
                tgt,
                self.image_size,
                scale_before_recentre=self.scale_before_recentre,
                intrinsics=self.intrinsics,
                expected_hw=self.expected_hw,
            )
        except SkipScene as e:
            self.skipped.append((key, str(e)))
            return None
        except (OSError, KeyError, IndexError, ValueError, ILRMInputError) as e:
            # A broken record (undecodable JPEG, missing field) is reported, never silently replaced.
            self.failed.append((key, f"{type(e).__name__}: {e}"))
            return None
