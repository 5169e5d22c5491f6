"""The full-attention baseline (GS-LRM style): every image token of every view in one global
self-attention stack, pixel-aligned Gaussians from the same head. Same Views → Gaussians API."""

from __future__ import annotations

from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn

from ..cameras import Views
from ..config import ILRMConfig
from .base import HUB_KWARGS, GaussianLRM, as_config
from .layers import SelfBlock, init_weights


class FullAttentionLRM(GaussianLRM, PyTorchModelHubMixin, **HUB_KWARGS):
    """Baseline with ``config.arch == "full-attention"``: ``depth`` self blocks over all
    V·(H/p)·(W/p) image tokens; one Gaussian per input pixel (offsets, if configured, are sub-pixel)."""

    def __init__(self, config: ILRMConfig):
        config = as_config(config)
        if config.arch != "full-attention":
            config = config.replace(arch="full-attention")
        super().__init__(config)
        cfg = config
        self.blocks = nn.ModuleList(
            SelfBlock(cfg.width, cfg.head_dim, cfg.mlp_ratio, cfg.norm_eps) for _ in range(cfg.depth)
        )
        init_weights(self)

    def process(self, views: Views, image_tokens: Tensor) -> Tensor:
        return self._run_blocks(self.blocks, image_tokens, None, views.num_views)

