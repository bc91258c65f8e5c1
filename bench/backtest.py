"""A 365-day backtest cold, then warm previews, over recorded history with a fixed delay per
upstream request. Prints the request count, the cold wall time and the warm median.

    .venv/bin/python bench/backtest.py [--days 365] [--delay 0.2] [--warm 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import timedelta

import httpx

from bot.cli import HISTORY_DEMO
from explainers.backtest import TimeMachine, backtest, preview_text
from explainers.backtest_chart import backtest_png
from explainers.replay import Scenario
from explainers.settings import SourceSettings, Thresholds


class Delayed(httpx.AsyncBaseTransport):
    """The recorded responses, each after `delay` seconds (an upstream's round trip)."""

    def __init__(self, scenario: Scenario, delay: float) -> None:
        self.inner = scenario.transport()
        self.delay = delay
        self.count = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        await asyncio.sleep(self.delay)
        return await self.inner.handle_async_request(request)


async def main(days: int, delay: float, warm: int) -> None:
    scenario = Scenario.load(HISTORY_DEMO)
    transport = Delayed(scenario, delay)
    now = scenario.now + timedelta(days=days - 14)  # the recorded window ends the period
    async with httpx.AsyncClient(transport=transport) as client:
        tm = TimeMachine(client, SourceSettings(), Thresholds(), clock=lambda: now)
        t0 = time.perf_counter()
        result = await backtest(tm, days, 3)
        cold = time.perf_counter() - t0
        print(f"cold {days}-day backtest: {transport.count} requests, {cold:.2f} s wall")
        print(preview_text(result))
        times = []
        for _ in range(warm):
            t0 = time.perf_counter()
            again = await backtest(tm, days, 3)
            backtest_png(again)
            times.append(time.perf_counter() - t0)
        print(
            f"warm preview incl. chart: median {statistics.median(times) * 1000:.0f} ms "
            f"over {warm}; requests after warm runs: {transport.count}"
        )


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--delay", type=float, default=0.2)
    p.add_argument("--warm", type=int, default=20)
    a = p.parse_args()
    asyncio.run(main(a.days, a.delay, a.warm))
