"""Opt-in fast paths for CUDA inference; the plain PyTorch path stays beside each (``ilrm.models.layers``).

- :func:`head_rmsnorm`: q/k RMSNorm over the head dimension in one Triton pass that reads the
  (possibly strided) projection output once and writes the normalised (tokens, heads, d) tensor once,
  in fp32 arithmetic. The plain path (``F.rms_norm`` under autocast) runs a layer-norm kernel with
  64-wide rows, then a cast, then a copy: measured 50 ms of the 570 ms wide 32-view forward.
- :func:`fp8_attention`: cuDNN's FP8 (e4m3) scaled-dot-product attention through the
  ``nvidia-cudnn-frontend`` package. q and k come out of the norm kernel already in e4m3 with a
  scale bounded from the norm weight (an RMS-normalised row has |x̂| ≤ √d, so |y| ≤ √d·max|w|:
  no reduction over the data is needed); v gets a per-tensor scale from its amax, computed on the
  device (no host sync). Softmax probabilities use scale 448 (they are ≤ 1).

Everything here is pure and graph-capturable: scales live in device tensors, no host syncs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

try:  # Triton comes with CUDA builds of PyTorch; CPU-only installs may lack it
    import triton
    import triton.language as tl

    HAVE_TRITON = True
except ImportError:  # pragma: no cover - depends on the install
    HAVE_TRITON = False

FP8_MAX = 448.0  # largest finite float8_e4m3fn

if HAVE_TRITON:

    @triton.jit
    def _rows_kernel(
        X, Y, W, S, C, n_rows, heads, stride_tok, tokens_per_batch, eps, scale_num, sqrt_d,
        D: tl.constexpr, BLOCK: tl.constexpr, NORM: tl.constexpr, SCALE: tl.constexpr, BIAS: tl.constexpr,
    ):
        """Row r = (token r // heads, head r % heads) of X (row start tok·stride_tok + head·D, D
        contiguous elements) → row r of the contiguous (rows, D) output Y.
        NORM: RMS-normalise with weight W (fp32 arithmetic). SCALE 0: none; 1: multiply by
        scale_num / (√D · max|W|) and store its inverse (the descale) in S[0]; 2: multiply by S[0].
        BIAS: then add C[batch, head, :] (C is (batches, heads, D) fp32, batch = token // tokens_per_batch)."""
        pid = tl.program_id(0)
        rows = pid * BLOCK + tl.arange(0, BLOCK)
        cols = tl.arange(0, D)
        mask = rows < n_rows
        tok = (rows // heads).to(tl.int64)
        head = rows % heads
        x = tl.load(X + tok[:, None] * stride_tok + head[:, None] * D + cols[None, :], mask=mask[:, None], other=0.0)
        x = x.to(tl.float32)
        if NORM:
            w = tl.load(W + cols).to(tl.float32)
            ms = tl.sum(x * x, axis=1) / D
            x = x * tl.rsqrt(ms + eps)[:, None] * w[None, :]
            if SCALE == 1:
                s = scale_num / (sqrt_d * tl.max(tl.abs(w), axis=0))
                x = x * s
                if pid == 0:
                    tl.store(S, 1.0 / s)
        if SCALE == 2:
            x = x * tl.load(S)
        if BIAS:
            b = tok // tokens_per_batch
            x = x + tl.load(C + (b[:, None] * heads + head[:, None]) * D + cols[None, :], mask=mask[:, None], other=0.0)
        tl.store(Y + rows[:, None].to(tl.int64) * D + cols[None, :], x.to(Y.dtype.element_ty), mask=mask[:, None])


def _rows_view(x: Tensor) -> tuple[int, int, int, int]:
    """(tokens, heads, d, token stride) of a (..., L, heads, d) tensor whose heads·d block is contiguous
    and whose tokens are evenly strided (e.g. q of a fused qkv output)."""
    *lead, L, h, d = x.shape
    if x.stride(-1) != 1 or x.stride(-2) != d:
        raise ValueError("head_rmsnorm needs (…, heads, d) contiguous in its last two dims")
    T = x.numel() // (h * d)
    st = x.stride(-3)
    # all leading dims must fold into one evenly strided token axis
    expect = st * L
    for n, s in zip(reversed(lead), reversed(x.stride()[:-3])):
        if n != 1 and s != expect:
            raise ValueError("head_rmsnorm: leading dims do not fold into one token axis")
        expect = s * n
    return T, h, d, st


def _launch(x: Tensor, y: Tensor, w: Tensor | None, s: Tensor | None, eps: float, scale_mode: int,
            bias: Tensor | None = None) -> None:
    T, h, d, st = _rows_view(x)
    rows = T * h
    block = 64
    tpb = x.shape[-3] if x.dim() >= 4 else T  # tokens per batch entry (bias is per batch entry)
    _rows_kernel[(triton.cdiv(rows, block),)](
        x, y, w if w is not None else x, s if s is not None else x, bias if bias is not None else x,
        rows, h, st, tpb, eps, FP8_MAX, math.sqrt(d),
        D=d, BLOCK=block, NORM=w is not None, SCALE=scale_mode, BIAS=bias is not None, num_warps=4,
    )


def head_rmsnorm(x: Tensor, weight: Tensor, eps: float, out_dtype: torch.dtype | None = None) -> Tensor:
    """RMSNorm over the last dim of (B, L, heads, d) ``x`` (any token stride) → contiguous (B, L, heads, d)."""
    y = torch.empty(x.shape, dtype=out_dtype or x.dtype, device=x.device)
    _launch(x, y, weight, None, eps, 0)
    return y


def head_rmsnorm_fp8(x: Tensor, weight: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """RMSNorm then e4m3 with the weight-bound scale: (contiguous e4m3 (B, L, heads, d), descale (1,1,1,1) fp32)."""
    y = torch.empty(x.shape, dtype=torch.float8_e4m3fn, device=x.device)
    descale = torch.empty((1, 1, 1, 1), dtype=torch.float32, device=x.device)
    _launch(x, y, weight, descale, eps, 1)
    return y, descale


def head_rmsnorm_fp8_centred(x: Tensor, weight: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """RMSNorm, minus the mean over tokens (per batch entry, head and channel), then e4m3:
    (contiguous e4m3 (B, L, heads, d), descale). For keys: softmax_j(q·k_j) = softmax_j(q·(k_j − μ))
    exactly, and where keys share a large common part the rounding error shrinks with |k − μ|.
    |k̂ − μ| ≤ 2√d·max|w| bounds the scale, so no reduction over the data is needed for it."""
    y = head_rmsnorm(x, weight, eps, torch.bfloat16)
    mu = y.mean(dim=-3, keepdim=True, dtype=torch.float32)
    scale = (FP8_MAX / (2 * math.sqrt(x.shape[-1]) * weight.detach().abs().max().float().clamp_min(1e-12))).reshape(1, 1, 1, 1)
    return scale_cast(y, scale, torch.float8_e4m3fn, -mu * scale), 1.0 / scale


def scale_cast(x: Tensor, scale: Tensor, dtype: torch.dtype, bias: Tensor | None = None) -> Tensor:
    """x · scale[0] (+ bias[b, head, :] for batch entry b) cast to ``dtype``, as a contiguous
    (B, L, heads, d) tensor (one pass). ``bias``: fp32, (B, 1, heads, d) or anything of B·heads·d values."""
    y = torch.empty(x.shape, dtype=dtype, device=x.device)
    if bias is not None:
        bias = bias.reshape(x.shape[0], x.shape[-2], x.shape[-1]).float().contiguous()
    _launch(x, y, None, scale, 0.0, 2, bias)
    return y


def quantize_centered(v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """e4m3 copy of v − c with c the mean of v over its keys (per batch entry, head and channel):
    (v8, descale, c), v ≈ v8 · descale + c; c is (B, 1, heads, d) fp32.

    Why: softmax rows sum to one, so P·v = P·(v − c) + c exactly. The cuDNN FP8 kernel hands O back
    in e4m3 on Hopper (3 mantissa bits), and its rounding error is relative to |O|. Where attention is
    spread over many keys O is close to the mean of v, so centring leaves only the informative part
    to be rounded (SageAttention's smoothing of V applied to the output). One extra read pass of v."""
    c = v.mean(dim=-3, keepdim=True, dtype=torch.float32)
    lo, hi = torch.aminmax(v, dim=-3, keepdim=True)
    amax = torch.maximum(hi.float() - c, c - lo.float()).amax().clamp_min(1e-12)
    scale = (FP8_MAX / amax).reshape(1, 1, 1, 1)
    return scale_cast(v, scale, torch.float8_e4m3fn, -c * scale), (amax / FP8_MAX).reshape(1, 1, 1, 1), c


def quantize_per_tensor(x: Tensor) -> tuple[Tensor, Tensor]:
    """e4m3 copy of x with a per-tensor amax scale: (x8, descale) with x ≈ x8 · descale."""
    amax = torch.linalg.vector_norm(x, ord=math.inf, dtype=torch.float32).clamp_min(1e-12)
    scale = (FP8_MAX / amax).reshape(1, 1, 1, 1)
    return scale_cast(x, scale, torch.float8_e4m3fn), (amax / FP8_MAX).reshape(1, 1, 1, 1)


# ---- cuDNN frontend FP8 attention -------------------------------------------------------------

_cudnn = None
_graphs: dict = {}
_handles: dict = {}
AUTOTUNE = False  # time every cuDNN plan once per shape at build (host-synced); measured: heuristics' plan 0 was already fastest at the wide shapes
INFO: dict = {}  # what the last build chose (output dtype, API), for benchmarks to report


def cudnn_frontend():
    """The ``cudnn`` module of nvidia-cudnn-frontend, or None when it is not installed."""
    global _cudnn
    if _cudnn is None:
        try:
            import cudnn  # type: ignore[import-not-found]

            _cudnn = cudnn
        except Exception as e:  # noqa: BLE001 - missing package or library
            INFO["import_error"] = f"{type(e).__name__}: {e}"[:300]
            _cudnn = False
    return _cudnn or None


def fp8_attention_available() -> bool:
    return HAVE_TRITON and torch.cuda.is_available() and cudnn_frontend() is not None


def _bhsd(x: Tensor) -> tuple[list[int], list[int]]:
    """cuDNN dims/strides (B, H, S, D) of a (B, S, H, D) tensor."""
    B, S, H, D = x.shape
    sb, ss, sh, sd = x.stride()
    return [B, H, S, D], [sb, sh, ss, sd]


def _build(q8: Tensor, k8: Tensor, v8: Tensor, o: Tensor):
    cudnn = cudnn_frontend()
    dev = q8.device.index or 0
    if dev not in _handles:
        _handles[dev] = cudnn.create_handle()
    handle = _handles[dev]
    f8, f32 = cudnn.data_type.FP8_E4M3, cudnn.data_type.FLOAT
    g = cudnn.pygraph(io_data_type=f8, intermediate_data_type=f32, compute_data_type=f32, handle=handle)
    tq, tk, tv = (g.tensor(name=n, dim=_bhsd(t)[0], stride=_bhsd(t)[1], data_type=f8) for n, t in (("q", q8), ("k", k8), ("v", v8)))
    sc = [g.tensor(name=n, dim=[1, 1, 1, 1], stride=[1, 1, 1, 1], data_type=f32) for n in ("dq", "dk", "dv", "ds", "ss", "so")]
    kw = dict(q=tq, k=tk, v=tv, descale_q=sc[0], descale_k=sc[1], descale_v=sc[2], descale_s=sc[3], scale_s=sc[4], scale_o=sc[5],
              attn_scale=1.0 / math.sqrt(q8.shape[-1]), use_causal_mask=False)
    try:
        to, _, amax_s, amax_o = g.sdpa_fp8(generate_stats=False, **kw)
    except TypeError:
        to, _, amax_s, amax_o = g.sdpa_fp8(is_inference=True, **kw)
    to.set_output(True).set_dim(_bhsd(o)[0]).set_stride(_bhsd(o)[1]).set_data_type(
        cudnn.data_type.BFLOAT16 if o.dtype == torch.bfloat16 else f8
    )
    for a in (amax_s, amax_o):
        a.set_output(True).set_dim([1, 1, 1, 1]).set_stride([1, 1, 1, 1]).set_data_type(f32)
    g.validate()
    g.build_operation_graph()
    g.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
    g.check_support()
    plan = None
    if AUTOTUNE:
        try:
            g.build_plans(cudnn.build_plan_policy.ALL)
            n = g.get_execution_plan_count()
            plan = list(range(n))
        except Exception as e:  # noqa: BLE001
            INFO["autotune_error"] = f"{type(e).__name__}: {e}"[:300]
            plan = None
    if plan is None:
        g.build_plans()
        ws = torch.empty(max(g.get_workspace_size(), 1), dtype=torch.uint8, device=q8.device)
    else:
        ws = torch.empty(max([g.get_workspace_size_plan_at_index(i) for i in plan] + [1]), dtype=torch.uint8, device=q8.device)
    consts = dict(
        ds=torch.full((1, 1, 1, 1), 1.0 / FP8_MAX, device=q8.device),
        ss=torch.full((1, 1, 1, 1), FP8_MAX, device=q8.device),
        one=torch.ones((1, 1, 1, 1), device=q8.device),
        amax_s=torch.empty((1, 1, 1, 1), device=q8.device),
        amax_o=torch.empty((1, 1, 1, 1), device=q8.device),
    )
    tensors = (tq, tk, tv, *sc, to, amax_s, amax_o)
    if plan is not None and len(plan) > 1:
        # One-time autotune at build (host-synced, like cudnn.benchmark): time every plan on these inputs.
        dv = torch.full((1, 1, 1, 1), 1.0, device=q8.device)
        pack = dict(zip(tensors, (q8, k8, v8, dv, dv, dv, consts["ds"], consts["ss"], dv, o, consts["amax_s"], consts["amax_o"])))
        cudnn.set_stream(handle=handle, stream=torch.cuda.current_stream(q8.device).cuda_stream)
        times = {}
        for i in plan:
            try:
                for _ in range(2):
                    g.execute_plan_at_index(pack, ws, i, handle=handle)
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                for _ in range(3):
                    g.execute_plan_at_index(pack, ws, i, handle=handle)
                b.record()
                b.synchronize()
                times[i] = a.elapsed_time(b) / 3
            except Exception:  # noqa: BLE001 - a plan that fails to run is skipped
                continue
        best = min(times, key=times.get) if times else 0
        INFO.setdefault("autotune", []).append({"shape": list(q8.shape) + [k8.shape[1]], "ms": {str(k): round(v, 3) for k, v in times.items()}, "best": best})
        return g, handle, tensors, ws, consts, best
    return g, handle, tensors, ws, consts, (0 if plan is not None else None)


_out_dtype: dict = {}  # device → torch dtype cuDNN accepted for O (bf16 where it can, else e4m3)


def _get(q8: Tensor, k8: Tensor, v8: Tensor, o_dtype: torch.dtype):
    key = (q8.shape, q8.stride(), k8.shape, k8.stride(), v8.stride(), o_dtype, q8.device)
    if key not in _graphs:
        o = torch.empty(q8.shape, dtype=o_dtype, device=q8.device)
        _graphs[key] = _build(q8, k8, v8, o)
    return _graphs[key]


def fp8_sdpa(q8: Tensor, k8: Tensor, v8: Tensor, dq: Tensor, dk: Tensor, dv: Tensor, v_center: Tensor | None = None) -> Tensor:
    """softmax(q kᵀ/√d) v on e4m3 (B, L, heads, d) inputs with their descales → bf16 (B, Lq, heads, d).
    ``v_center`` (from :func:`quantize_centered`): v8 holds v − c; c is added back to O on the way out."""
    cudnn = cudnn_frontend()
    dev = q8.device
    if dev not in _out_dtype:
        try:
            _get(q8, k8, v8, torch.bfloat16)
            _out_dtype[dev] = torch.bfloat16
        except Exception as e:  # noqa: BLE001 - Hopper's cuDNN may want an FP8 O
            INFO["bf16_out_error"] = f"{type(e).__name__}: {e}"[:300]
            _out_dtype[dev] = torch.float8_e4m3fn
        INFO["out_dtype"] = str(_out_dtype[dev])
    od = _out_dtype[dev]
    g, handle, t, ws, c, plan = _get(q8, k8, v8, od)
    tq, tk, tv, sdq, sdk, sdv, sds, sss, sso, to, tas, tao = t
    o = torch.empty(q8.shape, dtype=od, device=dev)
    # O ≤ max|v| elementwise, so the v scale (1/dv) keeps an e4m3 O in range.
    scale_o = c["one"] if od == torch.bfloat16 else (1.0 / dv)
    pack = {tq: q8, tk: k8, tv: v8, sdq: dq, sdk: dk, sdv: dv, sds: c["ds"], sss: c["ss"], sso: scale_o, to: o, tas: c["amax_s"], tao: c["amax_o"]}
    cudnn.set_stream(handle=handle, stream=torch.cuda.current_stream(dev).cuda_stream)
    if plan is None:
        g.execute(pack, ws, handle=handle)
    else:
        g.execute_plan_at_index(pack, ws, plan, handle=handle)
    if od != torch.bfloat16:
        o = scale_cast(o, dv, torch.bfloat16, v_center)
    elif v_center is not None:
        o = (o.float() + v_center).to(torch.bfloat16)
    return o
