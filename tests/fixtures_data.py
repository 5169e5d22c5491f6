"""Tiny data fixtures in the real on-disk formats (written into a tmp dir; no data is redistributed).

- RE10K: pixelSplat ``.torch`` chunks (JPEG bytes as uint8 tensors) + ``index.json``, and a
  pixelSplat evaluation index.
- DL3DV: an ``opencv_cameras.json`` scene folder, the k-means input index file, and a
  DL3DV-Benchmark scene (``nerfstudio/transforms.json`` + ``nerfstudio/images_4/``) whose images were
  synthetically distorted with the camera's (k1, k2, p1, p2).

Every writer returns what it wrote (poses, intrinsics, colours) so tests can compare against it.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# ---- generic -----------------------------------------------------------------------------


def frame_colour(scene: int, frame: int) -> tuple[int, int, int]:
    """A distinct flat colour per (scene, frame), far from 0/255 so JPEG keeps it nearly exact."""
    return (40 + (37 * frame) % 170, 40 + (53 * scene + 11 * frame) % 170, 60 + (29 * scene) % 150)


def flat_image(hw: tuple[int, int], colour: tuple[int, int, int], left_strip: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 of one colour; the ``left_strip`` leftmost columns pure red (cropped away later)."""
    im = np.empty((*hw, 3), np.uint8)
    im[:] = colour
    im[:, :left_strip] = (255, 0, 0)
    return im


def jpeg_tensor(image: np.ndarray, quality: int = 95) -> torch.Tensor:
    """JPEG-encode an (H, W, 3) uint8 image into a uint8 1-D tensor (as pixelSplat stores frames)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8).clone()


def rot_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


def walk_c2w(num_frames: int, offset: tuple[float, float, float] = (3.0, -1.0, 5.0), seed: int = 0) -> np.ndarray:
    """(N, 4, 4) OpenCV c2w of a camera walking and turning, far from the origin (so that scaling
    before or after re-centring gives different results)."""
    rng = np.random.default_rng(seed)
    out = np.tile(np.eye(4), (num_frames, 1, 1))
    for i in range(num_frames):
        out[i, :3, :3] = rot_y(0.05 * i + 0.02 * rng.standard_normal())
        out[i, :3, 3] = np.array(offset) + np.array([0.25 * i, 0.02 * i, 0.1 * math.sin(i)])
    return out


# ---- RE10K ---------------------------------------------------------------------------------

RE10K_INTRINSICS = (0.8, 0.8 * 640 / 360, 0.5, 0.5)  # fx/W, fy/H, cx/W, cy/H (square pixels)


def make_re10k_record(
    key: str,
    num_frames: int,
    scene_index: int = 0,
    hw: tuple[int, int] = (360, 640),
    intrinsics: tuple[float, float, float, float] = RE10K_INTRINSICS,
    left_strip: int = 120,
) -> tuple[dict, np.ndarray]:
    """One pixelSplat scene record with flat-coloured JPEG frames. Returns (record, c2w (N, 4, 4))."""
    c2w = walk_c2w(num_frames, seed=scene_index)
    w2c = np.linalg.inv(c2w)
    cams = np.zeros((num_frames, 18), np.float32)
    cams[:, :4] = intrinsics
    cams[:, 6:] = w2c[:, :3, :].reshape(num_frames, 12)
    images = [jpeg_tensor(flat_image(hw, frame_colour(scene_index, i), left_strip)) for i in range(num_frames)]
    record = {
        "url": f"https://example.invalid/{key}",
        "timestamps": torch.arange(num_frames, dtype=torch.int64) * 33_366,
        "cameras": torch.from_numpy(cams),
        "images": images,
        "key": key,
    }
    return record, c2w


def write_re10k(
    root: str | Path,
    scenes: dict[str, int],
    split: str = "test",
    scenes_per_chunk: int = 2,
    **record_kwargs,
) -> dict[str, dict]:
    """Write ``<root>/<split>/{000000..}.torch`` + ``index.json`` for ``{key: num_frames}``.

    Returns ``{key: {"record": ..., "c2w": ..., "chunk": file name, "scene_index": i}}``.
    """
    split_dir = Path(root) / split
    split_dir.mkdir(parents=True, exist_ok=True)
    info, index, chunk = {}, {}, []
    keys = list(scenes)
    for i, key in enumerate(keys):
        record, c2w = make_re10k_record(key, scenes[key], scene_index=i, **record_kwargs)
        name = f"{i // scenes_per_chunk:06d}.torch"
        info[key] = {"record": record, "c2w": c2w, "chunk": name, "scene_index": i}
        index[key] = name
        chunk.append(record)
        if len(chunk) == scenes_per_chunk or i == len(keys) - 1:
            torch.save(chunk, split_dir / name)
            chunk = []
    (split_dir / "index.json").write_text(json.dumps(index))
    return info


def write_evaluation_index(path: str | Path, entries: dict[str, dict | None]) -> Path:
    """pixelSplat evaluation index ``{key: {"context": [...], "target": [...]} | null}``."""
    path = Path(path)
    path.write_text(json.dumps(entries))
    return path


# ---- DL3DV (processed) -------------------------------------------------------------------------


def write_opencv_scene(
    scene_dir: str | Path,
    num_frames: int,
    hw: tuple[int, int] = (54, 96),
    scene_name: str | None = None,
    focal: float = 80.0,
    ext: str = "png",
) -> dict:
    """An ``opencv_cameras.json`` scene with flat-coloured frames under ``images/``.

    Returns ``{"c2w": (N, 4, 4), "K": (3, 3), "scene_name": ...}``.
    """
    scene_dir = Path(scene_dir)
    (scene_dir / "images").mkdir(parents=True, exist_ok=True)
    name = scene_name or scene_dir.name
    h, w = hw
    K = np.array([[focal, 0, w / 2 + 0.3], [0, focal * 1.01, h / 2 - 0.2], [0, 0, 1]], dtype=np.float64)
    c2w = walk_c2w(num_frames, seed=len(name))
    frames = []
    for i in range(num_frames):
        rel = f"images/frame_{i:05d}.{ext}"
        Image.fromarray(flat_image(hw, frame_colour(1, i))).save(scene_dir / rel)
        frames.append(
            {
                "file_path": rel,
                "w2c": np.linalg.inv(c2w[i]).tolist(),
                "h": h,
                "w": w,
                "fx": K[0, 0],
                "fy": K[1, 1],
                "cx": K[0, 2],
                "cy": K[1, 2],
            }
        )
    (scene_dir / "opencv_cameras.json").write_text(json.dumps({"scene_name": name, "frames": frames}))
    return {"c2w": c2w, "K": K, "scene_name": name}


def write_dl3dv_index(path: str | Path, entries: dict[str, tuple[list[int], list[int]]]) -> Path:
    """k-means input file ``[{scene_name, fold_8_kmeans_16_input, fold_8_kmeans_32_input}]``."""
    data = [
        {"scene_name": k, "fold_8_kmeans_16_input": list(v16), "fold_8_kmeans_32_input": list(v32)}
        for k, (v16, v32) in entries.items()
    ]
    path = Path(path)
    path.write_text(json.dumps(data))
    return path


# ---- DL3DV-Benchmark (nerfstudio, distorted) -----------------------------------------------------

BENCH_DISTORTION = {"k1": -0.2, "k2": 0.03, "p1": 0.002, "p2": -0.001}


def line_image(hw: tuple[int, int], rows: list[float], cols: list[float], thickness: float = 2.0) -> np.ndarray:
    """White (H, W, 3) uint8 image with dark straight lines at the given rows and columns (pixel
    centres at integer coordinates, OpenCV's convention), anti-aliased."""
    h, w = hw
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    dark = np.zeros((h, w))
    for r in rows:
        dark = np.maximum(dark, np.clip(thickness / 2 + 0.5 - np.abs(y - r), 0, 1))
    for c in cols:
        dark = np.maximum(dark, np.clip(thickness / 2 + 0.5 - np.abs(x - c), 0, 1))
    v = (255 * (1 - 0.8 * dark)).astype(np.uint8)
    return np.repeat(v[..., None], 3, axis=-1)


def distort_image(ideal: np.ndarray, K: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """What a camera (K, dist) sees of a scene that the ideal pinhole K sees as ``ideal``: each
    distorted pixel samples the ideal image at its undistorted position."""
    import cv2

    h, w = ideal.shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    pts = np.stack([x.ravel(), y.ravel()], -1)[:, None, :]
    und = cv2.undistortPoints(pts, K, dist, P=K, criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-9))
    mx = und[:, 0, 0].reshape(h, w).astype(np.float32)
    my = und[:, 0, 1].reshape(h, w).astype(np.float32)
    return cv2.remap(ideal, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


BENCH_LINES = {"rows": [40.0, 140.0], "cols": [60.0, 260.0]}  # in the stored 320×180 image


def write_benchmark_scene(
    scene_dir: str | Path,
    num_frames: int,
    full_wh: tuple[int, int] = (640, 360),
    image_wh: tuple[int, int] = (320, 180),
    focal_full: float = 300.0,
    distortion: dict[str, float] | None = None,
    transform_matrices: list[np.ndarray] | None = None,
) -> dict:
    """A DL3DV-Benchmark scene: ``nerfstudio/transforms.json`` (intrinsics for ``full_wh``) and
    ``nerfstudio/images_4/frame_XXXXX.png`` at ``image_wh``, all showing the same distorted line
    pattern. Frame paths in the JSON are ``images/frame_XXXXX.png`` as in DL3DV.

    Returns ``{"meta": transforms dict, "K": stored-size K, "dist": (4,), "ideal": image,
    "distorted": image}``.
    """
    scene_dir = Path(scene_dir)
    ns = scene_dir / "nerfstudio"
    (ns / "images_4").mkdir(parents=True, exist_ok=True)
    fw, fh = full_wh
    iw, ih = image_wh
    dist_d = dict(BENCH_DISTORTION if distortion is None else distortion)
    meta = {
        "w": fw,
        "h": fh,
        "fl_x": focal_full,
        "fl_y": focal_full * 1.002,
        "cx": fw / 2 + 1.5,
        "cy": fh / 2 - 1.0,
        **dist_d,
        "camera_model": "OPENCV",
        "frames": [],
    }
    sx, sy = iw / fw, ih / fh
    K = np.array(
        [[meta["fl_x"] * sx, 0, meta["cx"] * sx], [0, meta["fl_y"] * sy, meta["cy"] * sy], [0, 0, 1]], np.float64
    )
    dist = np.array([dist_d[k] for k in ("k1", "k2", "p1", "p2")], np.float64)
    ideal = line_image((ih, iw), BENCH_LINES["rows"], BENCH_LINES["cols"])
    distorted = distort_image(ideal, K, dist)
    if transform_matrices is None:
        transform_matrices = [np.eye(4) for _ in range(num_frames)]
        for i, m in enumerate(transform_matrices):
            m[:3, :3] = rot_y(0.03 * i)
            m[:3, 3] = [0.1 * i, 0.5, -0.2 * i]
    import cv2

    for i in range(num_frames):
        name = f"frame_{i + 1:05d}.png"
        cv2.imwrite(str(ns / "images_4" / name), distorted[..., ::-1])
        meta["frames"].append(
            {"file_path": f"images/{name}", "transform_matrix": np.asarray(transform_matrices[i]).tolist()}
        )
    (ns / "transforms.json").write_text(json.dumps(meta))
    return {"meta": meta, "K": K, "dist": dist, "ideal": ideal, "distorted": distorted}
