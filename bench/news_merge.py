"""Merging headlines across feeds: 10,000 headlines (a tenth of them syndicated copies) deduped
and ordered, the work a refresh does on the event loop (target: well under a second).

    .venv/bin/python bench/news_merge.py [--headlines 10000] [--runs 5] [--seed 7]

Titles are drawn from a crypto-news vocabulary with common openers ("Bitcoin price", "Crypto
market"...), so buckets do collide; copies differ from their original in case and punctuation,
or by one word, and come later on another feed, as syndicated stories do.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from explainers.models import Headline, Headlines
from explainers.sources import news

OPENERS = [
    "Bitcoin price",
    "Crypto market",
    "Ether",
    "Solana",
    "Bitcoin ETF",
    "Fed",
    "Traders",
    "Whales",
    "Analysts say",
    "Breaking:",
]
WORDS = [
    "slides",
    "rallies",
    "plunges",
    "surges",
    "liquidations",
    "longs",
    "shorts",
    "outflows",
    "inflows",
    "record",
    "week",
    "after",
    "before",
    "as",
    "traders",
    "brace",
    "for",
    "rate",
    "cut",
    "hike",
    "Powell",
    "inflation",
    "data",
    "jobs",
    "report",
    "miners",
    "capitulate",
    "exchange",
    "hack",
    "exploit",
    "stablecoin",
    "depeg",
    "tether",
    "circle",
    "reserves",
    "funding",
    "negative",
    "positive",
    "open",
    "interest",
    "drops",
    "climbs",
    "options",
    "expiry",
    "billion",
    "million",
    "Asia",
    "Europe",
    "US",
    "session",
    "Nasdaq",
    "stocks",
    "tumble",
    "yen",
    "carry",
    "trade",
    "unwinds",
    "leverage",
    "flushed",
    "support",
    "resistance",
    "level",
    "holds",
    "breaks",
    "60K",
    "58K",
    "3K",
    "ETH",
    "BTC",
    "SOL",
    "memecoins",
    "airdrop",
    "upgrade",
    "mainnet",
    "delay",
    "lawsuit",
    "SEC",
    "approval",
    "filing",
    "Grayscale",
    "BlackRock",
    "Fidelity",
    "IBIT",
    "GBTC",
    "flows",
    "halving",
    "hashrate",
    "difficulty",
]


def headlines(count: int, seed: int) -> list[Headlines]:
    rng = random.Random(seed)
    start = datetime(2026, 8, 5, tzinfo=UTC)
    feeds: dict[str, list[Headline]] = {f"Feed {i}": [] for i in range(5)}
    originals: list[Headline] = []
    for i in range(count):
        feed = f"Feed {rng.randrange(5)}"
        at = start + timedelta(seconds=rng.randrange(7 * 86400))
        if originals and rng.random() < 0.1:
            base = rng.choice(originals)
            words = base.title.split()
            if rng.random() < 0.5:
                title = base.title.upper().replace(",", "")
            else:
                words[rng.randrange(len(words))] = rng.choice(WORDS)
                title = " ".join(words)
            at = (base.published or at) + timedelta(minutes=rng.randrange(1, 120))
        else:
            title = f"{rng.choice(OPENERS)} {' '.join(rng.choices(WORDS, k=rng.randint(6, 12)))}"
        item = Headline(
            title=title, link=f"https://{feed[-1]}.example/{i}", feed=feed, published=at
        )
        feeds[feed].append(item)
        originals.append(item)
    return [Headlines(source=k, as_of=start, items=v) for k, v in feeds.items()]


def main(count: int, runs: int, seed: int) -> None:
    batches = headlines(count, seed)
    times = []
    kept = 0
    for _ in range(runs):
        begin = time.perf_counter()
        kept = len(news.merge(batches, limit=count))
        times.append(time.perf_counter() - begin)
    print(f"{count} headlines, {runs} runs: kept {kept} stories")
    print(
        f"merge median {statistics.median(times) * 1000:.0f} ms, "
        f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--headlines", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    main(args.headlines, args.runs, args.seed)
