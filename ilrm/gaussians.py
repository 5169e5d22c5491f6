"""The Gaussians type and the decoding of head outputs into activated Gaussian parameters."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor

SH_C0 = 0.28209479177387814  # rgb = SH_C0 * sh_dc + 0.5 (gsplat's degree-0 convention)


@dataclass
class Gaussians:
    """A batch of 3D Gaussians (activated parameters, world frame).

    means: (B, N, 3); quats: (B, N, 4) unit, (w, x, y, z); scales: (B, N, 3) > 0;
    opacities: (B, N) in [0, 1]; sh: (B, N, K, 3) SH coefficients, K = (degree + 1)²
    (gsplat convention: colour = SH evaluation + 0.5).
    """

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    sh: Tensor

    @property
    def batch_size(self) -> int:
        return self.means.shape[0]

    @property
    def num_gaussians(self) -> int:
        return self.means.shape[1]

    @property
    def sh_degree(self) -> int:
        return int(round(self.sh.shape[2] ** 0.5)) - 1

    def to(self, *args, **kwargs) -> Gaussians:
        return Gaussians(*(getattr(self, f.name).to(*args, **kwargs) for f in fields(self)))

    def detach(self) -> Gaussians:
        return Gaussians(*(getattr(self, f.name).detach() for f in fields(self)))

    def float(self) -> Gaussians:
        return self.to(torch.float32)

    def __getitem__(self, index) -> Gaussians:
        """Index the Gaussian dimension (dim 1), e.g. a boolean mask of shape (N,) or a slice."""
        return Gaussians(*(getattr(self, f.name)[:, index] for f in fields(self)))

    def batch(self, b: int) -> Gaussians:
        """Scene ``b`` of the batch, keeping a batch dimension of 1."""
        return Gaussians(*(getattr(self, f.name)[b : b + 1] for f in fields(self)))

    @staticmethod
    def cat(items: list[Gaussians], dim: int = 1) -> Gaussians:
        return Gaussians(*(torch.cat([getattr(g, f.name) for g in items], dim=dim) for f in fields(Gaussians)))

    def colors(self) -> Tensor:
        """View-independent RGB (the degree-0 term): (B, N, 3)."""
        return SH_C0 * self.sh[:, :, 0] + 0.5

    def transform(self, T: Tensor) -> Gaussians:
        """Apply a similarity transform ``x ↦ T x`` (T: (B, 4, 4) or (4, 4), rotation × uniform scale + translation).

        Means, rotations and scales follow; degree>0 SH coefficients are not rotated (kept as is) so
        only pure translations/scalings keep view-dependent colour exact.
        """
        T = T.to(self.means).expand(self.batch_size, 4, 4)
        A = T[:, :3, :3]
        s = torch.linalg.det(A).abs().pow(1 / 3)  # (B,)
        R = A / s[:, None, None]
        means = self.means @ A.transpose(1, 2) + T[:, None, :3, 3]
        q = quat_multiply(rotmat_to_quat(R)[:, None].expand_as(self.quats), self.quats)
        return Gaussians(means, F.normalize(q, dim=-1), self.scales * s[:, None, None], self.opacities, self.sh)


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product of (..., 4) wxyz quaternions."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def quat_to_rotmat(q: Tensor) -> Tensor:
    """(..., 4) wxyz (normalised here) → (..., 3, 3)."""
    w, x, y, z = F.normalize(q, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)


def rotmat_to_quat(R: Tensor) -> Tensor:
    """(..., 3, 3) rotation → (..., 4) wxyz with w ≥ 0 (numerically stable branch choice)."""
    m = R.reshape(*R.shape[:-2], 9)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m.unbind(-1)
    cands = torch.stack(
        [
            torch.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
            torch.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
            torch.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
            torch.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
        ],
        dim=-2,
    )  # (..., 4, 4): row i is 4·q·q_i
    diag = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    best = diag.argmax(-1, keepdim=True)
    q = torch.gather(cands, -2, best[..., None].expand(*best.shape, 4)).squeeze(-2)
    q = F.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def decode_depth(x: Tensor, *, mode: str, depth_max: float, near: float, far: float, bias: float) -> Tensor:
    """Distance along the (unit) ray from the raw depth channel ``x`` (any shape, fp32).

    "sigmoid": ``sigmoid(x) · depth_max`` (the authors'; starts at depth_max / 2).
    "disparity": ``1 / (sigmoid(x + bias) · (1/near − 1/far) + 1/far)``, inside (near, far): uniform
    steps in x are uniform in disparity, which matches how parallax constrains depth.
    """
    if mode == "sigmoid":
        return torch.sigmoid(x) * depth_max
    disparity = torch.sigmoid(x + bias) * (1.0 / near - 1.0 / far) + 1.0 / far
    return 1.0 / disparity


def decode_gaussians(
    raw: Tensor,
    origins: Tensor,
    directions: Tensor,
    *,
    sh_coeffs: int,
    depth_max: float,
    scale_shift: float,
    scale_log_max: float,
    opacity_shift: float,
    scale_clamp: str = "hard",
    depth_mode: str = "sigmoid",
    depth_near: float = 0.2,
    depth_far: float = 200.0,
    depth_bias: float = 0.0,
    scale_mode: str = "absolute",
    focal: Tensor | None = None,
    base_rgb: Tensor | None = None,
) -> Gaussians:
    """Turn per-Gaussian head channels into activated Gaussians.

    raw: (B, N, C) with channels [xyz(3), sh(3K), scale(3), rot(4), opacity(1)] (offset already consumed);
    origins / directions: (B, N, 3) the ray of each Gaussian (unit directions).
    Means lie on the ray at the depth :func:`decode_depth` gives for ``mean(xyz)``. The log-scale is
    ``s + scale_shift``, capped at ``scale_log_max`` ("hard": ``min``, zero gradient at the cap;
    "soft": ``cap − softplus(cap − x)``), in world units (``scale_mode`` "absolute") or in pixel
    footprints ``depth / focal`` ("footprint"; ``focal``: (B, N) or (B, 1) pixels on the Gaussian grid).
    base_rgb: (B, N, 3) in [0, 1] or None: the DC colour is a residual on it (``color_init`` "image").
    """
    k = 3 * sh_coeffs
    xyz, sh, scale, rot, opa = raw.split([3, k, 3, 4, 1], dim=-1)
    xyz, scale, rot, opa = xyz.float(), scale.float(), rot.float(), opa.float()
    depth = decode_depth(
        xyz.mean(-1, keepdim=True), mode=depth_mode, depth_max=depth_max, near=depth_near, far=depth_far, bias=depth_bias
    )
    means = origins.float() + depth * directions.float()
    log_scale = scale + scale_shift
    if scale_clamp == "soft":
        log_scale = scale_log_max - F.softplus(scale_log_max - log_scale)
    else:
        log_scale = torch.clamp_max(log_scale, scale_log_max)
    scales = torch.exp(log_scale)
    if scale_mode == "footprint":
        if focal is None:
            raise ValueError("scale_mode 'footprint' needs the focal length on the Gaussian grid")
        scales = scales * (depth / focal.float().reshape(focal.shape[0], -1, 1))
    quats = F.normalize(rot, dim=-1)
    opacities = torch.sigmoid(opa + opacity_shift).squeeze(-1)
    # channel order in the head is (coefficient, rgb) → (K, 3)
    sh = sh.float().reshape(*sh.shape[:-1], sh_coeffs, 3)
    if base_rgb is not None:
        dc = sh[..., 0, :] + (base_rgb.float() - 0.5) / SH_C0
        sh = torch.cat([dc[..., None, :], sh[..., 1:, :]], dim=-2)
    return Gaussians(means=means, quats=quats, scales=scales, opacities=opacities, sh=sh)


__all__ = ["Gaussians", "SH_C0", "decode_gaussians", "quat_multiply", "quat_to_rotmat", "rotmat_to_quat"]
