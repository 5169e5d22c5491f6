"""Speed of the evaluation harness on synthetic data in the real on-disk formats and sizes.

``python -m benchmarks.eval_speed --out DIR [--scenes N] [--dl3dv-scenes M] [--json PATH]``

Writes (under ``DIR``, generated here: nothing that big travels)
- RE10K: pixelSplat ``test/*.torch`` chunks (lists of scene dicts; every frame a 360×640 JPEG as a
  uint8 tensor, ``--frames`` frames per scene, ``--scenes-per-chunk`` scenes per chunk) + ``index.json``
  and an evaluation index (2 context → 3 target views);
- DL3DV: ``opencv_cameras.json`` scene folders of 540×960 PNG frames (``--dl3dv-frames`` each) + a
  k-means input index (32 inputs, every 8th frame a target).
Frames are textured (smooth random fields + noise) so that JPEG / PNG sizes and decode times are those
of photographs rather than of flat colours; only the frames a protocol reads carry their own bytes,
the others are hard links (they exist and are counted, never decoded).

Then it runs the harness's real path (:func:`eval.runner.run`, random-weight presets of the released
architectures) and times the stages:
- hash: the data files' sha256 (first run; cached afterwards);
- decode+resize: ``source.load`` in one process, and :func:`eval.runner.iter_scenes` with N workers;
- forward / render / metrics (PSNR, SSIM, LPIPS) / record I/O: from the per-scene records of the run;
- end to end: scenes/s of the run loop, "before" (main-process loading, scikit-image SSIM, records
  written inline: ``num_workers=0, fast_metrics=False``) on the first scenes, "after" on all of them;
  the records of the scenes both runs scored are compared (PSNR / SSIM / LPIPS differences).
Prints scenes/s by stage and the extrapolated full-protocol times (RE10K 6,474 scenes, DL3DV-140).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

FULL_RE10K = 6474
FULL_DL3DV = 140


# ---- synthetic data ------------------------------------------------------------------------------


def textured_images(count: int, hw: tuple[int, int], seed: int) -> list[np.ndarray]:
    """``count`` (H, W, 3) uint8 photograph-like images: smooth random fields at three scales + noise."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = hw
    out = []
    for _ in range(count):
        im = np.zeros((h, w, 3), np.float32)
        for cells, amp in ((4, 90.0), (24, 45.0), (120, 20.0)):
            small = rng.standard_normal((cells, max(1, cells * w // h), 3)).astype(np.float32)
            im += amp * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        im += rng.normal(0, 4.0, im.shape).astype(np.float32)
        out.append(np.clip(im + 128, 0, 255).astype(np.uint8))
    return out


def write_re10k(root: Path, scenes: int, frames: int, per_chunk: int, seed: int = 0) -> dict[str, Any]:
    """pixelSplat chunks + index.json + an evaluation index; returns what was written."""
    from tests.fixtures_data import RE10K_INTRINSICS, jpeg_tensor, walk_c2w, write_evaluation_index

    split = root / "test"
    split.mkdir(parents=True, exist_ok=True)
    base = [jpeg_tensor(im, quality=90) for im in textured_images(24, (360, 640), seed)]
    index, evaluation, chunk, nbytes = {}, {}, [], 0
    for s in range(scenes):
        key = f"{s:016x}"
        c2w = walk_c2w(frames, seed=s)
        cams = np.zeros((frames, 18), np.float32)
        cams[:, :4] = RE10K_INTRINSICS
        cams[:, 6:] = np.linalg.inv(c2w)[:, :3, :].reshape(frames, 12)
        images = [base[(7 * s + i) % len(base)].clone() for i in range(frames)]  # own storage each
        nbytes += sum(int(t.numel()) for t in images)
        chunk.append({"url": f"https://example.invalid/{key}", "timestamps": torch.arange(frames) * 33_366,
                      "cameras": torch.from_numpy(cams), "images": images, "key": key})
        name = f"{s // per_chunk:06d}.torch"
        index[key] = name
        lo = 5 + (s % 20)
        gap = min(45, frames - lo - 1)
        evaluation[key] = {"context": [lo, lo + gap], "target": [lo + gap // 4, lo + gap // 2, lo + 3 * gap // 4]}
        if len(chunk) == per_chunk or s == scenes - 1:
            torch.save(chunk, split / name)
            chunk = []
    (split / "index.json").write_text(json.dumps(index))
    idx = write_evaluation_index(root / "evaluation_index.json", evaluation)
    size = sum(p.stat().st_size for p in split.glob("*.torch"))
    return {"root": root, "index": idx, "scenes": scenes, "frames_per_scene": frames, "scenes_per_chunk": per_chunk,
            "jpeg_mean_bytes": nbytes / max(1, scenes * frames), "bytes_on_disk": size}


def write_dl3dv(root: Path, scenes: int, frames: int, seed: int = 1) -> dict[str, Any]:
    """``opencv_cameras.json`` folders of 540×960 PNGs + the k-means index; returns what was written."""
    from PIL import Image

    from tests.fixtures_data import walk_c2w, write_dl3dv_index

    h, w = 540, 960
    base_dir = root / "_frames"
    base_dir.mkdir(parents=True, exist_ok=True)
    base = []
    for i, im in enumerate(textured_images(16, (h, w), seed)):
        path = base_dir / f"base_{i:02d}.png"
        Image.fromarray(im).save(path)
        base.append(path.read_bytes())
    entries, read_bytes, read_count = {}, 0, 0
    for s in range(scenes):
        name = f"synthetic_{s:03d}"
        d = root / name
        (d / "images").mkdir(parents=True, exist_ok=True)
        candidates = [i for i in range(frames) if i % 8]
        inputs32 = [candidates[round(j * (len(candidates) - 1) / 31)] for j in range(32)]
        inputs16 = inputs32[::2]
        read = set(inputs32) | set(range(0, frames, 8))
        filler = d / "images" / "_unread.png"
        filler.write_bytes(base[0])
        c2w = walk_c2w(frames, seed=s)
        cam = []
        for i in range(frames):
            rel = f"images/frame_{i:05d}.png"
            if i in read:
                data = base[(5 * s + i) % len(base)]
                (d / rel).write_bytes(data)  # its own file, as on disk
                read_bytes += len(data)
                read_count += 1
            else:
                os.link(filler, d / rel)  # exists and is counted, never decoded
            cam.append({"file_path": rel, "w2c": np.linalg.inv(c2w[i]).tolist(), "h": h, "w": w,
                        "fx": 0.9 * w, "fy": 0.9 * w, "cx": w / 2, "cy": h / 2})
        filler.unlink()
        (d / "opencv_cameras.json").write_text(json.dumps({"scene_name": name, "frames": cam}))
        entries[name] = (inputs16, inputs32)
    idx = write_dl3dv_index(root.parent / "dl3dv_index.json", entries)
    return {"root": root, "index": idx, "scenes": scenes, "frames_per_scene": frames,
            "frames_read_per_scene": read_count / max(1, scenes), "png_mean_bytes": read_bytes / max(1, read_count)}


# ---- measurements --------------------------------------------------------------------------------


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def measure_loading(bench_name: str, data: dict[str, Any], serial_scenes: int, workers: int,
                    scale_before_recentre: bool | None, home: Path) -> dict[str, Any]:
    """Hashing, then decode+resize in one process (first ``serial_scenes``) and with ``workers`` workers (all)."""
    from eval.protocols import load_benchmark, open_scenes
    from eval.provenance import HashCache
    from eval.runner import iter_scenes, scene_data_digests

    bench = load_benchmark(bench_name)
    source = open_scenes(bench, data["root"], index_path=data["index"], scale_before_recentre=scale_before_recentre,
                         eval_home=home)
    ids = source.scene_ids
    cache_file = home / "bench_hashes.json"
    cache_file.unlink(missing_ok=True)
    start = time.perf_counter()
    scene_data_digests(source, ids, HashCache(cache_file))
    hash_s = time.perf_counter() - start
    hashed = sum(p.stat().st_size for p in {f for s in ids for f in source.files_for(s)})

    def consume(it) -> tuple[int, float]:
        start, n = time.perf_counter(), 0
        for loaded in it:
            assert loaded.status == "ok", (loaded.scene_id, loaded.reason)
            n += 1
        return n, time.perf_counter() - start

    n1, t1 = consume(source.load(ids[:serial_scenes]))
    n2, t2 = consume(iter_scenes(source, ids, num_workers=workers))
    return {"hash_s": hash_s, "hash_bytes": hashed, "hash_MBps": hashed / 2**20 / hash_s if hash_s else None,
            "decode_serial_scenes": n1, "decode_serial_s": t1, "decode_serial_scenes_per_s": _rate(n1, t1),
            "decode_workers": workers, "decode_parallel_scenes": n2, "decode_parallel_s": t2,
            "decode_parallel_scenes_per_s": _rate(n2, t2)}


def use_lpips_timing_standin(device: torch.device) -> str:
    """Where the float32 LPIPS backbone is missing (e.g. a bare GPU machine, whose carry limit leaves no
    room for it), let the runner score LPIPS with the pinned bf16 copy upcast to float32: the same
    network and FLOPs, so the same time, but **not** metric values. Returns what scored LPIPS."""
    import eval.runner
    from eval.metrics import LPIPSMetric
    from ilrm.perceptual import build_lpips_vgg

    if LPIPSMetric(device).available:
        return "float32 backbone (metric)"

    class TimingLPIPS(LPIPSMetric):
        def __init__(self, device="cpu", cache_dir=None, allow_fetch=None, batch_size: int = 16) -> None:
            self.device, self.batch_size, self.reason = torch.device(device), batch_size, None
            self._model = build_lpips_vgg(self.device, cache_dir, allow_fetch=False, allow_bf16=True)

    eval.runner.LPIPSMetric = TimingLPIPS
    return "bf16 backbone copy upcast to float32: timing stand-in, values are not metrics"


def run_harness(bench_name: str, model: str, data: dict[str, Any], out: Path, home: Path, *, limit: int | None,
                workers: int, fast: bool, image_size: tuple[int, int] | None) -> dict[str, Any]:
    """One :func:`eval.runner.run`; stage times from its records."""
    from eval.records import read_records
    from eval.runner import RunOptions, run

    opts = RunOptions(benchmark=bench_name, model=model, out=out, limit=limit, data_root=data["root"],
                      index_path=data["index"], eval_home=home, progress=False, overwrite=True,
                      num_workers=workers, fast_metrics=fast, image_size=image_size, strict=False)
    torch.manual_seed(0)  # the random-weight presets: the same weights in the before and after runs
    start = time.perf_counter()
    result = run(opts)
    total = time.perf_counter() - start
    records = [r for r in read_records(out).values() if r.get("status") == "ok"]
    summary = result.summary
    wall = summary.get("timing", {}).get("wall_time_s_this_run_rank0")
    loop = summary.get("environment", {}).get("loop") or {}

    def med(key: str) -> float | None:
        vals = [r[key] for r in records if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    n = len(records)
    return {"scenes": n, "total_s": total, "loop_wall_s": wall, "loop": loop,
            "loop_scenes_per_s": _rate(n, wall) if wall else None,
            "startup_s": total - wall if wall else None,
            "median_recon_s": med("recon_time_s"), "median_render_s": med("render_time_s"),
            "median_metrics_s": med("metrics_time_s"), "num_target": med("num_target"),
            "records": {r["scene"]: {k: r.get(k) for k in ("psnr", "ssim", "lpips")} for r in records}}


def compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    common = sorted(set(before["records"]) & set(after["records"]))
    diff = {}
    for k in ("psnr", "ssim", "lpips"):
        vals = [abs(before["records"][s][k] - after["records"][s][k]) for s in common
                if before["records"][s][k] is not None and after["records"][s][k] is not None]
        diff[k] = max(vals) if vals else None
    return {"scenes": len(common), "max_abs_diff": diff}


def summarise(name: str, full: int, load: dict[str, Any], before: dict[str, Any], after: dict[str, Any],
              data: dict[str, Any]) -> dict[str, Any]:
    per_scene_bytes = load["hash_bytes"] / max(1, data["scenes"])
    hash_full = full * per_scene_bytes / 2**20 / load["hash_MBps"] if load["hash_MBps"] else 0.0
    out = {"benchmark": name, "full_scenes": full, "stages_scenes_per_s": {
        "decode+resize (1 process)": load["decode_serial_scenes_per_s"],
        f"decode+resize ({load['decode_workers']} workers)": load["decode_parallel_scenes_per_s"],
        "forward": _rate(1, after["median_recon_s"] or 0),
        "render": _rate(1, after["median_render_s"] or 0),
        "metrics reference (CPU SSIM)": _rate(1, before["median_metrics_s"] or 0),
        "metrics batched (GPU)": _rate(1, after["median_metrics_s"] or 0),
        "end to end before": before["loop_scenes_per_s"],
        "end to end after": after["loop_scenes_per_s"],
    }, "hash_first_run_full_s": hash_full, "startup_s": after["startup_s"]}
    for tag, r in (("before", before), ("after", after)):
        rate = r["loop_scenes_per_s"] or 0
        loop_s = full / rate if rate else float("inf")
        out[f"full_{tag}_s"] = loop_s + (r["startup_s"] or 0) + hash_full
        out[f"full_{tag}_loop_s"] = loop_s
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the synthetic data and the runs")
    ap.add_argument("--scenes", type=int, default=384, help="RE10K scenes to generate and evaluate")
    ap.add_argument("--frames", type=int, default=120, help="frames per RE10K scene")
    ap.add_argument("--scenes-per-chunk", type=int, default=12)
    ap.add_argument("--before-scenes", type=int, default=48, help="RE10K scenes for the 'before' run")
    ap.add_argument("--dl3dv-scenes", type=int, default=12)
    ap.add_argument("--dl3dv-frames", type=int, default=300)
    ap.add_argument("--dl3dv-before", type=int, default=2)
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: the runner's choice)")
    ap.add_argument("--model", default="preset:re10k")
    ap.add_argument("--dl3dv-model", default="preset:dl3dv-wide")
    ap.add_argument("--image-size", type=int, nargs=2, default=None, help="RE10K size override (CPU smoke tests)")
    ap.add_argument("--dl3dv-image-size", type=int, nargs=2, default=None)
    ap.add_argument("--skip-re10k", action="store_true")
    ap.add_argument("--skip-dl3dv", action="store_true")
    ap.add_argument("--lpips-standin", action="store_true",
                    help="without the float32 LPIPS backbone, time LPIPS with the bf16 copy (values not metrics)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here (default <out>/eval_speed.json)")
    args = ap.parse_args(argv)

    from eval.runner import default_num_workers

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    workers = default_num_workers(device) if args.workers is None else args.workers
    out = args.out.resolve()
    home = out / "home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["ILRM_EVAL_HOME"] = str(home)
    report: dict[str, Any] = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
                              "cpu_count": os.cpu_count(), "workers": workers, "torch": torch.__version__,
                              "argv": sys.argv[1:]}
    if args.lpips_standin:
        report["lpips"] = use_lpips_timing_standin(device)
    try:
        import shutil

        report["dev_shm_free_GiB"] = shutil.disk_usage("/dev/shm").free / 2**30
    except OSError:
        pass
    jobs = []
    if not args.skip_re10k:
        jobs.append(("re10k", FULL_RE10K, args.model, args.scenes, args.before_scenes,
                     tuple(args.image_size) if args.image_size else None))
    if not args.skip_dl3dv:
        jobs.append(("dl3dv-32", FULL_DL3DV, args.dl3dv_model, args.dl3dv_scenes, args.dl3dv_before,
                     tuple(args.dl3dv_image_size) if args.dl3dv_image_size else None))
    for name, full, model, scenes, before_n, size in jobs:
        start = time.perf_counter()
        if name == "re10k":
            data = write_re10k(out / "re10k", scenes, args.frames, args.scenes_per_chunk)
            sbr = True
        else:
            data = write_dl3dv(out / "dl3dv" / "scenes", scenes, args.dl3dv_frames)
            sbr = False
        gen_s = time.perf_counter() - start
        print(f"[{name}] generated {scenes} scenes in {gen_s:.1f} s", flush=True)
        load = measure_loading(name, data, min(scenes, max(2, before_n)), workers, sbr, home)
        print(f"[{name}] loading: {json.dumps(load)}", flush=True)
        before = run_harness(name, model, data, out / f"run_{name}_before", home, limit=before_n, workers=0,
                             fast=False, image_size=size)
        print(f"[{name}] before: {json.dumps({k: v for k, v in before.items() if k != 'records'})}", flush=True)
        after = run_harness(name, model, data, out / f"run_{name}_after", home, limit=None, workers=workers,
                            fast=device.type == "cuda" or args.workers is not None, image_size=size)
        print(f"[{name}] after: {json.dumps({k: v for k, v in after.items() if k != 'records'})}", flush=True)
        entry = summarise(name, full, load, before, after, data)
        entry.update(data={k: str(v) if isinstance(v, Path) else v for k, v in data.items()}, generate_s=gen_s,
                     loading=load, before={k: v for k, v in before.items() if k != "records"},
                     after={k: v for k, v in after.items() if k != "records"}, agreement=compare(before, after))
        report[name] = entry
        print(f"\n== {name} on {report['device']} ({workers} workers) ==")
        for stage, rate in entry["stages_scenes_per_s"].items():
            print(f"  {stage:32s} {rate:10.2f} scenes/s")
        print(f"  full {name} ({full} scenes): before {entry['full_before_s'] / 60:.1f} min, "
              f"after {entry['full_after_s'] / 60:.1f} min (incl. startup {entry['startup_s']:.0f} s, "
              f"first-run hashing {entry['hash_first_run_full_s']:.0f} s)")
        print(f"  before vs after on {entry['agreement']['scenes']} scenes: max |diff| "
              f"{entry['agreement']['max_abs_diff']}", flush=True)
    path = args.json or out / "eval_speed.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
