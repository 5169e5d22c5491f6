"""iLRM: posed photos → 3D Gaussians in one forward pass (Kang et al., arXiv 2507.23277)."""

from .cameras import Views
from .config import ILRMConfig
from .errors import ILRMInputError
from .gaussians import Gaussians
from .model import ILRM


def render(*args, **kwargs):
    """Render Gaussians into cameras: see :func:`ilrm.render.render` (gsplat on CUDA, torch on CPU)."""
    from .render import render as _render

    return _render(*args, **kwargs)


__all__ = ["ILRM", "ILRMConfig", "Views", "Gaussians", "ILRMInputError", "render"]
__version__ = "0.1.0"
