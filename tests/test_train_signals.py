"""Training takes over SIGTERM / SIGINT only while it runs and gives back exactly the handlers that
were installed before (a caller's own handler, not just "some callable")."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ilrm.training import TrainConfig, train
from ilrm.training.run import _StopFlag

SIGNALS = (signal.SIGTERM, signal.SIGINT)


@pytest.fixture()
def own_handlers() -> Iterator[dict[int, object]]:
    """Distinct handlers of the caller's for SIGTERM and SIGINT (restored to the originals after)."""
    caught: list[int] = []

    def on_term(signum, frame):  # pragma: no cover - only called on a failure
        caught.append(signum)

    def on_int(signum, frame):  # pragma: no cover
        caught.append(signum)

    mine = {signal.SIGTERM: on_term, signal.SIGINT: on_int}
    before = {s: signal.signal(s, h) for s, h in mine.items()}
    try:
        yield mine
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def test_stop_flag_restores_the_previous_handlers(own_handlers):
    with _StopFlag() as flag:
        assert all(signal.getsignal(s) is not own_handlers[s] for s in SIGNALS)  # taken over while inside
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert flag.reason == "SIGTERM"
    assert {s: signal.getsignal(s) for s in SIGNALS} == own_handlers


def test_train_restores_the_previous_handlers(own_handlers, tmp_path: Path):
    config = TrainConfig(
        preset="tiny", model_overrides={"width": 64, "depth": 2}, height=32, width=32, num_context=2, num_target=1,
        batch_size=1, steps=1, lr=1e-3, warmup_steps=1, log_every=1, checkpoint_every=0, device="cpu",
        out_dir=str(tmp_path / "run"),
    )
    result = train(config, progress=False)
    assert result.step == 1
    assert {s: signal.getsignal(s) for s in SIGNALS} == own_handlers
