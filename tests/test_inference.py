"""ilrm.inference helpers that run on the CPU too: bf16 Linear weights under bf16 autocast."""

from __future__ import annotations

import torch

from ilrm import ILRMConfig
from ilrm.inference import autocast_for, linear_weights_to
from ilrm.models import build_model

from .test_fast_paths import _views


def test_bf16_linear_weights_give_the_same_autocast_forward():
    """Autocast casts each fp32 Linear weight to bf16 on every call; storing them in bf16 must give
    the same output bit for bit (the re10k CUDA graph's 0.45 ms saving depends on it), while norm
    weights stay fp32."""
    torch.manual_seed(0)
    cfg = ILRMConfig.preset("tiny", width=128, depth=2)
    model = build_model(cfg).eval()
    views = _views(cfg)
    with torch.no_grad(), autocast_for("cpu", torch.bfloat16):
        ref = model(views)
        linear_weights_to(model, torch.bfloat16)
        out = model(views)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(m.weight.dtype == torch.float32 for m in norms)
    for name in ("means", "scales", "opacities", "sh"):
        assert torch.equal(getattr(out, name), getattr(ref, name)), name
