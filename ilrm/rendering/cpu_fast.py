"""A fast CPU rasterizer for videos and previews: the reference's rules in a small compiled kernel.

:mod:`ilrm.rendering.reference` is the exact, differentiable pure-PyTorch rasterizer (tests, parity,
gradients). On a CPU it needs seconds per frame for a predicted scene (131k Gaussians at 256×448:
4–40 s per frame on a 2-core machine), because every tile evaluates every Gaussian of its list on all
of its pixels. This module renders the same images far faster, forward only:

* the same projection, culling, opacity-aware extents, 16×16 bounding-box tiles, stable depth order,
  α rule and exclusive transmittance stop as the reference (so as gsplat 1.5.3 classic);
* written in C++ (:data:`KERNEL_SOURCE`, below), compiled on first use with the system compiler
  (``$CXX``, ``g++``, ``c++`` or ``clang++``; ``-O3``, OpenMP when available) into a cache folder
  (``$ILRM_KERNEL_CACHE``, default ``~/.cache/ilrm/kernels``), loaded with :mod:`ctypes` (no torch
  headers, so it builds in seconds);
* each pixel walks its tile's front-to-back list and stops when its transmittance would fall below
  1e-4 (the reference evaluates whole chunks for every pixel), tiles run in parallel, and Gaussians
  whose α is certainly below 1/255 at a pixel skip the exponential.

The only differences from the reference are float32 rounding (sequential products instead of
chunked cumprods, libm ``expf``): measured parity is > 100 dB PSNR on predicted scenes (``benchmarks/cpu_video.py``,
``tests/test_render_cpu_fast.py``). No gradients: use the reference for autograd.

:func:`available` says whether the kernel builds here (the reason is in :func:`unavailable_reason`);
``ilrm.rendering.render(..., backend="cpu_fast")`` uses it and ``ilrm.video`` picks it for CPU videos.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch
from torch import Tensor

from .reference import DEFAULT_EPS2D, TILE_SIZE, sh_to_rgb

__all__ = ["KERNEL_SOURCE", "available", "rasterize_cpu_fast", "unavailable_reason"]

KERNEL_SOURCE = r"""// Fast CPU rasterizer for ilrm.rendering.cpu_fast: the same rules as the pure-torch reference
// (ilrm/rendering/reference.py, gsplat 1.5.3 classic), forward only, one image per call.
//
// Built on first use with the system C++ compiler (g++/c++ -O3 -fopenmp) and loaded with ctypes;
// no torch headers, so it compiles in about a second. Every input is a contiguous float32 array.
//
// Projection, culling, extents, tile assignment (16x16 bounding-box tiles), depth order (stable:
// ties keep the Gaussian index order), alpha rule and the exclusive transmittance stop are those of
// the reference; the differences are float32 rounding only (sequential products instead of chunked
// cumprod, libm expf instead of torch's exp).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>
#include <chrono>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {
constexpr float ALPHA_THRESHOLD = 1.0f / 255.0f;
constexpr float MAX_ALPHA = 0.999f;
constexpr float MIN_TRANSMITTANCE = 1e-4f;
constexpr float MAX_EXTENT = 3.33f;
#ifndef BLK
#define BLK 4
#endif
// exp(-s) for s in [0, 30]: 2^n · e^g with |g| <= ln2/2 and a degree-7 Taylor polynomial
// (relative error < 1e-7, below float32 rounding of the rest); branch-free so loops vectorise.
static inline float exp_neg(float s) {
    const float x = -s * 1.4426950408889634f;
    const int32_t ni = (int32_t)(x - 0.5f);  // round to nearest for x <= 0 (truncation toward zero)
    const float g = (x - (float)ni) * 0.6931471805599453f;
    float p = 1.0f / 5040.0f;
    p = p * g + 1.0f / 720.0f;
    p = p * g + 1.0f / 120.0f;
    p = p * g + 1.0f / 24.0f;
    p = p * g + 1.0f / 6.0f;
    p = p * g + 0.5f;
    p = p * g + 1.0f;
    p = p * g + 1.0f;
    union { int32_t i; float f; } u;
    u.i = (ni + 127) << 23;
    return p * u.f;
}
}  // namespace

extern "C" {

int ilrm_cpu_fast_abi_version() { return 2; }

// means (N,3), quats (N,4) wxyz, scales (N,3), opac (N,), feats (N,D) per-Gaussian features
// (colour, already evaluated for this camera; D <= 8), viewmat (4,4) world-to-camera row-major,
// K (3,3). Writes out_feat (H,W,D') accumulated features (no background) where D' = D + with_depth
// (the last channel: sum of w*z), and out_T (H,W) final transmittance. Returns the number of
// (tile, Gaussian) entries, or -1 on bad arguments.
int64_t ilrm_render_image(int64_t N, const float* means, const float* quats, const float* scales, const float* opac,
                          const float* feats, int D, const float* viewmat, const float* K, int W, int H, float near_,
                          float far_, float eps2d, int with_depth, int tile, float* out_feat, float* out_T,
                          int nthreads, double* stats) {
    if (D < 0 || D > 8 || W <= 0 || H <= 0 || tile <= 0) return -1;
#ifdef _OPENMP
    if (nthreads < 1) nthreads = 1;
#endif
    const int Dout = D + (with_depth ? 1 : 0);
    const float R00 = viewmat[0], R01 = viewmat[1], R02 = viewmat[2], t0 = viewmat[3];
    const float R10 = viewmat[4], R11 = viewmat[5], R12 = viewmat[6], t1 = viewmat[7];
    const float R20 = viewmat[8], R21 = viewmat[9], R22 = viewmat[10], t2 = viewmat[11];
    const float fx = K[0], cx = K[2], fy = K[4], cy = K[5];
    const float tan_x = 0.5f * W / fx, tan_y = 0.5f * H / fy;
    const float lim_x_pos = (W - cx) / fx + 0.3f * tan_x, lim_x_neg = cx / fx + 0.3f * tan_x;
    const float lim_y_pos = (H - cy) / fy + 0.3f * tan_y, lim_y_neg = cy / fy + 0.3f * tan_y;
    const int tiles_x = (W + tile - 1) / tile, tiles_y = (H + tile - 1) / tile;
    const int num_tiles = tiles_x * tiles_y;

    using clk = std::chrono::steady_clock;
    const auto t_start = clk::now();
    // ---- projection (parallel over Gaussians) -------------------------------------------------
    std::vector<float> pm(N * 2), pconic(N * 3), pdepth(N), pbox(N * 2);
    std::vector<int32_t> rect(N * 4);  // tile x0, x1, y0, y1 (exclusive ends); x0 == x1 when culled
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t n = 0; n < N; ++n) {
        int32_t* rc = &rect[n * 4];
        rc[0] = rc[1] = rc[2] = rc[3] = 0;
        const float* mu = &means[n * 3];
        const float z = R20 * mu[0] + R21 * mu[1] + R22 * mu[2] + t2;
        const float o = opac[n];
        if (!(z >= near_ && z <= far_ && o >= ALPHA_THRESHOLD)) continue;
        const float x = R00 * mu[0] + R01 * mu[1] + R02 * mu[2] + t0;
        const float y = R10 * mu[0] + R11 * mu[1] + R12 * mu[2] + t1;
        // rotation of the normalised quaternion
        const float* q = &quats[n * 4];
        float qn = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
        qn = qn > 1e-12f ? qn : 1e-12f;  // F.normalize's eps
        const float w = q[0] / qn, qx = q[1] / qn, qy = q[2] / qn, qz = q[3] / qn;
        const float r[9] = {
            1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - w * qz),       2 * (qx * qz + w * qy),
            2 * (qx * qy + w * qz),       1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - w * qx),
            2 * (qx * qz - w * qy),       2 * (qy * qz + w * qx),       1 - 2 * (qx * qx + qy * qy),
        };
        const float* s = &scales[n * 3];
        const float Rv[9] = {R00, R01, R02, R10, R11, R12, R20, R21, R22};
        float M[9];  // Rv · r · diag(s)
        for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j)
                M[i * 3 + j] = (Rv[i * 3 + 0] * r[0 * 3 + j] + Rv[i * 3 + 1] * r[1 * 3 + j] + Rv[i * 3 + 2] * r[2 * 3 + j]) * s[j];
        float C[9];  // M Mᵀ
        for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j)
                C[i * 3 + j] = M[i * 3 + 0] * M[j * 3 + 0] + M[i * 3 + 1] * M[j * 3 + 1] + M[i * 3 + 2] * M[j * 3 + 2];
        const float xz = x / z, yz = y / z;
        const float tx = z * std::min(lim_x_pos, std::max(-lim_x_neg, xz));
        const float ty = z * std::min(lim_y_pos, std::max(-lim_y_neg, yz));
        const float J00 = fx / z, J02 = -fx * tx / (z * z), J11 = fy / z, J12 = -fy * ty / (z * z);
        // cov2d = J C Jᵀ with J = [[J00, 0, J02], [0, J11, J12]]
        const float JC00 = J00 * C[0] + J02 * C[6], JC01 = J00 * C[1] + J02 * C[7], JC02 = J00 * C[2] + J02 * C[8];
        const float JC10 = J11 * C[3] + J12 * C[6], JC11 = J11 * C[4] + J12 * C[7], JC12 = J11 * C[5] + J12 * C[8];
        const float a = JC00 * J00 + JC02 * J02 + eps2d;
        const float b = JC01 * J11 + JC02 * J12;
        const float c = JC11 * J11 + JC12 * J12 + eps2d;
        (void)JC10;
        const float det = a * c - b * b;
        const float mx = fx * x / z + cx, my = fy * y / z + cy;
        const float extent = std::min(MAX_EXTENT, std::sqrt(2.0f * std::log(o / ALPHA_THRESHOLD)));
        const float rx = std::ceil(extent * std::sqrt(std::max(a, 0.0f)));
        const float ry = std::ceil(extent * std::sqrt(std::max(c, 0.0f)));
        if (!(det > 0 && rx > 0 && ry > 0 && mx + rx > 0 && mx - rx < W && my + ry > 0 && my - ry < H)) continue;
        pm[n * 2] = mx;
        pm[n * 2 + 1] = my;
        pconic[n * 3] = c / det;
        pconic[n * 3 + 1] = -b / det;
        pconic[n * 3 + 2] = a / det;
        pdepth[n] = z;
        // half extents of the region where alpha can reach 1/255: sigma <= s_max = log(255·o)
        // (with a margin) is the ellipse of half-widths sqrt(2·s_max·Σ2D[0,0]), sqrt(2·s_max·Σ2D[1,1])
        {
            const float smax = std::log(o * 255.0f) * 1.0001f + 1e-4f;
            pbox[n * 2] = std::sqrt(2.0f * smax * std::max(a, 0.0f)) * 1.0001f + 1e-3f;
            pbox[n * 2 + 1] = std::sqrt(2.0f * smax * std::max(c, 0.0f)) * 1.0001f + 1e-3f;
        }
        // tiles touched, in float32 as gsplat's intersect_tile (radii are integers)
        const float ts = (float)tile;
        const float mxt = mx / ts, myt = my / ts, rxt = rx / ts, ryt = ry / ts;
        auto clampi = [](float v, int hi) { return (int32_t)std::min<float>(std::max<float>(v, 0.0f), (float)hi); };
        rc[0] = clampi(std::floor(mxt - rxt), tiles_x);
        rc[1] = clampi(std::ceil(mxt + rxt), tiles_x);
        rc[2] = clampi(std::floor(myt - ryt), tiles_y);
        rc[3] = clampi(std::ceil(myt + ryt), tiles_y);
    }

    const auto t_proj = clk::now();
    // ---- binning: one stable depth sort (ties keep the Gaussian index order), then a counting
    // sort by tile, which keeps that order inside every tile's list ---------------------------------
    std::vector<int32_t> order;
    order.reserve(N);
    for (int64_t n = 0; n < N; ++n)
        if (rect[n * 4] < rect[n * 4 + 1] && rect[n * 4 + 2] < rect[n * 4 + 3]) order.push_back((int32_t)n);
    std::stable_sort(order.begin(), order.end(), [&](int32_t i, int32_t j) { return pdepth[i] < pdepth[j]; });
    const int64_t M = (int64_t)order.size();
    // Packed records in depth order: mx, my, conic a, b, c, opacity, sigma limit, z, box x0, x1, y0, y1,
    // then D features (one or two cache lines per Gaussian).
    constexpr int REC0 = 12;
    const int REC = REC0 + D;
    std::vector<float> rec(M * REC);
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t i = 0; i < M; ++i) {
        const int32_t n = order[i];
        float* r = &rec[i * REC];
        r[0] = pm[n * 2];
        r[1] = pm[n * 2 + 1];
        r[2] = pconic[n * 3];
        r[3] = pconic[n * 3 + 1];
        r[4] = pconic[n * 3 + 2];
        r[5] = opac[n];
        r[6] = std::log(opac[n] * 255.0f) * 1.0001f + 1e-4f;
        r[7] = pdepth[n];
        r[8] = r[0] - pbox[n * 2];
        r[9] = r[0] + pbox[n * 2];
        r[10] = r[1] - pbox[n * 2 + 1];
        r[11] = r[1] + pbox[n * 2 + 1];
        for (int d = 0; d < D; ++d) r[REC0 + d] = feats[n * D + d];
    }
    std::vector<int64_t> offsets(num_tiles + 1, 0);
    for (int64_t i = 0; i < M; ++i) {
        const int32_t* rc = &rect[order[i] * 4];
        for (int ty = rc[2]; ty < rc[3]; ++ty)
            for (int tx = rc[0]; tx < rc[1]; ++tx) ++offsets[ty * tiles_x + tx + 1];
    }
    for (int t = 0; t < num_tiles; ++t) offsets[t + 1] += offsets[t];
    const int64_t total = offsets[num_tiles];
    std::vector<int32_t> ids(total);  // indices into rec, in depth order per tile
    {
        std::vector<int64_t> fill(offsets.begin(), offsets.end() - 1);
        for (int64_t i = 0; i < M; ++i) {
            const int32_t* rc = &rect[order[i] * 4];
            for (int ty = rc[2]; ty < rc[3]; ++ty)
                for (int tx = rc[0]; tx < rc[1]; ++tx) ids[fill[ty * tiles_x + tx]++] = (int32_t)i;
        }
    }

    const auto t_bin = clk::now();
    double s_sort = 0, s_blocks = 0, s_lanes = 0;
    // ---- compositing (parallel over tiles) -------------------------------------------------------
    // A tile's list is narrowed to 8×8 then BLK×BLK blocks: a block keeps the entries whose
    // alpha >= 1/255 region (a box around the ellipse sigma <= log(255·o)) reaches one of its pixel
    // centres. A skipped Gaussian changes nothing (T is untouched), so this is exact. The block's
    // pixels are composited together, lane by lane, until every one of them has stopped.
    constexpr int MID = 8;
#pragma omp parallel num_threads(nthreads)
    {
        std::vector<int32_t> ml, bl;
#pragma omp for schedule(dynamic, 1) reduction(+ : s_sort, s_blocks, s_lanes)
        for (int t = 0; t < num_tiles; ++t) {
            const int tx0 = (t % tiles_x) * tile, ty0 = (t / tiles_x) * tile;
            const int64_t beg = offsets[t], len = offsets[t + 1] - beg;
            const int32_t* list = ids.data() + beg;
            ml.resize(len);
            bl.resize(len);
            const int ymax = std::min(ty0 + tile, H), xmax = std::min(tx0 + tile, W);
            for (int my0 = ty0; my0 < ymax; my0 += MID) {
                for (int mx0 = tx0; mx0 < xmax; mx0 += MID) {
                    int64_t mlen = 0;
                    {
                        const float X0 = mx0 + 0.5f, X1 = mx0 + MID - 0.5f, Y0 = my0 + 0.5f, Y1 = my0 + MID - 0.5f;
                        for (int64_t k = 0; k < len; ++k) {
                            const float* r = &rec[(int64_t)list[k] * REC];
                            ml[mlen] = list[k];
                            mlen += (r[9] >= X0) & (r[8] <= X1) & (r[11] >= Y0) & (r[10] <= Y1);
                        }
                    }
                    const int mymax = std::min(my0 + MID, ymax), mxmax = std::min(mx0 + MID, xmax);
                    for (int by = my0; by < mymax; by += BLK) {
                        for (int bx = mx0; bx < mxmax; bx += BLK) {
                    const float X0 = bx + 0.5f, X1 = bx + BLK - 0.5f, Y0 = by + 0.5f, Y1 = by + BLK - 0.5f;
                    int64_t blen = 0;
                    for (int64_t k = 0; k < mlen; ++k) {
                        const float* r = &rec[(int64_t)ml[k] * REC];
                        bl[blen] = ml[k];
                        blen += (r[9] >= X0) & (r[8] <= X1) & (r[11] >= Y0) & (r[10] <= Y1);
                    }
                    s_blocks += (double)blen;
                    constexpr int L = BLK * BLK;
                    float px[L], py[L], T[L], acc[9][L];
                    int live[L];
                    for (int l = 0; l < L; ++l) {
                        px[l] = bx + (l % BLK) + 0.5f;
                        py[l] = by + (l / BLK) + 0.5f;
                        T[l] = 1.0f;
                        live[l] = 1;
                        for (int d = 0; d < 9; ++d) acc[d][l] = 0.0f;
                    }
                    for (int64_t i = 0; i < blen; ++i) {
                        const float* r = &rec[(int64_t)bl[i] * REC];
                        const float mx = r[0], my = r[1], ca = r[2], cb = r[3], cc = r[4], o = r[5];
                        const float smax = r[6], z = r[7];
                        float w[L];
                        int any_live = 0;
#pragma omp simd reduction(| : any_live)
                        for (int l = 0; l < L; ++l) {
                            const float dx = mx - px[l], dy = my - py[l];
                            const float sigma = 0.5f * (ca * dx * dx + cc * dy * dy) + cb * dx * dy;
                            const float sc = sigma < 0.0f ? 0.0f : (sigma > 30.0f ? 30.0f : sigma);
                            const float a0 = o * exp_neg(sc);
                            const float alpha = a0 < MAX_ALPHA ? a0 : MAX_ALPHA;
                            const int use0 = live[l] & (sigma >= 0.0f) & (sigma <= smax) & (alpha >= ALPHA_THRESHOLD);
                            const float nT = T[l] * (1.0f - alpha);
                            const int stop = use0 & (nT <= MIN_TRANSMITTANCE);
                            const int use = use0 & !stop;
                            w[l] = use ? alpha * T[l] : 0.0f;
                            T[l] = use ? nT : T[l];
                            live[l] = live[l] & !stop;
                            any_live |= live[l];
                        }
                        for (int d = 0; d < D; ++d) {
                            const float f = r[REC0 + d];
#pragma omp simd
                            for (int l = 0; l < L; ++l) acc[d][l] += f * w[l];
                        }
                        if (with_depth) {
#pragma omp simd
                            for (int l = 0; l < L; ++l) acc[D][l] += z * w[l];
                        }
                        s_lanes += 1;
                        if (!any_live) break;
                    }
                    for (int l = 0; l < L; ++l) {
                        const int x = bx + (l % BLK), y = by + (l / BLK);
                        if (x >= mxmax || y >= mymax) continue;
                        float* out = &out_feat[((int64_t)y * W + x) * Dout];
                        for (int d = 0; d < Dout; ++d) out[d] = acc[d][l];
                        out_T[(int64_t)y * W + x] = T[l];
                    }
                        }
                    }
                }
            }
        }
    }
    if (stats) {
        const auto t_end = clk::now();
        stats[0] = std::chrono::duration<double>(t_proj - t_start).count();
        stats[1] = std::chrono::duration<double>(t_bin - t_proj).count();
        stats[2] = std::chrono::duration<double>(t_end - t_bin).count();
        stats[3] = s_sort;  // summed over threads
        stats[4] = (double)total;
        stats[5] = s_blocks;
        stats[6] = s_lanes;  // block-entries composited before every pixel of the block stopped
    }
    return total;
}

}  // extern "C"
"""

_STAT_NAMES = ("project_s", "bin_s", "composite_s", "sort_gather_thread_s", "tile_entries", "block_entries", "block_steps")
STAT_NAMES = _STAT_NAMES
_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_error: str | None = None


def _cache_dir() -> Path:
    env = os.environ.get("ILRM_KERNEL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ilrm" / "kernels"


def _compilers() -> list[str]:
    names = [os.environ["CXX"]] if os.environ.get("CXX") else []
    names += ["g++", "c++", "clang++"]
    return [p for p in dict.fromkeys(shutil.which(n) for n in names) if p]


def _cpu_signature() -> str:
    """What -march=native depends on, so that a cache shared between machines never loads a kernel
    built for another CPU."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features", "model name")):
                    flags += line
    except OSError:
        pass
    return f"{platform.machine()} {platform.system()} {flags}"


def _compile(compiler: str, flags: list[str], src: Path, out: Path) -> str | None:
    cmd = [compiler, *flags, "-shared", "-fPIC", "-std=c++14", str(src), "-o", str(out)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    except (OSError, subprocess.SubprocessError) as e:
        return f"{' '.join(cmd)}: {e}"
    return None if r.returncode == 0 else f"{' '.join(cmd)}: {r.stderr.strip()[-500:]}"


def _load() -> ctypes.CDLL:
    lib = _build()
    f = lib.ilrm_render_image
    P = ctypes.c_void_p
    f.argtypes = [ctypes.c_int64, P, P, P, P, P, ctypes.c_int, P, P, ctypes.c_int, ctypes.c_int, ctypes.c_float,
                  ctypes.c_float, ctypes.c_float, ctypes.c_int, ctypes.c_int, P, P, ctypes.c_int, P]
    f.restype = ctypes.c_int64
    if lib.ilrm_cpu_fast_abi_version() != 2:
        raise OSError("the cached kernel has another ABI version")
    return lib


def _build() -> ctypes.CDLL:
    compilers = _compilers()
    if not compilers:
        raise OSError("no C++ compiler found (set $CXX or install g++)")
    errors = []
    cache = _cache_dir()
    for compiler in compilers:
        for flags in (["-O3", "-march=native", "-fopenmp"], ["-O3", "-fopenmp"], ["-O3"]):
            key = hashlib.sha256("\0".join([KERNEL_SOURCE, compiler, *flags, _cpu_signature()]).encode()).hexdigest()[:16]
            path = cache / f"ilrm_cpu_fast_{key}.so"
            if not path.exists():
                try:
                    cache.mkdir(parents=True, exist_ok=True)
                    tmp_dir = Path(tempfile.mkdtemp(prefix="build_", dir=cache))
                except OSError:
                    cache = Path(tempfile.gettempdir()) / "ilrm_kernels"
                    cache.mkdir(parents=True, exist_ok=True)
                    path = cache / path.name
                    tmp_dir = Path(tempfile.mkdtemp(prefix="build_", dir=cache))
                try:
                    src = tmp_dir / "kernel.cpp"
                    src.write_text(KERNEL_SOURCE)
                    err = _compile(compiler, flags, src, tmp_dir / "kernel.so")
                    if err is not None:
                        errors.append(err)
                        continue
                    os.replace(tmp_dir / "kernel.so", path)  # atomic: concurrent builders both succeed
                finally:
                    shutil.rmtree(tmp_dir, ignore_errors=True)
            try:
                return ctypes.CDLL(str(path))
            except OSError as e:
                errors.append(f"loading {path}: {e}")
    raise OSError("could not build the fast CPU rasterizer: " + " | ".join(errors))


def _kernel() -> ctypes.CDLL:
    global _lib, _error
    with _lock:
        if _lib is None and _error is None:
            try:
                _lib = _load()
            except Exception as e:  # noqa: BLE001 - any failure means: use the reference instead
                _error = f"{type(e).__name__}: {e}"
        if _lib is None:
            raise RuntimeError(_error)
        return _lib


def available() -> bool:
    """Whether the compiled kernel builds and loads here (built once, then cached on disk)."""
    try:
        _kernel()
    except RuntimeError:
        return False
    return True


def unavailable_reason() -> str | None:
    """Why :func:`available` is False (None when it is True)."""
    return None if available() else _error


def _ptr(t: Tensor) -> int:
    return t.data_ptr()


def rasterize_cpu_fast(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    sh: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    *,
    background: Tensor | None = None,
    near: float = 0.01,
    far: float = 1e10,
    sh_degree: int | None = None,
    with_depth: bool = False,
    eps2d: float = DEFAULT_EPS2D,
    tile_size: int = TILE_SIZE,
    num_threads: int | None = None,
    stats: list[dict] | None = None,
) -> tuple[Tensor, Tensor | None, Tensor]:
    """:func:`~ilrm.rendering.reference.rasterize_reference`'s arguments and outputs, on CPU tensors,
    without gradients: colours (B, V, H, W, 3), depth (B, V, H, W, 1) or None, alpha (B, V, H, W, 1).

    Computes in float32 (float64 inputs are converted; outputs have the input dtype). ``num_threads``
    defaults to ``torch.get_num_threads()``. ``stats``: a list that receives, per image, the kernel's
    phase times (s) and work counts (:data:`STAT_NAMES`). Raises RuntimeError when the kernel is not available
    (see :func:`available`) and ValueError for CUDA tensors or inputs that require gradients.
    """
    tensors = (means, quats, scales, opacities, sh, viewmats, Ks)
    if any(t.device.type != "cpu" for t in tensors):
        raise ValueError("the fast CPU rasterizer needs CPU tensors")
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        raise ValueError("the fast CPU rasterizer has no gradients; use the torch reference for autograd")
    lib = _kernel()
    frame_stats = torch.zeros(len(_STAT_NAMES), dtype=torch.float64)
    out_dtype = means.dtype
    B, N = means.shape[:2]
    V = viewmats.shape[1]
    H, W = int(height), int(width)
    if sh_degree is None:
        sh_degree = math.isqrt(sh.shape[-2]) - 1
    threads = int(num_threads or torch.get_num_threads())
    f32 = lambda t: t.detach().to(torch.float32).contiguous()
    D = 3
    Dout = D + (1 if with_depth else 0)
    feat = torch.empty(B, V, H, W, Dout, dtype=torch.float32)
    T = torch.empty(B, V, H, W, dtype=torch.float32)
    with torch.no_grad():
        vm = f32(viewmats)
        Kf = f32(Ks)
        for b in range(B):
            mb, qb, sb, ob = f32(means[b]), f32(quats[b]), f32(scales[b]), f32(opacities[b])
            shb = f32(sh[b])
            colour0 = sh_to_rgb(shb, mb, 0).contiguous() if sh_degree == 0 else None  # no direction needed
            for v in range(V):
                if colour0 is not None:
                    colour = colour0
                else:
                    R, t = vm[b, v, :3, :3], vm[b, v, :3, 3]
                    campos = -(R.T @ t)
                    colour = sh_to_rgb(shb, mb - campos, sh_degree).contiguous()
                out_f, out_t = feat[b, v], T[b, v]
                n = lib.ilrm_render_image(
                    N, _ptr(mb), _ptr(qb), _ptr(sb), _ptr(ob), _ptr(colour), D, _ptr(vm[b, v].contiguous()),
                    _ptr(Kf[b, v].contiguous()), W, H, float(near), float(far), float(eps2d), int(with_depth),
                    int(tile_size), _ptr(out_f), _ptr(out_t), threads, None if stats is None else _ptr(frame_stats),
                )
                if n < 0:
                    raise RuntimeError("the fast CPU rasterizer rejected its arguments")
                if stats is not None:
                    stats.append(dict(zip(_STAT_NAMES, frame_stats.tolist())))
    T = T[..., None]
    colors = feat[..., :3]
    if background is not None:
        colors = colors + T * background[:, :, None, None, :].to(colors)
    alpha = 1.0 - T
    depth = feat[..., 3:4] / alpha.clamp_min(1e-10) if with_depth else None
    cast = lambda x: x.to(out_dtype) if x is not None else None
    return cast(colors), cast(depth), cast(alpha)
