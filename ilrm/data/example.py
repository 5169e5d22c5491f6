"""What every scene source yields: context views, target views and a scene id."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..cameras import Views


@dataclass
class Example:
    """One training/evaluation sample. ``context`` and ``target`` hold a batch dimension
    (1 for a single scene from a dataset; B after :func:`collate`); poses are normalised (SPEC)."""

    context: Views
    target: Views
    scene_id: str | list[str]

    def to(self, *args, **kwargs) -> Example:
        return Example(self.context.to(*args, **kwargs), self.target.to(*args, **kwargs), self.scene_id)


def collate(items: list[Example]) -> Example:
    """Stack single-scene examples (batch 1 each) into one batch; all must share V and H×W."""

    def cat(views: list[Views]) -> Views:
        return Views(*(torch.cat([getattr(v, n) for v in views]) for n in ("images", "intrinsics", "c2w")))

    ids: list[str] = []
    for it in items:
        ids.extend(it.scene_id if isinstance(it.scene_id, list) else [it.scene_id])
    return Example(cat([i.context for i in items]), cat([i.target for i in items]), ids)
