"""iLRM: posed photos → 3D Gaussians in one forward pass (Kang et al., arXiv 2507.23277)."""

from .cameras import Views
from .checkpoints import load_model
from .config import ILRMConfig
from .errors import ILRMInputError
from .gaussians import Gaussians
from .models import ILRM, FullAttentionLRM, build_model
from .pipeline import Reconstructor
from .rendering import render

__all__ = ["ILRM", "FullAttentionLRM", "ILRMConfig", "Views", "Gaussians", "ILRMInputError", "render", "load_model", "build_model", "Reconstructor"]
__version__ = "0.1.0"
