"""Peak memory of a real `whydown run` holding 10,000 subscriptions and a day of stored data,
through its first alert fan-out (target: <= 150 MB).

    .venv/bin/python bench/run_memory.py [--subscriptions 10000] [--seconds 40]

The database is seeded first: subscriptions (Telegram private chats), one refresh's figures every
minute for 24 hours, and a day of liquidation events. Then `whydown run --demo` starts as a child
process with its Telegram front-end pointed at a minimal Bot API stand-in served here on
127.0.0.1, which accepts every call. The demo replay fires five drivers, so the first refresh
sends an alert to every subscription, paced at Telegram's 30 messages/s. After `--seconds` the
child gets SIGTERM. Reported: the bot process's peak resident set (VmHWM), read just before
SIGTERM, and that of any child process it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from aiohttp import web

from bot.store import Store
from explainers.models import Liquidation
from explainers.replay import Scenario

FIGURES = ("premium_pct", "oi_usd", "cut_odds")  # what lookback reads back
DRIVERS = ("liquidations", "etf", "institutional", "fed", "stocks", "fear")


def seed(path: Path, subscriptions: int) -> None:
    now = Scenario.load().now
    with Store(path) as store, store.transaction():
        for i in range(subscriptions):
            store.subscribe("telegram", str(100_000 + i), None, 3, "bench")
        for minute in range(24 * 60):
            at = now - timedelta(minutes=minute)
            store.add_figures(
                at, {name: 1.0 + minute for name in FIGURES} | {f"driver_{d}": 0.0 for d in DRIVERS}
            )
        store.add_liquidations(
            [
                Liquidation(
                    exchange="OKX",
                    instrument="BTC-USDT-SWAP",
                    position_side="long" if i % 3 else "short",
                    price=55_000.0,
                    size=float(10 + i % 50),
                    usd=5_500.0 * (10 + i % 50),
                    ts=now - timedelta(seconds=3 * i),
                )
                for i in range(24 * 60 * 20)  # 20 a minute for a day
            ],
            polled_at=now,
            covered_since=now - timedelta(days=1),
        )


def high_water_mb(pid: int) -> float:
    """A live process's peak resident set (VmHWM), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


class FakeBotApi:
    """Just enough of the Bot API for python-telegram-bot to start, poll and send."""

    def __init__(self) -> None:
        self.sent = 0
        self.photos = 0
        self.message_id = 0

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if method == "getMe":
            result: object = {
                "id": 1,
                "is_bot": True,
                "first_name": "whydown",
                "username": "whydown_bench_bot",
            }
        elif method == "getUpdates":
            await asyncio.sleep(1.0)  # a short long-poll with nothing new
            result = []
        elif method in ("sendMessage", "sendPhoto"):
            self.sent += method == "sendMessage"
            self.photos += method == "sendPhoto"
            self.message_id += 1
            form = (
                dict(await request.post())
                if request.content_type != "application/json"
                else await request.json()
            )
            result = {
                "message_id": self.message_id,
                "date": int(time.time()),
                "chat": {"id": int(form.get("chat_id", 1)), "type": "private"},
            }
            if method == "sendPhoto":
                result["photo"] = [
                    {"file_id": "chart", "file_unique_id": "chart", "width": 1200, "height": 900}
                ]
            else:
                result["text"] = "ok"
        else:  # deleteWebhook, setMyCommands, close, ...
            result = True
        return web.json_response({"ok": True, "result": result})


async def main(subscriptions: int, seconds: float) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="whydown-bench-"))
    db = workdir / "whydown.db"
    started = time.perf_counter()
    seed(db, subscriptions)
    print(
        f"seeded {subscriptions} subscriptions, a day of figures and liquidations in {time.perf_counter() - started:.1f} s ({db.stat().st_size / 1e6:.1f} MB file)"
    )

    api = FakeBotApi()
    app = web.Application()
    app.router.add_post("/bot{token}/{method}", api.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    env = os.environ | {
        "WHYDOWN_TELEGRAM_TOKEN": "0:bench",
        "WHYDOWN_TELEGRAM_API_URL": f"http://127.0.0.1:{port}/bot",
        "WHYDOWN_DATABASE": str(db),
        "WHYDOWN_LOG_LEVEL": "WARNING",
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", "--demo", env=env, cwd=workdir
    )
    await asyncio.sleep(seconds)  # the bench's observation window, not a test wait
    bot_mb = high_water_mb(child.pid)
    renderers = [(pid, high_water_mb(pid)) for pid in children(child.pid)]
    child.send_signal(signal.SIGTERM)
    stop_started = time.perf_counter()
    code = await child.wait()
    stop_s = time.perf_counter() - stop_started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    await runner.cleanup()
    with Store(db) as store:
        pending = json.dumps(
            store.db.execute("select status, count(*) from deliveries group by status").fetchall()
        )
    print(
        f"`whydown run --demo` for {seconds:.0f} s: {api.sent} alert messages and {api.photos} chart photos sent; deliveries by status {pending}"
    )
    print(f"stopped by SIGTERM in {stop_s:.2f} s with exit code {code}")
    print(f"peak RSS of the bot process: {bot_mb:.1f} MB (target <= 150 MB)")
    for pid, mb in renderers:
        print(f"peak RSS of its child process {pid}: {mb:.1f} MB")
    print(f"largest process of the run, reaped (ru_maxrss): {peak_mb:.1f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=40.0)
    args = parser.parse_args()
    asyncio.run(main(args.subscriptions, args.seconds))
