"""Training data streams whose order is a pure function of (seed, step, rank).

Every optimiser step consumes ``global_batch = batch_size · grad_accum · world_size`` samples. Sample
``g`` (a global sample number) of step ``s``, micro-batch ``a``, rank ``r``, batch slot ``b`` is::

    g = base_sample + (((s - base_step) · grad_accum + a) · world_size + r) · batch_size + b

(``base_step``/``base_sample`` = 0/0 for a fresh run; a resumed run passes the step and the number of
samples seen so far, so a run resumed with another global batch neither repeats nor skips data). For
a fixed global batch the set of samples of a step does not depend on how it is split over ranks,
micro-batches and batch slots, so one process with batch 2 sees what 2 ranks with batch 1 see.

Sources (``TrainConfig.data``):

- ``"procedural"``: with ``k`` samples per scene, sample ``g`` is training scene ``(g div k) mod
  num_scenes`` with view draw ``((g div k) div num_scenes) · k + g mod k``
  (:func:`ilrm.data.procedural.make_example`); for ``k = 1`` scene ``g mod num_scenes``, draw ``g div
  num_scenes``. Samples are a pure function of ``g`` (only the last built scene is cached, which
  changes no result), so workers, ranks and resumed runs agree without pickling iterators.
- ``"re10k:<root>"``: :class:`ilrm.data.re10k.RE10KChunks` over ``<root>/train`` with the bounded
  sampler (context gap warm-up driven by the training step), chunks sharded by rank; the shuffle seed
  mixes the run seed with the start step, so a resumed run is deterministic but draws a fresh order.
- ``"dl3dv:<root>"``: ``opencv_cameras.json`` scene folders under ``<root>``; sample ``g`` is scene
  ``g mod n`` with views drawn by the bounded sampler from ``numpy.random.default_rng([seed, g])``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import queue
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..data.example import Example, collate
from ..data.procedural import (
    ProceduralConfig,
    ProceduralScene,
    ProceduralScenes,
    make_scene,
    plan_example,
    render_plan,
    render_plans,
)
from ..data.sampling import BoundedSampler, linear_schedule
from ..errors import ILRMInputError
from .augment import CameraJitter, Photometric, camera_jitter, photometric, step_variant

DATA_KINDS = ("procedural", "re10k", "dl3dv")


def parse_data_source(data: str) -> tuple[str, str | None]:
    """``"procedural"`` → ("procedural", None); ``"re10k:<root>"`` / ``"dl3dv:<root>"`` → (kind, root)."""
    kind, _, root = data.partition(":")
    if kind not in DATA_KINDS:
        raise ILRMInputError(f"data must be 'procedural', 're10k:<root>' or 'dl3dv:<root>', got {data!r}")
    if kind == "procedural":
        if root:
            raise ILRMInputError(f"'procedural' takes no root, got {data!r}")
        return kind, None
    if not root:
        raise ILRMInputError(f"give the dataset folder: '{kind}:<root>'")
    return kind, root


@dataclass(frozen=True)
class SampleLayout:
    """How global sample numbers map to (step, micro-batch, rank, slot); see the module docstring."""

    batch_size: int
    grad_accum: int = 1
    world_size: int = 1
    rank: int = 0
    base_step: int = 0
    base_sample: int = 0

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.grad_accum * self.world_size

    def indices(self, step: int, micro: int) -> list[int]:
        """Global sample numbers of this rank's micro-batch ``micro`` of step ``step``."""
        first = (
            self.base_sample
            + (((step - self.base_step) * self.grad_accum + micro) * self.world_size + self.rank) * self.batch_size
        )
        return list(range(first, first + self.batch_size))

    def step_of(self, sample: int) -> int:
        """The step that consumes global sample ``sample``."""
        return self.base_step + (sample - self.base_sample) // self.global_batch


class StepBatchSampler(Sampler[list[int]]):
    """Yields this rank's micro-batches (lists of global sample numbers) for steps
    ``[start_step, end_step)``, ``grad_accum`` per step, in order."""

    def __init__(self, layout: SampleLayout, start_step: int, end_step: int) -> None:
        self.layout, self.start_step, self.end_step = layout, start_step, end_step

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step) * self.layout.grad_accum

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.end_step):
            for micro in range(self.layout.grad_accum):
                yield self.layout.indices(step, micro)


def gap_at(step: int, final: tuple[int, int], initial: tuple[int, int] | None, warmup_steps: int) -> tuple[int, int]:
    """Context-gap range (min, max) at ``step``: linear from ``initial`` to ``final`` over ``warmup_steps``."""
    if initial is None or warmup_steps <= 0:
        return tuple(final)
    return (
        linear_schedule(initial[0], final[0], step, warmup_steps),
        linear_schedule(initial[1], final[1], step, warmup_steps),
    )


class ProceduralTrainSet(Dataset):
    """Map-style dataset over global sample numbers: item ``g`` is an :class:`Example` (batch 1).

    scenes: the training split (:class:`ProceduralScenes`). ``samples_per_scene`` = k consecutive
    samples draw different views of one scene (see the module docstring): building a scene costs
    ~0.1 s of CPU while ray-casting views of it on a GPU is cheap, so k > 1 multiplies the data rate
    (and lets :func:`render_plans` ray-cast a scene's views in one call) at some loss of scene variety
    per batch. With ``initial_gap`` the context gap warms up with the step of sample ``g``
    (``layout.step_of``).
    """

    def __init__(
        self,
        scenes: ProceduralScenes,
        layout: SampleLayout,
        *,
        initial_gap: tuple[int, int] | None = None,
        gap_warmup_steps: int = 0,
        device: torch.device | str = "cpu",
        deferred: bool = False,
        samples_per_scene: int = 1,
        seed: int = 0,
        view_choices: tuple[int, ...] | None = None,
        sizes: tuple[tuple[int, int], ...] | None = None,
        camera: CameraJitter | None = None,
    ) -> None:
        if len(scenes) == 0:
            raise ILRMInputError("the procedural training split is empty (train_scenes must be >= 1)")
        if samples_per_scene < 1:
            raise ILRMInputError(f"samples_per_scene must be >= 1, got {samples_per_scene}")
        self.scenes, self.layout, self.per_scene = scenes, layout, samples_per_scene
        self._last: ProceduralScene | None = None
        self.initial_gap, self.gap_warmup_steps = initial_gap, gap_warmup_steps
        self.device, self.deferred = device, deferred
        self.seed, self.view_choices, self.sizes, self.camera = seed, view_choices, sizes, camera

    def __len__(self) -> int:  # endless; DataLoader only needs __getitem__ with a batch sampler
        return 2**62

    def __getitem__(self, g: int) -> Example:
        n, k = len(self.scenes), self.per_scene
        cfg = self.scenes.config
        step = self.layout.step_of(g)
        gap = gap_at(step, cfg.context_gap, self.initial_gap, self.gap_warmup_steps)
        seed = self.scenes.seed((g // k) % n)
        if self._last is None or self._last.seed != seed:
            self._last = make_scene(seed, cfg)
        plan_cfg, size = cfg, None
        if self.view_choices or self.sizes:
            nc, size = step_variant(
                self.seed, step, self.view_choices or (cfg.num_context,), self.sizes or ((cfg.height, cfg.width),)
            )
            plan_cfg = dataclasses.replace(cfg, num_context=nc)
        plan = plan_example(seed, plan_cfg, context_gap=gap, view_stream=(g // k) // n * k + g % k, scene=self._last)
        plan.size = size
        if self.camera is not None:
            plan.focal_scale, plan.principal_shift = camera_jitter(self.seed, g // k, self.camera)
        return plan if self.deferred else render_plan(plan, cfg, device=self.device)


class OpenCVTrainSet(Dataset):
    """``opencv_cameras.json`` scene folders (DL3DV layout) as training samples: item ``g`` is scene
    ``g mod n`` with views from the bounded sampler seeded by ``(seed, g)``. Scenes too short for the
    smallest context gap are dropped up front."""

    def __init__(
        self,
        root: str | Path,
        layout: SampleLayout,
        sampler: BoundedSampler,
        image_size: tuple[int, int],
        seed: int = 0,
    ) -> None:
        from ..data.dl3dv import find_scene_dirs, read_opencv_cameras

        self.layout, self.sampler, self.image_size, self.seed = layout, sampler, tuple(image_size), seed
        need = max(sampler.num_context, min(sampler.initial_min_gap, sampler.min_gap) + 1)
        self.dirs = [d for d in find_scene_dirs(root) if len(read_opencv_cameras(d)) >= need]
        if not self.dirs:
            raise ILRMInputError(f"no scene folder with opencv_cameras.json and >= {need} frames under {root}")

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, g: int) -> Example:
        from ..data.dl3dv import read_opencv_cameras, scene_example

        scene = read_opencv_cameras(self.dirs[g % len(self.dirs)])
        rng = np.random.default_rng([self.seed, g])
        ctx, tgt = self.sampler.sample(len(scene), scene_id=scene.scene_name, step=self.layout.step_of(g), rng=rng)
        return scene_example(scene, ctx, tgt, self.image_size, resize="crop")


def _quiet_worker(_: int) -> None:
    # Ctrl-C reaches the whole process group; the main process turns it into a clean stop and
    # a checkpoint, so workers must not die of it first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Many workers × torch's default one thread per core would oversubscribe the CPUs.
    torch.set_num_threads(1)


class TrainStream:
    """Iterator over this rank's micro-batches (collated :class:`Example` s on CPU or ``data_device``).

    ``set_step(step)`` tells step-driven samplers (RE10K gap warm-up) where training is.
    render: (config, device) when the loader yields ViewPlans to ray-cast here.
    photometric: augment every batch (see :func:`ilrm.training.augment.photometric`), seeded by
    (seed, step); batch ``i`` of the stream belongs to step ``start_step + i // grad_accum``.
    prefetch: with deferred ray casting, a background thread prepares this many batches ahead (on a
    side CUDA stream when casting on a GPU), so ray casting overlaps the training step instead of
    preceding it. The batches and their order are the same as without it.
    """

    def __init__(
        self,
        loader: DataLoader,
        step_value: Any | None = None,
        render: tuple[ProceduralConfig, torch.device | str] | None = None,
        *,
        photometric: Photometric | None = None,
        seed: int = 0,
        start_step: int = 0,
        grad_accum: int = 1,
        prefetch: int = 0,
    ) -> None:
        self.loader = loader
        self._it = iter(loader)
        self._step_value = step_value
        self._render = render  # (config, device): the loader yields ViewPlans, ray-cast here
        self._photometric, self._seed = photometric, seed
        self._start_step, self._grad_accum, self._count = start_step, grad_accum, 0
        self._thread: threading.Thread | None = None
        self._side: torch.cuda.Stream | None = None
        if prefetch > 0 and render is not None:
            self._queue: queue.Queue = queue.Queue(maxsize=prefetch)
            self._stop = threading.Event()
            if torch.device(render[1]).type == "cuda":
                self._side = torch.cuda.Stream(device=torch.device(render[1]))
            self._thread = threading.Thread(target=self._produce, name="ilrm-raycast", daemon=True)
            self._thread.start()

    def set_step(self, step: int) -> None:
        if self._step_value is not None:
            self._step_value.value = step

    def _make(self) -> Example:
        """The next batch: fetched, ray-cast if deferred, augmented."""
        try:
            item = next(self._it)
        except StopIteration as e:
            raise RuntimeError("the training data stream ended early") from e
        if self._render is not None:
            config, device = self._render
            item = render_plans(item, config, device=device)
        step = self._start_step + self._count // self._grad_accum
        self._count += 1
        if self._photometric is not None:
            item = photometric(item, self._seed, step, self._photometric)
        return item

    def _produce(self) -> None:
        try:
            with torch.cuda.stream(self._side) if self._side is not None else contextlib.nullcontext():
                while not self._stop.is_set():
                    batch = self._make()
                    done = None
                    if self._side is not None:
                        done = torch.cuda.Event()
                        done.record(self._side)
                    while not self._stop.is_set():
                        try:
                            self._queue.put((batch, done), timeout=0.1)
                            break
                        except queue.Full:
                            continue
        except BaseException as e:  # handed to the consumer, which raises it in the training loop
            self._queue.put((e, None))

    def next_batch(self) -> Example:
        if self._thread is None:
            return self._make()
        batch, done = self._queue.get()
        if isinstance(batch, BaseException):
            raise RuntimeError("the training data thread failed") from batch
        if self._side is None:
            return batch
        main = torch.cuda.current_stream(self._side.device)
        main.wait_event(done)
        # The batch was allocated on the side stream; tell the allocator the main stream uses it too,
        # or its memory could be handed back to the side stream while training still reads it.
        for views in (batch.context, batch.target):
            for t in (views.images, views.intrinsics, views.c2w):
                if t.is_cuda:
                    t.record_stream(main)
        return batch

    def close(self) -> None:
        # Shut the prefetch thread and the DataLoader workers down now rather than at garbage collection.
        if self._thread is not None:
            self._stop.set()
            while self._thread.is_alive():
                with contextlib.suppress(queue.Empty):
                    self._queue.get(timeout=0.1)
            self._thread = None
        self._it = None


def build_train_stream(
    data: str,
    procedural: ProceduralConfig,
    layout: SampleLayout,
    *,
    start_step: int,
    end_step: int,
    num_workers: int = 0,
    seed: int = 0,
    train_scenes: int | None = None,
    initial_gap: tuple[int, int] | None = None,
    gap_warmup_steps: int = 0,
    data_device: torch.device | str = "cpu",
    samples_per_scene: int = 1,
    view_choices: tuple[int, ...] | None = None,
    sizes: tuple[tuple[int, int], ...] | None = None,
    camera: CameraJitter | None = None,
    photometric: Photometric | None = None,
    grad_accum: int = 1,
    prefetch: int = 0,
) -> TrainStream:
    """The micro-batch stream of this rank for steps ``[start_step, end_step)``.

    procedural: image size, view counts and (final) context gap; also used by RE10K/DL3DV for
    height/width, num_context, num_target and context_gap. Workers (``num_workers > 0``) prefetch.
    samples_per_scene, view_choices, sizes, camera: procedural only (see :class:`ProceduralTrainSet`).
    photometric, prefetch: see :class:`TrainStream`.
    """
    extra = dict(photometric=photometric, seed=seed, start_step=start_step, grad_accum=grad_accum)
    kind, root = parse_data_source(data)
    # A private generator: creating the loader must not draw from the global torch RNG (whose state
    # a resumed run restores exactly).
    common: dict[str, Any] = {
        "num_workers": num_workers,
        "collate_fn": collate,
        "generator": torch.Generator().manual_seed(seed),
    }
    if num_workers > 0:
        common.update(worker_init_fn=_quiet_worker, persistent_workers=False, prefetch_factor=2)
    size = (procedural.height, procedural.width)
    if kind in ("re10k", "dl3dv"):
        lo, hi = procedural.context_gap
        ilo, ihi = initial_gap if initial_gap is not None else (lo, hi)
        sampler = BoundedSampler(
            num_context=procedural.num_context,
            num_target=procedural.num_target,
            min_gap=lo,
            max_gap=hi,
            warmup_steps=gap_warmup_steps,
            initial_min_gap=ilo,
            initial_max_gap=ihi,
        )
    if kind == "procedural":
        scenes = ProceduralScenes(procedural, "train", num_scenes=train_scenes)
        # Workers + an accelerator: workers build scenes (CPU-bound: textures, layout), the main
        # process ray-casts them on ``data_device``; CUDA cannot be used inside forked workers.
        deferred = num_workers > 0 and torch.device(data_device).type != "cpu"
        ds = ProceduralTrainSet(
            scenes,
            layout,
            initial_gap=initial_gap,
            gap_warmup_steps=gap_warmup_steps,
            device=data_device,
            deferred=deferred,
            samples_per_scene=samples_per_scene,
            seed=seed,
            view_choices=view_choices,
            sizes=sizes,
            camera=camera,
        )
        if deferred:
            common["collate_fn"] = list
        loader = DataLoader(ds, batch_sampler=StepBatchSampler(layout, start_step, end_step), **common)
        render = (procedural, data_device) if deferred else None
        return TrainStream(loader, render=render, prefetch=prefetch if deferred else 0, **extra)
    if view_choices or sizes or camera:
        raise ILRMInputError("view_choices, sizes and camera augmentation are for procedural data only")
    if kind == "dl3dv":
        ds = OpenCVTrainSet(root, layout, sampler, size, seed=seed)
        loader = DataLoader(ds, batch_sampler=StepBatchSampler(layout, start_step, end_step), **common)
        return TrainStream(loader, **extra)
    from ..data.re10k import RE10KChunks

    ds = RE10KChunks(
        root,
        "train",
        sampler=sampler,
        image_size=size,
        shuffle=True,
        seed=int(np.random.SeedSequence([seed, start_step]).generate_state(1)[0]),
        repeat=True,
        rank=layout.rank,
        world_size=layout.world_size,
    )
    step_value = multiprocessing.Value("q", start_step) if num_workers > 0 else None
    if step_value is not None:
        ds.step = step_value
    loader = DataLoader(ds, batch_size=layout.batch_size, **common)
    stream = TrainStream(loader, step_value, **extra)
    if step_value is None:
        stream._step_value = _StepBox(ds)
    stream.set_step(start_step)
    return stream


class _StepBox:
    """``.value`` setter that writes ``dataset.step`` (same interface as ``multiprocessing.Value``)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    @property
    def value(self) -> int:
        return int(self.dataset.step)

    @value.setter
    def value(self, v: int) -> None:
        self.dataset.step = int(v)


def eval_examples(
    procedural: ProceduralConfig, num_scenes: int, rank: int, world_size: int
) -> list[tuple[int, Example]]:
    """This rank's share (scene ``i`` with ``i mod world_size == rank``) of the first ``num_scenes``
    held-out procedural test scenes, as ``(i, example)`` on CPU."""
    scenes = ProceduralScenes(procedural, "test", num_scenes=num_scenes)
    return [(i, scenes[i]) for i in range(rank, num_scenes, world_size)]
