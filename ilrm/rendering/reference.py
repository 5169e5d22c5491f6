"""Pure-PyTorch reference rasterizer that follows gsplat 1.5.3's classic 3DGS pipeline.

It runs anywhere PyTorch runs (CPU for tests and CPU inference, CUDA for parity checks) and is
differentiable through PyTorch autograd. The conventions reproduced from gsplat (``rasterization``
with ``rasterize_mode="classic"``, ``camera_model="pinhole"``, ``radius_clip=0``):

Projection (per image, per Gaussian)
  * camera-space mean ``t = R μ + t_w`` (``viewmats`` = world-to-camera); Gaussians with
    ``z < near`` or ``z > far`` are culled;
  * ``Σ = R_q S S R_qᵀ`` with the quaternion normalised; ``Σ_cam = R Σ Rᵀ``;
  * EWA: ``Σ_2D = J Σ_cam Jᵀ``, ``J = [[fx/z, 0, -fx·x'/z²], [0, fy/z, -fy·y'/z²]]`` where
    ``x' = z·clamp(x/z, -(cx/fx + 0.3·tan_fovx), (W-cx)/fx + 0.3·tan_fovx)`` (same for y'),
    ``tan_fovx = 0.5·W/fx``; the 2D mean uses the unclamped ``x/z``;
  * 0.3-pixel dilation: ``eps2d`` added to the diagonal of ``Σ_2D``, no opacity compensation
    (classic mode); culled if ``det(Σ_2D) <= 0``;
  * culled if ``opacity < 1/255``; opacity-aware extent
    ``e = min(3.33, sqrt(2·ln(opacity·255)))``, radii ``ceil(e·sqrt(Σ_2D[0,0]))`` and
    ``ceil(e·sqrt(Σ_2D[1,1]))``; culled if a radius is 0 or the box lies off the image
    (``mx + rx <= 0``, ``mx - rx >= W``, and the same for y).
Colour
  * SH of degree 0..4 evaluated at ``normalize(μ - camera_centre)`` with gsplat's basis constants
    and signs, then ``clamp_min(value + 0.5, 0)``.
Rasterisation
  * 16×16 tiles; a Gaussian goes to tiles ``floor((m - r)/16) .. ceil((m + r)/16)`` (exclusive end,
    clipped to the image); each tile's list is sorted by camera-space z (stable, so ties keep the
    Gaussian index order, as gsplat's stable radix sort does);
  * pixel centres at ``(x + 0.5, y + 0.5)``; ``σ = ½(a·dx² + c·dy²) + b·dx·dy`` with
    ``(dx, dy) = mean - pixel`` and ``[[a, b], [b, c]] = Σ_2D⁻¹``;
    ``α = min(0.999, opacity·exp(-σ))``; skipped if ``σ < 0`` or ``α < 1/255``;
  * front to back: if ``T·(1 - α) <= 1e-4`` the pixel is finished and *that* Gaussian is not
    composited (gsplat's exclusive rule); otherwise ``C += c·α·T``, ``T ← T·(1 - α)``;
  * output ``C + T·background``, alpha ``1 - T``; expected depth ``Σ wᵢ zᵢ / max(1 - T, 1e-10)``
    (gsplat's "RGB+ED").

To stay usable on CPU, each tile's sorted list is composited in chunks (all active tiles at once,
transmittance carried between chunks), tiles whose pixels are all finished drop out, and under
autograd each chunk is checkpointed so memory stays bounded (the chunk is recomputed in backward).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..gaussians import quat_to_rotmat

TILE_SIZE = 16
ALPHA_THRESHOLD = 1.0 / 255.0  # gsplat's ALPHA_THRESHOLD
MAX_ALPHA = 0.999
MIN_TRANSMITTANCE = 1e-4
MAX_EXTENT = 3.33  # gsplat's cap on the opacity-aware extent (in standard deviations)
DEFAULT_EPS2D = 0.3

# Real SH constants (Sloan 2013 layout, Condon-Shortley signs), as gsplat evaluates them.
_C0 = 0.28209479177387814  # 1 / (2 sqrt(pi))
_C1 = 0.4886025119029199  # sqrt(3 / (4 pi))
_C2 = (1.0925484305920792, 0.31539156525252005, 0.5462742152960396)
_C3 = (0.5900435899266435, 2.890611442640554, 0.4570457994644658, 0.3731763325901154, 1.445305721320277)
_C4 = (
    2.5033429417967046,  # xy(x²-y²)
    1.7701307697799304,  # yz(3x²-y²)
    0.9461746957575601,  # xy(7z²-1)
    0.6690465435572892,  # yz(7z²-3)
    0.10578554691520431,  # 35z⁴-30z²+3
    0.47308734787878004,  # (x²-y²)(7z²-1)
    0.6258357354491761,  # x⁴-6x²y²+y⁴
)


def sh_basis(degree: int, dirs: Tensor) -> Tensor:
    """Real SH basis in gsplat's order and signs.

    degree: 0..4; dirs: (..., 3) (normalised here). Returns (..., (degree + 1)²).
    """
    if not 0 <= degree <= 4:
        raise ValueError(f"SH degree must be in 0..4, got {degree}")
    x, y, z = F.normalize(dirs, dim=-1).unbind(-1)
    out = [torch.full_like(x, _C0)]
    if degree >= 1:
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [
            _C2[0] * x * y,
            -_C2[0] * y * z,
            _C2[1] * (3 * zz - 1),
            -_C2[0] * x * z,
            _C2[2] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            -_C3[0] * y * (3 * xx - yy),
            _C3[1] * x * y * z,
            -_C3[2] * y * (5 * zz - 1),
            _C3[3] * z * (5 * zz - 3),
            -_C3[2] * x * (5 * zz - 1),
            _C3[4] * z * (xx - yy),
            -_C3[0] * x * (xx - 3 * yy),
        ]
    if degree >= 4:
        out += [
            _C4[0] * x * y * (xx - yy),
            -_C4[1] * y * z * (3 * xx - yy),
            _C4[2] * x * y * (7 * zz - 1),
            -_C4[3] * y * z * (7 * zz - 3),
            _C4[4] * (35 * zz * zz - 30 * zz + 3),
            -_C4[3] * x * z * (7 * zz - 3),
            _C4[5] * (xx - yy) * (7 * zz - 1),
            -_C4[1] * x * z * (xx - 3 * yy),
            _C4[6] * (xx * xx - 6 * xx * yy + yy * yy),
        ]
    return torch.stack(out, dim=-1)


def sh_to_rgb(sh: Tensor, dirs: Tensor, degree: int) -> Tensor:
    """Colour of SH coefficients seen along ``dirs``: ``clamp_min(Σ_k Y_k(dir)·sh_k + 0.5, 0)``.

    sh: (..., K, 3) with K >= (degree + 1)²; dirs: (..., 3) from the camera to the Gaussian.
    Returns (..., 3).
    """
    k = (degree + 1) ** 2
    basis = sh_basis(degree, dirs)  # (..., k)
    return ((basis.unsqueeze(-1) * sh[..., :k, :]).sum(-2) + 0.5).clamp_min(0.0)


@dataclass
class Projection:
    """The (image, Gaussian) pairs that survive culling, in gsplat's "packed" layout.

    image_ids: (P,) int64 in [0, B·V) (``b·V + v``); batch_ids / gaussian_ids: (P,) int64;
    means2d: (P, 2) pixels; conics: (P, 3) ``(a, b, c)`` of ``Σ_2D⁻¹ = [[a, b], [b, c]]``;
    depths: (P,) camera-space z; radii: (P, 2) int64 half-extent (x, y) of the bounding box.
    """

    image_ids: Tensor
    batch_ids: Tensor
    gaussian_ids: Tensor
    means2d: Tensor
    conics: Tensor
    depths: Tensor
    radii: Tensor


def project_gaussians(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    *,
    near: float = 0.01,
    far: float = 1e10,
    eps2d: float = DEFAULT_EPS2D,
) -> Projection:
    """EWA-project Gaussians into every camera and cull them as gsplat does.

    means: (B, N, 3); quats: (B, N, 4) wxyz (any norm); scales: (B, N, 3); opacities: (B, N);
    viewmats: (B, V, 4, 4) world-to-camera (OpenCV axes); Ks: (B, V, 3, 3) pixels.
    """
    B, N = means.shape[:2]
    V = viewmats.shape[1]
    R = viewmats[..., :3, :3]  # (B, V, 3, 3)
    t = viewmats[..., :3, 3]  # (B, V, 3)

    # Cheap first pass on every (b, v, n): only the depth is needed to cull.
    with torch.no_grad():
        z_all = torch.einsum("bvj,bnj->bvn", R[..., 2, :], means) + t[..., 2, None]
        keep = (z_all >= near) & (z_all <= far) & (opacities[:, None, :] >= ALPHA_THRESHOLD)
        b_idx, v_idx, g_idx = keep.nonzero(as_tuple=True)

    Rv = R[b_idx, v_idx]  # (P, 3, 3)
    mean_c = (Rv @ means[b_idx, g_idx].unsqueeze(-1)).squeeze(-1) + t[b_idx, v_idx]  # (P, 3)
    rot = quat_to_rotmat(quats[b_idx, g_idx])  # normalises, as gsplat does
    M = Rv @ rot * scales[b_idx, g_idx].unsqueeze(-2)  # R · R_q · S
    cov_c = M @ M.transpose(-1, -2)  # (P, 3, 3)

    K = Ks[b_idx, v_idx]
    fx, fy, cx, cy = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]
    x, y, z = mean_c.unbind(-1)
    # Clamp the point used in the Jacobian to 1.3× the field of view (gsplat's persp_proj).
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    tx = z * torch.minimum(lim_x_pos, torch.maximum(-lim_x_neg, x / z))
    ty = z * torch.minimum(lim_y_pos, torch.maximum(-lim_y_neg, y / z))
    zeros = torch.zeros_like(z)
    J = torch.stack(
        [fx / z, zeros, -fx * tx / (z * z), zeros, fy / z, -fy * ty / (z * z)],
        dim=-1,
    ).reshape(-1, 2, 3)
    cov2d = J @ cov_c @ J.transpose(-1, -2)
    a = cov2d[:, 0, 0] + eps2d
    b = cov2d[:, 0, 1]
    c = cov2d[:, 1, 1] + eps2d
    det = a * c - b * b
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)

    with torch.no_grad():
        opa = opacities[b_idx, g_idx]
        extent = torch.sqrt(2.0 * torch.log(opa / ALPHA_THRESHOLD)).clamp_max(MAX_EXTENT)
        rx = torch.ceil(extent * torch.sqrt(a.clamp_min(0)))
        ry = torch.ceil(extent * torch.sqrt(c.clamp_min(0)))
        mx, my = means2d.unbind(-1)
        visible = (
            (det > 0) & (rx > 0) & (ry > 0) & (mx + rx > 0) & (mx - rx < width) & (my + ry > 0) & (my - ry < height)
        )
        sel = visible.nonzero(as_tuple=True)[0]

    det = det[sel]
    conics = torch.stack([c[sel] / det, -b[sel] / det, a[sel] / det], dim=-1)
    return Projection(
        image_ids=b_idx[sel] * V + v_idx[sel],
        batch_ids=b_idx[sel],
        gaussian_ids=g_idx[sel],
        means2d=means2d[sel],
        conics=conics,
        depths=z[sel],
        radii=torch.stack([rx[sel], ry[sel]], dim=-1).long(),
    )


def bin_tiles(
    proj: Projection, num_images: int, tiles_x: int, tiles_y: int, tile_size: int = TILE_SIZE
) -> tuple[Tensor, Tensor]:
    """Assign projected Gaussians to the tiles their bounding box touches, sorted front to back.

    Returns ``flat_ids`` (M,) indices into the projection's P entries, grouped by tile
    (tile key ``image·tiles_y·tiles_x + ty·tiles_x + tx``) and sorted by depth inside a tile, and
    ``offsets`` (num_images·tiles_y·tiles_x + 1,) so tile k's entries are
    ``flat_ids[offsets[k]:offsets[k+1]]``.
    """
    device = proj.means2d.device
    num_tiles = num_images * tiles_x * tiles_y
    with torch.no_grad():
        # Depth order first (stable), so the stable sort by tile below keeps it inside each tile.
        order = torch.sort(proj.depths.detach(), stable=True).indices
        # float32 arithmetic, as gsplat's intersect_tile kernel
        m = proj.means2d.detach()[order].float() / tile_size
        r = proj.radii[order].float() / tile_size
        x0 = torch.floor(m[:, 0] - r[:, 0]).clamp(0, tiles_x).long()
        x1 = torch.ceil(m[:, 0] + r[:, 0]).clamp(0, tiles_x).long()
        y0 = torch.floor(m[:, 1] - r[:, 1]).clamp(0, tiles_y).long()
        y1 = torch.ceil(m[:, 1] + r[:, 1]).clamp(0, tiles_y).long()
        w = x1 - x0
        counts = w * (y1 - y0)
        total = int(counts.sum())
        if total == 0:
            return torch.zeros(0, dtype=torch.long, device=device), torch.zeros(
                num_tiles + 1, dtype=torch.long, device=device
            )
        entry = torch.repeat_interleave(torch.arange(order.numel(), device=device), counts)
        first = torch.cumsum(counts, 0) - counts
        local = torch.arange(total, device=device) - first[entry]
        w_e = w[entry]
        ty = y0[entry] + local // w_e
        tx = x0[entry] + local % w_e
        key = proj.image_ids[order][entry] * (tiles_x * tiles_y) + ty * tiles_x + tx
        key_order = torch.sort(key, stable=True).indices
        flat_ids = order[entry[key_order]]
        per_tile = torch.bincount(key, minlength=num_tiles)
        offsets = torch.zeros(num_tiles + 1, dtype=torch.long, device=device)
        offsets[1:] = torch.cumsum(per_tile, 0)
    return flat_ids, offsets


def _composite_chunk(
    pix: Tensor, feats: Tensor, T_in: Tensor, done_in: Tensor, num_channels: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Composite one depth-sorted chunk of Gaussians onto the pixels of a set of tiles.

    pix: (A, P, 2) pixel centres; feats: (A, C, 6 + D) per Gaussian
    ``[mean2d(2), conic(3), opacity(1), features(D)]`` (padding entries have opacity 0);
    T_in: (A, P) transmittance so far; done_in: (A, P) bool, pixels that already stopped.
    Returns (contribution (A, P, D), T_out (A, P), done_out (A, P)).
    """
    mean = feats[..., 0:2]
    ca, cb, cc = feats[..., 2], feats[..., 3], feats[..., 4]
    opa = feats[..., 5]
    col = feats[..., 6 : 6 + num_channels]
    dx = mean[:, None, :, 0] - pix[:, :, None, 0]  # (A, P, C)
    dy = mean[:, None, :, 1] - pix[:, :, None, 1]
    sigma = 0.5 * (ca[:, None] * dx * dx + cc[:, None] * dy * dy) + cb[:, None] * dx * dy
    alpha = (opa[:, None] * torch.exp(-sigma.clamp_min(0))).clamp_max(MAX_ALPHA)
    skip = (sigma < 0) | (alpha < ALPHA_THRESHOLD)
    alpha = alpha.masked_fill(skip, 0.0)
    with torch.no_grad():
        # Transmittance after each Gaussian (inclusive); a Gaussian is composited only while it
        # keeps T above the threshold, and nothing after the first one that does not.
        incl = T_in.unsqueeze(-1) * torch.cumprod(1.0 - alpha, dim=-1)
        keep = (incl > MIN_TRANSMITTANCE) & ~done_in.unsqueeze(-1)
        done_out = done_in | (incl[..., -1] <= MIN_TRANSMITTANCE)
    alpha = alpha * keep
    trans = torch.cumprod(1.0 - alpha, dim=-1)  # (A, P, C), inclusive
    T_before = T_in.unsqueeze(-1) * torch.cat([torch.ones_like(trans[..., :1]), trans[..., :-1]], dim=-1)
    weights = alpha * T_before
    contrib = torch.bmm(weights, col)  # (A, P, D)
    return contrib, T_in * trans[..., -1], done_out


class _CheckpointedChunk(torch.autograd.Function):
    """:func:`_composite_chunk` that saves only its inputs and recomputes the chunk in backward.

    Keeps autograd memory at O(entries) instead of O(entries × pixels per tile). (torch's own
    non-reentrant checkpoint kept far more alive here, and the reentrant one does not support
    ``torch.autograd.grad``.) First-order gradients only.
    """

    @staticmethod
    def forward(ctx, pix: Tensor, feats: Tensor, T_in: Tensor, done_in: Tensor, num_channels: int):
        contrib, T_out, done_out = _composite_chunk(pix, feats, T_in, done_in, num_channels)
        ctx.save_for_backward(pix, feats, T_in, done_in)
        ctx.num_channels = num_channels
        ctx.mark_non_differentiable(done_out)
        return contrib, T_out, done_out

    @staticmethod
    def backward(ctx, g_contrib: Tensor | None, g_T: Tensor | None, _g_done: Tensor | None):
        pix, feats, T_in, done_in = ctx.saved_tensors
        need_f, need_T = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        with torch.enable_grad():
            f = feats.detach().requires_grad_(need_f)
            t = T_in.detach().requires_grad_(need_T)
            contrib, T_out, _ = _composite_chunk(pix, f, t, done_in, ctx.num_channels)
            outputs, grads = [], []
            for out, g in ((contrib, g_contrib), (T_out, g_T)):
                if g is not None:
                    outputs.append(out)
                    grads.append(g)
            wrt = [x for x, need in ((f, need_f), (t, need_T)) if need]
            result = iter(torch.autograd.grad(outputs, wrt, grads, allow_unused=True) if outputs and wrt else ())
        g_f = next(result) if need_f else None
        g_t = next(result) if need_T else None
        return None, g_f, g_t, None, None


def composite_tiles(
    proj: Projection,
    features: Tensor,
    opacities: Tensor,
    flat_ids: Tensor,
    offsets: Tensor,
    num_images: int,
    tiles_x: int,
    tiles_y: int,
    *,
    tile_size: int = TILE_SIZE,
    chunk_elements: int = 1 << 22,
    use_checkpoint: bool | None = None,
) -> tuple[Tensor, Tensor]:
    """Front-to-back compositing of every tile's sorted list.

    features: (P, D) per projected entry (colour, optionally depth); opacities: (P,).
    ``chunk_elements`` bounds the size of the (tiles × pixels × Gaussians) working tensors.
    Returns accumulated features (num_images, tiles_y·ts, tiles_x·ts, D) (no background) and the
    final transmittance (num_images, tiles_y·ts, tiles_x·ts).
    """
    device, dtype = features.device, features.dtype
    D = features.shape[-1]
    ts = tile_size
    npix = ts * ts
    num_tiles = num_images * tiles_x * tiles_y
    counts = offsets[1:] - offsets[:-1]
    tile_ids = (counts > 0).nonzero(as_tuple=True)[0]  # tiles with work, (A,)
    acc_all = features.new_zeros(num_tiles, npix, D)
    T_all = features.new_ones(num_tiles, npix)

    if tile_ids.numel() > 0:
        feats = torch.cat([proj.means2d, proj.conics, opacities[:, None], features], dim=-1)
        # padding entry (index P): opacity 0, so it is always skipped
        feats = torch.cat([feats, feats.new_zeros(1, feats.shape[-1])], dim=0)
        pad = feats.shape[0] - 1
        rows = torch.arange(ts, device=device, dtype=dtype) + 0.5
        pix_local = torch.stack(torch.meshgrid(rows, rows, indexing="ij")[::-1], dim=-1).reshape(npix, 2)  # (x, y)
        t_in_img = tile_ids % (tiles_x * tiles_y)
        origin = torch.stack([t_in_img % tiles_x, t_in_img // tiles_x], dim=-1).to(dtype) * ts  # (A, 2)
        pix = origin[:, None, :] + pix_local[None]  # (A, npix, 2)
        starts, lens = offsets[tile_ids], counts[tile_ids]

        if use_checkpoint is None:
            use_checkpoint = torch.is_grad_enabled() and feats.requires_grad
        A = tile_ids.numel()
        active = torch.arange(A, device=device)
        T = features.new_ones(A, npix)
        done = torch.zeros(A, npix, dtype=torch.bool, device=device)
        acc = features.new_zeros(A, npix, D)
        pos = 0
        while active.numel() > 0:
            a = active.numel()
            chunk = int(max(16, min(1024, chunk_elements // (a * npix))))
            # no longer than the longest remaining list (rounded up to 16): padding costs as much as work
            chunk = min(chunk, -(-(int(lens[active].max()) - pos) // 16) * 16)
            j = pos + torch.arange(chunk, device=device)
            idx = starts[active, None] + j
            valid = j[None] < lens[active, None]
            gidx = torch.where(valid, flat_ids[idx.clamp_max(flat_ids.numel() - 1)], pad)
            args = (pix[active], feats[gidx], T[active], done[active], D)
            if use_checkpoint:
                contrib, T_new, done_new = _CheckpointedChunk.apply(*args)
            else:
                contrib, T_new, done_new = _composite_chunk(*args)
            acc = acc.index_add(0, active, contrib)
            T = T.index_copy(0, active, T_new)
            done = done.index_copy(0, active, done_new)
            pos += chunk
            still = (lens[active] > pos) & ~done_new.all(dim=-1)
            active = active[still]
        acc_all = acc_all.index_copy(0, tile_ids, acc)
        T_all = T_all.index_copy(0, tile_ids, T)

    def untile(x: Tensor) -> Tensor:  # (num_tiles, ts·ts, ...) -> (I, tiles_y·ts, tiles_x·ts, ...)
        rest = x.shape[2:]
        x = x.reshape(num_images, tiles_y, tiles_x, ts, ts, *rest)
        x = x.transpose(2, 3)
        return x.reshape(num_images, tiles_y * ts, tiles_x * ts, *rest)

    return untile(acc_all), untile(T_all)


def rasterize_reference(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    sh: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    *,
    background: Tensor | None = None,
    near: float = 0.01,
    far: float = 1e10,
    sh_degree: int | None = None,
    with_depth: bool = False,
    eps2d: float = DEFAULT_EPS2D,
    tile_size: int = TILE_SIZE,
    chunk_elements: int = 1 << 22,
    use_checkpoint: bool | None = None,
) -> tuple[Tensor, Tensor | None, Tensor]:
    """Render B scenes into V cameras each (gsplat-compatible arguments, channels last).

    means: (B, N, 3); quats: (B, N, 4) wxyz; scales: (B, N, 3); opacities: (B, N);
    sh: (B, N, K, 3); viewmats: (B, V, 4, 4) world-to-camera; Ks: (B, V, 3, 3) pixels;
    background: (B, V, 3) or None (black). ``sh_degree`` defaults to the largest that K allows.
    Returns colours (B, V, H, W, 3), expected depth (B, V, H, W, 1) if ``with_depth`` else None,
    and alpha (B, V, H, W, 1). ``use_checkpoint`` (default: when autograd records) recomputes each
    chunk in backward to bound memory.
    """
    B, N = means.shape[:2]
    V = viewmats.shape[1]
    if sh_degree is None:
        sh_degree = math.isqrt(sh.shape[-2]) - 1
    proj = project_gaussians(
        means, quats, scales, opacities, viewmats, Ks, width, height, near=near, far=far, eps2d=eps2d
    )
    # View-dependent colour of each visible (image, Gaussian) pair; the direction goes from the
    # camera centre (-Rᵀt of the world-to-camera matrix) to the Gaussian.
    R = viewmats[..., :3, :3]
    campos = -(R.transpose(-1, -2) @ viewmats[..., :3, 3:]).squeeze(-1)  # (B, V, 3)
    bi, gi = proj.batch_ids, proj.gaussian_ids
    dirs = means[bi, gi] - campos.reshape(B * V, 3)[proj.image_ids]
    feats = sh_to_rgb(sh[bi, gi], dirs, sh_degree)
    if with_depth:
        feats = torch.cat([feats, proj.depths[:, None]], dim=-1)

    tiles_x = -(-width // tile_size)
    tiles_y = -(-height // tile_size)
    flat_ids, offsets = bin_tiles(proj, B * V, tiles_x, tiles_y, tile_size)
    acc, T = composite_tiles(
        proj,
        feats,
        opacities[bi, gi],
        flat_ids,
        offsets,
        B * V,
        tiles_x,
        tiles_y,
        tile_size=tile_size,
        chunk_elements=chunk_elements,
        use_checkpoint=use_checkpoint,
    )
    acc = acc[:, :height, :width].reshape(B, V, height, width, -1)
    T = T[:, :height, :width].reshape(B, V, height, width, 1)
    colors = acc[..., :3]
    if background is not None:
        colors = colors + T * background[:, :, None, None, :].to(colors)
    alpha = 1.0 - T
    depth = acc[..., 3:4] / alpha.clamp_min(1e-10) if with_depth else None
    return colors, depth, alpha
