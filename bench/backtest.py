"""A 365-day backtest cold, then warm previews, with every upstream served by a real HTTP server
on 127.0.0.1 that answers from the recorded history after a fixed delay per request. Prints the
request count, the cold wall time and the warm median (preview and chart).

    .venv/bin/python bench/backtest.py [--days 365] [--delay 0.2] [--warm 20]

The server is an aiohttp app: a request for `http://127.0.0.1:PORT/<host>/<path>?<query>` waits
`--delay` seconds, then answers what the recording (explainers/demo/aug-2024-history) holds for
`https://<host>/<path>?<query>`; every source's base URL points at it, so the time machine's
requests cross a real socket, with httpx's connection pool, as they do live.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import timedelta

import httpx
from aiohttp import web

from bot.cli import HISTORY_DEMO
from explainers.backtest import TimeMachine, backtest, preview_text
from explainers.backtest_chart import backtest_png
from explainers.replay import Scenario
from explainers.settings import SourceSettings, Thresholds


class Upstream:
    """The recorded history behind a loopback HTTP server, `delay` seconds a request."""

    def __init__(self, scenario: Scenario, delay: float) -> None:
        self.scenario = scenario
        self.delay = delay
        self.count = 0
        self.in_flight = 0
        self.most_in_flight = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.count += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            host, _, rest = request.path.lstrip("/").partition("/")
            upstream = httpx.URL(f"https://{host}/{rest}", params=list(request.query.items()))
            response = self.scenario.handle(httpx.Request("GET", upstream))
            return web.Response(
                status=response.status_code,
                body=response.content,
                headers={
                    "Content-Type": response.headers.get("content-type", "application/octet-stream")
                },
            )
        finally:
            self.in_flight -= 1

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        return app


def pointed_at(port: int) -> SourceSettings:
    """Source settings whose every upstream base URL goes through the local server."""
    base = SourceSettings()
    overrides = {
        name: value.replace("https://", f"http://127.0.0.1:{port}/", 1)
        for name, value in base.model_dump().items()
        if isinstance(value, str) and value.startswith("https://")
    }
    return base.model_copy(update=overrides)


async def main(days: int, delay: float, warm: int) -> None:
    scenario = Scenario.load(HISTORY_DEMO)
    upstream = Upstream(scenario, delay)
    runner = web.AppRunner(upstream.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    cfg = pointed_at(port)
    now = scenario.now + timedelta(days=days - 14)  # the recorded window ends the period
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            tm = TimeMachine(client, cfg, Thresholds(), clock=lambda: now)
            t0 = time.perf_counter()
            result = await backtest(tm, days, 3)
            cold = time.perf_counter() - t0
            print(
                f"cold {days}-day backtest over loopback HTTP ({delay * 1000:.0f} ms a request): "
                f"{upstream.count} requests (at most {upstream.most_in_flight} at once), "
                f"{cold:.2f} s wall"
            )
            print(preview_text(result))
            times = []
            for _ in range(warm):
                t0 = time.perf_counter()
                again = await backtest(tm, days, 3)
                backtest_png(again)
                times.append(time.perf_counter() - t0)
            print(
                f"warm preview incl. chart: median {statistics.median(times) * 1000:.0f} ms, "
                f"min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f} over {warm}; "
                f"requests after the warm runs: {upstream.count}"
            )
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--delay", type=float, default=0.2)
    p.add_argument("--warm", type=int, default=20)
    a = p.parse_args()
    asyncio.run(main(a.days, a.delay, a.warm))
