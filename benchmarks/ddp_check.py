"""Multi-GPU training checks on one host: scaling, loss identity, kill-one-rank + resume.

    python benchmarks/ddp_check.py --out DIR [--gpus 2] [--preset re10k] [--batch 8] [--steps 40]

Every run is the real CLI (``python -m ilrm train``, under ``torchrun`` for several GPUs) on
procedural scenes. Four runs, all with the same seed and schedule (``--steps``):

1. ``single``: 1 GPU, per-GPU batch B;
2. ``ddp``: N GPUs, per-GPU batch B (global N·B), checkpoint every ``--ckpt-every`` steps;
3. ``single_global``: 1 GPU, batch N·B, stopped after ``--identity-steps`` (same samples per step as 2);
4. ``killed``: as 2, but one rank's process is SIGKILLed after the first checkpoint; then the same
   command with ``--resume auto`` finishes it.

Reports steady-state samples/s (from the JSONL log, after ``--skip`` warm-up steps), the scaling
efficiency ``sps(N GPUs) / (N · sps(1 GPU))`` at equal per-GPU batch, the largest loss difference
between 2 and 3 over the first steps, how the killed job ended, and the largest loss difference
between the resumed run and 2 after the checkpoint. Writes ``ddp_check.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train_cmd(gpus: int, out: Path, common: list[str], port: int) -> list[str]:
    """The command line of one run: plain Python for 1 GPU, torchrun (standalone rendezvous) for more."""
    if gpus == 1:
        head = [sys.executable, "-m", "ilrm", "train"]
    else:
        head = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(gpus),
                "--master_port", str(port), "-m", "ilrm", "train"]
    return [*head, *common, "--out", str(out), "--no-progress"]


def read_train_log(run: Path) -> list[dict]:
    path = run / "log.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return [r for r in rows if r.get("kind") == "train"]


def steady_sps(run: Path, global_batch: int, skip: int) -> float | None:
    """Samples/s between the first logged step after ``skip`` and the last one (log every step)."""
    rows = [r for r in read_train_log(run) if r["step"] > skip]
    if len(rows) < 2:
        return None
    a, b = rows[0], rows[-1]
    return global_batch * (b["step"] - a["step"]) / max(1e-9, b["elapsed_s"] - a["elapsed_s"])


def losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_train_log(run)}


def run(cmd: list[str], log: Path, env: dict[str, str]) -> tuple[int, float]:
    t = time.perf_counter()
    with log.open("w") as f:
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    return rc, time.perf_counter() - t


def rank_pid(root_pid: int, rank: int) -> int | None:
    """PID of the ``ilrm`` process with ``RANK=rank`` among the descendants of ``root_pid`` (Linux /proc)."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parent[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    for pid in parent:
        p, seen = pid, 0
        while p in parent and p != root_pid and seen < 64:
            p, seen = parent[p], seen + 1
        if p != root_pid or pid == root_pid:
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and b"ilrm" in cmdline:
            return pid
    return None


def kill_one_rank(cmd: list[str], out: Path, log: Path, env: dict[str, str], after_step: int, timeout: float) -> dict:
    """Start ``cmd``, SIGKILL rank 1 once checkpoint ``after_step`` exists, and watch the job end."""
    ckpt = out / f"checkpoint-{after_step:08d}"
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        t0 = time.perf_counter()
        while not (ckpt / "training_state.pt").exists():
            if proc.poll() is not None or time.perf_counter() - t0 > timeout:
                proc.kill()
                return {"error": f"checkpoint {ckpt.name} never appeared (rc={proc.poll()})"}
            time.sleep(0.2)
        time.sleep(1.0)  # let rank 1 get into the next steps' collectives
        pid = rank_pid(proc.pid, 1)
        if pid is None:
            proc.kill()
            return {"error": "rank 1 not found"}
        step_at_kill = max(losses(out), default=0)
        t_kill = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        try:
            rc = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "hung (killed after 120 s)"
    return {"killed_pid": pid, "logged_step_at_kill": step_at_kill, "job_rc": rc,
            "seconds_to_exit": round(time.perf_counter() - t_kill, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--work", type=Path, default=Path("runs/ddp_check"), help="run folders")
    p.add_argument("--gpus", type=int, default=2)
    p.add_argument("--preset", default="re10k")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=8, help="per-GPU batch")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--skip", type=int, default=10, help="warm-up steps left out of samples/s")
    p.add_argument("--identity-steps", type=int, default=10)
    p.add_argument("--ckpt-every", type=int, default=10)
    p.add_argument("--workers", type=int, default=12, help="data workers per process")
    p.add_argument("--samples-per-scene", type=int, default=4)
    p.add_argument("--extra", default="", help="more train flags, e.g. '--device cpu' for a CPU smoke run")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    n = a.gpus
    common = ["--preset", a.preset, "--size", str(a.size), "--steps", str(a.steps), "--warmup-steps", "5",
              "--log-every", "1", "--num-workers", str(a.workers), "--samples-per-scene", str(a.samples_per_scene),
              "--checkpoint-every", str(a.ckpt_every), "--keep-checkpoints", "10", "--seed", "0",
              *shlex.split(a.extra)]
    runs = {k: a.work / k for k in ("single", "ddp", "single_global", "killed")}
    import shutil

    for r in runs.values():
        shutil.rmtree(r, ignore_errors=True)
    report: dict = {"preset": a.preset, "size": a.size, "gpus": n, "per_gpu_batch": a.batch, "steps": a.steps,
                    "workers_per_process": a.workers, "samples_per_scene": a.samples_per_scene}
    try:
        import torch

        report["device"] = f"{torch.cuda.device_count()} × {torch.cuda.get_device_name()}, torch {torch.__version__}"
    except Exception as e:  # noqa: BLE001 - informative only
        report["device"] = repr(e)

    b = ["--batch-size", str(a.batch)]
    rc1, t1 = run(train_cmd(1, runs["single"], common + b, 29500), a.out / "single.log", env)
    rc2, t2 = run(train_cmd(n, runs["ddp"], common + b, 29501), a.out / "ddp.log", env)
    gb = ["--batch-size", str(a.batch * n), "--stop-after", str(a.identity_steps)]
    rc3, t3 = run(train_cmd(1, runs["single_global"], common + gb, 29502), a.out / "single_global.log", env)
    s1 = steady_sps(runs["single"], a.batch, a.skip)
    sn = steady_sps(runs["ddp"], a.batch * n, a.skip)
    report["runs"] = {"single": {"rc": rc1, "wall_s": round(t1, 1), "samples_per_s": s1},
                      f"ddp_{n}gpu": {"rc": rc2, "wall_s": round(t2, 1), "samples_per_s": sn},
                      "single_global_batch": {"rc": rc3, "wall_s": round(t3, 1)}}
    report["scaling_efficiency"] = sn / (n * s1) if s1 and sn else None
    ld, lg = losses(runs["ddp"]), losses(runs["single_global"])
    common_steps = sorted(set(ld) & set(lg))
    report["identity"] = {
        "steps_compared": common_steps,
        "ddp_loss": [ld[s] for s in common_steps],
        "single_loss": [lg[s] for s in common_steps],
        "max_abs_diff": max((abs(ld[s] - lg[s]) for s in common_steps), default=None),
        "max_rel_diff": max((abs(ld[s] - lg[s]) / abs(lg[s]) for s in common_steps), default=None),
    }

    kill_cmd = train_cmd(n, runs["killed"], common + b, 29503)
    report["kill"] = kill_one_rank(kill_cmd, runs["killed"], a.out / "killed.log", env, a.ckpt_every, 300)
    tail = (a.out / "killed.log").read_text(errors="replace").splitlines()[-6:]
    report["kill"]["log_tail"] = tail
    rc4, t4 = run(kill_cmd + ["--resume", "auto"], a.out / "resumed.log", env)
    lk = losses(runs["killed"])
    after = [s for s in sorted(lk) if s > a.ckpt_every and s in ld]
    report["resume"] = {
        "rc": rc4, "wall_s": round(t4, 1), "final_step": max(lk, default=None),
        "steps_compared": [after[0], after[-1]] if after else None,
        "max_abs_diff_vs_uninterrupted": max((abs(lk[s] - ld[s]) for s in after), default=None),
    }
    (a.out / "ddp_check.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "identity"}, indent=1))
    print("identity:", json.dumps({k: report["identity"][k] for k in ("max_abs_diff", "max_rel_diff")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
