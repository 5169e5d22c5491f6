"""Demo measurements on a CPU machine: end-to-end latency through the served app, and pose accuracy.

    python -m benchmarks.demo_cpu [--out out/demo_cpu] [--repeats 3]

Run it from the repository root: it imports the demo (``demo/``), which is not installed.

1. Latency: the app is launched on localhost with the shipped checkpoint and driven with
   ``gradio_client`` like a browser would (upload, queue, stream). For each example we time the
   request until the first streamed result (preview .ply and downloads ready) and until the final
   one (with the fly-through video), and read the per-stage times the app reports. The first request
   also loads the model; later ones are warm.
2. Pose accuracy on the real ``mydesk`` scene (12 photos with reference cameras): cameras estimated
   with pycolmap from the photos alone, compared with the reference after a similarity alignment
   (rotation error, relative rotation, translation direction), for the demo's example inputs
   (2 and 4 photos) and all 12.
Prints a summary and writes ``demo_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from demo.app import build_demo, launch
from demo.models import EXAMPLES_DIR
from ilrm.camera_files import load_camera_files, match_cameras
from ilrm.photos import estimate_photo_cameras, load_photos
from ilrm.poses import pose_errors

MYDESK = EXAMPLES_DIR / "mydesk"


def time_request(client, images, cameras, make_video: bool) -> dict:
    from gradio_client import handle_file

    t0 = time.perf_counter()
    job = client.submit(
        [handle_file(str(p)) for p in images],
        [handle_file(str(c)) for c in cameras] if cameras else None,
        "shipped",
        60.0,
        make_video,
        api_name="/reconstruct",
    )
    first = None
    while not job.done():
        if first is None and len(job.outputs()) > 0:
            first = time.perf_counter() - t0
        time.sleep(0.02)
    total = time.perf_counter() - t0
    outs = job.outputs()
    if first is None:
        first = total
    return {"to_preview_s": first, "total_s": total, "report": outs[-1][4]}


def latency(repeats: int) -> list[dict]:
    from gradio_client import Client

    demo = build_demo(examples=False)
    _, url, _ = launch(demo, prevent_thread_lock=True, quiet=True)
    rows = []
    try:
        client = Client(url, verbose=False)
        cases = {
            "procedural 2 views, 256² (camera file)": (
                sorted((EXAMPLES_DIR / "procedural" / "images").glob("*.png")),
                [EXAMPLES_DIR / "procedural" / "opencv_cameras.json"],
            ),
            "mydesk 4 views (camera file)": (
                [MYDESK / "images" / f"frame{i}.jpg" for i in (0, 140, 260, 380)],
                [MYDESK / "opencv_cameras.json"],
            ),
            "mydesk 4 views (pretend unposed, pycolmap)": (
                [MYDESK / "images" / f"frame{i}.jpg" for i in (0, 140, 260, 380)],
                None,
            ),
        }
        for name, (images, cams) in cases.items():
            runs = [time_request(client, images, cams, make_video=True) for _ in range(repeats)]
            row = {
                "case": name,
                "first_to_preview_s": runs[0]["to_preview_s"],
                "warm_to_preview_s": statistics.median(r["to_preview_s"] for r in runs[1:]) if repeats > 1 else None,
                "warm_total_with_video_s": statistics.median(r["total_s"] for r in runs[1:]) if repeats > 1 else None,
                "report": runs[-1]["report"],
            }
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "report"}), flush=True)
            print("  " + row["report"].replace("\n", "\n  "), flush=True)
    finally:
        demo.close()
    return rows


def pose_accuracy() -> list[dict]:
    frames = [0, 60, 100, 140, 180, 220, 260, 300, 340, 380, 420, 500]
    sets = {"2 photos (frames 100, 180; 60° fov)": [100, 180], "2 photos (frames 0, 500; 60° fov)": [0, 500],
            "4 photos (frames 0, 140, 260, 380)": [0, 140, 260, 380], "12 photos": frames}
    ref_cams = load_camera_files(MYDESK / "opencv_cameras.json")
    rows = []
    for name, idx in sets.items():
        images = load_photos([MYDESK / "images" / f"frame{i}.jpg" for i in idx])
        t = time.perf_counter()
        try:
            est, _ = estimate_photo_cameras(images, fov_deg=60.0)
        except Exception as e:  # noqa: BLE001 - a refusal is a result too
            rows.append({"case": name, "error": f"{type(e).__name__}: {e}"[:300]})
            print(json.dumps(rows[-1]), flush=True)
            continue
        ref = match_cameras(ref_cams, [(im.name, im.size) for im in images]).c2w
        e = pose_errors(est.cameras.c2w(), ref).summary()
        rows.append({"case": name, "method": est.method, "seconds": time.perf_counter() - t, **e})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/demo_cpu")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"latency": latency(a.repeats), "poses": pose_accuracy()}
    (out / "demo_cpu.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
