"""1,000 concurrent /why requests on a cold cache: how many upstream calls per endpoint
(target: exactly one each), and how long the burst takes.

    .venv/bin/python bench/single_flight.py [--requests 1000] [--latency 0.2]

The demo recording is served through httpx.MockTransport with `--latency` seconds of delay per
request, so every request of the burst arrives while the first refresh is still in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

import httpx

from bot.config import Settings
from bot.runner import build_explainer, http_client
from explainers.replay import Scenario


async def main(requests: int, latency: float) -> None:
    scenario = Scenario.load()
    calls: Counter[str] = Counter()

    async def handle(request: httpx.Request) -> httpx.Response:
        calls[str(request.url)] += 1
        await asyncio.sleep(latency)
        return scenario.handle(request)

    settings = Settings(_env_file=None)
    async with http_client(settings, transport=httpx.MockTransport(handle)) as client:
        explainer = build_explainer(
            client, settings, clock=lambda: scenario.now, replay=scenario.replay
        )
        start = time.perf_counter()
        answers = await asyncio.gather(*(explainer.explain() for _ in range(requests)))
        elapsed = time.perf_counter() - start
    endpoints = len(calls)
    print(f"{requests} concurrent requests answered: {len(answers)} in {elapsed * 1000:.0f} ms")
    print(
        f"distinct upstream requests: {endpoints}; calls per endpoint: max {max(calls.values())}, total {sum(calls.values())}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.latency))
