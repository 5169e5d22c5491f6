"""What every model here shares: the image tokenizer, the Gaussian head with its decoding, and the
weight-file hooks of the Hub mixin. Subclasses (:mod:`.ilrm`, :mod:`.full_attention`) differ only in
:meth:`GaussianLRM.process`, which turns image tokens into tokens on the Gaussian grid."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..cameras import Views, check_image_size, pixel_rays, ray_features, scale_intrinsics
from ..config import ILRMConfig
from ..gaussians import Gaussians, decode_gaussians
from ..weight_files import load_into, load_weights, save_weights
from .layers import patchify, unpatchify

HUB_KWARGS = dict(
    library_name="ilrm",
    repo_url="https://github.com/ilrm-project/ilrm",
    paper_url="https://arxiv.org/abs/2507.23277",
    tags=["3d-reconstruction", "gaussian-splatting", "novel-view-synthesis", "ilrm"],
    license="apache-2.0",
    coders={ILRMConfig: (lambda c: c.to_dict(), lambda d: ILRMConfig.from_dict(d))},
)


class GaussianLRM(nn.Module):
    """What iLRM and the full-attention baseline share: image tokenizer, Gaussian head, decoding.

    Subclasses implement :meth:`process` (tokens → per-Gaussian-grid head input).
    """

    def __init__(self, config: ILRMConfig):
        super().__init__()
        self.config = config
        D = config.width
        self.image_tokenizer = nn.Linear(config.image_in_channels, D, bias=False)
        self.image_norm = nn.LayerNorm(D, eps=config.norm_eps, bias=False)
        self.head_norm = nn.LayerNorm(D, eps=config.norm_eps, bias=False)
        self.head = nn.Linear(D, config.patch_size**2 * config.gaussian_channels, bias=False)
        self.gradient_checkpointing = False

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each block in the backward pass (training only; ignored without grad)."""
        self.gradient_checkpointing = enabled

    def _run_blocks(self, blocks: nn.ModuleList, x: Tensor, ctx: Tensor | None, num_views: int) -> Tensor:
        use_ckpt = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for blk in blocks:
            x = checkpoint(blk, x, ctx, num_views, use_reentrant=False) if use_ckpt else blk(x, ctx, num_views)
        return x

    def image_tokens(self, views: Views) -> Tensor:
        """(B, V·(H/p)·(W/p), D) tokens of [rgb, rays] features at full resolution."""
        cfg = self.config
        H, W = views.height, views.width
        o, d = pixel_rays(views.intrinsics.float(), views.c2w.float(), H, W)
        feats = ray_features(o, d, cfg.image_features, views.images)
        return self.image_norm(self.image_tokenizer(patchify(feats, cfg.patch_size)))

    def decode(self, tokens: Tensor, views: Views) -> Gaussians:
        """Head on (B, V·h·w, D) tokens of the Gaussian grid (H/g, W/g), g = config.gaussian_factor."""
        cfg = self.config
        B, V = views.batch_size, views.num_views
        g, p = cfg.gaussian_factor, cfg.patch_size
        gh, gw = views.height // g, views.width // g
        raw = unpatchify(self.head(self.head_norm(tokens)), V, gh // p, gw // p, p)  # (B, V, gh, gw, C)
        raw = raw.float()
        offset = None
        if cfg.head_offset:
            offset = torch.sigmoid(raw[..., :2]) - 0.5  # in grid pixels, within ±0.5
            raw = raw[..., 2:]
        K = scale_intrinsics(views.intrinsics.float(), 1 / g, 1 / g) if g != 1 else views.intrinsics.float()
        o, d = pixel_rays(K, views.c2w.float(), gh, gw, offset=offset)
        # Footprint of one grid pixel per unit depth, per view: (B, V·gh·gw) after expansion.
        focal = (K[..., 0, 0] * K[..., 1, 1]).sqrt()[:, :, None].expand(B, V, gh * gw).reshape(B, -1)
        base_rgb = None
        if cfg.color_init == "image":
            img = views.images.float().flatten(0, 1)
            img = F.avg_pool2d(img, g) if g != 1 else img  # (B·V, 3, gh, gw)
            base_rgb = img.reshape(B, V, 3, gh * gw).permute(0, 1, 3, 2).reshape(B, -1, 3)
        return decode_gaussians(
            raw.reshape(B, -1, raw.shape[-1]),
            o.reshape(B, -1, 3),
            d.reshape(B, -1, 3),
            sh_coeffs=cfg.sh_coeffs,
            depth_max=cfg.depth_max,
            scale_shift=cfg.scale_shift,
            scale_log_max=cfg.scale_log_max,
            opacity_shift=cfg.opacity_shift,
            scale_clamp=cfg.scale_clamp,
            depth_mode=cfg.depth_mode,
            depth_near=cfg.depth_near,
            depth_far=cfg.depth_far,
            depth_bias=cfg.depth_bias,
            scale_mode=cfg.scale_mode,
            focal=focal,
            base_rgb=base_rgb,
        )

    def process(self, views: Views, image_tokens: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, views: Views) -> Gaussians:
        """views: images (B, V, 3, H, W) in [0, 1], intrinsics (B, V, 3, 3) pixels, c2w (B, V, 4, 4)
        OpenCV, poses already normalised. Returns Gaussians with N = V·(H/g)·(W/g)."""
        views.validate()
        check_image_size(views.height, views.width, self.config.size_multiple)
        return self.decode(self.process(views, self.image_tokens(views)), views)

    def num_gaussians(self, num_views: int, height: int, width: int) -> int:
        g = self.config.gaussian_factor
        return num_views * (height // g) * (width // g)

    # ---- our format (Hub mixin hooks): sharded when over the per-file limit ----------------------
    def _save_pretrained(self, save_directory: Path) -> None:
        save_weights(self, save_directory)

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs,
    ):
        model = cls(**model_kwargs)
        if Path(model_id).is_dir():
            sd = load_weights(model_id)
        else:
            from huggingface_hub import hf_hub_download
            from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

            from ..errors import ILRMInputError

            not_cached: list[str] = []  # absent from the cache while the Hub cannot be reached: unknown

            def fetch(name: str) -> str | None:
                try:
                    return hf_hub_download(
                        model_id, name, revision=revision, cache_dir=cache_dir, force_download=force_download,
                        token=token, local_files_only=local_files_only,
                    )
                except LocalEntryNotFoundError:  # a subclass of EntryNotFoundError: test it first
                    not_cached.append(name)
                    return None
                except EntryNotFoundError:  # the Hub says the file does not exist
                    return None

            try:
                sd = load_weights(fetch=fetch)
            except ILRMInputError as e:
                if not not_cached:
                    raise
                from ..hub_errors import hub_offline_message

                raise ILRMInputError(hub_offline_message(model_id, f" (not cached: {', '.join(not_cached)})")) from e
        return load_into(model, sd).to(map_location).eval()


def as_config(config: ILRMConfig | dict) -> ILRMConfig:
    """Accept the dict form too: the Hub mixin hands ``config.json`` over as a dict."""
    return ILRMConfig.from_dict(config) if isinstance(config, dict) else config


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

