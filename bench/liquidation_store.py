"""Liquidation storage: ingestion rate, read cost against stored volume, event-loop stalls.

    .venv/bin/python bench/liquidation_store.py [--events 200000] [--batch 100] [--coins 3]
        [--volumes 10000,1000000,10000000] [--runs 50] [--stall-refreshes 20]

Three parts, each on a real SQLite `Store` in a temporary directory (WAL, as the bot runs it):

The instruments are the ones a running bot stores: the configured stream coins (`--coins`: BTC,
ETH, SOL, then made-up ones, Zipf-weighted) on each venue under its own name (Bybit and Binance
"BTCUSDT", OKX "BTC-USDT-SWAP"); OKX's REST families (BTC-USDT, ...) list the same swaps.

(a) ingestion: `--events` streamed liquidations (3 venues x those instruments, both sides,
    timestamps rising over an hour like a crash-day stream) are built first,
    then fed to `Store.history.add_streamed_liquidations` in batches of `--batch`; only those
    calls are timed.
(b) reads against volume: for each of `--volumes` stored events spread over the last 24 h, the
    median of `--runs` calls of `liquidation_totals` (1 h and 24 h) and `liquidation_hours` (24 h),
    and the ratio to the smallest volume. Seeding 10M events through the API would take minutes,
    so the sums those events leave behind are written directly: a multinomial draw spreads the
    events over the (minute, venue, instrument, side) cells, and the cells' sums go in through
    the store's own `write_sums` (the upserts `add_streamed_liquidations` makes, roll-ups
    included), exactly what the API would have written for them. 2,000 polled OKX events fill the de-duplication window.
(c) event-loop stall: the 1M-event store behind an `Explainer` whose collector returns one
    recorded snapshot (built with tests/factories.py, 100 polled OKX events in it); a ticker task
    sleeps 1 ms at a time and records how late it wakes while `--stall-refreshes` forced refreshes
    run. For comparison, the same history work (`Explainer._digest`) is timed run inline on the
    loop, which is what the refresh did before it moved to a worker thread.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.store import Store
from bot.store.history import minute_text, write_sums
from explainers.models import Liquidation, Liquidations
from explainers.service import Explainer
from explainers.settings import Thresholds
from tests import factories as f

NOW = f.NOW
VENUES = (("Bybit", 0.5), ("Binance", 0.35), ("OKX", 0.15))
AVERAGE_USD = 5_000.0


def coins(count: int) -> tuple[list[str], np.ndarray]:
    names = ["BTC", "ETH", "SOL"][:count] + [f"C{i:03d}" for i in range(count - 3)]
    weights = 1.0 / np.arange(1, count + 1) ** 1.2
    return names, weights / weights.sum()


def instrument(venue: str, coin: str) -> str:
    """The name a venue's rows carry for a coin's USDT perpetual."""
    return f"{coin}-USDT-SWAP" if venue == "OKX" else f"{coin}USDT"


def streamed_events(count: int, per_venue: int, seed: int = 1) -> list[Liquidation]:
    rng = np.random.default_rng(seed)
    names, weights = coins(per_venue)
    venue = rng.choice(len(VENUES), size=count, p=[w for _, w in VENUES])
    chosen = rng.choice(per_venue, size=count, p=weights)
    long = rng.random(count) < 0.6
    usd = rng.exponential(AVERAGE_USD, size=count)
    start = NOW - timedelta(hours=1)
    step = 3600.0 / count
    return [
        Liquidation.model_construct(
            exchange=VENUES[venue[i]][0],
            instrument=instrument(VENUES[venue[i]][0], names[chosen[i]]),
            position_side="long" if long[i] else "short",
            price=60000.0,
            size=float(usd[i]) / 60000.0,
            usd=float(usd[i]),
            ts=start + timedelta(seconds=i * step),
        )
        for i in range(count)
    ]


def polled_events(count: int) -> list[Liquidation]:
    return [
        Liquidation(
            exchange="OKX",
            instrument="BTC-USDT-SWAP",
            position_side="long" if i % 3 else "short",
            price=60000.0,
            size=1.0 + i,
            usd=60000.0 * (1.0 + i),
            ts=NOW - timedelta(seconds=i * 86400 / count + 1),
        )
        for i in range(count)
    ]


def ingest(folder: Path, count: int, batch: int, per_venue: int) -> float:
    events = streamed_events(count, per_venue)
    with Store(folder / "ingest.db") as store:
        history = store.history
        start = time.perf_counter()
        for i in range(0, count, batch):
            history.add_streamed_liquidations(events[i : i + batch])
        elapsed = time.perf_counter() - start
        [(stored,)] = store.db.execute("SELECT SUM(events) FROM liquidation_minutes").fetchall()
        assert stored == count, (stored, count)
    return count / elapsed


def seed(store: Store, count: int, per_venue: int, seed: int = 2) -> int:
    """Write the sums `count` events spread over the last 24 h leave behind; return the number
    of minute rows."""
    rng = np.random.default_rng(seed)
    names, weights = coins(per_venue)
    minutes = [minute_text(NOW - timedelta(minutes=m)) for m in range(1440)]
    venue_w = np.array([w for _, w in VENUES])
    cells = np.einsum("v,i,s->vis", venue_w, weights, np.array([0.6, 0.4])).ravel()
    p = np.tile(cells / 1440, 1440)
    counts = rng.multinomial(count, p / p.sum())
    per_minute = len(cells)
    rows = []
    for flat in np.flatnonzero(counts):
        minute, cell = divmod(int(flat), per_minute)
        v, rest = divmod(cell, per_venue * 2)
        i, s = divmod(rest, 2)
        n = int(counts[flat])
        rows.append(
            (
                minutes[minute],
                VENUES[v][0],
                instrument(VENUES[v][0], names[i]),
                "long" if s == 0 else "short",
                n * AVERAGE_USD,
                n,
            )
        )
    with store.history.lock:
        conn = store.history.db.conn
        conn.execute("BEGIN IMMEDIATE")
        write_sums(conn, rows)
        conn.commit()
    store.add_liquidations(
        polled_events(2000), polled_at=NOW, covered_since=NOW - timedelta(hours=25)
    )
    for exchange, _ in VENUES:  # the streams connected a day and a half ago
        store.record_liquidation_gap(exchange, NOW - timedelta(hours=36), NOW - timedelta(hours=36))
    return len(rows)


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def reads(store: Store, runs: int) -> dict[str, float]:
    h = store.history
    return {
        "totals 1h": median_ms(lambda: h.liquidation_totals(NOW - timedelta(hours=1), NOW), runs),
        "totals 24h": median_ms(lambda: h.liquidation_totals(NOW - timedelta(hours=24), NOW), runs),
        "hours 24h": median_ms(lambda: h.liquidation_hours(NOW - timedelta(hours=24)), runs),
    }


async def stalls(store: Store, refreshes: int) -> tuple[float, float, float, float]:
    """(longest ticker lateness alone, and during refreshes; median refresh; the history work
    inline) in ms"""
    snapshot = f.snapshot(
        liquidations=[Liquidations(source="OKX", as_of=NOW, events=polled_events(100))],
        open_interest=[f.open_interest(90e9)],
        cut_odds=f.cut_odds(0.4),
    )

    class Recorded:
        async def collect(self) -> object:
            return snapshot

    explainer = Explainer(Recorded(), Thresholds(), history=store.history, clock=lambda: NOW)  # type: ignore[arg-type]
    worst = 0.0
    running = True

    async def ticker() -> None:
        nonlocal worst
        while running:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - start - 0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.2)  # the noise floor: the ticker alone
    idle, worst = worst, 0.0
    durations = []
    for _ in range(refreshes):
        start = time.perf_counter()
        await explainer.refresh()
        durations.append(time.perf_counter() - start)
    running = False
    await task
    inline = median_ms(lambda: explainer._digest(snapshot), refreshes)
    return idle * 1000, worst * 1000, statistics.median(durations) * 1000, inline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--coins", type=int, default=3, help="configured stream coins")
    parser.add_argument("--volumes", default="10000,1000000,10000000")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--stall-refreshes", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rate = ingest(folder, args.events, args.batch, args.coins)
        print(
            f"(a) ingestion: {args.events:,} streamed events in batches of {args.batch}: "
            f"{rate:,.0f} events/s"
        )

        volumes = [int(v) for v in args.volumes.split(",")]
        base: dict[str, float] = {}
        print(
            "(b) reads (median ms)   "
            + "   ".join(f"{k:>10}" for k in ("totals 1h", "totals 24h", "hours 24h"))
        )
        for volume in volumes:
            with Store(folder / f"v{volume}.db") as store:
                seeded = time.perf_counter()
                rows = seed(store, volume, args.coins)
                seeded = time.perf_counter() - seeded
                figures = reads(store, args.runs)
                base = base or figures
                cells = "   ".join(
                    f"{figures[k]:6.2f} {figures[k] / base[k]:4.2f}x" for k in figures
                )
                print(
                    f"    {volume:>10,} events ({rows:>9,} minute rows, seeded in {seeded:5.1f} s)"
                    f"   {cells}"
                )
                if volume == 1_000_000:
                    idle, worst, refresh, inline = asyncio.run(stalls(store, args.stall_refreshes))
                    print(
                        f"(c) 1M events: longest loop stall during {args.stall_refreshes} refreshes "
                        f"{worst:.2f} ms (ticker alone {idle:.2f} ms); refresh median "
                        f"{refresh:.2f} ms; the same history work inline on the loop {inline:.2f} ms"
                    )


if __name__ == "__main__":
    main()
