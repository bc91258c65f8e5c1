"""Streamed liquidations: recorded frames parsed, and real clients against a local websocket
venue (reconnects, gaps, de-duplication, silent sockets, bad frames, a 451, a 5,000-event
minute). Nothing here waits on a timer except where the waiting is what is tested."""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from explainers.streams import (
    BinanceLiquidations,
    BybitLiquidations,
    LiquidationStream,
    OkxLiquidations,
    RecentKeys,
    StreamStatus,
)
from explainers.streams import binance as binance_stream
from explainers.streams import bybit as bybit_stream
from explainers.streams import okx as okx_stream
from tests.ws_venue import (
    BybitRequests,
    Connection,
    FakeClock,
    FakeVenue,
    RecordingSink,
    Sleeps,
    binance_frame,
    bybit_frame,
    bybit_item,
    fixture,
    is_bybit_ping,
    is_okx_ping,
    okx_detail,
    okx_frame,
)

WAIT = 5.0  # an upper bound for things that happen at once; never reached when passing


async def until(
    client: LiquidationStream, predicate: Callable[[StreamStatus], bool]
) -> StreamStatus:
    return await asyncio.wait_for(client.wait_for(predicate), WAIT)


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


# --- defaults -------------------------------------------------------------------------------


def test_default_urls_and_coverage() -> None:
    sink = RecordingSink()
    bybit = BybitLiquidations(sink)
    okx = OkxLiquidations(sink)
    binance = BinanceLiquidations(sink)
    assert bybit.url == "wss://stream.bybit.com/v5/public/linear"
    assert okx.url == "wss://ws.okx.com:8443/ws/v5/public"
    # Binance retired the unrouted /ws path on 2026-04-23; liquidations are on the market tier
    assert binance.url == "wss://fstream.binance.com/market/ws/!forceOrder@arr"
    assert (bybit.coverage, okx.coverage, binance.coverage) == ("all", "sampled", "sampled")
    assert set(bybit.symbols) == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    assert set(binance.symbols) == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    assert okx.instruments == {
        "BTC-USDT-SWAP": ("BTC", 0.01),
        "ETH-USDT-SWAP": ("ETH", 0.1),
        "SOL-USDT-SWAP": ("SOL", 1.0),
    }


def test_subscribe_messages_match_the_venues_examples() -> None:
    sink = RecordingSink()
    (okx_sub,) = OkxLiquidations(sink).subscribe_messages()
    documented = json.loads(fixture("okx_ws_subscribe_request_liquidation.json"))
    assert json.loads(okx_sub)["args"] == documented["args"]  # instType only: instId is refused
    (bybit_sub,) = BybitLiquidations(sink, coins=["btc", "eth"]).subscribe_messages()
    sub = json.loads(bybit_sub)
    assert sub["op"] == "subscribe"
    assert sub["args"] == ["allLiquidation.BTCUSDT", "allLiquidation.ETHUSDT"]
    assert (
        json.loads(BybitLiquidations.ping_text or "")["op"]
        == json.loads(fixture("bybit_ws_ping_request.json"))["op"]
    )
    assert BinanceLiquidations(sink).subscribe_messages() == []


def test_okx_needs_a_contract_value_for_each_coin() -> None:
    with pytest.raises(ValueError, match="DOGE"):
        OkxLiquidations(RecordingSink(), coins=["BTC", "DOGE"])
    client = OkxLiquidations(RecordingSink(), coins=["DOGE"], contract_values={"DOGE": 1000})
    assert client.instruments == {"DOGE-USDT-SWAP": ("DOGE", 1000.0)}


# --- recorded frames, parsed ----------------------------------------------------------------


def test_bybit_recorded_push_buy_is_a_long_liquidation() -> None:
    parsed = BybitLiquidations(RecordingSink()).parse(fixture("bybit_all_liquidation_ws_live.json"))
    assert parsed.kind == "events"
    first, second = parsed.events
    assert (first.venue, first.coin, first.side) == ("bybit", "BTC", "long")
    assert first.quantity == 0.006 and first.price == 82396.90
    assert first.usd == pytest.approx(494.3814)
    assert first.at == datetime.fromtimestamp(1791565600992 / 1000, UTC)
    assert second.usd == pytest.approx(0.038 * 82394.30)
    assert first.event_id != second.event_id


def test_bybit_doc_push_for_a_coin_not_asked_for_is_ignored() -> None:
    body = fixture("bybit_all_liquidation_ws.json")
    assert BybitLiquidations(RecordingSink()).parse(body).kind == "ignored"
    (event,) = BybitLiquidations(RecordingSink(), coins=["ROSE"]).parse(body).events
    assert (event.coin, event.side) == ("ROSE", "short")  # Sell: a short was liquidated
    assert event.usd == pytest.approx(20000 * 0.04499)


def test_bybit_control_frames() -> None:
    client = BybitLiquidations(RecordingSink())
    assert client.parse(fixture("bybit_ws_subscribe_ack_linear.json")).kind == "ack"
    assert client.parse(fixture("bybit_ws_pong_linear.json")).kind == "pong"
    refused = client.parse(
        json.dumps({"success": False, "ret_msg": "error:handler not found", "op": "subscribe"})
    )
    assert refused.kind == "rejected" and "handler not found" in refused.detail


def test_okx_recorded_push_converts_contracts_with_ctval() -> None:
    parsed = OkxLiquidations(RecordingSink()).parse(fixture("okx_liquidation_orders_ws_live.json"))
    (event,) = parsed.events
    assert (event.venue, event.coin, event.side) == ("okx", "BTC", "long")
    assert event.quantity == pytest.approx(0.0855)  # 8.55 contracts x 0.01 BTC
    assert event.price == 82655.7
    assert event.usd == pytest.approx(7067.06235)
    assert event.at == datetime.fromtimestamp(1791565600771 / 1000, UTC)


def test_okx_frames_of_other_swaps_and_control_frames() -> None:
    client = OkxLiquidations(RecordingSink())
    assert client.parse(fixture("okx_liquidation_orders_ws.json")).kind == "ignored"  # IOST
    assert client.parse(fixture("okx_ws_subscribe_ack.json")).kind == "ack"
    assert client.parse("pong").kind == "pong"  # plain text, not JSON
    refused = client.parse(fixture("okx_ws_error_60018.json"))
    assert refused.kind == "rejected" and "60018" in refused.detail
    assert "http" not in refused.detail.lower()


def test_okx_net_mode_uses_the_order_side() -> None:
    client = OkxLiquidations(RecordingSink())
    frame = okx_frame(
        [
            okx_detail(1791565600771, "net", "buy", "2", "82000"),
            okx_detail(1791565600772, "net", "sell", "3", "82000"),
        ]
    )
    assert [e.side for e in client.parse(frame).events] == ["short", "long"]


def test_binance_recorded_frames_wrapped_and_raw() -> None:
    client = BinanceLiquidations(RecordingSink())
    (event,) = client.parse(fixture("binance_force_order_ws_live.json")).events
    assert (event.venue, event.coin, event.side) == ("binance", "BTC", "long")  # SELL order
    assert event.usd == pytest.approx(0.190 * 82651.90)  # ap x z, not l
    assert event.at == datetime.fromtimestamp(1791565602120 / 1000, UTC)
    (doc,) = client.parse(fixture("binance_force_order_ws.json")).events
    assert doc.usd == pytest.approx(0.014 * 9910)
    assert client.parse(fixture("binance_force_order_ws_raw_live.json")).kind == "ignored"
    (manta,) = (
        BinanceLiquidations(RecordingSink(), coins=["MANTA"])
        .parse(fixture("binance_force_order_ws_raw_live.json"))
        .events
    )
    assert manta.usd == pytest.approx(2049.1 * 0.0722187)


def test_recent_keys_are_bounded() -> None:
    keys = RecentKeys(3)
    assert [keys.add(k) for k in "abca"] == [True, True, True, False]
    assert keys.add("d") and len(keys) == 3
    assert keys.add("a")  # forgotten, oldest first


# --- live clients against the local venue ---------------------------------------------------


def bybit_session(*frames: str, close: bool = False) -> Any:
    async def script(conn: Connection) -> None:
        await conn.recv()  # the subscribe
        await conn.send(fixture("bybit_ws_subscribe_ack_linear.json"), *frames)
        if close:
            await conn.ws.close(1011, "restart")
            return
        await conn.answer_pings(is_bybit_ping, fixture("bybit_ws_pong_linear.json"))

    return script


def okx_session(*frames: str) -> Any:
    async def script(conn: Connection) -> None:
        await conn.recv()
        await conn.send(fixture("okx_ws_subscribe_ack.json"), *frames)
        await conn.answer_pings(is_okx_ping, "pong")

    return script


def binance_session(*frames: str) -> Any:
    async def script(conn: Connection) -> None:
        await conn.send(*frames)
        await conn.answer_pings(lambda _: False, None)

    return script


def make_client(cls: type[LiquidationStream], url: str, **kwargs: Any) -> tuple[Any, RecordingSink]:
    sink = RecordingSink()
    kwargs.setdefault("clock", FakeClock())
    kwargs.setdefault("sleep", Sleeps(block_from=1))
    kwargs.setdefault("random", lambda: 0.0)
    return cls(sink, url=url, **kwargs), sink


@pytest.mark.parametrize(
    ("cls", "script", "expected"),
    [
        (
            BybitLiquidations,
            bybit_session(
                fixture("bybit_all_liquidation_ws.json"),
                fixture("bybit_all_liquidation_ws_live.json"),
            ),
            [("BTC", "long", 0.006 * 82396.90), ("BTC", "long", 0.038 * 82394.30)],
        ),
        (
            OkxLiquidations,
            okx_session(
                fixture("okx_liquidation_orders_ws.json"),
                fixture("okx_liquidation_orders_ws_live.json"),
            ),
            [("BTC", "long", 8.55 * 0.01 * 82655.7)],
        ),
        (
            BinanceLiquidations,
            binance_session(
                fixture("binance_force_order_ws_raw_live.json"),
                fixture("binance_force_order_ws_live.json"),
                fixture("binance_force_order_ws.json"),
            ),
            [("BTC", "long", 0.190 * 82651.90), ("BTC", "long", 0.014 * 9910)],
        ),
    ],
)
async def test_recorded_frames_replayed_over_a_socket(
    cls: type[LiquidationStream], script: Any, expected: list[tuple[str, str, float]]
) -> None:
    clock = FakeClock()
    async with FakeVenue([script]) as venue:
        client, sink = make_client(cls, venue.url, clock=clock)
        client.start()
        status = await until(client, lambda s: s.events_total == len(expected))
        await client.stop()
    assert [(e.coin, e.side, pytest.approx(e.usd)) for e in sink.events] == expected
    assert status.state == "ok" and status.connected and status.connected_since == clock.now
    assert status.malformed == status.unknown == status.duplicates == 0
    assert status.attempts == 1
    assert status.gap_since is None
    # the start gap was opened and closed once the stream was subscribed; stop opened another
    start_open, start_closed, stopped = sink.gaps
    assert (start_open.reason, start_open.end) == ("start", None)
    assert (start_closed.gap_id, start_closed.end) == (start_open.gap_id, clock.now)
    assert (stopped.reason, stopped.end) == ("stopped", None)
    assert client.status().state == "stopped" and not client.status().connected


async def test_disconnect_mid_cascade_reconnects_records_the_gap_and_drops_replays() -> None:
    start = datetime(2026, 10, 9, 12, 0, tzinfo=UTC)
    items = [
        bybit_item(ms(start) + i * 100, "Buy" if i % 3 else "Sell", f"0.{i + 1:03d}", "82000.5")
        for i in range(10)
    ]
    frames = [bybit_frame(items[i : i + 2]) for i in range(0, 10, 2)]  # five frames of two
    clock = FakeClock(start)
    sleeps = Sleeps(block_from=2)
    async with FakeVenue(
        [
            # the first socket dies after three frames of the cascade
            bybit_session(fixture("bybit_all_liquidation_ws_live.json"), *frames[:3], close=True),
            # the venue replays the last two frames it had sent, then goes on
            bybit_session(*frames[1:]),
        ]
    ) as venue:
        client, sink = make_client(BybitLiquidations, venue.url, clock=clock, sleep=sleeps)
        client.start()
        await until(client, lambda s: s.events_total == 8)
        clock.advance(30)  # the venue drops the socket half a minute later
        first = venue.connections[0]
        await until(client, lambda s: s.attempts == 2 and s.state == "ok")
        status = await until(client, lambda s: s.events_total == 12)
        await client.stop()
    assert first.number == 1 and len(venue.connections) == 2
    ids = [e.event_id for e in sink.events]
    assert len(ids) == len(set(ids)) == 12
    assert status.duplicates == 4  # frames 2 and 3 came twice
    assert math.fsum(e.usd for e in sink.events) == pytest.approx(
        0.006 * 82396.90 + 0.038 * 82394.30 + sum(float(i["v"]) * 82000.5 for i in items)
    )
    assert len(sleeps.delays) == 1 and sleeps.delays[0] == pytest.approx(0.5)  # base x jitter
    gaps = [(g.gap_id, g.reason, g.end is None) for g in sink.gaps]
    assert gaps[:4] == [
        (1, "start", True),
        (1, "start", False),
        (2, "disconnected", True),
        (2, "disconnected", False),
    ]
    # the gap starts at the last frame the dead socket delivered, not when it was noticed
    disconnect = sink.gaps[3]
    assert disconnect.start == start and disconnect.end == clock.now
    assert disconnect.overlaps(start, start + timedelta(minutes=1))
    assert not disconnect.overlaps(start + timedelta(minutes=1), start + timedelta(minutes=2))


@pytest.mark.parametrize(
    ("cls", "ack", "is_ping", "pong"),
    [
        (OkxLiquidations, "okx_ws_subscribe_ack.json", is_okx_ping, "pong"),
        (
            BybitLiquidations,
            "bybit_ws_subscribe_ack_linear.json",
            is_bybit_ping,
            fixture("bybit_ws_pong_linear.json"),
        ),
    ],
)
async def test_a_socket_that_stops_answering_pings_is_replaced(
    cls: type[LiquidationStream], ack: str, is_ping: Callable[[str], bool], pong: str
) -> None:
    async def mute(conn: Connection) -> None:
        await conn.recv()
        await conn.send(fixture(ack))
        await conn.answer_pings(is_ping, None)  # reads the pings, never answers

    async def answering(conn: Connection) -> None:
        await conn.recv()
        await conn.send(fixture(ack))
        await conn.answer_pings(is_ping, pong)

    async with FakeVenue([mute, answering]) as venue:
        client, sink = make_client(
            cls, venue.url, ping_interval=0.02, pong_timeout=0.3, sleep=Sleeps(block_from=2)
        )
        client.start()
        status = await until(client, lambda s: s.attempts == 2 and s.state == "ok")
        second = await venue.connection(2)
        # the answered socket stays: several pings answered without another reconnect
        await asyncio.wait_for(_pings(second, is_ping, 3), WAIT)
        assert client.status().attempts == 2
        await client.stop()
    assert venue.connections[0].pings(is_ping) == 1  # one unanswered ping was enough
    reasons = [g.reason for g in sink.gaps]
    assert reasons[:4] == ["start", "start", "disconnected", "disconnected"]
    assert status.reason is None


async def _pings(conn: Connection, is_ping: Callable[[str], bool], count: int) -> None:
    while conn.pings(is_ping) < count:
        await asyncio.sleep(0.01)


async def test_malformed_and_unknown_frames_are_counted_and_skipped() -> None:
    good = bybit_item(1791565600000, "Sell", "0.5", "82000")
    bad_items = [
        bybit_item(1791565600001, "Buy", "abc", "82000"),
        bybit_item(1791565600002, "Buy", "0", "82000"),  # USD 0
        bybit_item(1791565600003, "Buy", "0.1", "NaN"),
        bybit_item(1791565600004, "Both", "0.1", "82000"),
    ]
    frames: list[str | bytes] = [
        "{not json",
        "[1, 2]",
        json.dumps({"topic": "allLiquidation.BTCUSDT", "data": "x"}),
        bybit_frame([good, *bad_items]),
        json.dumps({"topic": "tickers.BTCUSDT", "data": {}}),  # unknown topic
        json.dumps({"op": "auth", "success": True}),  # unknown control frame
        b"\xff\xfe",  # undecodable binary frame
        fixture("bybit_all_liquidation_ws.json"),  # a coin not asked for: ignored
        fixture("bybit_all_liquidation_ws_live.json"),
    ]

    async def script(conn: Connection) -> None:
        await conn.recv()
        await conn.send(fixture("bybit_ws_subscribe_ack_linear.json"))
        for frame in frames:
            await conn.send(frame)
        await conn.answer_pings(is_bybit_ping, fixture("bybit_ws_pong_linear.json"))

    async with FakeVenue([script]) as venue:
        client, sink = make_client(BybitLiquidations, venue.url)
        client.start()
        status = await until(client, lambda s: s.events_total == 3)
        await client.stop()
    assert [e.side for e in sink.events] == ["short", "long", "long"]
    assert status.malformed == 3 + 4 + 1
    assert status.unknown == 2
    assert status.state == "ok" and status.attempts == 1


async def test_okx_error_ack_is_reported_and_backed_off() -> None:
    async def refuse(conn: Connection) -> None:
        await conn.recv()
        await conn.send(fixture("okx_ws_error_60018.json"))
        await conn.answer_pings(is_okx_ping, None)

    sleeps = Sleeps(block_from=3)
    async with FakeVenue([refuse]) as venue:
        client, sink = make_client(OkxLiquidations, venue.url, sleep=sleeps, random=lambda: 1.0)
        client.start()
        status = await until(client, lambda s: s.attempts == 3 and s.next_attempt_at is not None)
        await client.stop()
    assert status.state == "reconnecting"
    assert status.reason is not None and "60018" in status.reason
    assert sleeps.delays == [1.0, 2.0, 4.0]  # exponential (jitter at its top)
    assert status.events_total == 0
    # never subscribed: the start gap stays open
    assert [(g.reason, g.end) for g in sink.gaps] == [("start", None)]


async def test_backoff_is_capped() -> None:
    async def refuse(conn: Connection) -> None:
        await conn.recv()
        await conn.send(fixture("okx_ws_error_60018.json"))

    sleeps = Sleeps(block_from=8)
    async with FakeVenue([refuse]) as venue:
        client, _ = make_client(
            OkxLiquidations, venue.url, sleep=sleeps, random=lambda: 1.0, backoff_cap=10.0
        )
        client.start()
        await until(client, lambda s: s.attempts == 8 and s.next_attempt_at is not None)
        await client.stop()
    assert sleeps.delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]


async def test_binance_451_is_blocked_and_waits_hours() -> None:
    clock = FakeClock()
    sleeps = Sleeps(block_from=3)
    async with FakeVenue(refuse=(451, fixture("binance_error_451.json"))) as venue:
        client, sink = make_client(
            BinanceLiquidations, venue.url, clock=clock, sleep=sleeps, random=lambda: 0.0
        )
        client.start()
        status = await until(client, lambda s: s.attempts == 3 and s.next_attempt_at is not None)
        for _ in range(20):  # give a hot loop every chance to show itself
            await asyncio.sleep(0)
        await client.stop()
    assert status.state == "blocked"
    assert status.reason == "refused from this location (HTTP 451)"
    assert venue.handshakes == 3  # one per scheduled attempt, nothing in between
    assert sleeps.delays == [6 * 3600.0] * 3
    assert status.next_attempt_at == clock.now + timedelta(hours=6)
    assert not status.connected and status.events_total == 0
    assert [(g.reason, g.end) for g in sink.gaps] == [("start", None)]


async def test_unreachable_venue_is_reported_not_raised() -> None:
    async with FakeVenue([]) as venue:
        url = venue.url
    client, _ = make_client(BybitLiquidations, url, sleep=Sleeps(block_from=1))
    client.start()
    status = await until(client, lambda s: s.next_attempt_at is not None)
    await client.stop()
    assert status.state == "reconnecting"
    assert status.reason is not None and status.reason.startswith("connection failed")
    assert "127.0.0.1" not in status.reason


def _cascade(venue_name: str, count: int, start: datetime) -> tuple[list[str], float]:
    """`count` liquidations over one minute, batched per half second like Bybit, and their
    exact USD total computed from the generated values."""
    rng = random.Random(11)
    step = 60_000 // count
    frames: list[str] = []
    usd: list[float] = []
    per_frame = max(1, count // 120)
    batch: list[dict[str, Any]] = []
    for i in range(count):
        at = ms(start) + i * step
        qty = f"{rng.randint(1, 250_000) / 1000:.3f}"
        price = f"{rng.randint(7_000_000, 9_000_000) / 100:.2f}"
        side = rng.choice(["Buy", "Sell"])
        if venue_name == "bybit":
            batch.append(bybit_item(at, side, qty, price))
            usd.append(float(qty) * float(price))
        elif venue_name == "okx":
            batch.append(okx_detail(at, "long" if side == "Buy" else "short", "sell", qty, price))
            usd.append(float(qty) * 0.01 * float(price))
        else:
            frames.append(binance_frame(at, side.upper(), qty, price))
            usd.append(float(qty) * float(price))
        if len(batch) == per_frame:
            frames.append(bybit_frame(batch) if venue_name == "bybit" else okx_frame(batch))
            batch = []
    if batch:
        frames.append(bybit_frame(batch) if venue_name == "bybit" else okx_frame(batch))
    return frames, math.fsum(usd)


@pytest.mark.parametrize("venue_name", ["bybit", "okx", "binance"])
async def test_five_thousand_liquidations_in_a_minute_sum_exactly(venue_name: str) -> None:
    start = datetime(2026, 10, 9, 12, 0, tzinfo=UTC)
    frames, expected = _cascade(venue_name, 5000, start)
    cls: type[LiquidationStream]
    if venue_name == "bybit":
        cls, script = BybitLiquidations, bybit_session(*frames)
    elif venue_name == "okx":
        cls, script = OkxLiquidations, okx_session(*frames)
    else:
        cls, script = BinanceLiquidations, binance_session(*frames)
    async with FakeVenue([script]) as venue:
        client, sink = make_client(cls, venue.url)
        client.start()
        status = await until(client, lambda s: s.events_total == 5000)
        await client.stop()
    events = sink.events
    assert len(events) == len({e.event_id for e in events}) == 5000
    assert math.fsum(e.usd for e in events) == expected
    assert all(start <= e.at < start + timedelta(minutes=1) for e in events)
    assert status.malformed == status.unknown == status.duplicates == 0
    assert len(sink.batches) == len(frames)  # one sink call per frame


def test_module_names() -> None:
    assert bybit_stream.URL.startswith("wss://")
    assert okx_stream.CONTRACT_VALUES == {"BTC": 0.01, "ETH": 0.1, "SOL": 1.0}
    assert binance_stream.SIDES == {"SELL": "long", "BUY": "short"}


async def test_a_failing_sink_does_not_stop_the_stream() -> None:
    class Failing(RecordingSink):
        async def on_events(self, events: list[Any]) -> None:
            await super().on_events(events)
            raise RuntimeError("store is down")

    frames = [
        fixture("okx_liquidation_orders_ws_live.json"),
        okx_frame([okx_detail(1791565600773, "short", "buy", "1", "80000")]),
    ]
    async with FakeVenue([okx_session(*frames)]) as venue:
        sink = Failing()
        client = OkxLiquidations(sink, url=venue.url, sleep=Sleeps(block_from=1))
        client.start()
        status = await until(client, lambda s: s.events_total == 2)
        await client.stop()
    assert len(sink.batches) == 2 and status.state == "ok" and status.attempts == 1


# --- coins added and dropped while streaming --------------------------------------------------


async def test_bybit_subscribes_a_coin_added_on_the_live_socket_and_unsubscribes_it() -> None:
    doge = bybit_frame(
        [bybit_item(ms(datetime(2026, 10, 9, 12, tzinfo=UTC)), "Buy", "1000", "0.1", "DOGEUSDT")],
        symbol="DOGEUSDT",
    )
    script = BybitRequests({"allLiquidation.DOGEUSDT": [doge]})
    async with FakeVenue([script]) as venue:
        client, sink = make_client(BybitLiquidations, venue.url, clock=FakeClock())
        client.start()
        first = await script.next_request()
        await until(client, lambda s: s.state == "ok")
        await client.set_coins(["BTC", "ETH", "SOL", "DOGE"])
        watch = await script.next_request()
        status = await until(client, lambda s: s.events_total == 1)
        await client.set_coins(["BTC", "ETH", "SOL"])
        drop = await script.next_request()
        await client.stop()
    assert first == {
        "req_id": "liquidations",
        "op": "subscribe",
        "args": ["allLiquidation.BTCUSDT", "allLiquidation.ETHUSDT", "allLiquidation.SOLUSDT"],
    }
    assert watch == {"req_id": "watch:DOGE", "op": "subscribe", "args": ["allLiquidation.DOGEUSDT"]}
    assert drop == {"req_id": "drop:DOGE", "op": "unsubscribe", "args": ["allLiquidation.DOGEUSDT"]}
    assert [(e.coin, e.side, e.usd) for e in sink.events] == [("DOGE", "long", 100.0)]
    assert status.coins == ("BTC", "ETH", "SOL", "DOGE") and status.skipped == ()
    assert client.status().coins == ("BTC", "ETH", "SOL")
    assert status.attempts == 1 and status.unknown == 0  # the acks ended nothing


async def test_bybit_refusing_an_added_coin_drops_it_and_keeps_the_session() -> None:
    script = BybitRequests(unlisted=["allLiquidation.NOPEUSDT"])
    async with FakeVenue([script]) as venue:
        client, _ = make_client(BybitLiquidations, venue.url, clock=FakeClock())
        client.start()
        await script.next_request()
        await until(client, lambda s: s.state == "ok")
        await client.set_coins(["BTC", "NOPE"])
        await script.next_request()  # the refused watch
        status = await until(client, lambda s: s.skipped != ())
        await client.stop()
    assert status.skipped == ("NOPE: not listed (subscription refused)",)
    assert status.coins == ("BTC",)  # ETH and SOL were dropped by the caller
    assert (status.state, status.attempts, status.reason) == ("ok", 1, None)
    assert [m["req_id"] for m in script.log] == [
        "liquidations",
        "drop:ETH",
        "drop:SOL",
        "watch:NOPE",
    ]


async def test_bybit_reconnects_with_added_coins_in_requests_of_their_own() -> None:
    client = BybitLiquidations(RecordingSink(), coins=["BTC"])
    await client.set_coins(["BTC", "DOGE", "PEPE"])  # not connected: nothing is sent
    assert [json.loads(m) for m in client.subscribe_messages()] == [
        {"req_id": "liquidations", "op": "subscribe", "args": ["allLiquidation.BTCUSDT"]},
        {"req_id": "watch:DOGE", "op": "subscribe", "args": ["allLiquidation.DOGEUSDT"]},
        {"req_id": "watch:PEPE", "op": "subscribe", "args": ["allLiquidation.PEPEUSDT"]},
    ]


async def test_okx_streams_an_added_coin_once_its_contract_value_is_known() -> None:
    at = ms(datetime(2026, 10, 9, 12, tzinfo=UTC))
    client = OkxLiquidations(RecordingSink(), coins=["BTC"])
    frame = okx_frame([okx_detail(at, "long", "sell", "3", "0.1")], inst_id="DOGE-USDT-SWAP")
    await client.set_coins(["BTC", "DOGE"])
    assert client.parse(frame).kind == "ignored"
    assert (client.status().coins, client.status().skipped) == (
        ("BTC",),
        ("DOGE: no contract value",),
    )
    client.add_contract_values({"DOGE": 1000.0})
    await client.set_coins(["BTC", "DOGE"])
    (event,) = client.parse(frame).events
    assert (event.coin, event.quantity, event.usd) == ("DOGE", 3000.0, 300.0)
    assert (client.status().coins, client.status().skipped) == (("BTC", "DOGE"), ())


async def test_binance_widens_its_filter_to_an_added_coin() -> None:
    at = ms(datetime(2026, 10, 9, 12, tzinfo=UTC))
    client = BinanceLiquidations(RecordingSink(), coins=["BTC"])
    frame = binance_frame(at, "SELL", "500", "0.2", symbol="DOGEUSDT")
    assert client.parse(frame).kind == "ignored"
    await client.set_coins(["BTC", "DOGE"])
    (event,) = client.parse(frame).events
    assert (event.coin, event.side, event.usd) == ("DOGE", "long", 100.0)
    with pytest.raises(ValueError, match="at least one coin"):
        await client.set_coins([])
