"""From scenes to training examples: which frames to show (:func:`sample_view_indices`,
:class:`ViewPlan`), ray-casting them into :class:`~ilrm.data.example.Example` s with normalised poses,
and the map-style dataset :class:`ProceduralScenes`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ...cameras import Views, normalize_poses
from ...errors import ILRMInputError
from ..example import Example, collate
from .config import (
    DEFAULT_TRAIN_SCENES,
    NUM_TEST_SCENES,
    PLACEMENTS,
    STREAM_VIEWS,
    TEST_SEED_START,
    TRAIN_SEED_LIMIT,
    ProceduralConfig,
    ProceduralScene,
    scene_id,
)
from .geometry import RoomGeometry
from .raycast import render_views
from .scene import make_scene


def render_scene(
    scene: ProceduralScene | RoomGeometry,
    K: Tensor,
    c2w: Tensor,
    height: int,
    width: int,
    device: torch.device | str | None = None,
    supersample: int = 1,
) -> tuple[Tensor, Tensor]:
    """Ray-cast views of a scene.

    K: (V, 3, 3) or (3, 3) pixels; c2w: (V, 4, 4) OpenCV, in the scene's world frame (metres).
    Returns images (V, 3, H, W) in [0, 1] and z-depth (V, H, W) in metres, float32 on ``device``
    (default: c2w's device). See :func:`.raycast.render_views`.
    """
    geom = scene.geometry if isinstance(scene, ProceduralScene) else scene
    return render_views(geom, K, c2w, height, width, device=device, supersample=supersample)


# ---- view sampling ---------------------------------------------------------------------------


def sample_view_indices(
    num_frames: int,
    num_context: int,
    num_target: int,
    context_gap: tuple[int, int],
    placement: str,
    rng: np.random.RandomState,
) -> tuple[list[int], list[int]]:
    """ "N random context views + M targets" on a trajectory of ``num_frames`` frames.

    The gap between the first and the last context frame is uniform in ``context_gap`` (clipped to
    the trajectory, and at least num_context - 1); the first frame is uniform so the span fits; the
    other N - 2 context frames are distinct and uniform inside the span. Targets (distinct when
    possible, and not context frames when enough others exist) follow ``placement`` (see
    :class:`ProceduralConfig`). Returns sorted (context, target).
    """
    if num_frames < num_context:
        raise ILRMInputError(f"a trajectory of {num_frames} frames cannot give {num_context} context views")
    if placement not in PLACEMENTS:
        raise ILRMInputError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    hi = min(context_gap[1], num_frames - 1)
    lo = min(max(context_gap[0], num_context - 1), hi)
    gap = rng.randint(lo, hi + 1)
    first = rng.randint(0, num_frames - gap)
    last = first + gap
    inner = rng.choice(np.arange(first + 1, last), num_context - 2, replace=False) if num_context > 2 else []
    context = sorted({first, last, *(int(i) for i in inner)}) if num_context > 1 else [first]
    between = np.arange(first, last + 1)
    if placement == "random":
        pool = np.arange(num_frames)
    elif placement == "beyond":
        reach = max(1, gap // 2)
        pool = np.concatenate(
            [np.arange(max(0, first - reach), first), np.arange(last + 1, min(num_frames, last + reach + 1))]
        )
        if len(pool) == 0:
            pool = between
    else:
        pool = between
    others = np.setdiff1d(pool, context)
    if len(others) >= num_target:
        pool = others
    target = rng.choice(pool, num_target, replace=len(pool) < num_target) if num_target else []
    return context, sorted(int(t) for t in target)


# ---- examples and the dataset ------------------------------------------------------------------


@dataclass
class ViewPlan:
    """A scene and which of its frames to render: what :func:`render_plan` turns into an Example.

    Cheap to make on the CPU and to send between processes (textures are uint8), so DataLoader
    workers can build plans while the main process ray-casts them on the GPU.
    """

    scene: ProceduralScene
    context: list[int]
    target: list[int]
    # Camera augmentation and per-step image size (None: the config's size, the scene's centred camera).
    size: tuple[int, int] | None = None
    focal_scale: float = 1.0  # focal length × this (a zoom: the field of view changes)
    principal_shift: tuple[float, float] = (0.0, 0.0)  # principal point offset, fractions of (W, H)

    def intrinsics(self, config: ProceduralConfig) -> tuple[Tensor, int, int]:
        """(3, 3) pixel intrinsics of every frame of this plan, and its (height, width)."""
        h, w = self.size or (config.height, config.width)
        K = self.scene.intrinsics(h, w).clone()
        K[:2, :2] *= self.focal_scale
        K[0, 2] += self.principal_shift[0] * w
        K[1, 2] += self.principal_shift[1] * h
        return K, h, w

    def camera_key(self) -> tuple:
        """Plans with equal keys can be ray-cast in one call (same scene, intrinsics and size)."""
        return (id(self.scene), self.size, self.focal_scale, self.principal_shift)


def plan_example(
    seed: int,
    config: ProceduralConfig | None = None,
    *,
    context_gap: tuple[int, int] | None = None,
    view_stream: int = 0,
    scene: ProceduralScene | None = None,
) -> ViewPlan:
    """Scene ``seed`` and its context/target frames (``context_gap`` overrides the config's, e.g. for
    a warm-up schedule; ``view_stream`` picks another random choice of views, e.g. the epoch).
    ``scene``: the already built ``make_scene(seed, config)``, to draw several view sets from one
    scene without building it again."""
    cfg = config or ProceduralConfig()
    if scene is None:
        scene = make_scene(seed, cfg)
    elif scene.seed != seed:
        raise ValueError(f"scene {scene.seed} given for seed {seed}")
    rng = np.random.RandomState([seed, STREAM_VIEWS, view_stream])
    gap = tuple(context_gap) if context_gap is not None else cfg.context_gap
    ctx, tgt = sample_view_indices(scene.num_frames, cfg.num_context, cfg.num_target, gap, cfg.target_placement, rng)
    return ViewPlan(scene, ctx, tgt)


def _plan_to_example(
    plan: ViewPlan, images: Tensor, depth: Tensor, K: Tensor, with_depth: bool
) -> Example | tuple[Example, Tensor, Tensor]:
    """Assemble an Example from the rendered frames ``plan.context + plan.target`` (in that order)."""
    scene, ctx, tgt = plan.scene, plan.context, plan.target
    c2w = scene.c2w[ctx + tgt]
    nc = len(ctx)
    c_c2w, t_c2w, transform = normalize_poses(c2w[:nc], c2w[nc:])
    scale = transform[0, :3].norm()  # the transform is scale × rotation on its 3×3 block
    dev = images.device
    context = Views(images[None, :nc], K[None, :nc].to(dev), c_c2w[None].float().to(dev))
    target = Views(images[None, nc:], K[None, nc:].to(dev), t_c2w[None].float().to(dev))
    example = Example(context, target, scene_id(scene.seed))
    if with_depth:
        depth = depth * scale.to(dev, torch.float32)
        return example, depth[None, :nc], depth[None, nc:]
    return example


def render_plan(
    plan: ViewPlan,
    config: ProceduralConfig | None = None,
    *,
    device: torch.device | str = "cpu",
    with_depth: bool = False,
) -> Example | tuple[Example, Tensor, Tensor]:
    """Ray-cast a plan into an Example (batch dim 1) on ``device``.

    Poses are normalised with :func:`ilrm.cameras.normalize_poses` (the average context camera becomes
    the identity; translations scaled so the largest context coordinate is 1). With ``with_depth``
    also returns the context and target z-depths, (1, Vc, H, W) and (1, Vt, H, W), in those units.
    """
    cfg = config or ProceduralConfig()
    idx = plan.context + plan.target
    K, h, w = plan.intrinsics(cfg)
    K = K.expand(len(idx), 3, 3).contiguous()
    images, depth = render_scene(plan.scene, K, plan.scene.c2w[idx], h, w, device=device, supersample=cfg.supersample)
    return _plan_to_example(plan, images, depth, K, with_depth)


def render_plans(
    plans: list[ViewPlan], config: ProceduralConfig | None = None, *, device: torch.device | str = "cpu"
) -> Example:
    """Render several plans and stack them into one batch (see :func:`ilrm.data.example.collate`).

    Plans that share a scene object and camera (several view sets drawn from one scene) are ray-cast
    in one call over the union of their frames: fewer, larger GPU launches. Every ray is independent of the
    others, so the result equals rendering each plan on its own.
    """
    cfg = config or ProceduralConfig()
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(plans):
        groups.setdefault(p.camera_key(), []).append(i)
    examples: list[Example | None] = [None] * len(plans)
    for members in groups.values():
        scene = plans[members[0]].scene
        frames = sorted({f for i in members for f in plans[i].context + plans[i].target})
        K, h, w = plans[members[0]].intrinsics(cfg)
        K = K.expand(len(frames), 3, 3).contiguous()
        images, depth = render_scene(scene, K, scene.c2w[frames], h, w, device=device, supersample=cfg.supersample)
        row = {f: j for j, f in enumerate(frames)}
        for i in members:
            sel = torch.tensor([row[f] for f in plans[i].context + plans[i].target], device=images.device)
            examples[i] = _plan_to_example(plans[i], images[sel], depth[sel], K[sel.cpu()], False)
    return collate(examples)


def make_example(
    seed: int,
    config: ProceduralConfig | None = None,
    *,
    device: torch.device | str = "cpu",
    context_gap: tuple[int, int] | None = None,
    view_stream: int = 0,
    with_depth: bool = False,
) -> Example | tuple[Example, Tensor, Tensor]:
    """One procedural example of scene ``seed``: :func:`plan_example` then :func:`render_plan`."""
    plan = plan_example(seed, config, context_gap=context_gap, view_stream=view_stream)
    return render_plan(plan, config, device=device, with_depth=with_depth)


class ProceduralScenes(Dataset):
    """Procedural examples as a map-style dataset: item i is scene ``first_seed + i``.

    split "train": seeds ``[start, start + num_scenes)`` inside ``[0, TRAIN_SEED_LIMIT)`` (default
    ``DEFAULT_TRAIN_SCENES`` scenes; every seed is an independent random scene, so reading items in
    order is as good as shuffling; avoid ``shuffle=True`` with huge lengths since torch's RandomSampler
    materialises a permutation). :meth:`set_epoch` changes which views are drawn in each scene.
    split "test": the fixed held-out scenes ``[TEST_SEED_START, TEST_SEED_START + num_scenes)`` (default
    ``NUM_TEST_SCENES``), with fixed views.
    device: where to ray-cast ("cpu" inside DataLoader workers; "cuda" only in the main process).
    deferred: items are :class:`ViewPlan` s instead of Examples; render a batch of them with
    :meth:`render` (e.g. ``DataLoader(ds, batch_size=B, num_workers=W, collate_fn=list)`` and then
    ``ds.render(plans)`` on the GPU: workers build scenes, the GPU ray-casts).
    """

    def __init__(
        self,
        config: ProceduralConfig | None = None,
        split: str = "train",
        *,
        num_scenes: int | None = None,
        start: int = 0,
        device: torch.device | str = "cpu",
        deferred: bool = False,
    ) -> None:
        if split not in ("train", "test"):
            raise ILRMInputError(f"split must be 'train' or 'test', got {split!r}")
        self.config = config or ProceduralConfig()
        self.split = split
        self.device = device
        self.deferred = deferred
        self.epoch = 0
        if split == "train":
            n = DEFAULT_TRAIN_SCENES if num_scenes is None else num_scenes
            if start < 0 or n < 0 or start + n > TRAIN_SEED_LIMIT:
                raise ILRMInputError(
                    f"training seeds must lie in [0, {TRAIN_SEED_LIMIT}); got start {start}, {n} scenes"
                )
            self.first_seed = start
        else:
            n = NUM_TEST_SCENES if num_scenes is None else num_scenes
            if start < 0 or n < 0 or TEST_SEED_START + start + n > 2**32:
                raise ILRMInputError(f"test scenes: start and num_scenes must be >= 0, got {start}, {n}")
            self.first_seed = TEST_SEED_START + start
        self.num_scenes = n

    def __len__(self) -> int:
        return self.num_scenes

    def seed(self, index: int) -> int:
        """The scene seed of item ``index``."""
        if not 0 <= index < self.num_scenes:
            raise IndexError(f"index {index} out of range for {self.num_scenes} scenes")
        return self.first_seed + index

    def set_epoch(self, epoch: int) -> None:
        """Draw other views of the same training scenes (no effect on the test split)."""
        self.epoch = int(epoch)

    def plan(self, index: int, *, context_gap: tuple[int, int] | None = None) -> ViewPlan:
        """Scene and frames of item ``index`` (``context_gap`` overrides the config's)."""
        stream = self.epoch if self.split == "train" else 0
        return plan_example(self.seed(index), self.config, context_gap=context_gap, view_stream=stream)

    def example(self, index: int, *, context_gap: tuple[int, int] | None = None, with_depth: bool = False):
        """Item ``index`` rendered on ``self.device`` (see :func:`render_plan`)."""
        return render_plan(
            self.plan(index, context_gap=context_gap), self.config, device=self.device, with_depth=with_depth
        )

    def render(self, plans: ViewPlan | list[ViewPlan], device: torch.device | str | None = None) -> Example:
        """Render deferred items (one plan, or a list stacked into a batch) on ``device`` (default
        ``self.device``)."""
        plans = [plans] if isinstance(plans, ViewPlan) else list(plans)
        return render_plans(plans, self.config, device=device or self.device)

    def __getitem__(self, index: int) -> Example | ViewPlan:
        return self.plan(index) if self.deferred else self.example(index)
