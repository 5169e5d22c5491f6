"""`python -m eval reproduce`: fetch + run + leaderboard with the authors' weights (an offline Hub cache of a
tiny file in the authors' layout), our numbers next to the published row; the published rows of the field."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import eval.fetch as fetch_mod
from eval import reproduce
from eval.cli import main as cli_main
from eval.leaderboard import PUBLISHED_CSV, build_leaderboard, published_rows
from ilrm.errors import ILRMInputError

from .fixtures_data import write_evaluation_index, write_re10k
from .official_fixtures import official_state_dict, save_official

SHA = "89abcdef0123456789abcdef0123456789abcdef"
KEYS = [f"scene{i}" for i in range(3)]


@pytest.fixture(autouse=True)
def _no_lpips_download(monkeypatch):
    monkeypatch.setenv("ILRM_LPIPS_FETCH", "0")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """RE10K chunks + index, and a Hub cache holding Gynjn/iLRM's re10k_2view.ckpt (tiny, random) at SHA."""
    root = tmp_path_factory.mktemp("reproduce")
    write_re10k(root / "data", {k: 10 for k in KEYS})
    index = write_evaluation_index(root / "index.json", {k: {"context": [1, 8], "target": [2, 5, 8]} for k in KEYS})
    repo = root / "hf" / "models--Gynjn--iLRM"
    snap = repo / "snapshots" / SHA
    snap.mkdir(parents=True)
    save_official(snap / "re10k_2view.ckpt", "main", official_state_dict("main", 128, 2))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)
    return {"root": root, "data": root / "data", "index": index, "cache": root / "hf"}


def _args(setup, tmp_path, *extra: str) -> list[str]:
    return ["reproduce", "re10k", "--cache-dir", str(setup["cache"]), "--index", str(setup["index"]),
            "--image-size", "32", "32", "--no-lpips", "--no-progress", "--device", "cpu",
            "--eval-home", str(tmp_path / "home"), "--out", str(tmp_path / "out"), *extra]


def test_reproduce_re10k_with_the_authors_weights_offline(setup, tmp_path, capsys):
    code = cli_main(_args(setup, tmp_path, "--source", str(setup["data"])))
    text = capsys.readouterr().out
    assert code == 0, text
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["scenes"]["evaluated"] == 3
    assert s["method"]["label"] == f"iLRM (authors' re10k_2view.ckpt @ {SHA[:12]})"
    assert Path(s["method"]["spec"]).parent.name == SHA  # the file of the pinned snapshot ran
    # our numbers next to the published ones, with the differences
    table = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
             for line in text.splitlines() if line.startswith("| PSNR") or line.startswith("| SSIM")}
    ours, ci, pub, diff, _ = table["PSNR"]
    assert pub == "28.65" and float(ours) == pytest.approx(s["metrics"]["psnr"], abs=1e-3)
    assert float(diff) == pytest.approx(s["metrics"]["psnr"] - 28.65, abs=2e-3)
    assert ci.startswith("[") and table["SSIM"][2] == "0.900"
    assert "iLRM (released re10k_2view.ckpt)" in text and "authors' README" in text
    assert "subset" in text  # 3 of 6474 scenes: the note says so
    # the fetch ran (manifest) and the leaderboard with its plot was written next to the results
    assert (tmp_path / "home" / "re10k" / "manifest.json").is_file()
    lb = tmp_path / "out" / "leaderboard"
    assert (lb / "leaderboard.md").is_file() and (lb / "per_scene_distribution.png").is_file()


def test_reproduce_with_data_root_skips_fetch_and_checks_the_difference(setup, tmp_path, monkeypatch, capsys):
    def no_fetch(*a, **k):
        raise AssertionError("fetch must not run with --data-root")

    monkeypatch.setattr(fetch_mod, "fetch", no_fetch)
    args = _args(setup, tmp_path, "--data-root", str(setup["data"]), "--model", "preset:tiny",
                 "--max-psnr-diff", "0.01")
    assert cli_main(args) == 1  # random weights are far from 28.65 dB
    captured = capsys.readouterr()
    assert "PSNR differs from the published 28.65" in captured.err
    assert "not the authors' weights" in captured.out


def test_authors_weights_offline_messages(setup, tmp_path):
    path, commit = reproduce.authors_weights("re10k", cache_dir=setup["cache"])
    assert commit == SHA and path.name == "re10k_2view.ckpt"
    assert reproduce.authors_weights("re10k", SHA, setup["cache"])[1] == SHA
    with pytest.raises(ILRMInputError):  # not in the cache and offline: a message, not a traceback
        reproduce.authors_weights("dl3dv-32", cache_dir=setup["cache"])


def test_every_reproducible_published_row_has_one_command():
    df = pd.read_csv(PUBLISHED_CSV, dtype=str, keep_default_na=False)
    commands = [c for c in df["reproduce"] if c]
    assert len(commands) == len(set(commands)) == 5
    for c in commands:
        words = c.split()
        steps = int(words[words.index("--refine-steps") + 1]) if "--refine-steps" in words else 0
        assert reproduce.published_row(words[0], steps)["reproduce"] == c
    assert reproduce.published_row("dl3dv-32", 10)["method"] == "iLRM + 10 refinement steps"
    assert reproduce.published_row("dl3dv-16")["psnr"] == "22.91"
    with pytest.raises(ILRMInputError):
        reproduce.published_row("dl3dv-32", 7)


def test_published_rows_of_the_field_with_source_and_3dgs():
    df = pd.read_csv(PUBLISHED_CSV)
    assert {"source", "source_kind", "output_3dgs", "reproduce"} <= set(df.columns)
    assert df["source"].notna().all() and set(df["output_3dgs"]) == {"yes", "no"}
    row = lambda p, m: df[(df.protocol == p) & (df.method == m)].iloc[0]
    assert tuple(row("re10k", "LVSM")[["psnr", "ssim", "lpips"]]) == (29.67, 0.906, 0.098)
    assert row("re10k", "LVSM")["output_3dgs"] == "no"
    assert row("dl3dv-16", "Long-LRM++")["psnr"] == 24.40 and pd.isna(row("dl3dv-16", "Long-LRM++")["ssim"])
    assert tuple(row("dl3dv-32", "Long-LRM++")[["psnr", "ssim", "lpips"]]) == (26.43, 0.846, 0.180)
    assert row("dl3dv-16", "LaCT")["psnr"] == 24.70
    assert tuple(row("dl3dv-32", "LaCT")[["psnr", "ssim", "lpips"]]) == (26.90, 0.837, 0.185)
    assert row("dl3dv-32", "tttLRM")["psnr"] == 25.07 and row("dl3dv-32", "tttLRM")["output_3dgs"] == "yes"
    assert "Table 1" in row("dl3dv-32", "LaCT")["source"] and row("dl3dv-32", "LaCT")["source_kind"] == "reported by others"
    assert row("dl3dv-32", "Long-LRM++")["source_kind"] == "own paper"
    assert {"iLRM + 10 refinement steps", "iLRM + 50 refinement steps"} <= set(df.method)
    # in the leaderboard: every published row says its source, 3DGS or not, and its command where there is one
    rows = {(r["protocol"], r["method"]): r for r in published_rows()}
    assert rows[("re10k", "LVSM")]["3DGS output"] == "no"
    assert "other papers' tables" in rows[("re10k", "LVSM")]["source"]
    assert rows[("re10k", "iLRM (released re10k_2view.ckpt)")]["reproduce"] == \
        "python -m eval reproduce re10k --model authors"
    assert rows[("dl3dv-32", "LaCT")]["reproduce"] == "–"
    lb = build_leaderboard([], include_published="all")
    assert set(lb["kind"]) == {"published"} and len(lb) == len(df)
