"""Textures for the procedural rooms: photos bundled with scikit-image plus periodic procedural patterns.

Every texture is a square ``(T, T, 3)`` float32 array in [0, 1] that tiles seamlessly (procedural
patterns are periodic by construction; photos used as materials are mirror-tiled), except the
"picture" variant of a photo, which is meant to be shown exactly once (a framed picture on a wall),
and the images in :data:`ONCE_PATTERNS` (a window, a row of book spines), also shown once. Patterns
after "noise" in :data:`PATTERNS` are only used by procedural ``scene_style`` 2.

Everything is a pure function of a ``numpy.random.RandomState`` (the legacy generator, whose streams
numpy keeps stable across versions), so a scene seed gives the same textures on every machine.

Photos come from ``skimage.data`` and only those shipped inside the scikit-image wheel are used (no
download). If one cannot be loaded, a procedural texture drawn from the same random stream takes
its place, so the rest of the scene stays the same.
"""

from __future__ import annotations

import colorsys
import functools
import logging
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

# Photos bundled in the scikit-image wheel (checked offline with scikit-image 0.26): name -> loader.
# "Material" photos look like surfaces and are tiled; "picture" photos hang on walls or cover objects.
MATERIAL_PHOTOS: tuple[str, ...] = ("gravel", "grass")
PICTURE_PHOTOS: tuple[str, ...] = (
    "astronaut",
    "brick",
    "chelsea",
    "coffee",
    "rocket",
    "camera",
    "hubble_deep_field",
    "coins",
    "moon",
    "colorwheel",
    "immunohistochemistry",
    "motorcycle",
    "page",
    "text",
    "clock",
    "retina",
    "cell",
)


def _skimage_photo(name: str) -> np.ndarray:
    import skimage.data as data

    if name == "motorcycle":
        return data.stereo_motorcycle()[0]
    return getattr(data, name)()


@functools.lru_cache(maxsize=64)
def load_photo(name: str, size: int) -> np.ndarray | None:
    """A bundled scikit-image photo, centre-cropped to a square and resized to ``(size, size, 3)``.

    Returns float32 in [0, 1] (grey photos are repeated over 3 channels), or None if the photo cannot
    be loaded offline (scikit-image missing or the file not bundled). Cached per (name, size).
    """
    try:
        img = np.asarray(_skimage_photo(name))
    except Exception as err:  # noqa: BLE001 - any failure means "not available offline"
        log.warning("skimage photo %r unavailable (%s); using a procedural texture instead", name, err)
        return None
    img = img.astype(np.float32)
    if img.max() > 1.0:
        img = img / 255.0
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    img = img[..., :3]  # drop alpha
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    img = img[top : top + s, left : left + s]
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]
    t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return t[0].permute(1, 2, 0).clamp(0, 1).numpy()


def available_photos(size: int = 64) -> list[str]:
    """Names in :data:`MATERIAL_PHOTOS` + :data:`PICTURE_PHOTOS` that load offline here."""
    return [n for n in MATERIAL_PHOTOS + PICTURE_PHOTOS if load_photo(n, size) is not None]


# ---- helpers ---------------------------------------------------------------------------------


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) texel-centre coordinates in [0, 1), each (size, size); u along columns, v along rows."""
    c = (np.arange(size, dtype=np.float64) + 0.5) / size
    v, u = np.meshgrid(c, c, indexing="ij")
    return u, v


@functools.lru_cache(maxsize=8)
def _log_frequency(size: int) -> np.ndarray:
    """log |f| on the rfft2 grid of a (size, size) image (the DC term set to 0)."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    return np.log(f)


def periodic_noise(rng: np.random.RandomState, size: int, beta: float = 2.0, min_period: float = 1.0) -> np.ndarray:
    """Seamless fractal noise, (size, size) with zero mean and unit std.

    Spectral synthesis: white noise shaped to a power spectrum ~ f^-beta (beta 0 = white, 2 = clouds)
    in the 2-D FFT, so the result is exactly periodic. ``min_period`` (in texels) removes detail finer
    than that wavelength.
    """
    white = rng.random_sample((size, size)) - 0.5  # uniform white noise: flat spectrum, cheaper than normal
    log_f = _log_frequency(size)
    amp = np.exp((-beta / 2) * log_f)
    amp[log_f > -math.log(max(min_period, 1.0))] = 0.0
    amp[0, 0] = 0.0
    n = np.fft.irfft2(np.fft.rfft2(white) * amp, s=(size, size))
    return (n - n.mean()) / (n.std() + 1e-8)


def random_colour(
    rng: np.random.RandomState,
    hue: tuple[float, float] = (0.0, 1.0),
    sat: tuple[float, float] = (0.0, 1.0),
    val: tuple[float, float] = (0.0, 1.0),
) -> np.ndarray:
    """An RGB colour (3,) drawn uniformly in the given HSV box (hue wraps around 1)."""
    h = rng.uniform(*hue) % 1.0
    s = rng.uniform(*sat)
    v = rng.uniform(*val)
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float64)


def _wall_colour(rng: np.random.RandomState) -> np.ndarray:
    return random_colour(rng, sat=(0.03, 0.35), val=(0.6, 0.95))


def _any_colour(rng: np.random.RandomState) -> np.ndarray:
    return random_colour(rng, sat=(0.1, 0.85), val=(0.25, 0.95))


def _mix(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per-pixel blend: a where w = 0, b where w = 1; a, b (3,), w (T, T) -> (T, T, 3)."""
    return a * (1 - w[..., None]) + b * w[..., None]


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


# ---- procedural patterns (each: rng, size -> (size, size, 3)) -----------------------------------


def paint(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Painted plaster: a pale colour with soft blotches and fine grain."""
    base = _wall_colour(rng)
    n = 0.07 * periodic_noise(rng, size, 2.2) + 0.03 * periodic_noise(rng, size, 0.6)
    return base * (1 + n[..., None])


def plaster(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Two close colours mixed by cloudy noise (stucco, concrete)."""
    a = _wall_colour(rng)
    b = np.clip(a * rng.uniform(0.7, 0.9) + rng.uniform(-0.05, 0.05, 3), 0, 1)
    w = _smoothstep(-0.6, 0.6, periodic_noise(rng, size, 2.5, min_period=size / 32))
    return _mix(a, b, w) * (1 + 0.05 * periodic_noise(rng, size, 0.8))[..., None]


def carpet(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Coarse-fibred carpet: a mid colour with strong fine noise."""
    base = random_colour(rng, sat=(0.15, 0.6), val=(0.3, 0.7))
    n = 0.15 * periodic_noise(rng, size, 0.3) + 0.08 * periodic_noise(rng, size, 2.0)
    return base * (1 + n[..., None])


def wood(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Floor boards along v: per-plank tone, streaky grain, dark gaps and butt joints."""
    u, v = _grid(size)
    planks = rng.randint(3, 8)
    base = random_colour(rng, hue=(0.04, 0.11), sat=(0.35, 0.7), val=(0.35, 0.85))
    x = u * planks
    idx = np.floor(x).astype(int) % planks
    local = x - np.floor(x)
    tone = rng.uniform(0.8, 1.15, planks)[idx]
    phase = rng.uniform(0, 1, planks)[idx]
    joint = rng.uniform(0, 1, planks)[idx]
    warp = periodic_noise(rng, size, 2.5, min_period=size / 16)
    grain = np.sin(2 * np.pi * (rng.randint(3, 9) * local + 0.25 * warp + phase))
    fine = periodic_noise(rng, size, 0.5)
    img = base * (tone * (1 + 0.08 * grain + 0.04 * fine))[..., None]
    gap = np.minimum(local, 1 - local) * size / planks  # texels to the nearest board edge
    jd = np.abs(((v - joint + 0.5) % 1.0) - 0.5) * size  # texels to the board's joint
    dark = np.maximum(_smoothstep(1.5, 0.0, gap), _smoothstep(1.0, 0.0, jd) * 0.8)
    return img * (1 - 0.6 * dark)[..., None]


def tiles(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Square ceramic tiles with grout lines and per-tile tone."""
    u, v = _grid(size)
    n = rng.randint(2, 7)
    a = random_colour(rng, sat=(0.0, 0.5), val=(0.45, 0.95))
    b = a if rng.rand() < 0.6 else random_colour(rng, sat=(0.0, 0.5), val=(0.3, 0.95))
    grout = np.full(3, rng.uniform(0.25, 0.85))
    iu, iv = np.floor(u * n).astype(int), np.floor(v * n).astype(int)
    tone = rng.uniform(0.9, 1.08, (n, n))[iv, iu]
    pick = ((iu + iv) % 2).astype(np.float64) if n % 2 == 0 else np.zeros_like(u)
    img = _mix(a, b, pick) * (tone * (1 + 0.03 * periodic_noise(rng, size, 1.0)))[..., None]
    du = np.minimum(u * n - iu, iu + 1 - u * n) * size / n
    dv = np.minimum(v * n - iv, iv + 1 - v * n) * size / n
    g = _smoothstep(1.5, 0.5, np.minimum(du, dv))
    return _mix(np.zeros(3), np.ones(3), 1 - g) * img + g[..., None] * grout


def checker(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Two-colour checkerboard (even count per tile so it repeats seamlessly)."""
    u, v = _grid(size)
    n = 2 * rng.randint(1, 5)
    a, b = _any_colour(rng), _any_colour(rng)
    w = ((np.floor(u * n) + np.floor(v * n)) % 2).astype(np.float64)
    return _mix(a, b, w) * (1 + 0.03 * periodic_noise(rng, size, 1.0))[..., None]


def stripes(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Wallpaper stripes along v from a 2-3 colour palette."""
    u, _ = _grid(size)
    n = rng.randint(3, 13)
    palette = [_wall_colour(rng) for _ in range(rng.randint(2, 4))]
    widths = rng.uniform(0.3, 1.0, n)
    edges = np.concatenate([[0.0], np.cumsum(widths) / widths.sum()])
    idx = np.clip(np.searchsorted(edges, u, side="right") - 1, 0, n - 1)
    cols = np.stack([palette[i % len(palette)] for i in range(n)])
    return cols[idx] * (1 + 0.03 * periodic_noise(rng, size, 1.0))[..., None]


def dots(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Polka-dot wallpaper (staggered grid of discs)."""
    u, v = _grid(size)
    n = rng.randint(3, 9)
    bg, fg = _wall_colour(rng), _any_colour(rng)
    x, y = u * n, v * n
    x = x + 0.5 * (np.floor(y) % 2) * (n % 2 == 0)
    dx, dy = x - np.floor(x) - 0.5, y - np.floor(y) - 0.5
    r = rng.uniform(0.15, 0.35)
    w = _smoothstep(r, r - 1.5 * n / size, np.sqrt(dx**2 + dy**2))
    return _mix(bg, fg, w)


def bricks(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Running-bond brickwork with mortar and per-brick tone."""
    u, v = _grid(size)
    rows = 2 * rng.randint(3, 9)
    cols = max(1, rows // 2 + rng.randint(-1, 2))
    base = random_colour(rng, hue=(0.0, 0.08), sat=(0.3, 0.7), val=(0.35, 0.75))
    if rng.rand() < 0.3:
        base = random_colour(rng, sat=(0.0, 0.15), val=(0.6, 0.95))  # painted bricks
    mortar = np.full(3, rng.uniform(0.55, 0.85))
    y = v * rows
    ir = np.floor(y).astype(int)
    x = u * cols + 0.5 * (ir % 2)
    ic = np.floor(x).astype(int) % cols
    tone = rng.uniform(0.8, 1.15, (rows, cols))[ir, ic]
    img = base * (tone * (1 + 0.06 * periodic_noise(rng, size, 0.7)))[..., None]
    dy = np.minimum(y - ir, ir + 1 - y) * size / rows
    dx = np.minimum(x - np.floor(x), np.floor(x) + 1 - x) * size / cols
    g = _smoothstep(1.5, 0.5, np.minimum(dx, dy))
    return img * (1 - g[..., None]) + g[..., None] * mortar


def gradient(rng: np.random.RandomState, size: int) -> np.ndarray:
    """A smooth two-colour ramp, mirrored so it repeats without a seam."""
    u, v = _grid(size)
    a, b = _any_colour(rng), _any_colour(rng)
    t = v if rng.rand() < 0.5 else u
    return _mix(a, b, 1 - np.abs(2 * t - 1))


def marble(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Veined stone: a pale base with turbulent dark veins."""
    u, v = _grid(size)
    base = random_colour(rng, sat=(0.0, 0.2), val=(0.65, 0.95))
    vein = random_colour(rng, sat=(0.0, 0.4), val=(0.15, 0.5))
    k = rng.randint(1, 4)
    s = np.sin(2 * np.pi * (k * (u + v) + 0.5 * periodic_noise(rng, size, 3.0, min_period=size / 12)))
    w = _smoothstep(0.85, 1.0, np.abs(s))
    return _mix(base, vein, w * 0.8) * (1 + 0.03 * periodic_noise(rng, size, 1.0))[..., None]


def noise_colour(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Colourful cloudy noise (fabric, upholstery)."""
    a, b = _any_colour(rng), _any_colour(rng)
    w = _smoothstep(-1.0, 1.0, periodic_noise(rng, size, rng.uniform(2.0, 3.5), min_period=size / 32))
    return _mix(a, b, w)


# Patterns added for scene_style 2 (style 1 never picks them, so its scenes are unchanged).


def parquet(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Basket-weave parquet: an even grid of cells, each with k parallel planks turned 90° from its
    neighbours, per-plank tone, streaky grain and dark joints."""
    u, v = _grid(size)
    n, k = 2 * rng.randint(1, 4), rng.randint(2, 5)  # cells per side (even: seamless), planks per cell
    base = random_colour(rng, hue=(0.03, 0.11), sat=(0.3, 0.7), val=(0.3, 0.85))
    iu, iv = np.floor(u * n).astype(int), np.floor(v * n).astype(int)
    fu, fv = u * n - iu, v * n - iv
    turned = (iu + iv) % 2 == 1
    across = np.where(turned, fu, fv) * k  # coordinate across the planks of a cell
    ip = np.minimum(np.floor(across).astype(int), k - 1)
    tone = rng.uniform(0.8, 1.15, (n, n, k))[iv, iu, ip]
    warp = periodic_noise(rng, size, 2.5, min_period=size / 16)
    grain = np.sin(2 * np.pi * (rng.randint(2, 6) * (across - ip) + 0.3 * warp))
    img = base * (tone * (1 + 0.07 * grain + 0.04 * periodic_noise(rng, size, 0.5)))[..., None]
    cell_px = size / n
    plank_gap = np.minimum(across - ip, ip + 1 - across) * cell_px / k
    gap = np.minimum(plank_gap, np.minimum.reduce([fu, 1 - fu, fv, 1 - fv]) * cell_px)
    return img * (1 - 0.55 * _smoothstep(1.2, 0.0, gap))[..., None]


def mosaic(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Small square tiles, each a random colour from a 2-4 colour palette, with light grout."""
    u, v = _grid(size)
    n = 2 ** rng.randint(3, 5)
    palette = np.stack([random_colour(rng, sat=(0.05, 0.7), val=(0.3, 0.95)) for _ in range(rng.randint(2, 5))])
    iu, iv = np.floor(u * n).astype(int), np.floor(v * n).astype(int)
    cells = palette[rng.randint(len(palette), size=(n, n))] * rng.uniform(0.9, 1.1, (n, n, 1))
    img = cells[iv, iu]
    du = np.minimum(u * n - iu, iu + 1 - u * n) * size / n
    dv = np.minimum(v * n - iv, iv + 1 - v * n) * size / n
    g = _smoothstep(1.2, 0.3, np.minimum(du, dv))[..., None]
    return img * (1 - g) + g * rng.uniform(0.6, 0.9)


def plaid(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Tartan: one random band sequence across u and v; a twill picks which band shows."""
    u, v = _grid(size)
    n = rng.randint(4, 11)
    palette = [_any_colour(rng) for _ in range(rng.randint(2, 5))]
    widths = rng.uniform(0.2, 1.0, n)
    edges = np.concatenate([[0.0], np.cumsum(widths) / widths.sum()])
    cols = np.stack([palette[i % len(palette)] for i in range(n)])
    cu = cols[np.clip(np.searchsorted(edges, u, side="right") - 1, 0, n - 1)]
    cv = cols[np.clip(np.searchsorted(edges, v, side="right") - 1, 0, n - 1)]
    ti = np.arange(size)
    twill = ((ti[None, :] + ti[:, None]) % 4 < 2)[..., None]  # period 4 texels divides the size
    return np.where(twill, cu, cv) * (1 + 0.04 * periodic_noise(rng, size, 1.0))[..., None]


def weave(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Woven cloth: warp and weft threads alternating over and under, each with a rounded profile."""
    u, v = _grid(size)
    n = 2 * rng.randint(6, 20)
    a = _any_colour(rng)
    b = a * rng.uniform(0.6, 1.0) if rng.rand() < 0.7 else _any_colour(rng)
    cu, cv = u * n, v * n
    over = ((np.floor(cu) + np.floor(cv)) % 2 == 0)[..., None]
    warp = a * (0.65 + 0.35 * np.sin(np.pi * (cu % 1)))[..., None]
    weft = b * (0.65 + 0.35 * np.sin(np.pi * (cv % 1)))[..., None]
    return np.where(over, warp, weft) * (1 + 0.06 * periodic_noise(rng, size, 1.5))[..., None]


def terrazzo(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Terrazzo: a pale or dark binder with scattered chips in 2-3 colours (thresholded noise blobs)."""
    base = random_colour(rng, sat=(0.0, 0.25), val=(0.25, 0.95))
    img = base * (1 + 0.04 * periodic_noise(rng, size, 2.0))[..., None]
    for _ in range(rng.randint(2, 4)):
        chip = random_colour(rng, sat=(0.0, 0.7), val=(0.1, 0.95))
        blobs = periodic_noise(rng, size, 0.0, min_period=size / rng.uniform(24, 64))
        w = _smoothstep(1.6, 1.9, blobs)[..., None]  # ~5% of the area per chip colour
        img = img * (1 - w) + w * chip
    return img


def concrete(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Cast concrete: cloudy grey with a slight warm/cool cast and small dark pores."""
    grey = rng.uniform(0.35, 0.8)
    base = np.clip(grey + rng.uniform(-0.03, 0.03, 3), 0, 1)
    cloud = 0.1 * periodic_noise(rng, size, 2.3) + 0.04 * periodic_noise(rng, size, 0.7)
    pores = _smoothstep(2.2, 2.8, periodic_noise(rng, size, 0.0, min_period=3.0))
    return base * (1 + cloud - 0.5 * pores)[..., None]


def damask(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Ornamental wallpaper: a symmetric motif made of a few cosines (integer frequencies: seamless)."""
    u, v = _grid(size)
    n = rng.randint(2, 6)
    x, y = 2 * np.pi * n * u, 2 * np.pi * n * v
    a, b, c = rng.uniform(-0.6, 0.6, 3)
    f = np.cos(x) * np.cos(y) + a * np.cos(2 * x) + b * np.cos(2 * y) + c * np.cos(x + y) * np.cos(x - y)
    t = rng.uniform(-0.3, 0.5)
    bg = _wall_colour(rng)
    fg = np.clip(bg * rng.uniform(0.55, 0.85), 0, 1) if rng.rand() < 0.6 else _any_colour(rng)
    return _mix(bg, fg, _smoothstep(t - 0.08, t + 0.08, f)) * (1 + 0.03 * periodic_noise(rng, size, 1.0))[..., None]


def lacquer(rng: np.random.RandomState, size: int) -> np.ndarray:
    """A plain coat from near-black to pale (painted furniture, appliances, plastic): real rooms
    have many dark, untextured surfaces, which the other patterns rarely give."""
    base = random_colour(rng, sat=(0.0, 0.8), val=(0.04, 0.9))
    return base * (1 + 0.02 * periodic_noise(rng, size, 1.5))[..., None]


def foliage(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Leaves: a dark and a light green mixed by blotchy noise (plants)."""
    dark = random_colour(rng, hue=(0.2, 0.38), sat=(0.4, 0.85), val=(0.12, 0.4))
    light = random_colour(rng, hue=(0.17, 0.35), sat=(0.3, 0.8), val=(0.4, 0.8))
    w = _smoothstep(-0.8, 0.8, periodic_noise(rng, size, 1.2, min_period=size / 48))
    return _mix(dark, light, w)


def window(rng: np.random.RandomState, size: int) -> np.ndarray:
    """A window seen from inside (shown once, not tiled): sky over a tree or building line, behind a
    frame with mullions."""
    u, v = _grid(size)
    zenith = random_colour(rng, hue=(0.54, 0.64), sat=(0.15, 0.65), val=(0.7, 1.0))
    horizon = 0.5 * (zenith + 1.0)
    line = rng.uniform(0.55, 0.9) + 0.06 * periodic_noise(rng, size, 2.0, min_period=size / 16)[0][None, :]
    ground = random_colour(rng, hue=(0.15, 0.4), sat=(0.15, 0.6), val=(0.2, 0.6))
    sky = _mix(zenith, horizon, np.clip(v / line.mean(), 0, 1))
    img = np.where((v > line)[..., None], ground * (1 + 0.15 * periodic_noise(rng, size, 1.5))[..., None], sky)
    frame = random_colour(rng, sat=(0.0, 0.2), val=(0.1, 0.95))
    w = rng.uniform(0.03, 0.07)
    bar = (np.minimum.reduce([u, 1 - u, v, 1 - v]) < w) | (np.abs(u - 0.5) < w / 2)
    if rng.rand() < 0.5:
        bar |= np.abs(v - rng.uniform(0.3, 0.5)) < w / 2
    return np.where(bar[..., None], frame, img)


def books(rng: np.random.RandomState, size: int) -> np.ndarray:
    """A row of book spines seen from the front (shown once): bands of random width, colour and
    height standing on the bottom edge, dark shelf back above them."""
    u, v = _grid(size)
    n = rng.randint(6, 16)
    widths = rng.uniform(0.4, 1.0, n)
    edges = np.concatenate([[0.0], np.cumsum(widths) / widths.sum()])
    idx = np.clip(np.searchsorted(edges, u, side="right") - 1, 0, n - 1)
    cols = np.stack([random_colour(rng, sat=(0.1, 0.8), val=(0.1, 0.85)) for _ in range(n)])
    tops = rng.uniform(0.0, 0.35, n)
    img = cols[idx] * (1 + 0.05 * periodic_noise(rng, size, 1.0))[..., None]
    gap = np.minimum(u - edges[idx], edges[idx + 1] - u) * size  # texels to the spine's edge
    img = img * (1 - 0.5 * _smoothstep(1.0, 0.0, gap))[..., None]
    return np.where((v < tops[idx])[..., None], np.full(3, rng.uniform(0.02, 0.12)), img)


PATTERNS: dict[str, Callable[[np.random.RandomState, int], np.ndarray]] = {
    "paint": paint,
    "plaster": plaster,
    "carpet": carpet,
    "wood": wood,
    "tiles": tiles,
    "checker": checker,
    "stripes": stripes,
    "dots": dots,
    "bricks": bricks,
    "gradient": gradient,
    "marble": marble,
    "noise": noise_colour,
    "parquet": parquet,
    "mosaic": mosaic,
    "plaid": plaid,
    "weave": weave,
    "terrazzo": terrazzo,
    "concrete": concrete,
    "damask": damask,
    "lacquer": lacquer,
    "foliage": foliage,
}
# Images meant to be shown exactly once (like "picture:" photos), so not seamless.
ONCE_PATTERNS: dict[str, Callable[[np.random.RandomState, int], np.ndarray]] = {"window": window, "books": books}


# ---- photos as textures ----------------------------------------------------------------------


def photo_texture(name: str, rng: np.random.RandomState, size: int, *, picture: bool) -> np.ndarray | None:
    """A bundled photo as a texture with a random tint, or None if it cannot be loaded.

    ``picture=False`` mirror-tiles the photo (2×2 mirrored copies shrunk to ``size``) so it repeats
    without seams; ``picture=True`` keeps it as is, to be shown once. Grey photos get a coloured tint,
    colour photos a mild one.
    """
    tint_rgb = random_colour(rng, sat=(0.0, 0.15), val=(0.85, 1.0))
    tint_grey = random_colour(rng, sat=(0.1, 0.5), val=(0.7, 1.0))
    prepared = _prepared_photo(name, size, picture)
    if prepared is None:
        return None
    img, grey = prepared
    return img * (tint_grey if grey else tint_rgb)


@functools.lru_cache(maxsize=64)
def _prepared_photo(name: str, size: int, picture: bool) -> tuple[np.ndarray, bool] | None:
    """The untinted float64 photo texture (mirror-tiled unless ``picture``) and whether it is grey.

    Cached because the antialiased resize dominated scene building time and depends only on the
    arguments (same operations as before caching, so the textures are unchanged). Read-only.
    """
    img = load_photo(name, size)
    if img is None:
        return None
    img = img.astype(np.float64)
    if not picture:
        tiled = np.concatenate([img, img[:, ::-1]], axis=1)
        tiled = np.concatenate([tiled, tiled[::-1]], axis=0)
        t = torch.from_numpy(np.ascontiguousarray(tiled)).permute(2, 0, 1)[None]
        t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        img = t[0].permute(1, 2, 0).numpy()
    grey = bool(np.allclose(img[..., 0], img[..., 1]) and np.allclose(img[..., 1], img[..., 2]))
    img.setflags(write=False)
    return img, grey


def make_texture(kind: str, rng: np.random.RandomState, size: int) -> np.ndarray:
    """One texture, (size, size, 3) float32 in [0, 1].

    kind: a key of :data:`PATTERNS`, of :data:`ONCE_PATTERNS` (shown once), ``"photo:NAME"``
    (mirror-tiled material) or ``"picture:NAME"`` (shown once). A photo that cannot be loaded falls back to the "noise" pattern drawn from ``rng``.
    """
    if kind.startswith(("photo:", "picture:")):
        prefix, name = kind.split(":", 1)
        img = photo_texture(name, rng, size, picture=prefix == "picture")
        if img is None:
            img = PATTERNS["noise"](rng, size)
    elif kind in PATTERNS:
        img = PATTERNS[kind](rng, size)
    elif kind in ONCE_PATTERNS:
        img = ONCE_PATTERNS[kind](rng, size)
    else:
        raise ValueError(
            f"unknown texture kind {kind!r}; use one of {sorted(PATTERNS) + sorted(ONCE_PATTERNS)} or photo:/picture:NAME"
        )
    return np.clip(img, 0.0, 1.0).astype(np.float32)
