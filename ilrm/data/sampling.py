"""View samplers: which frames of a scene are context (input) views and which are targets.

Every sampler answers ``sample(num_frames, scene_id=..., step=..., rng=...)`` with
``(context_indices, target_indices)``, two sorted lists of frame indices into a scene of
``num_frames`` frames. A scene that cannot give a sample (too short, not in the evaluation index,
index entry ``null``) raises :class:`SkipScene`; readers catch it, skip the scene and record why.

Samplers:
- :class:`BoundedSampler`: the RE10K training sampler (pixelSplat's "bounded" sampler as iLRM uses
  it): a random context gap in ``[min_gap, max_gap]`` frames whose range warms up linearly from
  ``[initial_min_gap, initial_max_gap]`` over ``warmup_steps`` steps, targets uniformly between the
  outer context frames.
- :class:`EvaluationIndexSampler`: pixelSplat's fixed evaluation index
  (``{key: {"context": [...], "target": [...]} | null}``).
- :class:`DL3DVIndexSampler`: DL3DV-140 protocol: inputs from the k-means index file, targets every
  8th frame (0, 8, 16, ...).
- :class:`RandomViewSampler`: N random context views + M random targets (procedural, multi-view).
- :class:`FixedViewSampler`: the same given indices for every scene (demos, tests).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ILRMInputError

Indices = tuple[list[int], list[int]]


class SkipScene(ValueError):
    """This scene cannot be sampled (too few frames, absent from the index, ...); the message says why."""


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class ViewSampler:
    """Base class. Subclasses implement :meth:`sample`."""

    def sample(
        self,
        num_frames: int,
        *,
        scene_id: str | None = None,
        step: int = 0,
        rng: np.random.Generator | int | None = None,
    ) -> Indices:
        """Return ``(context_indices, target_indices)`` (sorted lists of ints in ``[0, num_frames)``).

        ``step`` is the global training step (for warm-up schedules); ``rng`` a numpy Generator or
        a seed (None: fresh entropy). Raises :class:`SkipScene` when the scene cannot be sampled.
        """
        raise NotImplementedError

    def __call__(self, num_frames: int, **kwargs) -> Indices:
        return self.sample(num_frames, **kwargs)


def linear_schedule(initial: int, final: int, step: int, steps: int) -> int:
    """Integer value moving linearly from ``initial`` (step 0) to ``final`` (step >= ``steps``).

    Same rounding as pixelSplat's schedule: ``initial + int((final - initial) * step / steps)``,
    clamped at ``final`` (works for increasing and decreasing schedules).
    """
    if steps <= 0 or step >= steps:
        return final
    value = initial + int((final - initial) * max(step, 0) / steps)
    return min(value, final) if final >= initial else max(value, final)


@dataclass
class BoundedSampler(ViewSampler):
    """RE10K training sampler.

    The gap between the outermost context frames is drawn uniformly from ``gap_range(step)``
    (clipped to ``num_frames - 1``); the left context frame uniformly so the right one fits; extra
    context views (``num_context > 2``) uniformly without replacement strictly between them; targets
    uniformly (with replacement by default, as pixelSplat) in
    ``[left - max_target_distance, right + max_target_distance]`` clipped to the scene.
    Defaults are pixelSplat's RE10K values (gap 45..192 warming up from 25..45 over 150k steps).
    """

    num_context: int = 2
    num_target: int = 4
    min_gap: int = 45
    max_gap: int = 192
    warmup_steps: int = 150_000
    initial_min_gap: int = 25
    initial_max_gap: int = 45
    max_target_distance: int = 0
    targets_with_replacement: bool = True

    def __post_init__(self) -> None:
        if self.num_context < 2:
            raise ILRMInputError("BoundedSampler needs num_context >= 2 (the two outer context views)")
        if self.num_target < 1:
            raise ILRMInputError("num_target must be >= 1")
        if self.min_gap > self.max_gap or self.initial_min_gap > self.initial_max_gap:
            raise ILRMInputError("min_gap must be <= max_gap (and initial_min_gap <= initial_max_gap)")

    def gap_range(self, step: int) -> tuple[int, int]:
        """(min, max) context gap in frames at training step ``step`` (before clipping to the scene)."""
        lo = linear_schedule(self.initial_min_gap, self.min_gap, step, self.warmup_steps)
        hi = linear_schedule(self.initial_max_gap, self.max_gap, step, self.warmup_steps)
        return lo, hi

    def sample(self, num_frames, *, scene_id=None, step=0, rng=None) -> Indices:
        rng = _rng(rng)
        lo, hi = self.gap_range(step)
        # Extra context views must fit strictly between the outer two.
        lo = max(lo, self.num_context - 1)
        hi = min(hi, num_frames - 1)
        if hi < lo:
            raise SkipScene(f"scene {scene_id!r} has {num_frames} frames; a context gap of >= {lo} frames is needed")
        gap = int(rng.integers(lo, hi + 1))
        left = int(rng.integers(0, num_frames - gap))
        right = left + gap
        extra = []
        if self.num_context > 2:
            extra = (rng.permutation(gap - 1)[: self.num_context - 2] + left + 1).tolist()
        t_lo = max(0, left - self.max_target_distance)
        t_hi = min(num_frames - 1, right + self.max_target_distance)
        if self.targets_with_replacement:
            targets = rng.integers(t_lo, t_hi + 1, size=self.num_target).tolist()
        else:
            if t_hi - t_lo + 1 < self.num_target:
                raise SkipScene(f"scene {scene_id!r}: fewer than {self.num_target} candidate target frames")
            targets = (rng.permutation(t_hi - t_lo + 1)[: self.num_target] + t_lo).tolist()
        return sorted([left, *extra, right]), sorted(int(t) for t in targets)


class EvaluationIndexSampler(ViewSampler):
    """Fixed context/target frames per scene from an evaluation index (pixelSplat format).

    index: ``{scene_key: {"context": [...], "target": [...]} | None}`` or a path to such a JSON file.
    """

    def __init__(self, index: Mapping[str, Mapping[str, Sequence[int]] | None] | str | Path) -> None:
        if isinstance(index, (str, Path)):
            index = load_evaluation_index(index)
        self.index = dict(index)

    def usable_scenes(self) -> list[str]:
        """Keys with a non-null entry, in file order."""
        return [k for k, v in self.index.items() if v is not None]

    def sample(self, num_frames, *, scene_id=None, step=0, rng=None) -> Indices:
        if scene_id not in self.index:
            raise SkipScene(f"scene {scene_id!r} is not in the evaluation index")
        entry = self.index[scene_id]
        if entry is None:
            raise SkipScene(f"scene {scene_id!r} has a null entry in the evaluation index")
        ctx, tgt = [int(i) for i in entry["context"]], [int(i) for i in entry["target"]]
        bad = [i for i in ctx + tgt if not 0 <= i < num_frames]
        if bad:
            raise SkipScene(f"scene {scene_id!r}: index frames {bad} out of range for {num_frames} frames")
        # Keep the file's order (it is sorted in pixelSplat's index); do not deduplicate.
        return ctx, tgt


def load_evaluation_index(path: str | Path) -> dict[str, dict[str, list[int]] | None]:
    """Read an evaluation index JSON ``{key: {"context": [...], "target": [...]} | null}``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ILRMInputError(f"cannot read evaluation index {path}: {e}") from e
    if not isinstance(data, dict):
        raise ILRMInputError(f"{path}: an evaluation index must be a JSON object {{scene_key: entry}}")
    for k, v in data.items():
        if v is not None and not (isinstance(v, dict) and "context" in v and "target" in v):
            raise ILRMInputError(f"{path}: entry {k!r} must be null or have 'context' and 'target' lists")
    return data


def load_dl3dv_index(path: str | Path) -> dict[str, dict[str, list[int]]]:
    """Read the DL3DV k-means input file ``[{scene_name, fold_8_kmeans_16_input, fold_8_kmeans_32_input}]``.

    Returns ``{scene_name: entry}``.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ILRMInputError(f"cannot read DL3DV index {path}: {e}") from e
    if not isinstance(data, list) or not all(isinstance(d, dict) and "scene_name" in d for d in data):
        raise ILRMInputError(f"{path}: expected a list of objects with 'scene_name' (the k-means input index)")
    return {d["scene_name"]: d for d in data}


class DL3DVIndexSampler(ViewSampler):
    """DL3DV protocol: context = the k-means inputs ``fold_{every}_kmeans_{num_input}_input`` of the
    scene, targets = frames 0, every, 2·every, ... (indices into the scene's frame list in file order).

    index: the k-means file path, its parsed list, or ``{scene_name: entry}``.
    """

    def __init__(
        self,
        index: str | Path | Sequence[Mapping] | Mapping[str, Mapping],
        num_input: int = 32,
        target_every: int = 8,
    ) -> None:
        if isinstance(index, (str, Path)):
            index = load_dl3dv_index(index)
        elif not isinstance(index, Mapping):
            index = {d["scene_name"]: d for d in index}
        self.index = dict(index)
        self.num_input = num_input
        self.target_every = target_every
        self.key = f"fold_{target_every}_kmeans_{num_input}_input"

    def sample(self, num_frames, *, scene_id=None, step=0, rng=None) -> Indices:
        entry = self.index.get(scene_id)
        if entry is None:
            raise SkipScene(f"scene {scene_id!r} is not in the DL3DV input index")
        if self.key not in entry:
            raise SkipScene(f"scene {scene_id!r}: the index has no {self.key!r}")
        ctx = sorted(int(i) for i in entry[self.key])
        bad = [i for i in ctx if not 0 <= i < num_frames]
        if bad:
            raise SkipScene(f"scene {scene_id!r}: input frames {bad} out of range for {num_frames} frames")
        return ctx, list(range(0, num_frames, self.target_every))


@dataclass
class RandomViewSampler(ViewSampler):
    """``num_context`` distinct random context frames and ``num_target`` distinct random targets.

    ``disjoint``: targets are drawn from the frames that are not context views (needs
    ``num_context + num_target <= num_frames``); otherwise from all frames.
    """

    num_context: int = 2
    num_target: int = 4
    disjoint: bool = True

    def sample(self, num_frames, *, scene_id=None, step=0, rng=None) -> Indices:
        rng = _rng(rng)
        need = self.num_context + self.num_target if self.disjoint else max(self.num_context, self.num_target)
        if num_frames < need:
            raise SkipScene(f"scene {scene_id!r} has {num_frames} frames; {need} are needed")
        perm = rng.permutation(num_frames)
        ctx = perm[: self.num_context]
        pool = perm[self.num_context :] if self.disjoint else rng.permutation(num_frames)
        tgt = pool[: self.num_target]
        return sorted(int(i) for i in ctx), sorted(int(i) for i in tgt)


@dataclass
class FixedViewSampler(ViewSampler):
    """Always the given context and target indices (checked against the scene length)."""

    context: Sequence[int]
    target: Sequence[int]

    def sample(self, num_frames, *, scene_id=None, step=0, rng=None) -> Indices:
        bad = [i for i in [*self.context, *self.target] if not 0 <= i < num_frames]
        if bad:
            raise SkipScene(f"scene {scene_id!r}: frames {bad} out of range for {num_frames} frames")
        return [int(i) for i in self.context], [int(i) for i in self.target]
