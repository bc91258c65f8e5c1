"""Benchmark: fan-out of one alert to 10,000 subscriptions through a notifier limited to 30 msg/s.

Time is scaled: the engine's clock runs `--speed` times faster than real time (its monotonic time
is real time x speed, and a sleep of s seconds lasts s / speed real seconds). The limiter, the
notifier's own limit check and the reported rate all use that clock, while the engine's real work
(SQLite writes, scheduling) costs real time; so any overhead shows up as a lower rate.

Run: .venv/bin/python bench/fanout.py [--subscriptions N] [--speed X (default 20)] [--latency S]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.alerts import AlertEngine, AlertSettings
from bot.delivery import AlertMessage
from bot.pacing import TELEGRAM_LIMITS
from bot.store import Store, Subscription
from explainers.models import DriverResult, Explanation, Move

LIMIT_PER_S = TELEGRAM_LIMITS.overall.count


class ScaledClock:
    """Real time, running `speed` times faster."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._origin = time.monotonic()
        self._start = datetime.now(UTC)

    def monotonic(self) -> float:
        return (time.monotonic() - self._origin) * self.speed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.speed)


class LimitedNotifier:
    """Accepts messages, records when, and counts any second (scaled) holding more than 30."""

    platform = "telegram"

    def __init__(self, clock: ScaledClock, latency_s: float) -> None:
        self.clock = clock
        self.latency_s = latency_s
        self.stamps: list[float] = []
        self.violations = 0
        self._window: deque[float] = deque()

    async def send(self, subscription: Subscription, message: AlertMessage) -> None:
        now = self.clock.monotonic()
        while self._window and self._window[0] <= now - 1.0:
            self._window.popleft()
        if len(self._window) >= LIMIT_PER_S:
            self.violations += 1
        self._window.append(now)
        self.stamps.append(now)
        if self.latency_s:
            await self.clock.sleep(self.latency_s)  # the request's round trip


def alert_explanation(at: datetime) -> Explanation:
    drivers = [
        DriverResult(key=key, name=key.title(), state="fired", severity=2.0, threshold="bench")
        for key in ("liquidations", "etf", "stocks")
    ]
    move = Move(label="Total market", change_1h=-2.5, change_24h=-7.0, source="bench", as_of=at)
    return Explanation(
        generated_at=at,
        data_time=at,
        verdict="down",
        market_change_24h=-7.0,
        btc_change_1h=-2.5,
        moves=[move],
        drivers=drivers,
    )


async def run(subscriptions: int, speed: float, latency_s: float) -> bool:
    with tempfile.TemporaryDirectory() as folder:
        clock = ScaledClock(speed)
        notifier = LimitedNotifier(clock, latency_s)
        with Store(Path(folder) / "bench.db") as store:
            with store.transaction():
                for i in range(subscriptions):
                    store.subscribe("telegram", str(10_000_000 + i), None, 3, "bench")
            engine = AlertEngine(store, AlertSettings(), {"telegram": notifier}, clock)
            real_start = time.perf_counter()
            alert = await engine.evaluate(alert_explanation(clock.now()))
            real_s = time.perf_counter() - real_start
            sent = sum(1 for d in store.deliveries(alert.id) if d.status == "sent") if alert else 0
        stamps = notifier.stamps
        span = stamps[-1] - stamps[0] + 1.0 / LIMIT_PER_S if stamps else float("nan")
        rate = len(stamps) / span
        percent = 100.0 * rate / LIMIT_PER_S
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"subscriptions           {subscriptions}")
        print(f"delivered (marked sent) {sent}")
        print(f"time scale              {speed:g}x (latency {latency_s:g} s scaled)")
        print(f"real time               {real_s:.1f} s (incl. recording the outbox)")
        print(f"scaled send span        {span:.1f} s")
        print(f"achieved rate           {rate:.2f} msg/s = {percent:.1f}% of {LIMIT_PER_S}/s")
        print(f"limit violations        {notifier.violations}")
        print(f"peak RSS                {peak_mb:.0f} MB")
        ok = sent == subscriptions and notifier.violations == 0 and percent >= 90.0
        print("PASS" if ok else "FAIL")
        return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--speed", type=float, default=20.0, help="clock speed-up factor")
    parser.add_argument("--latency", type=float, default=0.05, help="per-send round trip, s")
    args = parser.parse_args()
    ok = asyncio.run(run(args.subscriptions, args.speed, args.latency))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
