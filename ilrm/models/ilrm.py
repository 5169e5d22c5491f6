"""iLRM: viewpoint tokens iteratively read per-view image tokens and talk to each other globally.

    image tokens      (B·V, h·w, D)    patchified [rgb, rays] features, computed once
    viewpoint tokens  (B, V·h'·w', D)  patchified ray features on an (H/f, W/f) grid
    blocks            read, self, read, self, …   (read = per-view cross-attention; self = global)
    head              LN → Linear → one Gaussian per viewpoint-grid pixel
"""

from __future__ import annotations

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn

from ..cameras import Views, pixel_rays, ray_features, scale_intrinsics
from ..config import ILRMConfig
from ..errors import ILRMInputError
from .base import HUB_KWARGS, GaussianLRM, as_config
from .layers import ReadBlock, SelfBlock, init_weights, patchify


class ILRM(GaussianLRM, PyTorchModelHubMixin, **HUB_KWARGS):
    """The iterative large reconstruction model (Kang et al. 2025).

    >>> model = ILRM(ILRMConfig.preset("tiny"))
    >>> g = model(Views(images, K, c2w))     # Gaussians, N = V · H/f · W/f
    """

    def __init__(self, config: ILRMConfig):
        config = as_config(config)
        if config.arch != "ilrm":
            raise ILRMInputError(f"ILRM needs arch='ilrm', got {config.arch!r}; build it with ilrm.models.build_model(config)")
        super().__init__(config)
        D, cfg = config.width, config
        self.viewpoint_tokenizer = nn.Linear(config.viewpoint_in_channels, D, bias=False)
        self.viewpoint_norm = nn.LayerNorm(D, eps=config.norm_eps, bias=False)
        self.blocks = nn.ModuleList(
            ReadBlock(D, cfg.head_dim, cfg.mlp_ratio, cfg.uplift_factor, cfg.norm_eps)
            if i % 2 == 0
            else SelfBlock(D, cfg.head_dim, cfg.mlp_ratio, cfg.norm_eps)
            for i in range(cfg.depth)
        )
        init_weights(self)

    def viewpoint_tokens(self, views: Views) -> Tensor:
        """(B, V·(H/fp)·(W/fp), D) tokens of ray features on the (H/f, W/f) grid."""
        cfg = self.config
        f = cfg.viewpoint_factor
        K = scale_intrinsics(views.intrinsics.float(), 1 / f, 1 / f) if f != 1 else views.intrinsics.float()
        o, d = pixel_rays(K, views.c2w.float(), views.height // f, views.width // f)
        feats = ray_features(o, d, cfg.viewpoint_features)
        return self.viewpoint_norm(self.viewpoint_tokenizer(patchify(feats, cfg.patch_size)))

    def process(self, views: Views, image_tokens: Tensor) -> Tensor:
        B, V = views.batch_size, views.num_views
        ctx = image_tokens.reshape(B * V, -1, image_tokens.shape[-1])
        dev = ctx.device.type
        if torch.is_autocast_enabled(dev):
            # Every read block projects ctx; cast the (large) image tokens once, not 2× per block.
            ctx = ctx.to(torch.get_autocast_dtype(dev))
        return self._run_blocks(self.blocks, self.viewpoint_tokens(views), ctx, V)

