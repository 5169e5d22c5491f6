"""Reading and writing Gaussians: the standard 3DGS ``.ply``, the compact ``.splat``, a viewer preview.

Layouts
-------
* ``.ply`` (INRIA 3DGS layout, what common splat viewers open): one ``vertex`` element of float32
  properties ``x y z nx ny nz f_dc_0..2 f_rest_0..3(K-1)-1 opacity scale_0..2 rot_0..3``, binary
  little-endian. Opacity is stored as a logit, scales as logs, rotations as (w, x, y, z).
  ``f_rest_*`` is channel-major (all red coefficients 1..K-1, then green, then blue), as INRIA writes
  it. Our SH follow gsplat (colour = SH evaluation + 0.5), which is the convention of INRIA files too,
  so ``f_dc`` is ``sh[..., 0, :]`` unchanged.
* ``.splat`` (antimatter15's web viewer format): 32 bytes per Gaussian — position 3×float32, activated
  scale 3×float32, RGBA 4×uint8 (DC colour, alpha = opacity), rotation 4×uint8 ((w, x, y, z) unit
  quaternion mapped by ``q·128 + 128``), sorted by decreasing ``scale product × opacity``.
* ``.ply`` files are parsed and written by plyfile (any property order, endianness, ascii); this
  module adds the 3DGS layout and the error messages around it.
* A preview ``.ply`` for Gradio's ``Model3D`` (``preview_ply``): same property names but DC only,
  re-centred and scaled to a ~1–2 unit bulk, near-transparent Gaussians dropped, size capped.

All writers take one scene of a (B, N, ...) batch (``batch_index``) and return the number written.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement, PlyElementParseError, PlyHeaderParseError, PlyListProperty
from torch import Tensor

from ilrm.errors import ILRMInputError
from ilrm.gaussians import SH_C0, Gaussians

__all__ = [
    "OPACITY_EPS",
    "load_ply",
    "load_splat",
    "preview_ply",
    "prune",
    "save_ply",
    "save_splat",
]

# Opacities are clamped to [eps, 1 - eps] before the logit so the stored value stays finite; an
# opacity of exactly 0 or 1 therefore reads back as eps or 1 - eps. 1e-6 is far above float32's
# spacing near 1 (6e-8), so sigmoid(logit(p)) recovers p to float32 precision everywhere else.
OPACITY_EPS = 1e-6
# Scales are clamped from below before the log (a zero scale would be -inf in the file).
_SCALE_MIN = 1e-30

_REQUIRED = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"] + [f"scale_{i}" for i in range(3)]
_REQUIRED += [f"rot_{i}" for i in range(4)]


# ---- selection / pruning -----------------------------------------------------------------


def _scene(gaussians: Gaussians, batch_index: int) -> Gaussians:
    """One scene as float32 CPU tensors with batch dimension 1."""
    if not -gaussians.batch_size <= batch_index < gaussians.batch_size:
        raise ILRMInputError(f"batch_index {batch_index} is out of range for {gaussians.batch_size} scene(s)")
    b = batch_index % gaussians.batch_size
    return gaussians.batch(b).detach().to(device="cpu", dtype=torch.float32)


def prune(gaussians: Gaussians, min_opacity: float = 0.005) -> tuple[Gaussians, int]:
    """Drop near-transparent Gaussians (opacity < ``min_opacity``) and any with non-finite parameters.

    gaussians: a batch of one scene (B = 1; use ``gaussians.batch(b)`` to pick one).
    Returns (kept Gaussians (1, N', ...), number removed).
    """
    if gaussians.batch_size != 1:
        raise ILRMInputError(
            f"prune works on one scene at a time, got a batch of {gaussians.batch_size}; pass gaussians.batch(b)"
        )
    finite = torch.ones(gaussians.num_gaussians, dtype=torch.bool, device=gaussians.means.device)
    for t in (gaussians.means, gaussians.quats, gaussians.scales, gaussians.sh):
        finite &= torch.isfinite(t[0]).flatten(1).all(-1)
    keep = finite & torch.isfinite(gaussians.opacities[0]) & (gaussians.opacities[0] >= min_opacity)
    removed = int((~keep).sum())
    return (gaussians if removed == 0 else gaussians[keep]), removed


def _prepare(gaussians: Gaussians, batch_index: int, prune_opacity: float | None) -> Gaussians:
    g = _scene(gaussians, batch_index)
    if prune_opacity is not None:
        g, _ = prune(g, prune_opacity)
    return g


# ---- .ply ---------------------------------------------------------------------------------


def _ply_columns(g: Gaussians, *, rest: bool = True) -> tuple[list[str], np.ndarray]:
    """Property names and an (N, P) float32 table in the 3DGS layout for a B = 1 float32 CPU scene."""
    n = g.num_gaussians
    sh = g.sh[0].numpy()  # (N, K, 3) float32, copied as is
    k = sh.shape[1] if rest else 1
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(3 * (k - 1))]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    table = np.empty((n, len(names)), dtype="<f4")
    table[:, 0:3] = g.means[0].numpy()
    table[:, 3:6] = 0
    table[:, 6:9] = sh[:, 0, :]
    # INRIA flattens (N, 3, K-1): all coefficients of red, then green, then blue.
    table[:, 9 : 9 + 3 * (k - 1)] = sh[:, 1:k, :].transpose(0, 2, 1).reshape(n, 3 * (k - 1))
    # The activations are inverted in float64 so that reading back recovers the float32 values.
    opa = np.clip(g.opacities[0].numpy().astype(np.float64), OPACITY_EPS, 1 - OPACITY_EPS)
    table[:, -8] = np.log(opa) - np.log1p(-opa)
    table[:, -7:-4] = np.log(np.maximum(g.scales[0].numpy().astype(np.float64), _SCALE_MIN))
    quats = g.quats[0].numpy().astype(np.float64)
    table[:, -4:] = quats / np.maximum(np.linalg.norm(quats, axis=-1, keepdims=True), 1e-30)
    return names, table


def _write_float_ply(path: str | Path, names: list[str], table: np.ndarray) -> None:
    """Write an (N, P) float32 table as one binary little-endian ``vertex`` element named ``names``.

    The table is viewed (no copy) as a structured array and handed to plyfile, which writes the
    header and the record buffer in one call. Measured for 1M Gaussians with SH degree 3 (62
    properties, 248 MB, 2 shared CPU cores, best of 5): plyfile writes the identical bytes in 0.13 s,
    the hand-written header + ``table.tobytes()`` it replaced took 0.80 s (the extra copy); whole
    ``save_ply`` 0.90 s against 1.74 s. ``load_ply`` reads at the same speed as the hand parser
    (median 2.62 s both). So there is no reason to keep a hand-written path.
    """
    table = np.ascontiguousarray(table, dtype="<f4")
    records = table.view(np.dtype([(name, "<f4") for name in names])).reshape(-1)
    PlyData([PlyElement.describe(records, "vertex")], byte_order="<").write(str(path))


def save_ply(
    path: str | Path, gaussians: Gaussians, *, batch_index: int = 0, prune_opacity: float | None = None
) -> int:
    """Write one scene in the standard 3DGS ``.ply`` layout (binary little-endian, all SH).

    gaussians: (B, N, ...) batch; scene ``batch_index`` is written. ``prune_opacity``: when set, Gaussians
    below this opacity (and non-finite ones) are left out. Opacities are clamped to
    [OPACITY_EPS, 1 − OPACITY_EPS] before the logit. Returns the number of Gaussians written.
    """
    g = _prepare(gaussians, batch_index, prune_opacity)
    names, table = _ply_columns(g)
    _write_float_ply(path, names, table)
    return table.shape[0]


def _read_vertices(path: str | Path) -> np.ndarray:
    """The ``vertex`` element of a PLY file (any format plyfile reads) as a numpy structured array (N,).

    plyfile parses the header and body; its errors are turned into messages that say what is wrong
    with the file. Binary bodies are memory-mapped, so a header that claims more vertices than the
    file holds fails on the size check instead of allocating the claimed amount.
    """
    with open(path, "rb") as f:
        if f.read(3) != b"ply":
            raise ILRMInputError(f"{path} is not a PLY file (it does not start with 'ply')")
    try:
        ply = PlyData.read(str(path), mmap="c")
    except PlyHeaderParseError as err:
        raise ILRMInputError(
            f"{path}: unreadable PLY header ({err}); the file is truncated, not a PLY, or uses an unknown format"
        ) from None
    except PlyElementParseError as err:
        raise ILRMInputError(f"{path}: the PLY body does not match its header ({err}); the file is truncated") from None
    except MemoryError:
        raise ILRMInputError(f"{path}: the PLY header claims more data than fits in memory; the file is too large or corrupt") from None
    names = [e.name for e in ply.elements]
    if "vertex" not in names:
        raise ILRMInputError(f"{path}: PLY file has no 'vertex' element (elements: {names})")
    vertex = ply["vertex"]
    if any(isinstance(p, PlyListProperty) for p in vertex.properties):
        raise ILRMInputError(f"{path}: 'vertex' element has list properties; not a Gaussian splat file")
    return vertex.data


def load_ply(path: str | Path) -> Gaussians:
    """Read a 3DGS ``.ply`` (any property order; binary little/big-endian or ascii) into Gaussians.

    Returns a batch of one scene: means (1, N, 3), quats (1, N, 4) normalised wxyz, scales (1, N, 3)
    = exp(stored), opacities (1, N) = sigmoid(stored), sh (1, N, K, 3) with K from the ``f_rest_*`` count.
    """
    v = _read_vertices(path)
    present = set(v.dtype.names or ())
    missing = [n for n in _REQUIRED if n not in present]
    if missing:
        raise ILRMInputError(f"{path}: not a 3DGS Gaussian PLY, missing properties {missing}")
    n_rest = sum(1 for n in present if n.startswith("f_rest_"))
    k = n_rest // 3 + 1
    if n_rest % 3 or math.isqrt(k) ** 2 != k or any(f"f_rest_{i}" not in present for i in range(n_rest)):
        raise ILRMInputError(f"{path}: {n_rest} f_rest_* properties do not form SH of a whole degree (3·((d+1)²−1))")

    def cols(names: list[str], dtype: type = np.float32) -> np.ndarray:
        """(N, len(names)) array; float32 properties are copied bit-exactly."""
        out = np.empty((len(v), len(names)), dtype=dtype)
        for i, name in enumerate(names):
            out[:, i] = v[name]
        return out

    n = len(v)
    means = cols(["x", "y", "z"])
    sh_flat = cols(["f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(n_rest)])
    sh = np.empty((n, k, 3), dtype=np.float32)
    sh[:, 0, :] = sh_flat[:, :3]
    sh[:, 1:, :] = sh_flat[:, 3:].reshape(n, 3, k - 1).transpose(0, 2, 1)  # channel-major → (K−1, 3)
    # Activations in float64, then rounded once to float32.
    opacities = 1.0 / (1.0 + np.exp(-cols(["opacity"], np.float64)[:, 0]))
    scales = np.exp(cols(["scale_0", "scale_1", "scale_2"], np.float64))
    quats = cols(["rot_0", "rot_1", "rot_2", "rot_3"], np.float64)
    quats = quats / np.maximum(np.linalg.norm(quats, axis=-1, keepdims=True), 1e-30)

    def t(a: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None]

    return Gaussians(means=t(means), quats=t(quats), scales=t(scales), opacities=t(opacities), sh=t(sh))


# ---- .splat -------------------------------------------------------------------------------

_SPLAT_DTYPE = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
assert _SPLAT_DTYPE.itemsize == 32


def save_splat(
    path: str | Path, gaussians: Gaussians, *, batch_index: int = 0, prune_opacity: float | None = None
) -> int:
    """Write one scene as an antimatter15 ``.splat`` (32 bytes per Gaussian, view-independent colour).

    Gaussians are sorted by decreasing ``scales.prod() × opacity`` (web viewers stream the file and
    draw the most important ones first). Returns the number written.
    """
    g = _prepare(gaussians, batch_index, prune_opacity)
    scales = g.scales[0].double().numpy()
    opa = g.opacities[0].double().numpy()
    order = np.argsort(-(scales.prod(-1) * opa), kind="stable")
    rgb = g.colors()[0].double().numpy()
    rgba = np.concatenate([rgb, opa[:, None]], axis=-1)
    quats = g.quats[0].double().numpy()
    quats = quats / np.maximum(np.linalg.norm(quats, axis=-1, keepdims=True), 1e-30)
    out = np.empty(g.num_gaussians, dtype=_SPLAT_DTYPE)
    out["position"] = g.means[0].numpy()[order]
    out["scale"] = scales[order]
    out["rgba"] = np.clip(np.rint(rgba[order] * 255), 0, 255).astype(np.uint8)
    out["rot"] = np.clip(np.rint(quats[order] * 128 + 128), 0, 255).astype(np.uint8)
    Path(path).write_bytes(out.tobytes())
    return len(out)


def load_splat(path: str | Path) -> Gaussians:
    """Read a ``.splat`` back: a batch of one scene with SH degree 0 (colours and rotations quantised to 8 bits)."""
    data = Path(path).read_bytes()
    if len(data) % _SPLAT_DTYPE.itemsize:
        raise ILRMInputError(f"{path}: size {len(data)} is not a multiple of 32 bytes; not a .splat file")
    v = np.frombuffer(data, dtype=_SPLAT_DTYPE)
    rgba = v["rgba"].astype(np.float64) / 255
    quats = (v["rot"].astype(np.float64) - 128) / 128
    quats = quats / np.maximum(np.linalg.norm(quats, axis=-1, keepdims=True), 1e-30)

    def t(a: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None]

    return Gaussians(
        means=t(v["position"]),
        quats=t(quats),
        scales=t(v["scale"]),
        opacities=t(rgba[:, 3]),
        sh=t((rgba[:, None, :3] - 0.5) / SH_C0),
    )


# ---- preview for Gradio's Model3D ---------------------------------------------------------


def preview_ply(
    path: str | Path,
    gaussians: Gaussians,
    max_gaussians: int = 300_000,
    min_opacity: float = 0.02,
    target_extent: float = 1.5,
    *,
    batch_index: int = 0,
    rotation: Tensor | None = None,
    seed: int = 0,
) -> dict:
    """Write a small, re-centred ``.ply`` that Gradio's ``Model3D`` splat viewer displays well.

    The viewer only reads binary little-endian files whose single element is ``vertex`` with float
    properties, ignores ``f_rest_*`` and orbits the origin at radius 5, so the file keeps DC colour
    only, is centred on the median of the kept means and scaled uniformly so that 90 % of them lie
    within ``target_extent / 2`` of the origin. Gaussians below ``min_opacity`` (or non-finite) are
    dropped, then a deterministic random subset (``seed``) of at most ``max_gaussians`` is kept.
    ``rotation``: optional (3, 3) world→preview rotation applied after centring (e.g. the transpose
    of the mean input camera's rotation, so the preview is seen the way the photos were taken).

    Returns {"path", "num_input", "num_pruned", "num_subsampled", "num_written", "center" (3,),
    "scale", "transform" (4×4 list mapping world points to preview points: ``scale·R·(x − center)``)}.
    """
    g = _scene(gaussians, batch_index)
    num_input = g.num_gaussians
    g, num_pruned = prune(g, min_opacity)
    if g.num_gaussians == 0:
        raise ILRMInputError(
            f"no Gaussian has opacity ≥ {min_opacity} (of {num_input}); nothing to preview — lower min_opacity"
        )
    num_subsampled = 0
    if g.num_gaussians > max_gaussians:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(g.num_gaussians, size=max_gaussians, replace=False))
        num_subsampled = g.num_gaussians - max_gaussians
        g = g[torch.from_numpy(keep)]
    means = g.means[0].double()
    center = means.median(dim=0).values
    radius = float(torch.quantile((means - center).norm(dim=-1), 0.9))
    scale = (target_extent / 2) / radius if radius > 1e-12 else 1.0
    R = torch.eye(3, dtype=torch.float64) if rotation is None else rotation.detach().double().cpu().reshape(3, 3)
    if not torch.allclose(R @ R.T, torch.eye(3, dtype=torch.float64), atol=1e-4) or torch.linalg.det(R) < 0:
        raise ILRMInputError("preview rotation must be a proper 3×3 rotation matrix (orthonormal, det +1)")
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = scale * R
    T[:3, 3] = -scale * (R @ center)
    g = g.transform(T.float())
    names, table = _ply_columns(g, rest=False)
    _write_float_ply(path, names, table)
    return {
        "path": str(path),
        "num_input": num_input,
        "num_pruned": num_pruned,
        "num_subsampled": num_subsampled,
        "num_written": table.shape[0],
        "center": center.tolist(),
        "scale": scale,
        "transform": T.tolist(),
    }
