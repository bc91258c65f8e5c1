"""Run one alert fan-out and die by SIGKILL inside the k-th send (used by test_alert_crash).

Usage: python -m tests.crash_fanout DB LOG KILL_AT
Each send appends "<alert id> <chat id> text" to LOG, then "<alert id> <chat id> chart" when it
has the alert's chart, as a chat server would show them. The k-th send dies between the two.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.alerts import AlertEngine, AlertSettings
from bot.delivery import AlertMessage
from bot.pacing import PlatformLimits, Window
from bot.store import Store, Subscription
from explainers.models import Explanation
from tests.alert_fakes import append_line, explanation

PNG = b"\x89PNG\r\n\x1a\n chart of the alert's data"
# fast enough for hundreds of chats in a test; the per-chat limit still applies
FAST_LIMITS = {
    "telegram": PlatformLimits(overall=Window(10_000, 1.0), per_chat=Window(1, 1.0), concurrency=30)
}


@dataclass(frozen=True)
class FakeChart:
    png: bytes
    caption: str
    filename: str


class LatestOnlyCharts:
    """Like ChartMaker.for_alert: a chart only of the data that is still the latest."""

    def __init__(self, latest: datetime | None) -> None:
        self.latest = latest

    async def for_alert(
        self, explanation: Explanation, timeout_s: float = 20.0
    ) -> FakeChart | None:
        if explanation.data_time != self.latest:
            return None  # "the data is no longer the latest"
        return FakeChart(PNG, "the sell-off", "whydown-market.png")


class ChartingNotifier:
    """Sends the text, then the chart: the one kept with the alert, else one drawn now."""

    platform = "telegram"

    def __init__(self, log: Path, charts: LatestOnlyCharts, kill_at: int | None = None) -> None:
        self.log = log
        self.charts = charts
        self.kill_at = kill_at
        self.count = 0

    async def send(self, subscription: Subscription, message: AlertMessage) -> None:
        await asyncio.sleep(0)  # let other sends interleave, as they would over a network
        self.count += 1
        append_line(self.log, f"{message.alert_id} {subscription.chat_id} text")
        if self.count == self.kill_at:
            # the text is out, neither its chart nor its "sent" mark: the one in-flight message
            os.kill(os.getpid(), signal.SIGKILL)
        chart = message.chart or await self.charts.for_alert(message.explanation)
        if chart is not None and chart.png == PNG:
            append_line(self.log, f"{message.alert_id} {subscription.chat_id} chart")


async def main(db: Path, log: Path, kill_at: int) -> None:
    at = datetime.now(UTC)
    charts = LatestOnlyCharts(latest=at)
    with Store(db, lock=True) as store:
        notifier = ChartingNotifier(log, charts, kill_at)
        engine = AlertEngine(
            store, AlertSettings(), {"telegram": notifier}, limits=FAST_LIMITS, charts=charts
        )
        await engine.evaluate(explanation(3, at=at))
    sys.exit("the fan-out finished without being killed")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])))
