"""Chart rendering: time per chart (median), peak memory, and the cost of resending a cached chart.

    .venv/bin/python bench/charts.py [--runs 20]

Data is the demo replay (one refresh, its recorded price history and liquidations). Each chart is
drawn `--runs` times straight through `explainers.charts` (the work a cache miss does in its worker
thread); then `ChartMaker` is asked again for a chart it already made (a cache hit).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta

from bot.config import Settings
from bot.runner import build_explainer, demo_client
from explainers import charts
from explainers.chart_service import ChartMaker, driver_marks
from explainers.replay import Scenario


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux, bytes on macOS
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def timed(fn: Callable[[], bytes], runs: int) -> tuple[list[float], int]:
    fn()  # warm-up: fonts, caches
    samples = []
    size = 0
    for _ in range(runs):
        start = time.perf_counter()
        size = len(fn())
        samples.append(time.perf_counter() - start)
    return samples, size


async def main(runs: int) -> None:
    before = peak_rss_mb()
    scenario = Scenario.load()
    settings = Settings(_env_file=None)
    async with demo_client(settings, scenario) as client:
        explainer = build_explainer(
            client, settings, clock=lambda: scenario.now, replay=scenario.replay
        )
        maker = ChartMaker(explainer, settings.sources, clock=lambda: scenario.now)
        refreshed = await explainer.current()
        sol = await explainer.explain("sol")
        now = refreshed.explanation.data_time
        btc_prices = await maker._prices("bitcoin", now)
        sol_prices = await maker._prices("solana", now)
        history = explainer.history
        events = history.liquidation_hours(now - timedelta(hours=24))
        marks = driver_marks(history, [d.key for d in refreshed.explanation.fired], now)
        after_data = peak_rss_mb()

        cases = {
            "sell-off (market)": lambda: charts.sell_off_chart(
                refreshed.explanation, btc_prices, None, events, marks, now
            ),
            "sell-off (SOL)": lambda: charts.sell_off_chart(
                sol, btc_prices, sol_prices, events, marks, now
            ),
            "ETF flows": lambda: charts.etf_chart(refreshed.snapshot.etf, now, scenario.replay),
        }
        print(f"{'chart':<20} {'median':>9} {'min':>9} {'max':>9} {'PNG':>9}")
        for name, fn in cases.items():
            samples, size = timed(fn, runs)
            print(
                f"{name:<20} {statistics.median(samples) * 1000:>7.0f}ms "
                f"{min(samples) * 1000:>7.0f}ms {max(samples) * 1000:>7.0f}ms "
                f"{size / 1024:>6.0f} KB"
            )

        first = await maker.sell_off()
        renders = maker.renders
        hits = []
        for _ in range(1000):
            start = time.perf_counter()
            again = await maker.sell_off()
            hits.append(time.perf_counter() - start)
        assert again is first and maker.renders == renders, "a cache hit must not re-render"
        print(
            f"cache hit (ChartMaker.sell_off again): median {statistics.median(hits) * 1e6:.1f} µs"
            f" over {len(hits)} calls, renders during them: {maker.renders - renders}"
        )
    print(
        f"peak RSS: {before:.0f} MB after imports, {after_data:.0f} MB with the data loaded, "
        f"{peak_rss_mb():.0f} MB after drawing (matplotlib included)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    asyncio.run(main(parser.parse_args().runs))
