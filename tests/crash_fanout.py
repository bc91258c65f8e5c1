"""Run one alert fan-out and die by SIGKILL inside the k-th send (used by test_alert_crash).

Usage: python -m tests.crash_fanout DB LOG KILL_AT
Each send appends "<alert id> <chat id>" to LOG before returning, as a chat server would show it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from bot.alerts import AlertEngine, AlertSettings
from bot.delivery import AlertMessage
from bot.store import Store, Subscription
from tests.alert_fakes import append_line, explanation


class KilledMidSend:
    """Delivers by writing to the log, and kills the process right after the k-th delivery."""

    platform = "telegram"

    def __init__(self, log: Path, kill_at: int) -> None:
        self.log = log
        self.kill_at = kill_at
        self.count = 0

    async def send(self, subscription: Subscription, message: AlertMessage) -> None:
        await asyncio.sleep(0)  # let other sends interleave, as they would over a network
        self.count += 1
        append_line(self.log, f"{message.alert_id} {subscription.chat_id}")
        if self.count == self.kill_at:
            # the message is out, its "sent" mark is not written: the one in-flight message
            os.kill(os.getpid(), signal.SIGKILL)


async def main(db: Path, log: Path, kill_at: int) -> None:
    with Store(db, lock=True) as store:
        engine = AlertEngine(store, AlertSettings(), {"telegram": KilledMidSend(log, kill_at)})
        await engine.evaluate(explanation(3, at=datetime.now(UTC)))
    sys.exit("the fan-out finished without being killed")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])))
