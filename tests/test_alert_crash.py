"""A process killed between "recorded" and "sent": after a restart every subscriber has the alert,
and at most the one message that was in flight is repeated."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bot.alerts import AlertEngine, AlertSettings
from bot.delivery import AlertMessage
from bot.store import Store, Subscription
from tests.alert_fakes import append_line

ROOT = Path(__file__).resolve().parents[1]
SUBSCRIBERS = 40  # more than one second's worth of Telegram's 30/s: some wait in the limiter


class LoggingNotifier:
    """Delivers by appending to the same log the killed process wrote to."""

    platform = "telegram"

    def __init__(self, log: Path) -> None:
        self.log = log

    async def send(self, subscription: Subscription, message: AlertMessage) -> None:
        append_line(self.log, f"{message.alert_id} {subscription.chat_id}")


def read_log(log: Path) -> list[tuple[int, str]]:
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return [(int(alert), chat) for alert, chat in (line.split() for line in lines)]


@pytest.mark.parametrize("kill_at", [1, 17])
async def test_killed_mid_fan_out_loses_nothing_and_repeats_at_most_one(
    tmp_path: Path, kill_at: int
) -> None:
    db, log = tmp_path / "whydown.db", tmp_path / "delivered.log"
    chats = [str(5000 + i) for i in range(SUBSCRIBERS)]
    with Store(db) as store:
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
    assert len(before_restart) == kill_at
    in_flight = before_restart[-1]

    with Store(db, lock=True) as store:  # the dead process's lock went with it
        [alert] = store.recent_alerts(5)
        assert len(store.pending_deliveries()) == SUBSCRIBERS - kill_at + 1
        engine = AlertEngine(store, AlertSettings(), {"telegram": LoggingNotifier(log)})
        report = await engine.resume_pending()
        assert (report.sent, report.failed, report.expired) == (SUBSCRIBERS - kill_at + 1, 0, 0)
        assert store.pending_deliveries() == []

    delivered = Counter(read_log(log))
    assert set(delivered) == {(alert.id, chat) for chat in chats}
    repeats = [message for message, count in delivered.items() if count > 1]
    assert repeats == [in_flight]
    assert delivered[in_flight] == 2
