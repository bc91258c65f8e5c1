"""Benchmark: a streamed frame that crosses the liquidation threshold -> the alert queued.

Each run builds what `whydown run --demo` builds (one SQLite store, the explainer over the demo
sell-off replayed without REST liquidations and with flat open interest, the alert engine, the
liquidation feed) with a local websocket venue playing Bybit and a notifier that records when it
is asked to send. A first refresh runs (four drivers fire; the subscription wants five), then the
venue sends two frames with $30M of BTC longs. Measured: from handing the frames to the socket to
the notifier's send, which comes after the alert and its delivery row are committed: the frames
parsed, the rows written in a worker thread, the crossing noticed, one refresh (replayed HTTP) and
the alert rule.

Run: .venv/bin/python bench/stream_alert.py [--runs 9]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.alerts import AlertEngine
from bot.config import Settings
from bot.delivery import AlertMessage
from bot.jobs import Jobs
from bot.live import BackfillHistory, LiquidationFeed, StreamHistory
from bot.runner import build_explainer, demo_client
from bot.store import Store, Subscription
from explainers.replay import DEMO_FOLDER, Scenario
from tests.ws_venue import Connection, FakeVenue, bybit_frame, bybit_item, fixture, is_bybit_ping


def quiet_scenario(folder: Path) -> Scenario:
    shutil.copytree(DEMO_FOLDER, folder)
    for body in folder.glob("okx_liquidation_orders_*.json"):
        data = json.loads(body.read_text())
        for item in data["data"]:
            item["details"] = []
        body.write_text(json.dumps(data))
    oi_usd = json.loads((folder / "okx_open_interest_btc_usdt_swap.json").read_text())["data"][0][
        "oiUsd"
    ]
    history = folder / "okx_open_interest_history_btc_usdt_swap.json"
    data = json.loads(history.read_text())
    data["data"] = [[row[0], row[1], row[2], oi_usd] for row in data["data"]]
    history.write_text(json.dumps(data))
    return Scenario.load(folder)


class RecordingNotifier:
    platform = "telegram"

    def __init__(self) -> None:
        self.sent = asyncio.Event()
        self.at: float | None = None

    async def send(self, subscription: Subscription, message: AlertMessage) -> None:
        self.at = time.perf_counter()
        self.sent.set()


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


async def one_run(folder: Path) -> tuple[float, int]:
    scenario = quiet_scenario(folder / "scenario")
    settings = Settings(_env_file=None, database=folder / "whydown.db")
    go = asyncio.Event()
    items = [bybit_item(ms(scenario.now) + 100 + i, "Buy", "100", "50000") for i in range(6)]
    sent_at = 0.0

    async def script(conn: Connection) -> None:
        nonlocal sent_at
        await conn.recv()
        await conn.send(fixture("bybit_ws_subscribe_ack_linear.json"))
        pinger = asyncio.create_task(
            conn.answer_pings(is_bybit_ping, fixture("bybit_ws_pong_linear.json"))
        )
        await go.wait()
        sent_at = time.perf_counter()
        await conn.send(bybit_frame(items[:3]), bybit_frame(items[3:]))
        await pinger

    with Store(settings.database) as store:
        store.subscribe("telegram", "42", None, 5, "bench")
        assert isinstance(store.history, StreamHistory)
        async with FakeVenue([script]) as venue, demo_client(settings, scenario) as client:
            feed = LiquidationFeed(
                store.history,
                venues={"bybit": venue.url},
                coins=["BTC", "ETH", "SOL"],
                thresholds=settings.thresholds,
                clock=lambda: scenario.now,
            )
            explainer = build_explainer(
                client,
                settings,
                history=BackfillHistory(store.history, feed),
                clock=lambda: scenario.now,
                replay=scenario.replay,
            )
            notifier = RecordingNotifier()
            engine = AlertEngine(store, settings.alerts, {"telegram": notifier})
            jobs = Jobs(explainer, store, engine, feed)
            feed.on_crossing = jobs.react
            await jobs.refresh()
            await asyncio.wait(jobs.fanouts) if jobs.fanouts else None
            assert not notifier.sent.is_set()
            feed.start()
            await venue.connection(1)
            go.set()
            await asyncio.wait_for(notifier.sent.wait(), 30)
            assert notifier.at is not None
            elapsed = notifier.at - sent_at
            (alert,) = store.recent_alerts(5)
            rows = len(store.deliveries(alert.id))
            await feed.stop()
            if jobs.fanouts:
                await asyncio.wait(jobs.fanouts)
            await engine.aclose()
    return elapsed, rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    times: list[float] = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            elapsed, rows = await one_run(Path(tmp))
        times.append(elapsed)
        print(f"run {run + 1}: {elapsed * 1000:.0f} ms, {rows} delivery row(s)")
    print(
        f"frame -> alert queued: median {statistics.median(times) * 1000:.0f} ms, "
        f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms over {len(times)} runs"
    )


if __name__ == "__main__":
    asyncio.run(main())
