"""Evaluation protocols (benchmarks) defined as data, and the scene sources that read them.

A benchmark is one JSON manifest in ``eval/protocol_specs/<name>.json`` (image size, views, index file,
rendering range, Hub source, licence). :func:`load_benchmark` reads it into a :class:`Benchmark`;
:func:`open_scenes` turns it plus a data folder into a :class:`SceneSource`, which lists the
protocol's scene ids in protocol order and yields :class:`LoadedScene` s (an
:class:`~ilrm.data.example.Example`, or the reason the scene was skipped or failed to load).

Kinds:
- ``re10k``: pixelSplat chunks (``<root>/test/*.torch`` + ``index.json``) and the pixelSplat evaluation
  index (``eval/evaluation_index_re10k.json``); frames read with :class:`ilrm.data.re10k.RE10KChunks`
  in its ``intrinsics="pixelsplat"`` mode (the authors' pipeline).
- ``dl3dv``: ``opencv_cameras.json`` scene folders and the k-means input index
  (``eval/dl3dv_fold_8_kmeans_input_idx.json``); a DL3DV-Benchmark folder in the raw layout
  (``<scene>/nerfstudio/transforms.json``) is converted first (:func:`prepare_dl3dv_root`, cached).
- ``procedural``: held-out procedural scenes (:class:`ilrm.data.procedural.ProceduralScenes`,
  ``split="test"``); nothing to download.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ilrm.data.example import Example
from ilrm.data.sampling import SkipScene
from ilrm.errors import ILRMInputError

EVAL_DIR = Path(__file__).resolve().parent
PROTOCOL_DIR = EVAL_DIR / "protocol_specs"
KINDS = ("re10k", "dl3dv", "procedural")
#: Appended to the protocol name of a run that is not the published protocol (another index, other views).
CUSTOM_TAG = "[custom]"
#: Kinds whose inputs and targets must be disjoint frames. DL3DV's k-means inputs never fall on the
#: every-8th target frames; pixelSplat's RE10K index has targets equal to a context frame in 575 of its
#: 6474 scenes, and that index is the protocol (so RE10K is checked for its view counts only).
DISJOINT_KINDS = ("dl3dv",)
#: Loader reasons that mean the scene's data is incomplete (fewer frames than the protocol needs): such
#: scenes are "failed" (retried once the data is repaired), never "skipped" (a protocol exclusion).
INCOMPLETE_MARKERS = ("out of range for", "cameras for", "empty context or target set")


def is_incomplete(reason: str) -> bool:
    """True if a loader's skip reason says the scene's data is incomplete (see :data:`INCOMPLETE_MARKERS`)."""
    return any(m in (reason or "") for m in INCOMPLETE_MARKERS)


def _incomplete_or_skipped(reason: str) -> tuple[str, str]:
    if is_incomplete(reason):
        return "failed", f"incomplete scene data (repair the data and run again): {reason}"
    return "skipped", reason


@dataclass(frozen=True)
class Benchmark:
    """One evaluation protocol (the fields of ``eval/protocol_specs/<name>.json``).

    image_size: (H, W) the images are brought to; num_context / num_target: views per scene
    (``num_target`` None = given by the index, e.g. DL3DV's every-8th frames); expected_scenes: how
    many scenes the full protocol has; index_file: file name under ``eval/`` (or an absolute path);
    near / far / background: rendering for models without their own config (baselines).
    ``image_size_override`` is set by :meth:`with_image_size` (tests, low-resolution studies): the
    protocol label then says so, so such rows never pass for the standard protocol.
    """

    name: str
    kind: str
    description: str
    image_size: tuple[int, int]
    num_context: int
    num_target: int | None
    expected_scenes: int
    near: float = 0.01
    far: float = 500.0
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    index_file: str | None = None
    split: str = "test"
    intrinsics: str = "pixelsplat"
    target_every: int = 8
    resize: str = "stretch"
    scale_before_recentre_default: bool = False
    procedural: dict[str, Any] = field(default_factory=dict)
    hub: dict[str, Any] | None = None
    license: str = ""
    published_protocol: str | None = None
    image_size_override: bool = False
    custom: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The protocol name shown on every table row: ``re10k``, ``re10k@64x64`` when resized,
        ``re10k[custom]`` when the index or the views are not the protocol's (:func:`check_protocol`)."""
        name = f"{self.name}{CUSTOM_TAG}" if self.custom else self.name
        if self.image_size_override:
            return f"{name}@{self.image_size[0]}x{self.image_size[1]}"
        return name

    def as_custom(self, reasons: Sequence[str]) -> Benchmark:
        """A copy labelled as a custom protocol for ``reasons`` (unchanged if there are none)."""
        if not reasons:
            return self
        return dataclasses.replace(self, custom=tuple(self.custom) + tuple(reasons))

    def with_image_size(self, size: Sequence[int] | None) -> Benchmark:
        """A copy evaluated at ``size`` = (H, W) (None: unchanged)."""
        if size is None or tuple(size) == tuple(self.image_size):
            return self
        if len(size) != 2 or min(size) <= 0:
            raise ILRMInputError(f"image size must be two positive integers H W, got {size}")
        return dataclasses.replace(self, image_size=(int(size[0]), int(size[1])), image_size_override=True)

    def index_path(self, override: str | Path | None = None) -> Path | None:
        """The protocol's index file (``override`` replaces it, e.g. in tests)."""
        if override is not None:
            path = Path(override)
        elif self.index_file is None:
            return None
        else:
            path = Path(self.index_file)
            path = path if path.is_absolute() else EVAL_DIR / path
        if not path.is_file():
            raise ILRMInputError(f"index file {path} of benchmark {self.name!r} not found")
        return path

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (written into every result's summary)."""
        d = dataclasses.asdict(self)
        d["image_size"], d["background"], d["label"] = list(self.image_size), list(self.background), self.label
        return d


def benchmark_names() -> list[str]:
    """Names of the protocols in ``eval/protocol_specs/``."""
    return sorted(p.stem for p in PROTOCOL_DIR.glob("*.json"))


def load_benchmark(name_or_path: str | Path) -> Benchmark:
    """A :class:`Benchmark` by name (``re10k``, ``dl3dv-32``, ...) or from a JSON file path."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = PROTOCOL_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise ILRMInputError(f"unknown benchmark {str(name_or_path)!r}; choose one of {benchmark_names()}")
    data = json.loads(path.read_text())
    known = {f.name for f in dataclasses.fields(Benchmark)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ILRMInputError(f"{path}: unknown benchmark fields {unknown}")
    data["image_size"] = tuple(data["image_size"])
    data["background"] = tuple(data.get("background", (1.0, 1.0, 1.0)))
    bench = Benchmark(**data)
    if bench.kind not in KINDS:
        raise ILRMInputError(f"{path}: kind must be one of {KINDS}, got {bench.kind!r}")
    return bench


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def check_protocol(benchmark: Benchmark, index_path: str | Path | None = None) -> list[str]:
    """Why a run with this index is not ``benchmark``'s published protocol ([] = it is).

    Checks: the index file is the protocol's (same sha256); every entry has ``num_context`` inputs
    (and, for RE10K, ``num_target`` targets); inputs and targets are disjoint where the protocol says so
    (:data:`DISJOINT_KINDS`; DL3DV targets are the every-``target_every`` frames). Procedural
    benchmarks have no index and always pass.
    """
    if benchmark.kind == "procedural":
        return []
    from ilrm.data.sampling import load_dl3dv_index, load_evaluation_index

    problems: list[str] = []
    path = benchmark.index_path(index_path)
    official = benchmark.index_path()
    if official is not None and path is not None and file_sha256(path) != file_sha256(official):
        problems.append(f"index {path} is not the protocol's index ({official.name}, sha256 differs)")
    counts: dict[str, int] = {}

    def note(kind: str, text: str) -> None:
        counts[kind] = counts.get(kind, 0) + 1
        if counts[kind] <= 3:
            problems.append(text)

    if benchmark.kind == "re10k":
        for key, entry in load_evaluation_index(path).items():
            if entry is None:
                continue
            nc, nt = len(entry["context"]), len(entry["target"])
            if nc != benchmark.num_context:
                note("ctx", f"scene {key}: {nc} input views, the protocol has {benchmark.num_context}")
            if benchmark.num_target is not None and nt != benchmark.num_target:
                note("tgt", f"scene {key}: {nt} target views, the protocol has {benchmark.num_target}")
            if benchmark.kind in DISJOINT_KINDS and set(entry["context"]) & set(entry["target"]):
                note("disjoint", f"scene {key}: inputs and targets are not disjoint")
    else:
        key_name = f"fold_{benchmark.target_every}_kmeans_{benchmark.num_context}_input"
        for key, entry in load_dl3dv_index(path).items():
            inputs = entry.get(key_name)
            if inputs is None:
                note("ctx", f"scene {key}: no {key_name!r} in the index")
                continue
            if len(inputs) != benchmark.num_context or len(set(inputs)) != len(inputs):
                note("ctx", f"scene {key}: {len(set(inputs))} input views, the protocol has {benchmark.num_context}")
            if benchmark.kind in DISJOINT_KINDS and any(int(i) % benchmark.target_every == 0 for i in inputs):
                note("disjoint", f"scene {key}: inputs and targets are not disjoint (an input is a "
                                 f"multiple of {benchmark.target_every}, i.e. a target frame)")
    for kind, n in counts.items():
        if n > 3:
            problems.append(f"... {n} scenes in all with this problem ({kind})")
    return problems


# ---- scene sources -------------------------------------------------------------------------------


@dataclass
class LoadedScene:
    """One scene as a source yields it: ``status`` is "ok" (``example`` set), "skipped" (the protocol
    excludes it, e.g. a frame of the wrong size) or "failed" (its data could not be read).

    context_frames / target_frames: frame indices in the scene where the protocol defines them.
    depth: optional ground-truth context depth (1, Vc, H, W) (procedural scenes, for depth-initialised
    baselines).
    """

    scene_id: str
    status: str
    example: Example | None = None
    reason: str = ""
    context_frames: list[int] | None = None
    target_frames: list[int] | None = None
    depth: torch.Tensor | None = None
    expected_num_target: int | None = None


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class SceneSource:
    """Scenes of one benchmark on one data folder.

    ``scene_ids`` (protocol order, after ``limit``) is what a run evaluates; ``missing`` lists protocol
    scenes the data folder does not have (reported, not evaluated); ``load(ids)`` yields a
    :class:`LoadedScene` for every requested id exactly once (in any order).
    """

    benchmark: Benchmark
    scene_ids: list[str]
    missing: list[str]

    def load(self, ids: Sequence[str], *, with_depth: bool = False) -> Iterator[LoadedScene]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What the summary records about the data (folder, counts)."""
        return {"num_scenes": len(self.scene_ids), "num_missing": len(self.missing), "missing": self.missing[:200]}

    #: Folder that :meth:`files_for` paths are relative to in the records (None: absolute).
    data_root: Path | None = None

    def files_for(self, scene_id: str) -> list[Path]:
        """The data files a scene reads (hashed into its record; [] for generated scenes)."""
        return []

    def identity(self, scene_id: str) -> dict[str, Any]:
        """What besides its files defines a scene's data (generator settings; {} for files)."""
        return {}

    #: Whether :meth:`load` may run in DataLoader worker processes (False: it needs the GPU, e.g.
    #: procedural scenes ray-cast on CUDA, so the runner loads it in the main process).
    worker_safe: bool = True

    def load_groups(self, ids: Sequence[str]) -> list[list[str]]:
        """``ids`` cut into independent loading units (DataLoader hook): ``load(g)`` for each group in turn
        yields the same scenes in the same order as ``load(ids)``. Default: one scene per group."""
        return [[i] for i in ids]


def _limit(ids: list[str], limit: int | None, only: Sequence[str] | None = None) -> list[str]:
    if limit is not None and limit < 0:
        raise ILRMInputError(f"--limit must be >= 0, got {limit}")
    if only is not None:
        keep = set(only)
        ids = [i for i in ids if i in keep]
    return ids if limit is None else ids[:limit]


class RE10KSource(SceneSource):
    """pixelSplat chunks + evaluation index (see module docstring)."""

    def __init__(
        self,
        benchmark: Benchmark,
        root: str | Path,
        *,
        limit: int | None = None,
        index_path: str | Path | None = None,
        scale_before_recentre: bool | None = None,
        scenes: Sequence[str] | None = None,
    ) -> None:
        from ilrm.data.re10k import read_chunk_index
        from ilrm.data.sampling import load_evaluation_index

        self.benchmark = benchmark
        self.root = Path(root)
        self.index_path = benchmark.index_path(index_path)
        self.index = load_evaluation_index(self.index_path)
        split_dir = self.root / benchmark.split
        chunk_index = read_chunk_index(split_dir)
        if chunk_index is None:
            raise ILRMInputError(
                f"{split_dir} has no index.json (scene key -> chunk file); the pixelSplat layout ships one "
                "next to the chunks. Fetch the data with `python -m eval fetch re10k ...`."
            )
        self.chunk_index = chunk_index
        usable = [k for k, v in self.index.items() if v is not None]
        self.scene_ids = _limit([k for k in usable if k in chunk_index], limit, scenes)
        self.missing = [k for k in usable if k not in chunk_index]
        self.data_root = self.root
        self.scale_before_recentre = (
            benchmark.scale_before_recentre_default if scale_before_recentre is None else scale_before_recentre
        )

    def load_groups(self, ids: Sequence[str]) -> list[list[str]]:
        """One group per chunk file, in the order :meth:`load` visits them (a chunk is read once)."""
        by_chunk: dict[str, list[str]] = {}
        for key in ids:
            by_chunk.setdefault(self.chunk_index.get(key, ""), []).append(key)
        return list(by_chunk.values())

    def load(self, ids: Sequence[str], *, with_depth: bool = False) -> Iterator[LoadedScene]:
        # One reader per chunk, so that a corrupt chunk fails only its own scenes.
        by_chunk: dict[str, list[str]] = {}
        for key in ids:
            by_chunk.setdefault(self.chunk_index.get(key, ""), []).append(key)
        for chunk, keys in by_chunk.items():
            if not chunk:
                for key in keys:
                    yield LoadedScene(key, "failed", reason="not listed in the data's index.json")
                continue
            if not (self.root / self.benchmark.split / chunk).is_file():
                for key in keys:
                    yield LoadedScene(key, "failed", reason=(
                        f"chunk file {self.benchmark.split}/{chunk}, which index.json names for this scene, is "
                        f"not on disk in {self.root} (partly fetched? run `python -m eval fetch "
                        f"{self.benchmark.name}` for these scenes)"))
                continue
            yield from self._load_chunk(chunk, keys)

    def files_for(self, scene_id: str) -> list[Path]:
        split = self.root / self.benchmark.split
        chunk = self.chunk_index.get(scene_id)
        files = [split / "index.json"]
        if chunk and (split / chunk).is_file():
            files.append(split / chunk)
        return files

    def _load_chunk(self, chunk: str, keys: list[str]) -> Iterator[LoadedScene]:
        from ilrm.data.re10k import RE10KChunks

        ds = RE10KChunks(
            self.root,
            self.benchmark.split,
            index_path=self.index_path,
            image_size=self.benchmark.image_size,
            scenes=keys,
            scale_before_recentre=self.scale_before_recentre,
            intrinsics=self.benchmark.intrinsics,  # "pixelsplat": the authors' crop shim
        )
        # The reader shards chunks across DataLoader workers (training); here the runner's loader gives
        # each worker whole groups (:meth:`load_groups`), so this reader must read its chunk wherever it runs.
        ds._my_chunks = lambda: list(ds.chunks)
        seen: set[str] = set()
        done = {"skipped": 0, "failed": 0}

        def reports() -> Iterator[LoadedScene]:
            # The reader records skipped and failed scenes in lists as it goes; pass on the new ones.
            for status, items in (("skipped", ds.skipped), ("failed", ds.failed)):
                for key, reason in items[done[status] :]:
                    if key not in seen:
                        seen.add(key)
                        st, why = _incomplete_or_skipped(reason) if status == "skipped" else (status, reason)
                        yield LoadedScene(key, st, reason=why)
                done[status] = len(items)

        try:
            for example in ds:
                yield from reports()
                key = str(example.scene_id)
                entry = self.index[key]
                seen.add(key)
                yield LoadedScene(
                    key, "ok", example, context_frames=list(entry["context"]), target_frames=list(entry["target"])
                )
        except (ILRMInputError, OSError) as e:
            for key in keys:
                if key not in seen:
                    seen.add(key)
                    yield LoadedScene(key, "failed", reason=f"chunk {chunk}: {e}")
        yield from reports()
        for key in keys:
            if key not in seen:
                yield LoadedScene(key, "failed", reason=f"listed in index.json but not found in chunk {chunk}")

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "data_root": str(self.root),
            "index_file": str(self.index_path),
            "scale_before_recentre": self.scale_before_recentre,
            "intrinsics": self.benchmark.intrinsics,
        }


def looks_like_dl3dv_raw(root: str | Path) -> bool:
    """True if ``root`` holds DL3DV-Benchmark scenes in the raw layout (``*/nerfstudio/transforms.json``)."""
    from ilrm.data.dl3dv_convert import find_benchmark_scenes

    root = Path(root)
    return root.is_dir() and bool(find_benchmark_scenes(root))


def default_eval_home() -> Path:
    """Where fetch manifests and converted data live: ``$ILRM_EVAL_HOME``, else ``~/.cache/ilrm/eval``."""
    env = os.environ.get("ILRM_EVAL_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base).expanduser() if base else Path.home() / ".cache") / "ilrm" / "eval"


def prepare_dl3dv_root(
    root: str | Path,
    scenes: Sequence[str] | None = None,
    *,
    eval_home: str | Path | None = None,
    num_workers: int = 4,
) -> tuple[Path, dict[str, Any]]:
    """A folder of ``opencv_cameras.json`` scenes for ``root``.

    Already-processed folders are returned as they are. A DL3DV-Benchmark folder in the raw layout is
    converted (only ``scenes`` if given) with :func:`ilrm.data.dl3dv_convert.convert_benchmark` into
    ``<eval_home>/dl3dv-processed/<hash of root>/`` — converted scenes are kept, so later calls are
    cheap. Returns (processed root, conversion report as a dict: converted / skipped_portrait / failed).
    """
    from ilrm.data.dl3dv_convert import convert_benchmark

    root = Path(root).expanduser().resolve()
    if not looks_like_dl3dv_raw(root):
        return root, {"converted": None}
    home = Path(eval_home) if eval_home is not None else default_eval_home()
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    out = home / "dl3dv-processed" / digest
    out.mkdir(parents=True, exist_ok=True)
    (out / "SOURCE.txt").write_text(f"converted from {root} with ilrm.data.dl3dv_convert\n")
    report = convert_benchmark(root, out, scenes=scenes, num_workers=num_workers)
    return out, {
        "converted_from": str(root),
        "converted": report.converted,
        "skipped_portrait": report.skipped_portrait,
        "failed": [list(x) for x in report.failed],
    }


class DL3DVSource(SceneSource):
    """``opencv_cameras.json`` folders + the k-means input index (see module docstring)."""

    def __init__(
        self,
        benchmark: Benchmark,
        root: str | Path,
        *,
        limit: int | None = None,
        index_path: str | Path | None = None,
        scale_before_recentre: bool | None = None,
        eval_home: str | Path | None = None,
        scenes: Sequence[str] | None = None,
    ) -> None:
        from ilrm.data.dl3dv import DL3DVScenes
        from ilrm.data.sampling import load_dl3dv_index

        self.benchmark = benchmark
        self.index_path = benchmark.index_path(index_path)
        order = list(load_dl3dv_index(self.index_path))
        wanted = _limit(order, limit, scenes) if looks_like_dl3dv_raw(root) else None
        self.root, self.conversion = prepare_dl3dv_root(root, wanted, eval_home=eval_home)
        self.scale_before_recentre = (
            benchmark.scale_before_recentre_default if scale_before_recentre is None else scale_before_recentre
        )
        self.dataset = DL3DVScenes(
            self.root,
            self.index_path,
            num_input=benchmark.num_context,
            image_size=benchmark.image_size,
            target_every=benchmark.target_every,
            resize=benchmark.resize,
            scale_before_recentre=self.scale_before_recentre,
        )
        # A portrait scene is excluded by the protocol: report it as skipped, not as missing.
        portrait = set(self.conversion.get("skipped_portrait") or [])
        failed = {name: reason for name, reason in self.conversion.get("failed") or []}
        self._pre = {n: ("skipped", "portrait scene (h > w), excluded by the protocol") for n in portrait}
        self._pre.update({n: ("failed", f"conversion failed: {r}") for n, r in failed.items()})
        available = set(self.dataset.names) | set(self._pre)
        self.scene_ids = _limit([n for n in order if n in available], limit, scenes)
        self.missing = [n for n in order if n not in available]
        self.data_root = self.root

    def load(self, ids: Sequence[str], *, with_depth: bool = False) -> Iterator[LoadedScene]:
        position = {n: i for i, n in enumerate(self.dataset.names)}
        for name in ids:
            if name in self._pre:
                status, reason = self._pre[name]
                yield LoadedScene(name, status, reason=reason)
                continue
            try:
                i = position[name]
                ctx, tgt = self.dataset.indices(i)
                expected = self.expected_targets(name, ctx)
                if len(tgt) < expected:
                    yield LoadedScene(name, "failed", reason=(
                        f"incomplete scene data: {len(tgt)} target views, expected {expected} (every "
                        f"{self.benchmark.target_every}th of the scene's frames on disk / in the source); the "
                        "frame list is truncated"), context_frames=list(ctx), target_frames=list(tgt))
                    continue
                loaded = LoadedScene(name, "ok", self.dataset[i], context_frames=list(ctx), target_frames=list(tgt))
                loaded.expected_num_target = expected
                yield loaded
            except SkipScene as e:
                status, reason = _incomplete_or_skipped(str(e))
                yield LoadedScene(name, status, reason=reason)
            except (ILRMInputError, OSError, KeyError, IndexError, ValueError) as e:
                yield LoadedScene(name, "failed", reason=f"{type(e).__name__}: {e}")

    def _frame_count(self, name: str) -> int:
        """How many frames the scene has: the most of the frames its camera file lists, the image files in
        its image folder, and (when converted here) the raw ``transforms.json`` frames and ``images_4`` files."""
        from ilrm.data.dl3dv import read_opencv_cameras

        scene = read_opencv_cameras(self.dataset.dirs[name])
        counts = [len(scene)]
        folders = {Path(f.path).parent for f in scene.frames} if getattr(scene, "frames", None) else set()
        for folder in folders:
            if folder.is_dir():
                counts.append(sum(1 for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        raw = self.conversion.get("converted_from")
        if raw:
            ns = Path(raw) / name / "nerfstudio"
            with contextlib.suppress(OSError, KeyError, ValueError):
                counts.append(len(json.loads((ns / "transforms.json").read_text())["frames"]))
            if (ns / "images_4").is_dir():
                counts.append(sum(1 for p in (ns / "images_4").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        return max(counts)

    def expected_targets(self, name: str, context: Sequence[int]) -> int:
        """The protocol's target count for a scene: every ``target_every``-th of its frames, counted over
        the frames it has on disk (:meth:`_frame_count`), at least past its last input frame."""
        n = max(self._frame_count(name), (max(context) + 1) if context else 0)
        return -(-n // self.benchmark.target_every)

    def files_for(self, scene_id: str) -> list[Path]:
        from ilrm.data.dl3dv import CAMERAS_FILE, read_opencv_cameras

        d = self.dataset.dirs.get(scene_id)
        if d is None:
            return []
        files = [d / CAMERAS_FILE]
        with contextlib.suppress(ILRMInputError, OSError, AttributeError):
            files += [Path(f.path) for f in read_opencv_cameras(d).frames]
        return [f for f in files if f.is_file()]

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "data_root": str(self.root),
            "index_file": str(self.index_path),
            "conversion": self.conversion,
            "scale_before_recentre": self.scale_before_recentre,
            "resize": self.benchmark.resize,
        }


class ProceduralSource(SceneSource):
    """Held-out procedural scenes: scene ``i`` is seed ``TEST_SEED_START + i``."""

    worker_safe = False  # scenes are ray-cast on the run's device

    def __init__(
        self,
        benchmark: Benchmark,
        *,
        limit: int | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        from ilrm.data.procedural import ProceduralConfig, ProceduralScenes, scene_id

        self.benchmark = benchmark
        H, W = benchmark.image_size
        params = dict(benchmark.procedural)
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
        self.config = ProceduralConfig(
            height=H, width=W, num_context=benchmark.num_context, num_target=benchmark.num_target or 4, **params
        )
        n = benchmark.expected_scenes if limit is None else min(limit, benchmark.expected_scenes)
        self.dataset = ProceduralScenes(self.config, split="test", num_scenes=n, device=device)
        self.scene_ids = [scene_id(self.dataset.seed(i)) for i in range(n)]
        self._position = {s: i for i, s in enumerate(self.scene_ids)}
        self.missing = []

    def identity(self, scene_id: str) -> dict[str, Any]:
        from ilrm.data.procedural import TEST_SEED_START

        return {"generator": "ilrm.data.procedural", "first_seed": TEST_SEED_START, "scene": scene_id,
                "config": dataclasses.asdict(self.config)}

    def load(self, ids: Sequence[str], *, with_depth: bool = False) -> Iterator[LoadedScene]:
        for sid in ids:
            try:
                i = self._position[sid]
                if with_depth:
                    example, ctx_depth, _ = self.dataset.example(i, with_depth=True)
                    yield LoadedScene(sid, "ok", example, depth=ctx_depth)
                else:
                    yield LoadedScene(sid, "ok", self.dataset[i])
            except (ILRMInputError, KeyError, ValueError, RuntimeError) as e:
                yield LoadedScene(sid, "failed", reason=f"{type(e).__name__}: {e}")

    def describe(self) -> dict[str, Any]:
        from ilrm.data.procedural import TEST_SEED_START

        cfg = dataclasses.asdict(self.config)
        return {**super().describe(), "generator": "ilrm.data.procedural", "first_seed": TEST_SEED_START, "config": cfg}


def open_scenes(
    benchmark: Benchmark,
    data_root: str | Path | None,
    *,
    limit: int | None = None,
    index_path: str | Path | None = None,
    scale_before_recentre: bool | None = None,
    device: torch.device | str = "cpu",
    eval_home: str | Path | None = None,
    scenes: Sequence[str] | None = None,
) -> SceneSource:
    """The :class:`SceneSource` of ``benchmark`` on ``data_root`` (ignored for procedural benchmarks).

    scale_before_recentre: pose-normalisation variant (None: the protocol's default; the runner passes
    the model's ``config.pose_scale_before_recentre``). device: where procedural scenes are ray-cast.
    """
    if benchmark.kind == "procedural":
        return ProceduralSource(benchmark, limit=limit, device=device)
    if data_root is None:
        raise ILRMInputError(
            f"benchmark {benchmark.name!r} needs data: run `python -m eval fetch {benchmark.name} ...` first "
            "or pass --data-root DIR"
        )
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise ILRMInputError(f"data root {root} is not a folder")
    if benchmark.kind == "re10k":
        return RE10KSource(
            benchmark, root, limit=limit, index_path=index_path, scale_before_recentre=scale_before_recentre,
            scenes=scenes,
        )
    return DL3DVSource(
        benchmark,
        root,
        limit=limit,
        index_path=index_path,
        scale_before_recentre=scale_before_recentre,
        eval_home=eval_home,
        scenes=scenes,
    )
