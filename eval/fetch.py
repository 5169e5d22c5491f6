"""Download only what a benchmark's test protocol needs, and record what was used in a manifest.

Sources (:func:`fetch`):
- a Hugging Face Hub dataset repo (``repo_id``, ``revision``): files come through ``huggingface_hub``
  (``hf_hub_download`` / ``snapshot_download`` with ``allow_patterns``) into the standard cache (or
  ``local_dir``); interrupted downloads resume, cached files are not fetched again, and
  ``HF_HUB_OFFLINE=1`` works from the cache.
- a local directory (``source``) that already holds the data.

Layouts:
- RE10K, pixelSplat chunks (``test/index.json`` + ``test/*.torch``): ``test/index.json`` is read
  first, then only the chunks that hold the protocol's scenes (the first ``limit`` of them, in
  evaluation-index order) are downloaded.
- RE10K, a parquet mirror with one scene per row (columns ``key, url, timestamps, cameras, images``
  with ``images`` a list of JPEG bytes, as in the chunks): read with ``datasets.load_dataset(...,
  streaming=True)`` filtered to the protocol's scenes (a first pass reads only the ``key`` column), and
  written as pixelSplat chunks under the eval home, so that one reader serves both layouts.
- DL3DV-Benchmark (``<scene>/nerfstudio/transforms.json`` + ``images_4/``; gated, CC BY-NC 4.0):
  only those files of the protocol's scenes, then converted to ``opencv_cameras.json`` folders
  (:func:`eval.protocols.prepare_dl3dv_root`).
- procedural benchmarks need nothing (the manifest says so).

The manifest (``<eval home>/<benchmark>/manifest.json``) records the repo id, the requested and the
resolved revision (commit sha), the file list and the data folder; ``python -m eval run`` reads it.
Gated or private repos without access raise :class:`DatasetAccessError` whose message says how to
request access and set a token.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fnmatch
import io
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ilrm.errors import ILRMInputError
from ilrm.hub_errors import network_errors

from .protocols import Benchmark, default_eval_home, load_benchmark, prepare_dl3dv_root

logger = logging.getLogger(__name__)
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
FORMATS = ("auto", "chunks", "parquet")
#: Scenes per chunk file when parquet rows are written as pixelSplat chunks.
SCENES_PER_CHUNK = 16


class DatasetAccessError(ILRMInputError):
    """The dataset repo is gated, private or needs a token; the message says what to do."""


def dataset_url(repo_id: str, repo_type: str = "dataset") -> str:
    """The repo's page on the Hub."""
    prefix = {"dataset": "datasets/", "space": "spaces/"}.get(repo_type, "")
    return f"https://huggingface.co/{prefix}{repo_id}"


def access_message(repo_id: str, repo_type: str = "dataset", error: BaseException | None = None) -> str:
    """How to get access to a gated/private repo (shown when the Hub refuses a download)."""
    status = getattr(getattr(error, "response", None), "status_code", None)
    what = f"HTTP {status}" if status else type(error).__name__ if error else "access refused"
    url = dataset_url(repo_id, repo_type)
    return (
        f"The Hugging Face Hub refused access to {repo_type} repo '{repo_id}' ({what}): it is gated or private "
        "and this machine has no token with access.\n"
        f"  1. Open {url} while logged in and request access (accept the dataset's conditions; DL3DV is "
        "CC BY-NC 4.0, non-commercial use only). Gated requests may need the authors' approval.\n"
        "  2. Create a read token at https://huggingface.co/settings/tokens and either set it for this shell "
        "(`export HF_TOKEN=hf_...`) or store it with `hf auth login`.\n"
        "  3. Run this command again (files already downloaded are kept)."
    )


def offline_message(repo_id: str, repo_type: str = "dataset", what: str = "") -> str:
    """What to do when the Hub cannot be reached and the cache does not hold what is needed."""
    flag = "--repo-id" if repo_type == "dataset" else "--model"
    return (
        f"the Hugging Face Hub cannot be reached (no network, or HF_HUB_OFFLINE=1) and the local cache has "
        f"no copy of {repo_type} repo '{repo_id}'{what}. Either run this command again where the Hub is "
        "reachable (files are cached for later offline use), or download the repo elsewhere with "
        f"`hf download {repo_id}{' --repo-type dataset' if repo_type == 'dataset' else ''} --local-dir DIR`, copy "
        f"DIR here and pass it instead of {flag} ({'--source DIR' if repo_type == 'dataset' else '--model DIR'}), "
        "or point HF_HUB_CACHE / --cache-dir at a cache that holds it"
    )


@contextlib.contextmanager
def hub_errors(repo_id: str, repo_type: str = "dataset") -> Iterator[None]:
    """Translate huggingface_hub errors into messages for people (:class:`ILRMInputError`)."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = network_errors()
    try:
        yield
    except GatedRepoError as e:
        raise DatasetAccessError(access_message(repo_id, repo_type, e)) from e
    except RevisionNotFoundError as e:
        raise ILRMInputError(f"revision not found in '{repo_id}': {e}") from e
    except RepositoryNotFoundError as e:
        raise DatasetAccessError(
            f"{repo_type} repo '{repo_id}' was not found on the Hub, or it is private/gated and needs a token. "
            + access_message(repo_id, repo_type, e)
        ) from e
    except LocalEntryNotFoundError as e:  # before EntryNotFoundError: it is a subclass
        raise ILRMInputError(offline_message(repo_id, repo_type, f" ({e})")) from e
    except EntryNotFoundError as e:
        raise ILRMInputError(f"a file the protocol needs is not in '{repo_id}': {e}") from e
    except offline as e:
        raise ILRMInputError(offline_message(repo_id, repo_type, f" ({type(e).__name__}: {e})")) from e
    except HfHubHTTPError as e:
        if getattr(e.response, "status_code", None) in (401, 403):
            raise DatasetAccessError(access_message(repo_id, repo_type, e)) from e
        raise


def hub_offline() -> bool:
    """True when huggingface_hub is in offline mode (``HF_HUB_OFFLINE=1``)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def repo_cache_dir(repo_id: str, repo_type: str = "dataset", cache_dir: str | Path | None = None) -> Path:
    """``<cache>/datasets--<org>--<name>`` (the standard Hub cache layout)."""
    from huggingface_hub import constants

    base = Path(cache_dir) if cache_dir is not None else Path(constants.HF_HUB_CACHE)
    return base / f"{repo_type}s--{repo_id.replace('/', '--')}"


def resolve_revision(
    repo_id: str,
    revision: str | None = None,
    *,
    repo_type: str = "dataset",
    cache_dir: str | Path | None = None,
    token: str | bool | None = None,
) -> str:
    """The commit sha of ``revision`` (default ``main``): asked from the Hub, or read from the cache's
    ``refs/`` when offline. A 40-hex revision is returned as is."""
    revision = revision or "main"
    if COMMIT_RE.fullmatch(revision):
        return revision
    ref = repo_cache_dir(repo_id, repo_type, cache_dir) / "refs" / revision
    if not hub_offline():
        from huggingface_hub import HfApi

        with hub_errors(repo_id, repo_type):
            try:
                sha = HfApi(token=token).repo_info(repo_id, repo_type=repo_type, revision=revision).sha
            except network_errors() as e:
                if not ref.is_file():
                    raise  # hub_errors says what to do
                sha = None
                logger.warning("the Hub cannot be reached (%s: %s); using the cached %s", type(e).__name__, e, ref)
        if sha:
            return sha
    if ref.is_file():
        return ref.read_text().strip()
    raise ILRMInputError(
        f"cannot resolve revision '{revision}' of '{repo_id}' (HF_HUB_OFFLINE is set) and the cache has no {ref}: "
        + offline_message(repo_id, repo_type)
        + "; or pass --revision <commit sha> of a cached snapshot"
    )


@dataclass
class FetchResult:
    """What :func:`fetch` produced: the data folder to evaluate and the manifest (also on disk)."""

    benchmark: str
    data_root: Path | None
    manifest_path: Path
    manifest: dict[str, Any]


def manifest_path(benchmark: str, eval_home: str | Path | None = None) -> Path:
    """``<eval home>/<benchmark>/manifest.json``."""
    home = Path(eval_home) if eval_home is not None else default_eval_home()
    return home / benchmark / "manifest.json"


def read_manifest(benchmark: str, eval_home: str | Path | None = None) -> dict[str, Any] | None:
    """The manifest of the last fetch of ``benchmark``, or None."""
    path = manifest_path(benchmark, eval_home)
    return json.loads(path.read_text()) if path.is_file() else None


def _write_manifest(bench: Benchmark, manifest: dict[str, Any], eval_home: str | Path | None) -> Path:
    import datasets
    import huggingface_hub

    manifest = {
        "benchmark": bench.name,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "huggingface_hub": huggingface_hub.__version__,
        "datasets": datasets.__version__,
        **manifest,
    }
    path = manifest_path(bench.name, eval_home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


def _list_files(root: Path) -> list[str]:
    """Files under ``root``, relative to it, without the ``.cache`` folders *inside* it (a ``local_dir``
    download keeps huggingface_hub's metadata in ``<local_dir>/.cache``). Components above ``root``
    do not count: the Hub cache itself lives under ``~/.cache``."""
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if ".cache" not in rel.parts and p.is_file():
            out.append(str(rel))
    return sorted(out)


def _protocol_scenes(bench: Benchmark, index_path: str | Path | None) -> list[str]:
    """The protocol's scenes in protocol order (RE10K: non-null index entries; DL3DV: index order)."""
    from ilrm.data.sampling import load_dl3dv_index, load_evaluation_index

    path = bench.index_path(index_path)
    if bench.kind == "re10k":
        return [k for k, v in load_evaluation_index(path).items() if v is not None]
    return list(load_dl3dv_index(path))


def _take(keys: Sequence[str], limit: int | None) -> list[str]:
    if limit is not None and limit < 0:
        raise ILRMInputError(f"--limit must be >= 0, got {limit}")
    return list(keys) if limit is None else list(keys)[:limit]


# ---- RE10K: pixelSplat chunks ----------------------------------------------------------------


def _fetch_re10k_chunks(
    bench: Benchmark,
    repo_id: str,
    sha: str,
    *,
    limit: int | None,
    subfolder: str,
    index_path: str | Path | None,
    cache_dir: str | Path | None,
    local_dir: str | Path | None,
    token: str | bool | None,
) -> dict[str, Any]:
    from huggingface_hub import hf_hub_download, snapshot_download

    prefix = f"{subfolder.strip('/')}/" if subfolder.strip("/") else ""
    index_file = f"{prefix}{bench.split}/index.json"
    common = dict(repo_type="dataset", revision=sha, cache_dir=cache_dir, local_dir=local_dir, token=token)
    with hub_errors(repo_id):
        chunk_index = json.loads(Path(hf_hub_download(repo_id, index_file, **common)).read_text())
    wanted = _take([k for k in _protocol_scenes(bench, index_path) if k in chunk_index], limit)
    chunks = sorted({chunk_index[k] for k in wanted})
    patterns = [index_file] + [f"{prefix}{bench.split}/{c}" for c in chunks]
    with hub_errors(repo_id):
        root = Path(snapshot_download(repo_id, allow_patterns=patterns, **common))
    data_root = root / prefix if prefix else root
    absent = [c for c in chunks if not (data_root / bench.split / c).is_file()]
    if absent:
        raise ILRMInputError(
            f"{len(absent)} chunk(s) the protocol needs are not in {data_root / bench.split} "
            f"(e.g. {absent[:3]}); run fetch again with network access"
        )
    return {
        "format": "chunks",
        "data_root": str(data_root),
        "snapshot": str(root),
        "allow_patterns": patterns,
        "files": patterns,
        "scenes": wanted,
        "num_scenes": len(wanted),
    }


# ---- RE10K: parquet mirror (datasets) ----------------------------------------------------------


def _image_bytes(item: Any) -> bytes:
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, dict) and item.get("bytes") is not None:
        return bytes(item["bytes"])
    raise ILRMInputError(
        f"parquet row: images must be a list of JPEG bytes (or {{'bytes': ...}} dicts), got {type(item).__name__}"
    )


def parquet_row_to_record(row: dict[str, Any]) -> dict[str, Any]:
    """A parquet row (``key, url, timestamps, cameras (N·18 or N×18), images [JPEG bytes]``) → a
    pixelSplat scene record (the dict a ``.torch`` chunk holds)."""
    try:
        images = [torch.frombuffer(bytearray(_image_bytes(x)), dtype=torch.uint8).clone() for x in row["images"]]
        cameras = torch.as_tensor(row["cameras"], dtype=torch.float32).reshape(-1, 18)
        timestamps = torch.as_tensor(row.get("timestamps") or list(range(len(images))), dtype=torch.int64)
        return {
            "url": str(row.get("url") or ""),
            "timestamps": timestamps,
            "cameras": cameras,
            "images": images,
            "key": str(row["key"]),
        }
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        raise ILRMInputError(f"parquet row {row.get('key')!r} is not a pixelSplat scene row: {e}") from e


def split_parquet_files(files: Sequence[str], split: str, data_files: str | None = None) -> list[str]:
    """The parquet files of ``split``: those matching the glob ``data_files`` if given, else those
    with the split name as a path component or file-name prefix (``test/...``, ``test-0000.parquet``,
    ``data/test_000.parquet``)."""
    parquet = [f for f in files if f.endswith(".parquet")]
    if data_files:
        return sorted(f for f in parquet if fnmatch.fnmatch(f, data_files))
    pat = re.compile(rf"(^|/){re.escape(split)}([/_\-.]|$)")
    return sorted(f for f in parquet if pat.search(f))


def _load_rows(data_files: list[str], columns: list[str] | None, filters: Any, token: Any) -> Iterator[dict]:
    import datasets

    kwargs: dict[str, Any] = {"streaming": True, "split": "train"}
    if columns is not None:
        kwargs["columns"] = columns
    if filters is not None:
        kwargs["filters"] = filters
    if token is not None:
        kwargs["token"] = token
    ds = datasets.load_dataset("parquet", data_files={"train": data_files}, **kwargs)
    yield from ds.decode(False)  # keep images as the stored JPEG bytes (never re-encode)


def read_parquet_scenes(
    data_files: list[str],
    out_root: Path,
    wanted: Sequence[str],
    *,
    split: str = "test",
    token: str | bool | None = None,
) -> dict[str, Any]:
    """Stream the rows of ``wanted`` scenes out of parquet ``data_files`` (local paths or ``hf://``
    URLs) with ``datasets`` and write them as pixelSplat chunks under ``out_root/<split>/``.

    Scenes already written (listed in ``out_root/<split>/index.json``) are not read again, so an
    interrupted run resumes. Returns ``{"written": [...], "already": [...], "not_found": [...]}``.
    """
    from ilrm.data.re10k import read_chunk_index

    split_dir = out_root / split
    split_dir.mkdir(parents=True, exist_ok=True)
    index = read_chunk_index(split_dir) or {}
    todo = [k for k in wanted if k not in index]
    written: list[str] = []
    if todo:
        todo_set = set(todo)
        next_chunk = 1 + max((int(Path(c).stem) for c in set(index.values()) if Path(c).stem.isdigit()), default=-1)
        buffer: list[dict[str, Any]] = []

        def flush() -> None:
            nonlocal next_chunk
            if not buffer:
                return
            name = f"{next_chunk:06d}.torch"
            tmp = split_dir / f".{name}.tmp"
            torch.save(buffer, tmp)
            os.replace(tmp, split_dir / name)
            for record in buffer:
                index[record["key"]] = name
            # index.json last: a chunk counts only once the index names it.
            (split_dir / "index.json.tmp").write_text(json.dumps(index))
            os.replace(split_dir / "index.json.tmp", split_dir / "index.json")
            written.extend(r["key"] for r in buffer)
            buffer.clear()
            next_chunk += 1

        for row in _load_rows(data_files, None, [("key", "in", sorted(todo_set))], token):
            key = str(row["key"])
            if key not in todo_set:
                continue
            todo_set.discard(key)
            buffer.append(parquet_row_to_record(row))
            if len(buffer) >= SCENES_PER_CHUNK:
                flush()
            if not todo_set:
                break  # every wanted scene found: stop streaming
        flush()
    return {
        "written": written,
        "already": [k for k in wanted if k not in written and k in index],
        "not_found": [k for k in wanted if k not in index],
    }


def parquet_keys(data_files: list[str], token: str | bool | None = None) -> set[str]:
    """All scene keys in parquet ``data_files`` (reads only the ``key`` column)."""
    return {str(r["key"]) for r in _load_rows(data_files, ["key"], None, token)}


def _fetch_re10k_parquet(
    bench: Benchmark,
    files: list[str],
    data_files: list[str],
    out_root: Path,
    *,
    limit: int | None,
    index_path: str | Path | None,
    token: str | bool | None,
) -> dict[str, Any]:
    if not data_files:
        raise ILRMInputError(
            f"no parquet files of split '{bench.split}' among {files[:10]}...; pass --data-files GLOB to choose them"
        )
    available = parquet_keys(data_files, token)
    wanted = _take([k for k in _protocol_scenes(bench, index_path) if k in available], limit)
    report = read_parquet_scenes(data_files, out_root, wanted, split=bench.split, token=token)
    if report["not_found"]:
        raise ILRMInputError(f"{len(report['not_found'])} scenes listed by the key column were not read back")
    return {
        "format": "parquet",
        "data_root": str(out_root),
        "parquet_files": files,
        "files": _list_files(out_root),
        "scenes": wanted,
        "num_scenes": len(wanted),
        "converted": {"written": len(report["written"]), "already_present": len(report["already"])},
    }


def _hub_file_list(repo_id: str, sha: str, cache_dir: str | Path | None, token: Any) -> list[str]:
    """The repo's files at ``sha``: asked from the Hub, or listed from the cached snapshot when the Hub
    is offline or cannot be reached (then only the files fetched before are known)."""
    snapshot = repo_cache_dir(repo_id, "dataset", cache_dir) / "snapshots" / sha
    if not hub_offline():
        from huggingface_hub import HfApi

        with hub_errors(repo_id):
            try:
                return sorted(HfApi(token=token).list_repo_files(repo_id, repo_type="dataset", revision=sha))
            except network_errors() as e:
                if not snapshot.is_dir():
                    raise
                logger.warning("the Hub cannot be reached (%s); listing the cached snapshot %s", e, snapshot)
    if not snapshot.is_dir():
        raise ILRMInputError(f"'{repo_id}' at {sha} is not in the Hub cache: " + offline_message(repo_id))
    return _list_files(snapshot)


def _detect_format(files: Sequence[str], split: str, subfolder: str) -> str:
    prefix = f"{subfolder.strip('/')}/" if subfolder.strip("/") else ""
    if f"{prefix}{split}/index.json" in files:
        return "chunks"
    if any(f.endswith(".parquet") for f in files):
        return "parquet"
    raise ILRMInputError(
        f"cannot tell the layout: no {prefix}{split}/index.json (pixelSplat chunks) and no .parquet files"
    )


def _fetch_re10k(
    bench: Benchmark,
    *,
    repo_id: str | None,
    revision: str | None,
    source: Path | None,
    fmt: str,
    limit: int | None,
    subfolder: str,
    data_files_glob: str | None,
    index_path: str | Path | None,
    cache_dir: str | Path | None,
    local_dir: str | Path | None,
    eval_home: Path,
    token: Any,
) -> dict[str, Any]:
    if source is not None:
        files = _list_files(source)
        fmt = _detect_format(files, bench.split, subfolder) if fmt == "auto" else fmt
        if fmt == "chunks":
            root = source / subfolder if subfolder else source
            if not (root / bench.split / "index.json").is_file():
                raise ILRMInputError(f"{root / bench.split} has no index.json: not the pixelSplat chunk layout")
            index = json.loads((root / bench.split / "index.json").read_text())
            wanted = _take([k for k in _protocol_scenes(bench, index_path) if k in index], limit)
            return {"format": "chunks", "data_root": str(root), "source": str(source), "files": files,
                    "scenes": wanted, "num_scenes": len(wanted)}
        parquet = split_parquet_files(files, bench.split, data_files_glob)
        import hashlib

        out_root = eval_home / bench.name / f"parquet-local-{hashlib.sha256(str(source).encode()).hexdigest()[:12]}"
        result = _fetch_re10k_parquet(
            bench, parquet, [str(source / f) for f in parquet], out_root,
            limit=limit, index_path=index_path, token=token,
        )
        return {**result, "source": str(source)}

    if not repo_id:
        raise ILRMInputError(
            "RE10K has no official Hub mirror: pass --repo-id of a dataset repo in the pixelSplat chunk layout "
            "(test/index.json + test/*.torch) or a parquet mirror, or --source DIR for a local copy"
        )
    sha = resolve_revision(repo_id, revision, cache_dir=cache_dir, token=token)
    hub = {"repo_id": repo_id, "repo_type": "dataset", "revision": revision or "main", "revision_sha": sha}
    if fmt == "auto":
        fmt = _detect_format(_hub_file_list(repo_id, sha, cache_dir, token), bench.split, subfolder)
    if fmt == "chunks":
        result = _fetch_re10k_chunks(
            bench, repo_id, sha, limit=limit, subfolder=subfolder, index_path=index_path,
            cache_dir=cache_dir, local_dir=local_dir, token=token,
        )
        return {**hub, **result}
    files = _hub_file_list(repo_id, sha, cache_dir, token)
    parquet = split_parquet_files(files, bench.split, data_files_glob)
    if hub_offline() or local_dir is not None:
        # From the cache (offline) or a plain download folder; datasets streams the local files.
        from huggingface_hub import snapshot_download

        with hub_errors(repo_id):
            root = Path(
                snapshot_download(
                    repo_id, repo_type="dataset", revision=sha, allow_patterns=parquet,
                    cache_dir=cache_dir, local_dir=local_dir, token=token,
                )
            )
        data_files = [str(root / f) for f in parquet]
    else:
        # Online: datasets streams straight from the Hub (hf:// at the resolved commit), nothing cached.
        data_files = [f"hf://datasets/{repo_id}@{sha}/{f}" for f in parquet]
    out_root = eval_home / bench.name / f"parquet-{repo_id.replace('/', '--')}@{sha[:12]}"
    with hub_errors(repo_id):
        result = _fetch_re10k_parquet(
            bench, parquet, data_files, out_root, limit=limit, index_path=index_path, token=token
        )
    return {**hub, **result}


# ---- DL3DV-Benchmark -----------------------------------------------------------------------------


def _fetch_dl3dv(
    bench: Benchmark,
    *,
    repo_id: str | None,
    revision: str | None,
    source: Path | None,
    limit: int | None,
    index_path: str | Path | None,
    cache_dir: str | Path | None,
    local_dir: str | Path | None,
    eval_home: Path,
    token: Any,
) -> dict[str, Any]:
    wanted = _take(_protocol_scenes(bench, index_path), limit)
    if source is not None:
        root, conversion = prepare_dl3dv_root(source, wanted, eval_home=eval_home)
        return {"format": "dl3dv", "source": str(source), "data_root": str(root), "conversion": conversion,
                "scenes": wanted, "num_scenes": len(wanted)}
    hub_cfg = bench.hub or {}
    repo_id = repo_id or hub_cfg.get("repo_id")
    if not repo_id:
        raise ILRMInputError(f"benchmark {bench.name} has no default Hub repo; pass --repo-id or --source")
    from huggingface_hub import snapshot_download

    sha = resolve_revision(repo_id, revision, cache_dir=cache_dir, token=token)
    patterns = [p.format(scene=s) for s in wanted for p in hub_cfg.get("scene_patterns", ["{scene}/*"])]
    with hub_errors(repo_id):
        raw = Path(
            snapshot_download(
                repo_id, repo_type="dataset", revision=sha, allow_patterns=patterns,
                cache_dir=cache_dir, local_dir=local_dir, token=token,
            )
        )
    root, conversion = prepare_dl3dv_root(raw, wanted, eval_home=eval_home)
    return {
        "format": "dl3dv-benchmark",
        "repo_id": repo_id,
        "repo_type": "dataset",
        "revision": revision or "main",
        "revision_sha": sha,
        "snapshot": str(raw),
        "allow_patterns": patterns,
        "files": _list_files(raw),
        "data_root": str(root),
        "conversion": conversion,
        "scenes": wanted,
        "num_scenes": len(wanted),
    }


# ---- entry point ---------------------------------------------------------------------------------


def fetch(
    benchmark: str,
    *,
    repo_id: str | None = None,
    revision: str | None = None,
    limit: int | None = None,
    local_dir: str | Path | None = None,
    source: str | Path | None = None,
    fmt: str = "auto",
    subfolder: str = "",
    data_files: str | None = None,
    index_path: str | Path | None = None,
    cache_dir: str | Path | None = None,
    eval_home: str | Path | None = None,
    token: str | bool | None = None,
) -> FetchResult:
    """Get the data of ``benchmark``'s test protocol and write its manifest.

    repo_id / revision: Hub dataset repo (RE10K: a mirror, required unless ``source``; DL3DV: default
    ``DL3DV/DL3DV-Benchmark``). limit: only the first N protocol scenes. local_dir: download into this
    plain folder instead of the Hub cache. source: use an existing local folder instead of the Hub.
    fmt: RE10K layout ``auto`` / ``chunks`` / ``parquet``; subfolder: where the layout starts in the repo;
    data_files: glob choosing the parquet files of the split. index_path: replaces the protocol's
    index file (tests). cache_dir: Hub cache (default the standard one). eval_home: where manifests and
    converted data go (default :func:`eval.protocols.default_eval_home`).
    """
    bench = load_benchmark(benchmark)
    if fmt not in FORMATS:
        raise ILRMInputError(f"--format must be one of {FORMATS}, got {fmt!r}")
    home = Path(eval_home) if eval_home is not None else default_eval_home()
    src = Path(source).expanduser().resolve() if source is not None else None
    if src is not None and not src.is_dir():
        raise ILRMInputError(f"--source {src} is not a folder")
    if bench.kind == "procedural":
        info: dict[str, Any] = {"format": "procedural", "data_root": None,
                                "note": "generated on the fly by ilrm.data.procedural; nothing to download"}
    elif bench.kind == "re10k":
        info = _fetch_re10k(
            bench, repo_id=repo_id, revision=revision, source=src, fmt=fmt, limit=limit, subfolder=subfolder,
            data_files_glob=data_files, index_path=index_path, cache_dir=cache_dir, local_dir=local_dir,
            eval_home=home, token=token,
        )
    else:
        info = _fetch_dl3dv(
            bench, repo_id=repo_id, revision=revision, source=src, limit=limit, index_path=index_path,
            cache_dir=cache_dir, local_dir=local_dir, eval_home=home, token=token,
        )
    info["limit"] = limit
    if index_path is not None:
        info["index_file"] = str(index_path)
    path = _write_manifest(bench, info, home)
    manifest = json.loads(path.read_text())
    root = Path(manifest["data_root"]) if manifest.get("data_root") else None
    return FetchResult(bench.name, root, path, manifest)


def summarise(result: FetchResult) -> str:
    """A few lines for the terminal."""
    m = result.manifest
    out = io.StringIO()
    out.write(f"benchmark {result.benchmark}: format {m.get('format')}\n")
    if m.get("repo_id"):
        out.write(f"  repo {m['repo_id']} @ {m.get('revision')} = {m.get('revision_sha')}\n")
    if m.get("num_scenes") is not None:
        out.write(f"  scenes: {m['num_scenes']}\n")
    conv = m.get("conversion") or {}
    if conv.get("skipped_portrait"):
        out.write(f"  skipped (portrait): {len(conv['skipped_portrait'])}\n")
    if conv.get("failed"):
        out.write(f"  conversion FAILED for {len(conv['failed'])} scene(s): {conv['failed'][:3]}\n")
    out.write(f"  data root: {result.data_root}\n  manifest: {result.manifest_path}\n")
    return out.getvalue()
