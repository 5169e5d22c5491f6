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
* A preview ``.ply`` for Gradio's ``Model3D`` (``preview_ply``): same property names but DC only
  (baked from all SH as seen from the preview camera, clamped to [0, 1]), moved so that the viewer's
  fixed default camera looks through the given input camera, near-transparent Gaussians dropped,
  size capped.

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
    "viewer_camera",
    "viewer_focal_scale",
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


def _scene(gaussians: Gaussians, batch_index: int, device: torch.device | str | None = "cpu") -> Gaussians:
    """One scene as float32 tensors with batch dimension 1, on ``device`` (None: where it is)."""
    if not -gaussians.batch_size <= batch_index < gaussians.batch_size:
        raise ILRMInputError(f"batch_index {batch_index} is out of range for {gaussians.batch_size} scene(s)")
    b = batch_index % gaussians.batch_size
    return gaussians.batch(b).detach().to(device=device or gaussians.means.device, dtype=torch.float32)


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
    """One float32 CPU scene, pruned where it lives first (on a GPU the mask and gather are ~1 ms, on
    the CPU they were 30 of the 40 ms for 229k Gaussians, and fewer bytes cross to the host)."""
    if prune_opacity is None:
        return _scene(gaussians, batch_index)
    g, _ = prune(_scene(gaussians, batch_index, device=None), prune_opacity)
    return g.to(device="cpu")


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
    n = g.num_gaussians
    scales = g.scales[0].double().numpy()
    opa = g.opacities[0].double().numpy()
    order = np.argsort(-(scales.prod(-1) * opa), kind="stable")
    rgba = np.concatenate([g.colors()[0].double().numpy(), opa[:, None]], axis=-1)
    quats = g.quats[0].double().numpy()
    quats = quats / np.maximum(np.linalg.norm(quats, axis=-1, keepdims=True), 1e-30)
    # Rows are packed unsorted into one (N, 32) byte table and gathered once: assigning four
    # structured fields through the permutation was 120 of the 170 ms for 229k Gaussians.
    rows = np.empty((n, _SPLAT_DTYPE.itemsize), dtype=np.uint8)
    rows[:, 0:12] = np.ascontiguousarray(g.means[0].numpy(), dtype="<f4").view(np.uint8)
    rows[:, 12:24] = np.ascontiguousarray(scales, dtype="<f4").view(np.uint8)
    np.clip(np.rint(rgba * 255), 0, 255, out=rgba)
    rows[:, 24:28] = rgba
    np.clip(np.rint(quats * 128 + 128), 0, 255, out=quats)
    rows[:, 28:32] = quats
    Path(path).write_bytes(np.take(rows, order, axis=0).tobytes())
    return n


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
#
# Gradio 6's Model3D draws .ply/.splat files with gsplat.js (templates/frontend/assets/Canvas3DGS-*.js).
# Its default view, which ``camera_position`` does not change for splats:
#   * Camera: pinhole, fx = fy = 1132 canvas pixels whatever the canvas size (so the field of view
#     grows with the canvas), principal point at the canvas centre, near 0.1, far 100; camera axes
#     x right, y down, z forward (OpenCV), view matrix Rᵀ(x − eye).
#   * OrbitControls(camera, canvas) with alpha = beta = 0.5 rad, radius 5, target (0, 0, 0): the eye
#     is target + 5·(sin α cos β, −sin β, −cos α cos β), looking at the target, rotation
#     Ry(yaw)·Rx(pitch) with yaw = atan2(t_x, t_z), pitch = asin(−t_y), t the unit view direction.
#   * Per-splat colour = clamp((0.5 + SH_C0·f_dc)·255) to 8 bits, f_rest ignored; the covariance goes
#     through half floats; splats whose centre projects beyond 1.2× the canvas are skipped.
VIEWER_FOCAL_PX = 1132.0
VIEWER_ORBIT = (0.5, 0.5, 5.0)  # alpha, beta (rad), radius
VIEWER_NEAR, VIEWER_FAR = 0.1, 100.0
# The demo's canvas (gr.Model3D(height=480) in its column), CSS pixels (width, height), as measured
# in Chromium (the block's 1 px border takes the rest).
DEFAULT_CANVAS = (638, 478)


def viewer_camera() -> np.ndarray:
    """The Model3D splat viewer's default camera as a (4, 4) float64 camera→world (OpenCV axes)."""
    a, b, r = VIEWER_ORBIT
    eye = r * np.array([math.sin(a) * math.cos(b), -math.sin(b), -math.cos(a) * math.cos(b)])
    t = -eye / np.linalg.norm(eye)
    pitch, yaw = math.asin(-t[1]), math.atan2(t[0], t[2])
    cp, sp, cy, sy = math.cos(pitch), math.sin(pitch), math.cos(yaw), math.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    c2w = np.eye(4)
    c2w[:3, :3] = ry @ rx
    c2w[:3, 3] = eye
    return c2w


def viewer_focal_scale(intrinsics: Tensor | np.ndarray, image_size: tuple[int, int],
                       canvas: tuple[int, int] = DEFAULT_CANVAS) -> float:
    """Depth stretch k that makes the viewer's fixed focal length show the photo's field of view.

    Scaling camera-space z by k turns a projection with focal f_v into one with f_v / k. The photo
    (``image_size`` = (H, W), ``intrinsics`` fx, fy in its pixels) is fitted to cover the canvas
    ((width, height) CSS pixels) the way the app shows images: scaled by max(cw / W, ch / H), centre
    cropped; so k = f_v / (f_photo · max(cw / W, ch / H)), using the mean of fx and fy.
    """
    K = np.asarray(intrinsics, dtype=np.float64).reshape(3, 3)
    h, w = image_size
    cover = max(canvas[0] / w, canvas[1] / h)
    return VIEWER_FOCAL_PX / (0.5 * (K[0, 0] + K[1, 1]) * cover)


# gsplat.js packs 4·Σ (half floats) and draws each splat with a quarter of the 2-D variance it reads
# (its quad spans ±2·sqrt(2λ) in NDC units, i.e. ±sqrt(2λ) pixels, for exp(−|p|²): σ²_drawn = λ / 4), so
# the footprint is right, but the 0.3 px² it adds before the quarter is worth 0.075 px² where our
# rasterizer adds 0.3 (INRIA's dilation). The missing 0.225 px² is added in 3-D, isotropically, as
# 0.225·(z / 1132)² at each Gaussian's depth z for the viewer: drawn = Σ₂D + 0.225 + 0.075.
# (Checked by running the viewer's own pack() WebAssembly under node: covariance entries = 4·Σ.)
# The viewer also fades the scene in at load (FadeInPass: depthFade += 0.01 per drawn frame, splats
# shrunk by their depth until it reaches 1), so "at load" means after ~100 frames: under a software
# GL (headless Chromium, SwiftShader) that is tens of seconds, during which far splats are thin and
# see-through. The file's order does not matter: the viewer sorts by depth itself (front to back).
VIEWER_MISSING_DILATION_PX2 = 0.3 - 0.3 / 4


def _preview_covariances(quats: Tensor, scales: Tensor, A: Tensor, extra_var: Tensor) -> tuple[Tensor, Tensor]:
    """(w, x, y, z) rotations and scales of Σ' = A Σ Aᵀ + extra_var·I for each Gaussian (float64)."""
    from ilrm.gaussians import quat_to_rotmat, rotmat_to_quat

    M = A @ quat_to_rotmat(quats) * scales[..., None, :]  # (N, 3, 3): A R diag(s)
    cov = M @ M.transpose(1, 2) + extra_var[:, None, None] * torch.eye(3, dtype=M.dtype)
    evals, U = torch.linalg.eigh(cov)
    U = torch.where(torch.linalg.det(U)[:, None, None] < 0, U * torch.tensor([1.0, 1.0, -1.0], dtype=U.dtype), U)
    return torch.nn.functional.normalize(rotmat_to_quat(U), dim=-1), evals.clamp_min(0).sqrt()


def preview_ply(
    path: str | Path,
    gaussians: Gaussians,
    max_gaussians: int = 300_000,
    min_opacity: float = 0.02,
    target_extent: float = 1.5,
    *,
    batch_index: int = 0,
    camera: Tensor | None = None,
    intrinsics: Tensor | None = None,
    image_size: tuple[int, int] | None = None,
    canvas: tuple[int, int] = DEFAULT_CANVAS,
    rotation: Tensor | None = None,
    seed: int = 0,
) -> dict:
    """Write a ``.ply`` that Gradio's ``Model3D`` splat viewer opens looking through ``camera``.

    The viewer (gsplat.js, see the notes above :data:`VIEWER_FOCAL_PX`) only reads binary
    little-endian files whose single element is ``vertex`` with float properties and ignores
    ``f_rest_*``; its default camera cannot be moved from Python, so the Gaussians are moved instead.

    With ``camera`` ((4, 4) camera→world, OpenCV axes, in the Gaussians' frame; the app passes the
    first input camera) and its ``intrinsics`` ((3, 3) pixels) for an image of ``image_size`` (H, W):
    a point x goes to ``V · D · s · C⁻¹ x`` where C⁻¹ is the camera's world→camera map, s a uniform
    scale putting the median depth of the kept Gaussians at the orbit radius (5, where the viewer
    orbits), D = diag(1, 1, k) a stretch of camera depth by :func:`viewer_focal_scale` (so the
    viewer's fixed focal length shows the photo's field of view on a ``canvas`` of (width, height)
    CSS pixels), and V the viewer's camera→world (:func:`viewer_camera`). The viewer's camera then
    sees exactly what the photo's camera sees (same projection, same 2-D splat footprints).
    Gaussians behind the camera (z ≤ 1 % of the median depth) are dropped. Each covariance gets an
    isotropic ``0.225·(z/1132)²`` (z its depth for the viewer), so that the viewer's drawn
    footprint and dilation match ours (:data:`VIEWER_MISSING_DILATION_PX2`).
    Without ``camera`` (the previous behaviour) the scene is centred on the median of the kept means
    (the orbit target), scaled so 90 % of them lie within ``target_extent / 2`` of it and rotated by
    ``rotation`` ((3, 3), default identity): ``scale·R·(x − centre)``.

    Colours are baked: DC = the SH colour seen from the camera's centre (all SH degrees, along each
    Gaussian's viewing ray; the scene centre's direction without ``camera``), clamped to [0, 1],
    because the viewer clamps each splat's 8-bit colour and ignores f_rest. Gaussians below
    ``min_opacity`` (or non-finite) are dropped, then a deterministic random subset (``seed``) of at
    most ``max_gaussians`` is kept.

    Returns {"path", "num_input", "num_pruned", "num_behind", "num_subsampled", "num_written",
    "scale" (s), "depth_stretch" (k), "transform" (4×4 list: the affine map of world points to preview
    points, ``V·D·s·C⁻¹``, or ``s·[R | −R·centre]`` without camera), "center" (3,; the camera centre
    or the median)}.
    """
    from ilrm.rendering.reference import sh_to_rgb

    g = _scene(gaussians, batch_index)
    num_input = g.num_gaussians
    g, num_pruned = prune(g, min_opacity)
    if g.num_gaussians == 0:
        raise ILRMInputError(
            f"no Gaussian has opacity ≥ {min_opacity} (of {num_input}); nothing to preview — lower min_opacity"
        )
    Vw = torch.from_numpy(viewer_camera())
    means = g.means[0].double()
    num_behind, k = 0, 1.0
    if camera is not None:
        C = camera.detach().double().cpu().reshape(4, 4)
        if intrinsics is None or image_size is None:
            raise ILRMInputError("preview_ply with a camera needs its intrinsics and image_size (H, W)")
        w2c = torch.linalg.inv(C)
        z = means @ w2c[2, :3] + w2c[2, 3]
        z_med = float(z.median())
        if not z_med > 0:
            raise ILRMInputError("most Gaussians lie behind the preview camera; nothing to preview from it")
        front = z > 0.01 * z_med
        num_behind = int((~front).sum())
        if num_behind:
            g = g[front]
            means = g.means[0].double()
        center = C[:3, 3]
        scale = VIEWER_ORBIT[2] / z_med
        k = viewer_focal_scale(intrinsics.detach().cpu() if isinstance(intrinsics, Tensor) else intrinsics,
                               image_size, canvas)
        A = Vw[:3, :3] @ torch.diag(torch.tensor([1.0, 1.0, k], dtype=torch.float64)) @ w2c[:3, :3] * scale
        T = torch.eye(4, dtype=torch.float64)
        T[:3, :3] = A
        T[:3, 3] = Vw[:3, :3] @ (torch.tensor([1.0, 1.0, k], dtype=torch.float64) * w2c[:3, 3] * scale) + Vw[:3, 3]
        dirs = means - center
    else:
        center = means.median(dim=0).values
        radius = float(torch.quantile((means - center).norm(dim=-1), 0.9))
        scale = (target_extent / 2) / radius if radius > 1e-12 else 1.0
        R = torch.eye(3, dtype=torch.float64) if rotation is None else rotation.detach().double().cpu().reshape(3, 3)
        if not torch.allclose(R @ R.T, torch.eye(3, dtype=torch.float64), atol=1e-4) or torch.linalg.det(R) < 0:
            raise ILRMInputError("preview rotation must be a proper 3×3 rotation matrix (orthonormal, det +1)")
        A = scale * R
        T = torch.eye(4, dtype=torch.float64)
        T[:3, :3] = A
        T[:3, 3] = -A @ center
        eye = center + R.T @ Vw[:3, 3] / scale  # the viewer's eye in world coordinates
        dirs = means - eye
    num_subsampled = 0
    if g.num_gaussians > max_gaussians:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(g.num_gaussians, size=max_gaussians, replace=False))
        num_subsampled = g.num_gaussians - max_gaussians
        g = g[torch.from_numpy(keep)]
        dirs = dirs[torch.from_numpy(keep)]
    sh = g.sh[0].double()
    degree = math.isqrt(sh.shape[1]) - 1
    rgb = sh_to_rgb(sh, torch.nn.functional.normalize(dirs, dim=-1), degree).clamp(0, 1)
    new_means = g.means[0].double() @ T[:3, :3].T + T[:3, 3]
    view_z = (new_means - Vw[:3, 3]) @ Vw[:3, 2]  # depth in front of the viewer's camera
    extra = VIEWER_MISSING_DILATION_PX2 * (view_z.clamp_min(1e-6) / VIEWER_FOCAL_PX) ** 2
    quats, scales = _preview_covariances(g.quats[0].double(), g.scales[0].double(), A, extra)
    g = Gaussians(
        means=new_means.float()[None], quats=quats.float()[None], scales=scales.float()[None],
        opacities=g.opacities, sh=((rgb - 0.5) / SH_C0).float()[None, :, None],
    )
    names, table = _ply_columns(g, rest=False)
    _write_float_ply(path, names, table)
    return {
        "path": str(path),
        "num_input": num_input,
        "num_pruned": num_pruned,
        "num_behind": num_behind,
        "num_subsampled": num_subsampled,
        "num_written": table.shape[0],
        "center": center.tolist(),
        "scale": scale,
        "depth_stretch": k,
        "transform": T.tolist(),
    }
