"""`whydown run` as a real process: streamed liquidations that cross the liquidation driver's
threshold alert a subscribed chat at once, with no scheduled refresh in between.

Upstream HTTP is a recorded scenario (the demo sell-off, with no liquidations listed by OKX's
REST API and flat open interest, so four drivers fire and the liquidation driver does not); a
local websocket venue plays Bybit. The subscription wants five drivers: only the stream can
make the fifth fire, and the refresh interval is an hour, so only the stream can cause the alert.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from bot.store import Store
from bot.store.history import SqliteHistory
from explainers.replay import DEMO_FOLDER, Scenario
from tests.telegram_harness import Chat, TelegramEmulator, User
from tests.test_run_process import _env, _start
from tests.ws_venue import (
    Connection,
    FakeVenue,
    bybit_frame,
    bybit_item,
    fixture,
    is_bybit_ping,
)

pytest_plugins = ["tests.telegram_harness.fixtures"]

pytestmark = pytest.mark.skipif(
    not hasattr(SqliteHistory, "add_streamed_liquidations"),
    reason="the store does not keep streamed liquidations yet",
)

DAVE = User(6002, "Dave", "dave")


def quiet_liquidations_scenario(folder: Path) -> Path:
    """The demo sell-off without REST liquidations and with flat BTC open interest."""
    shutil.copytree(DEMO_FOLDER, folder)
    for body in folder.glob("okx_liquidation_orders_*.json"):
        data = json.loads(body.read_text())
        for item in data["data"]:
            item["details"] = []
        body.write_text(json.dumps(data))
    now_oi = json.loads((folder / "okx_open_interest_btc_usdt_swap.json").read_text())
    oi_usd = now_oi["data"][0]["oiUsd"]
    history = folder / "okx_open_interest_history_btc_usdt_swap.json"
    data = json.loads(history.read_text())
    data["data"] = [[row[0], row[1], row[2], oi_usd] for row in data["data"]]
    history.write_text(json.dumps(data))
    return folder


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


async def _lines(stream: asyncio.StreamReader, into: list[str], seen: asyncio.Condition) -> None:
    while line := await stream.readline():
        async with seen:
            into.append(line.decode(errors="replace"))
            seen.notify_all()


@pytest.fixture
async def cascade() -> AsyncIterator[tuple[FakeVenue, asyncio.Event]]:
    """A Bybit venue that acknowledges, waits for `go`, then sends $30M of BTC longs."""
    go = asyncio.Event()
    now = Scenario.load().now
    items = [bybit_item(ms(now) + 100 + i, "Buy", "100", "50000") for i in range(6)]  # 6 x $5M

    async def script(conn: Connection) -> None:
        await conn.recv()
        await conn.send(fixture("bybit_ws_subscribe_ack_linear.json"))
        pinger = asyncio.create_task(
            conn.answer_pings(is_bybit_ping, fixture("bybit_ws_pong_linear.json"))
        )
        await go.wait()
        await conn.send(bybit_frame(items[:3]), bybit_frame(items[3:]))
        await pinger

    async with FakeVenue([script]) as venue:
        yield venue, go


async def test_streamed_liquidations_crossing_the_threshold_alert_at_once(
    telegram_emulator: TelegramEmulator,
    cascade: tuple[FakeVenue, asyncio.Event],
    tmp_path: Path,
) -> None:
    venue, go = cascade
    db = tmp_path / "whydown.db"
    chat = Chat.private(DAVE)
    with Store(db) as store:
        store.subscribe("telegram", str(chat.id), None, 5, "dave")
    env = _env(telegram_emulator, db) | {
        "WHYDOWN_DEMO_FOLDER": str(quiet_liquidations_scenario(tmp_path / "scenario")),
        "WHYDOWN_REFRESH_INTERVAL_S": "3600",
        "WHYDOWN_STREAMS__BYBIT__URL": venue.url,  # in a replay only venues given a URL stream
    }
    process = await _start(env, tmp_path)
    assert process.stderr is not None
    log: list[str] = []
    seen = asyncio.Condition()
    reader = asyncio.create_task(_lines(process.stderr, log, seen))
    try:
        async with seen:  # the first refresh, at start: four drivers, no alert
            await asyncio.wait_for(
                seen.wait_for(lambda: any("refresh: down, 4 drivers firing" in x for x in log)),
                30,
            )
        await asyncio.wait_for(venue.connection(1), 30)
        assert await telegram_emulator.client.bot_messages(chat) == []

        go.set()
        alert, picture = await telegram_emulator.client.wait_for_messages(chat, 2, timeout=30)
        assert picture.photo is not None  # the chart
        assert alert.text is not None and alert.text.startswith(
            "<b>Crash alert</b>: 5 sell-off drivers firing together."
        )
        assert "$30.0M of longs liquidated in 1h" in alert.text

        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
        await reader
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    text = "".join(log)
    assert "liquidation threshold crossed" in text
    assert text.count("refresh: down") == 2  # the start, and the one the stream caused
    with Store(db) as store:
        (row,) = store.recent_alerts(5)
        assert "Liquidation cascade" in row.drivers
        assert [d.status for d in store.deliveries(row.id)] == ["sent"]
        longs, _ = store.history.liquidation_totals(Scenario.load().now, Scenario.load().now)
        assert longs == 30e6
