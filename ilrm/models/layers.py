"""Transformer building blocks shared by iLRM and the full-attention baseline.

All Linear layers are bias-free and all LayerNorms weight-only (SPEC). Attention goes through
``F.scaled_dot_product_attention`` so CUDA picks flash / cuDNN / memory-efficient kernels;
:func:`reference_attention` is the plain formula the tests compare against.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

# Backend preference for long sequences on CUDA. Measured on an H100 at the wide model's global
# self-attention size (65k tokens, 12 heads, d 64): cuDNN 458 TFLOP/s vs flash 307 (DEVICE.md).
_ORDERS = {
    "cudnn": [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH],
    "flash": [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH],
}
_attention_policy = {"long": "cudnn", "short": None, "threshold": 4096}


def set_attention_policy(long: str | None = "cudnn", short: str | None = None, threshold: int = 4096) -> None:
    """Choose SDPA backend orders ("cudnn", "flash" or None = PyTorch's default) for key lengths
    at/above and below ``threshold``. Only affects CUDA tensors; benchmarks use it to compare."""
    for v in (long, short):
        if v is not None and v not in _ORDERS:
            raise ValueError(f"unknown attention backend {v!r}; choose from {sorted(_ORDERS)} or None")
    _attention_policy.update(long=long, short=short, threshold=threshold)


def attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Scaled dot-product attention on (B, heads, L, d) tensors with the configured backend order."""
    if q.is_cuda:
        key = "long" if k.shape[-2] >= _attention_policy["threshold"] else "short"
        order = _attention_policy[key]
        if order is not None:
            with sdpa_kernel(_ORDERS[order], set_priority=True):
                return F.scaled_dot_product_attention(q, k, v)
    return F.scaled_dot_product_attention(q, k, v)


# Opt-in fast paths (CUDA only; the plain path above is what runs otherwise, and on CPU always):
#   fused_qk_norm: q/k RMSNorm in one Triton pass (ilrm.models.fast_kernels.head_rmsnorm);
#   fp8_attention: cuDNN-frontend FP8 attention (implies the fused norm, which quantises q/k on the
#                  way out): False, True (every attention call), "self" (the global self-attention
#                  only) or "read" (the per-view read attention only). Falls back to bf16 where unavailable;
#   fp8_center_v:  quantise v − mean(v) and add the mean back to O (exact; see quantize_centered);
#   fp8_center_k:  quantise the normalised k − mean(k) (exact for softmax; head_rmsnorm_fp8_centred).
# All are inference-only (no backward): they apply only where autograd is not recording.
# The fused norm is the default (same function; renders ≥ 48 dB vs the plain path, gpu_benchmark.md);
# FP8 stays opt-in (gpu_benchmark.md has its quality on each model).
_fast: dict = {"fused_qk_norm": True, "fp8_attention": False, "fp8_center_v": True, "fp8_center_k": False}
FP8_SITES = (False, True, "self", "read")


def set_fast_paths(fused_qk_norm: bool = True, fp8_attention: bool | str = False, fp8_center_v: bool = True,
                   fp8_center_k: bool = False) -> dict:
    """Switch the opt-in CUDA fast paths; returns the previous setting. Benchmarks compare both."""
    if fp8_attention not in FP8_SITES:
        raise ValueError(f"fp8_attention must be one of {FP8_SITES}, got {fp8_attention!r}")
    prev = dict(_fast)
    _fast.update(fused_qk_norm=bool(fused_qk_norm), fp8_attention=fp8_attention, fp8_center_v=bool(fp8_center_v),
                 fp8_center_k=bool(fp8_center_k))
    return prev


def fast_paths() -> dict:
    return dict(_fast)


#: Named settings of :func:`set_fast_paths` (the eval harness's ``--fast-paths`` and the benchmarks).
FAST_PATH_PRESETS: dict[str, dict] = {
    "default": dict(fused_qk_norm=True),
    "plain": dict(fused_qk_norm=False),
    "fp8": dict(fused_qk_norm=True, fp8_attention=True),
    "fp8-self": dict(fused_qk_norm=True, fp8_attention="self"),
    "fp8-read": dict(fused_qk_norm=True, fp8_attention="read"),
    "fp8-uncentred": dict(fused_qk_norm=True, fp8_attention=True, fp8_center_v=False),
    "fp8-centred-k": dict(fused_qk_norm=True, fp8_attention=True, fp8_center_k=True),
}


def _fp8_here(site: str) -> bool:
    f = _fast["fp8_attention"]
    return f is True or f == site


def attend(q: Tensor, k: Tensor, v: Tensor, q_norm: HeadRMSNorm, k_norm: HeadRMSNorm, site: str = "self") -> Tensor:
    """softmax(n_q(q) n_k(k)ᵀ/√d) v for (B, L, heads, d) q/k/v (token-strided views allowed), with
    the q/k RMSNorms applied first. ``site`` ("self" or "read") selects the FP8 scope.
    Returns (B, Lq, heads, d) (a view or contiguous)."""
    if q.is_cuda and not _needs_grad(q, k, v, q_norm.weight, k_norm.weight) and (
        _fp8_here(site) or (_fast["fused_qk_norm"] and fused_norm_pays(q.numel() // q.shape[-1]))
    ):
        return _fast_attend(q, k, v, q_norm, k_norm, _fp8_here(site))
    q, k = q_norm(q), k_norm(k)
    return attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)


FUSED_NORM_MIN_ROWS = 1 << 16


def fused_norm_pays(rows: int) -> bool:
    """Measured (gpu_benchmark.md): the Triton norm wins inside CUDA graphs and on large inputs
    (re10k graph 5.54 → 4.69 ms; wide 32 views 566 → 531 ms), but eager at the launch floor its
    Python launch cost loses (re10k eager 12.2 → 14.1 ms). So: when capturing, or ≥ 65,536 rows."""
    return rows >= FUSED_NORM_MIN_ROWS or (torch.cuda.is_available() and torch.cuda.is_current_stream_capturing())


_kept_out_of_compile = False


def keep_attention_out_of_compile() -> None:
    """Exclude :func:`attention` (our backend choice) and the fast path (Triton + cuDNN-frontend calls)
    from ``torch.compile`` graphs; compiled blocks fuse what is around them. Called by
    :func:`ilrm.inference.compile_blocks`, not at import: ``torch.compiler.disable`` imports torch._dynamo,
    which pulls in triton (seconds, and it fails to import in some minimal Python installs)."""
    global attention, _fast_attend, _kept_out_of_compile
    if not _kept_out_of_compile:
        attention, _fast_attend = torch.compiler.disable(attention), torch.compiler.disable(_fast_attend)
        _kept_out_of_compile = True


def _needs_grad(*ts: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in ts)


def _fast_attend(q: Tensor, k: Tensor, v: Tensor, q_norm: HeadRMSNorm, k_norm: HeadRMSNorm, fp8: bool) -> Tensor:
    from . import fast_kernels as fk

    if fk.HAVE_TRITON:
        if fp8 and q.shape[-1] % 16 == 0 and fk.fp8_attention_available():
            q8, dq = fk.head_rmsnorm_fp8(q, q_norm.weight, q_norm.eps)
            if _fast["fp8_center_k"]:
                k8, dk = fk.head_rmsnorm_fp8_centred(k, k_norm.weight, k_norm.eps)
            else:
                k8, dk = fk.head_rmsnorm_fp8(k, k_norm.weight, k_norm.eps)
            if _fast["fp8_center_v"]:
                v8, dv, c = fk.quantize_centered(v)
                return fk.fp8_sdpa(q8, k8, v8, dq, dk, dv, c)
            v8, dv = fk.quantize_per_tensor(v)
            return fk.fp8_sdpa(q8, k8, v8, dq, dk, dv)
        dt = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else q.dtype
        q, k = fk.head_rmsnorm(q, q_norm.weight, q_norm.eps, dt), fk.head_rmsnorm(k, k_norm.weight, k_norm.eps, dt)
        v = v.to(dt)
    else:
        q, k = q_norm(q), k_norm(k)
    return attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)


def reference_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(q kᵀ / √d) v, materialised; (..., L, d) inputs. For tests only."""
    w = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])
    return (w.softmax(-1) @ v.float()).to(q.dtype)


class HeadRMSNorm(nn.Module):
    """RMSNorm over the head dimension with one weight shared by all heads (q/k normalisation)."""

    def __init__(self, head_dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(head_dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight.to(x.dtype), self.eps)


class MLP(nn.Module):
    """x + fc2(gelu(fc1(LN(x)))): the MLP carries its own pre-norm and residual."""

    def __init__(self, dim: int, ratio: int = 4, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps, bias=False)
        self.fc1 = nn.Linear(dim, ratio * dim, bias=False)
        self.fc2 = nn.Linear(ratio * dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fc2(F.gelu(self.fc1(self.norm(x))))


class SelfAttention(nn.Module):
    """x + proj(attn(LN(x))) over all tokens of a scene: x (B, N, D)."""

    def __init__(self, dim: int, head_dim: int = 64, eps: float = 1e-5):
        super().__init__()
        self.heads, self.head_dim = dim // head_dim, head_dim
        self.norm = nn.LayerNorm(dim, eps=eps, bias=False)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)  # output laid out (3, heads, head_dim)
        self.q_norm = HeadRMSNorm(head_dim, eps)
        self.k_norm = HeadRMSNorm(head_dim, eps)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        B, N, D = x.shape
        qkv = self.qkv(self.norm(x)).view(B, N, 3, self.heads, self.head_dim)
        q, k, v = qkv.unbind(2)  # (B, N, h, d)
        o = attend(q, k, v, self.q_norm, self.k_norm)
        return x + self.proj(o.reshape(B, N, D))


class ReadAttention(nn.Module):
    """Per-view cross-attention from viewpoint tokens to that view's image tokens.

    x: (B·V, Nq, D) viewpoint tokens, ctx: (B·V, Nk, D) image tokens; views are folded into the
    batch so no attention matrix spans several views. With ``uplift`` s > 1 each viewpoint token
    issues s queries (token uplifting): q = Linear(D, s·D), output projected by Linear(s·D, D).
    Our q/proj channel layout is (s, heads, head_dim); the authors' is (heads, head_dim, s)
    (converted when loading their weights, see ilrm.checkpoints).
    """

    def __init__(self, dim: int, head_dim: int = 64, uplift: int = 1, eps: float = 1e-5):
        super().__init__()
        self.heads, self.head_dim, self.uplift = dim // head_dim, head_dim, uplift
        self.norm = nn.LayerNorm(dim, eps=eps, bias=False)
        self.q = nn.Linear(dim, uplift * dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.q_norm = HeadRMSNorm(head_dim, eps)
        self.k_norm = HeadRMSNorm(head_dim, eps)
        self.proj = nn.Linear(uplift * dim, dim, bias=False)

    def forward(self, x: Tensor, ctx: Tensor) -> Tensor:
        BV, Nq, D = x.shape
        Nk = ctx.shape[1]
        h, d, s = self.heads, self.head_dim, self.uplift
        q = self.q(self.norm(x)).view(BV, Nq * s, h, d)
        k = self.k(ctx).view(BV, Nk, h, d)
        v = self.v(ctx).view(BV, Nk, h, d)
        o = attend(q, k, v, self.q_norm, self.k_norm, site="read")
        return x + self.proj(o.reshape(BV, Nq, s * D))


class ReadBlock(nn.Module):
    """Cross-attention to the view's image tokens, then MLP."""

    def __init__(self, dim: int, head_dim: int, mlp_ratio: int, uplift: int, eps: float):
        super().__init__()
        self.attn = ReadAttention(dim, head_dim, uplift, eps)
        self.mlp = MLP(dim, mlp_ratio, eps)

    def forward(self, x: Tensor, ctx: Tensor, num_views: int) -> Tensor:
        """x: (B, V·Nq, D); ctx: (B·V, Nk, D) → (B, V·Nq, D)."""
        B, N, D = x.shape
        x = self.attn(x.reshape(B * num_views, N // num_views, D), ctx).reshape(B, N, D)
        return self.mlp(x)


class SelfBlock(nn.Module):
    """Global self-attention over all tokens of all views, then MLP."""

    def __init__(self, dim: int, head_dim: int, mlp_ratio: int, eps: float):
        super().__init__()
        self.attn = SelfAttention(dim, head_dim, eps)
        self.mlp = MLP(dim, mlp_ratio, eps)

    def forward(self, x: Tensor, ctx: Tensor | None = None, num_views: int = 1) -> Tensor:
        return self.mlp(self.attn(x))


def patchify(x: Tensor, p: int) -> Tensor:
    """(B, V, H, W, C) channels-last → (B, V·(H/p)·(W/p), p·p·C) with token channels (ph, pw, c)."""
    B, V, H, W, C = x.shape
    x = x.reshape(B, V, H // p, p, W // p, p, C).permute(0, 1, 2, 4, 3, 5, 6)
    return x.reshape(B, V * (H // p) * (W // p), p * p * C)


def unpatchify(t: Tensor, num_views: int, h: int, w: int, p: int) -> Tensor:
    """Inverse of :func:`patchify`: (B, V·h·w, p·p·C) → (B, V, h·p, w·p, C)."""
    B, _, PC = t.shape
    C = PC // (p * p)
    t = t.reshape(B, num_views, h, w, p, p, C).permute(0, 1, 2, 4, 3, 5, 6)
    return t.reshape(B, num_views, h * p, w * p, C)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std) for Linear weights, ones for norm weights."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
        elif isinstance(m, (nn.LayerNorm, HeadRMSNorm)):
            nn.init.ones_(m.weight)
