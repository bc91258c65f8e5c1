"""Peak memory of a real `whydown run` holding 10,000 subscriptions and a day of stored data,
through its first alert fan-out, with its three liquidation streams on (target: <= 150 MB).

    .venv/bin/python bench/run_memory.py [--subscriptions 10000] [--seconds 40]
        [--no-streams] [--frame-rate 20] [--items 5]

The database is seeded first: subscriptions (Telegram private chats), one refresh's figures every
minute for 24 hours, and a day of liquidation events. Then `whydown run --demo` starts as a child
process with its Telegram front-end pointed at a minimal Bot API stand-in served here on
127.0.0.1, which accepts every call. The demo replay fires five drivers, so the first refresh
sends an alert to every subscription, paced at Telegram's 30 messages/s. After `--seconds` the
child gets SIGTERM. Reported: the bot process's peak resident set (VmHWM), read just before
SIGTERM, and that of any child process it started.

With streams (the default), three websocket venues served here on 127.0.0.1 stand in for Bybit,
OKX and Binance: each acknowledges the subscription, answers pings, and pushes `--frame-rate`
frames a second for the whole run (Bybit and OKX `--items` liquidations a frame, Binance one),
every liquidation new, spread over BTC, ETH and SOL. The bot is pointed at them with
WHYDOWN_STREAMS__<VENUE>__URL (a demo replay streams only venues given a URL).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bot.store import Store
from bot.store.history import minute_text
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


COINS = ("BTC", "ETH", "SOL")
PRICES = {"BTC": 55_000.0, "ETH": 2_500.0, "SOL": 140.0}


class Venue:
    """One stand-in liquidation venue: acknowledge, answer pings, push frames at a steady rate."""

    def __init__(self, name: str, frame_rate: float, items: int) -> None:
        self.name = name
        self.frame_rate = frame_rate
        self.items = items
        self.frames = 0
        self.liquidations = 0
        self.sequence = 0

    async def handle(self, ws: ServerConnection) -> None:
        if self.name != "binance":  # Binance names its stream in the URL: no subscribe
            await ws.recv()
            ack = (
                {
                    "success": True,
                    "ret_msg": "",
                    "conn_id": "bench",
                    "req_id": "",
                    "op": "subscribe",
                }
                if self.name == "bybit"
                else {"event": "subscribe", "arg": {"channel": "liquidation-orders"}}
            )
            await ws.send(json.dumps(ack))
        reader = asyncio.create_task(self._answer_pings(ws))
        try:
            while True:
                await ws.send(self.frame())
                self.frames += 1
                await asyncio.sleep(1 / self.frame_rate)  # the bench's steady rate
        except ConnectionClosed:
            pass
        finally:
            reader.cancel()

    async def _answer_pings(self, ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                if message == "ping":
                    await ws.send("pong")
                elif '"ping"' in str(message):
                    await ws.send(json.dumps({"success": True, "ret_msg": "pong", "op": "ping"}))

    def _next(self) -> tuple[str, int, float]:
        self.sequence += 1
        self.liquidations += 1
        coin = COINS[self.sequence % len(COINS)]
        price = PRICES[coin] * (1 + (self.sequence % 1000) / 100_000)
        return coin, int(time.time() * 1000) + self.sequence % 1000, price

    def frame(self) -> str:
        if self.name == "binance":
            coin, ms, price = self._next()
            qty = f"{0.01 * (1 + self.sequence % 50):.3f}"
            return json.dumps(
                {
                    "e": "forceOrder",
                    "E": ms,
                    "o": {"s": f"{coin}USDT", "S": "SELL", "ap": f"{price:.2f}", "z": qty, "T": ms},
                }
            )
        if self.name == "bybit":
            items = []
            for _ in range(self.items):
                coin, ms, price = self._next()
                items.append(
                    {
                        "T": ms,
                        "s": f"{coin}USDT",
                        "S": "Buy",
                        "v": f"{self.sequence}",
                        "p": f"{price:.2f}",
                    }
                )
            by_symbol = items[0]["s"]
            return json.dumps(
                {"topic": f"allLiquidation.{by_symbol}", "type": "snapshot", "ts": 0, "data": items}
            )
        data = []
        for _ in range(self.items):
            coin, ms, price = self._next()
            detail = {"bkPx": f"{price:.2f}", "posSide": "long", "side": "sell"}
            detail |= {"sz": str(1 + self.sequence % 90), "ts": str(ms)}
            data.append({"instId": f"{coin}-USDT-SWAP", "details": [detail]})
        return json.dumps(
            {"arg": {"channel": "liquidation-orders", "instType": "SWAP"}, "data": data}
        )


async def main(
    subscriptions: int, seconds: float, streams: bool, frame_rate: float, items: int
) -> None:
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
        "WHYDOWN_STREAMS__ENABLED": "true" if streams else "false",
    }
    venues = [Venue(name, frame_rate, items) for name in ("bybit", "okx", "binance")]
    servers = []
    if streams:
        for venue in venues:
            server = await serve(venue.handle, "127.0.0.1", 0, ping_interval=None)
            servers.append(server)
            ws_port = next(iter(server.sockets)).getsockname()[1]
            env[f"WHYDOWN_STREAMS__{venue.name.upper()}__URL"] = f"ws://127.0.0.1:{ws_port}/"
    run_started = datetime.now(UTC)
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
    for server in servers:
        server.close()
        await server.wait_closed()
    with Store(db) as store:
        pending = json.dumps(
            store.db.execute("select status, count(*) from deliveries group by status").fetchall()
        )
    print(
        f"`whydown run --demo` for {seconds:.0f} s: {api.sent} alert messages and {api.photos} chart photos sent; deliveries by status {pending}"
    )
    print(f"stopped by SIGTERM in {stop_s:.2f} s with exit code {code}")
    if streams:
        for venue in venues:
            print(
                f"{venue.name}: {venue.frames} frames, {venue.liquidations} liquidations pushed "
                f"({frame_rate:g} frames/s)"
            )
        with Store(db) as store:
            # the seeded day is in the replay's past; what was streamed is stamped with real time
            streamed = store.db.execute(
                "select sum(events) from liquidation_minute_venues where minute >= ?",
                (minute_text(run_started - timedelta(minutes=1)),),
            ).fetchone()
        print(f"streamed liquidations stored: {streamed[0]}")
    print(f"peak RSS of the bot process: {bot_mb:.1f} MB (target <= 150 MB)")
    for pid, mb in renderers:
        print(f"peak RSS of its child process {pid}: {mb:.1f} MB")
    print(f"largest process of the run, reaped (ru_maxrss): {peak_mb:.1f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument(
        "--no-streams", dest="streams", action="store_false", help="run without the streams"
    )
    parser.add_argument("--frame-rate", type=float, default=20.0, help="frames/s per venue")
    parser.add_argument("--items", type=int, default=5, help="liquidations per Bybit/OKX frame")
    args = parser.parse_args()
    asyncio.run(main(args.subscriptions, args.seconds, args.streams, args.frame_rate, args.items))
