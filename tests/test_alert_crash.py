"""A process killed between "recorded" and "sent": after a restart every subscriber has the alert
and its chart, and at most the one message that was in flight is repeated."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bot.alerts import AlertEngine, AlertSettings
from bot.store import Store
from tests.crash_fanout import FAST_LIMITS, ChartingNotifier, LatestOnlyCharts

ROOT = Path(__file__).resolve().parents[1]
SUBSCRIBERS = 300  # some wait in the limiter; the recording spans batches when BATCH is small


def read_log(log: Path) -> list[tuple[int, str, str]]:
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return [(int(alert), chat, what) for alert, chat, what in (line.split() for line in lines)]


@pytest.mark.parametrize("kill_at", [1, 17, 250])
async def test_killed_mid_fan_out_loses_nothing_and_repeats_at_most_one(
    tmp_path: Path, kill_at: int
) -> None:
    db, log = tmp_path / "whydown.db", tmp_path / "delivered.log"
    chats = [str(5000 + i) for i in range(SUBSCRIBERS)]
    with Store(db) as store, store.transaction():
        for chat in chats:
            store.subscribe("telegram", chat, None, 3, "x")

    crashed = subprocess.run(
        [sys.executable, "-m", "tests.crash_fanout", str(db), str(log), str(kill_at)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    before_restart = read_log(log)
    texts_before = [entry for entry in before_restart if entry[2] == "text"]
    assert len(texts_before) == kill_at
    in_flight = texts_before[-1]

    with Store(db, lock=True) as store:  # the dead process's lock went with it
        [alert] = store.recent_alerts(5)
        assert len(store.pending_deliveries()) == SUBSCRIBERS - kill_at + 1
        # a new process: the alert's data is no longer the latest, so no chart can be drawn now
        charts = LatestOnlyCharts(latest=None)
        notifier = ChartingNotifier(log, charts)
        engine = AlertEngine(
            store, AlertSettings(), {"telegram": notifier}, limits=FAST_LIMITS, charts=charts
        )
        report = await engine.resume_pending()
        assert (report.sent, report.failed, report.expired) == (SUBSCRIBERS - kill_at + 1, 0, 0)
        assert store.pending_deliveries() == []

    delivered = Counter(read_log(log))
    for what in ("text", "chart"):
        got = {(a, chat) for a, chat, kind in delivered if kind == what}
        assert got == {(alert.id, chat) for chat in chats}, what  # 300/300 text and chart
    repeats = [message for message, count in delivered.items() if count > 1]
    assert repeats == [in_flight]
    assert delivered[in_flight] == 2
