"""A full refresh against every source served on loopback with injected latency, compared with
the slowest single source measured alone (target: refresh <= 1.3x the slowest source).

    .venv/bin/python bench/refresh_latency.py [--runs 5]

A local HTTP server on 127.0.0.1 serves the demo recording. Each upstream host gets its own delay
per request (below); sources that make two requests in a row (OKX liquidations need contract
values, Polymarket odds need price history) pay it twice, as they would live.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx
from aiohttp import web

from bot.config import Settings
from bot.runner import build_explainer, http_client
from explainers.collect import Collector
from explainers.replay import Scenario
from explainers.sources import okx

DELAYS_S = {
    "api.coingecko.com": 0.35,
    "www.okx.com": 0.12,
    "api.exchange.coinbase.com": 0.15,
    "api.kraken.com": 0.1,
    "farside.co.uk": 0.45,
    "home.treasury.gov": 0.3,
    "fred.stlouisfed.org": 0.3,
    "gamma-api.polymarket.com": 0.2,
    "clob.polymarket.com": 0.15,
    "query1.finance.yahoo.com": 0.25,
    "stooq.com": 0.2,
    "api.alternative.me": 0.1,
}
DEFAULT_DELAY_S = 0.2  # RSS hosts


def serve(scenario: Scenario) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        host, _, rest = request.path.lstrip("/").partition("/")
        await asyncio.sleep(DELAYS_S.get(host, DEFAULT_DELAY_S))
        upstream = httpx.URL(f"https://{host}/{rest}", params=dict(request.query))
        response = scenario.handle(httpx.Request("GET", upstream))
        return web.Response(
            status=response.status_code,
            body=response.content,
            headers={
                "Content-Type": response.headers.get("content-type", "application/octet-stream")
            },
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


def pointed_at(port: int) -> Settings:
    """Settings whose every upstream base URL goes through the local server."""
    base = Settings(_env_file=None)
    overrides = {}
    for name, value in base.sources.model_dump().items():
        if isinstance(value, str) and value.startswith("https://"):
            overrides[name] = value.replace("https://", f"http://127.0.0.1:{port}/", 1)
    return base.model_copy(update={"sources": base.sources.model_copy(update=overrides)})


async def main(runs: int) -> None:
    scenario = Scenario.load()
    runner = web.AppRunner(serve(scenario))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    settings = pointed_at(port)
    async with http_client(settings) as client:
        # each chain (a source and its fallbacks) alone, as the slowest-source baseline
        collector = Collector(client, settings.sources, clock=lambda: scenario.now)
        singles: dict[str, float] = {}
        for chain in collector.plan(scenario.now)[0]:
            times = []
            for _ in range(runs):
                okx.CONTRACT_VALUES.clear()
                start = time.perf_counter()
                await collector._run_chain(chain, scenario.now)
                times.append(time.perf_counter() - start)
            singles[chain[0].key] = statistics.median(times)
        refreshes = []
        for _ in range(runs):
            okx.CONTRACT_VALUES.clear()
            explainer = build_explainer(client, settings, clock=lambda: scenario.now)
            start = time.perf_counter()
            refreshed = await explainer.refresh()
            refreshes.append(time.perf_counter() - start)
        assert len(refreshed.explanation.fired) >= 3
    await runner.cleanup()
    slowest_key = max(singles, key=lambda k: singles[k])
    slowest = singles[slowest_key]
    refresh = statistics.median(refreshes)
    print(
        f"sources: {len(singles)} chains; slowest alone: {slowest_key} {slowest * 1000:.0f} ms (median of {runs})"
    )
    print(
        f"full refresh (collect + lookback + drivers + explain): median {refresh * 1000:.0f} ms, "
        f"min {min(refreshes) * 1000:.0f}, max {max(refreshes) * 1000:.0f}"
    )
    print(f"ratio refresh / slowest source: {refresh / slowest:.2f} (target <= 1.30)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))
