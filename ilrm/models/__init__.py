"""The model registry: the one place that maps ``ILRMConfig.arch`` to a class.

>>> model = build_model(ILRMConfig.preset("tiny"))          # ILRM
>>> model = build_model(cfg.replace(arch="full-attention"))  # FullAttentionLRM (GS-LRM style baseline)
"""

from __future__ import annotations

from ..config import ILRMConfig
from ..errors import ILRMInputError
from .base import GaussianLRM, as_config, count_parameters
from .full_attention import FullAttentionLRM
from .ilrm import ILRM

MODELS: dict[str, type[GaussianLRM]] = {"ilrm": ILRM, "full-attention": FullAttentionLRM}


def model_class(arch: str) -> type[GaussianLRM]:
    """The class registered for ``arch``; an :class:`ILRMInputError` naming the known ones otherwise."""
    try:
        return MODELS[arch]
    except KeyError:
        raise ILRMInputError(f"unknown model arch {arch!r}; known: {', '.join(MODELS)}") from None


def build_model(config: ILRMConfig | dict) -> GaussianLRM:
    """A freshly initialised model of the class that ``config.arch`` names."""
    config = as_config(config)
    return model_class(config.arch)(config)


__all__ = ["MODELS", "GaussianLRM", "ILRM", "FullAttentionLRM", "build_model", "model_class", "as_config", "count_parameters"]
