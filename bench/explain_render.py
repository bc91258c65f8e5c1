"""Explain plus render of a cached snapshot: the work behind every /why once data is cached
(target: median <= 5 ms).

    .venv/bin/python bench/explain_render.py [--runs 500]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bot.config import Settings
from bot.runner import build_explainer, demo_client
from explainers import render
from explainers.explain import explain
from explainers.replay import Scenario


async def cached() -> tuple:
    scenario = Scenario.load()
    settings = Settings(_env_file=None)
    async with demo_client(settings, scenario) as client:
        explainer = build_explainer(
            client, settings, clock=lambda: scenario.now, replay=scenario.replay
        )
        refreshed = await explainer.refresh()
    return refreshed, settings, scenario


def main(runs: int) -> None:
    refreshed, settings, scenario = asyncio.run(cached())
    t = settings.thresholds

    def once(coin: str | None) -> dict[str, float]:
        marks = {}
        start = time.perf_counter()
        e = explain(
            refreshed.snapshot,
            refreshed.drivers,
            refreshed.lookback,
            t,
            now=scenario.now,
            coin=coin,
            replay=scenario.replay,
        )
        marks["explain"] = time.perf_counter() - start
        for name, fn in (
            ("text", render.text),
            ("telegram_html", render.telegram_html),
            ("discord_embed", render.discord_embed),
        ):
            start = time.perf_counter()
            fn(e, t)
            marks[name] = time.perf_counter() - start
        return marks

    for _ in range(20):  # warm-up: template compilation, caches
        once(None)
    for coin in (None, "sol"):
        samples = [once(coin) for _ in range(runs)]
        print(f"/why{' ' + coin if coin else ''}: {runs} runs")
        for key in ("explain", "text", "telegram_html", "discord_embed"):
            values = [s[key] * 1000 for s in samples]
            print(
                f"  {key:<14} median {statistics.median(values):.3f} ms  p95 {sorted(values)[int(runs * 0.95)]:.3f} ms"
            )
        totals = [(s["explain"] + s["telegram_html"]) * 1000 for s in samples]
        print(
            f"  explain + telegram_html: median {statistics.median(totals):.3f} ms (target <= 5 ms)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=500)
    main(parser.parse_args().runs)
