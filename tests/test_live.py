"""The liquidation feed of `whydown run`: streamed frames become stored rows and gaps, REST polls
add only what the streams did not deliver, and a crossing of the liquidation threshold asks for
one alert evaluation at once (debounced, never two at once)."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.live import BackfillHistory, LiquidationFeed, Tally
from explainers.history import MemoryHistory
from explainers.models import Liquidation
from explainers.settings import Thresholds
from explainers.streams import LiquidationEvent, StreamGap
from tests.ws_venue import (
    Connection,
    FakeClock,
    FakeVenue,
    Sleeps,
    bybit_frame,
    bybit_item,
    fixture,
    is_bybit_ping,
    is_okx_ping,
    okx_detail,
    okx_frame,
)

START = datetime(2026, 10, 9, 12, 0, tzinfo=UTC)
WAIT = 10


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


class StreamRows:
    """The stream half of a history: what the feed wrote, and from which thread."""

    def __init__(self) -> None:
        self.rows: list[Liquidation] = []
        self.aside: list[Liquidation] = []  # coins streamed on request only
        self.gaps: dict[tuple[str, datetime], datetime | None] = {}
        self.gap_calls: list[tuple[str, datetime, datetime | None]] = []
        self.threads: set[int] = set()

    def add_streamed_liquidations(
        self, events: Sequence[Liquidation], *, market: bool = True
    ) -> int:
        self.threads.add(threading.get_ident())
        self.rows.extend(events)
        if not market:
            self.aside.extend(events)
        return len(events)

    def record_liquidation_gap(self, exchange: str, start: datetime, end: datetime | None) -> None:
        self.threads.add(threading.get_ident())
        self.gaps[(exchange, start)] = end
        self.gap_calls.append((exchange, start, end))

    def longs(self) -> float:
        return math.fsum(r.usd for r in self.rows if r.position_side == "long")


def bybit_session(*frames: str) -> Any:
    async def script(conn: Connection) -> None:
        await conn.recv()  # the subscribe
        await conn.send(fixture("bybit_ws_subscribe_ack_linear.json"), *frames)
        await conn.answer_pings(is_bybit_ping, fixture("bybit_ws_pong_linear.json"))

    return script


def okx_session(*frames: str) -> Any:
    async def script(conn: Connection) -> None:
        await conn.recv()
        await conn.send(fixture("okx_ws_subscribe_ack.json"), *frames)
        await conn.answer_pings(is_okx_ping, "pong")

    return script


def feed_at(
    history: StreamRows, venues: dict[Any, str | None], clock: FakeClock, **kwargs: Any
) -> LiquidationFeed:
    return LiquidationFeed(
        history,
        venues=venues,
        coins=["BTC", "ETH", "SOL"],
        thresholds=Thresholds(),
        clock=clock,
        client_options={"sleep": Sleeps(block_from=1), "random": lambda: 0.0},
        **kwargs,
    )


async def until_events(feed: LiquidationFeed, count: int) -> None:
    (client,) = feed.clients
    await asyncio.wait_for(client.wait_for(lambda s: s.events_total >= count), WAIT)
    await feed.flush()


def event(
    at: datetime, usd: float, side: str = "long", venue: Any = "bybit", price: float = 50_000.0
) -> LiquidationEvent:
    return LiquidationEvent(
        venue=venue,
        coin="BTC",
        side=side,  # type: ignore[arg-type]
        usd=usd,
        price=price,
        quantity=usd / price,
        at=at,
        event_id=f"{venue}:{at.isoformat()}:{side}:{usd}",
    )


# --- frames in, rows and gaps out -----------------------------------------------------------


async def test_streamed_frames_become_rows_written_off_the_loop_and_gaps_are_recorded() -> None:
    clock = FakeClock(START)
    history = StreamRows()
    items = [
        bybit_item(ms(START) + 100, "Buy", "2.5", "60000"),  # a long: 150,000
        bybit_item(ms(START) + 200, "Sell", "0.5", "60100"),  # a short: 30,050
    ]
    eth = [bybit_item(ms(START) + 300, "Buy", "10", "2500.5", symbol="ETHUSDT")]  # 25,005
    async with FakeVenue(
        [bybit_session(bybit_frame(items), bybit_frame(eth, symbol="ETHUSDT"))]
    ) as venue:
        feed = feed_at(history, {"bybit": venue.url}, clock)
        feed.start()
        await until_events(feed, 3)
        clock.advance(60)
        await feed.stop()

    assert [(r.exchange, r.instrument, r.position_side, r.usd, r.ts) for r in history.rows] == [
        ("Bybit", "BTCUSDT", "long", 150_000.0, START + timedelta(milliseconds=100)),
        ("Bybit", "BTCUSDT", "short", 30_050.0, START + timedelta(milliseconds=200)),
        ("Bybit", "ETHUSDT", "long", 25_005.0, START + timedelta(milliseconds=300)),
    ]
    assert (history.rows[0].price, history.rows[0].size) == (60_000.0, 2.5)
    assert history.longs() == 175_005.0
    # the start gap was recorded open, then closed at the subscription; stop opened another
    assert history.gap_calls == [
        ("Bybit", START, None),
        ("Bybit", START, START),
        ("Bybit", START + timedelta(seconds=60), None),
    ]
    assert threading.get_ident() not in history.threads  # written in a worker thread
    (status,) = feed.statuses()
    assert (status.venue, status.state, status.events_total) == ("bybit", "stopped", 3)


async def test_a_slow_history_holds_the_stream_back_instead_of_growing_the_buffer() -> None:
    release = threading.Event()

    class SlowRows(StreamRows):
        def add_streamed_liquidations(self, events: Sequence[Liquidation]) -> int:
            release.wait(WAIT)
            return super().add_streamed_liquidations(events)

    history = SlowRows()
    feed = feed_at(history, {}, FakeClock(START), max_buffered=3, batch_size=2)
    for i in range(3):
        await feed.on_events([event(START + timedelta(seconds=i), 1000.0)])
    blocked = asyncio.create_task(feed.on_events([event(START + timedelta(seconds=9), 1000.0)]))
    await asyncio.sleep(0)
    assert not blocked.done()  # the buffer is full: the client waits
    release.set()
    await asyncio.wait_for(blocked, WAIT)
    await feed.flush()
    assert len(history.rows) == 4 and history.longs() == 4000.0


async def test_a_run_closes_the_gap_an_earlier_run_left_open() -> None:
    class Memory:
        def __init__(self) -> None:
            self.open: dict[str, datetime | None] = {"Bybit": START - timedelta(hours=2)}

        def open_gap(self, exchange: str) -> datetime | None:
            return self.open.get(exchange)

        def set_open_gap(self, exchange: str, start: datetime | None) -> None:
            self.open[exchange] = start

    memory = Memory()
    history = StreamRows()
    feed = feed_at(history, {}, FakeClock(START), gap_memory=memory)
    await feed.on_gap(StreamGap("bybit", 1, START, None, "start"))
    await feed.on_gap(StreamGap("bybit", 1, START, START + timedelta(seconds=1), "start"))
    await feed.flush()
    # the earlier run's stop gap (2h ago) is the one closed: the time between runs is a gap
    assert history.gaps == {("Bybit", START - timedelta(hours=2)): START + timedelta(seconds=1)}
    assert memory.open == {"Bybit": None}


# --- REST backfill --------------------------------------------------------------------------


def polled(at: datetime, usd: float, price: float = 50_000.0) -> Liquidation:
    """An OKX REST row as the source builds it (size in contracts)."""
    return Liquidation(
        exchange="OKX",
        instrument="BTC-USDT-SWAP",
        position_side="long",
        price=price,
        size=usd / price / 0.01,
        usd=usd,
        ts=at,
    )


async def test_okx_polls_add_only_what_the_live_stream_did_not_cover() -> None:
    clock = FakeClock(START)
    rows = StreamRows()
    streamed_at = START + timedelta(seconds=20)
    async with FakeVenue(
        [okx_session(okx_frame([okx_detail(ms(streamed_at), "long", "sell", "200", "50000")]))]
    ) as venue:
        feed = feed_at(rows, {"okx": venue.url}, clock)
        feed.start()
        await until_events(feed, 1)  # 200 contracts x 0.01 x 50,000 = 100,000 streamed
        history = BackfillHistory(MemoryHistory(), feed)
        new = history.add_liquidations(
            [
                polled(START - timedelta(minutes=5), 70_000.0),  # before the stream: backfill
                polled(streamed_at, 100_000.0),  # the streamed order, listed again
                polled(START + timedelta(seconds=40), 5_000.0),  # while subscribed: the stream's
            ],
            polled_at=START + timedelta(minutes=1),
            covered_since=START - timedelta(minutes=5),
        )
        clock.advance(120)
        await feed.stop()
        # after the stop the stream covers nothing: a poll fills the hole
        late = history.add_liquidations(
            [polled(START + timedelta(minutes=3), 9_000.0)],
            polled_at=START + timedelta(minutes=4),
            covered_since=START + timedelta(minutes=3),
        )
    assert (new, late) == (1, 1)
    polled_longs, _ = history.liquidation_totals(
        START - timedelta(hours=1), START + timedelta(hours=1)
    )
    assert polled_longs == 79_000.0
    assert [(r.exchange, r.instrument, r.usd) for r in rows.rows] == [
        ("OKX", "BTC-USDT-SWAP", 100_000.0)
    ]
    # polled and streamed together count each order once
    assert polled_longs + rows.longs() == 179_000.0


async def test_polls_fill_a_disconnect_and_not_the_time_around_it() -> None:
    feed = feed_at(StreamRows(), {}, FakeClock(START))
    await feed.on_gap(StreamGap("okx", 1, START, None, "start"))
    await feed.on_gap(StreamGap("okx", 1, START, START, "start"))
    down, back = START + timedelta(minutes=10), START + timedelta(minutes=12)
    await feed.on_gap(StreamGap("okx", 2, down, None, "disconnected"))
    await feed.on_gap(StreamGap("okx", 2, down, back, "disconnected"))
    inside = [START + timedelta(minutes=m) for m in (1, 9, 13)]
    hole = [START + timedelta(minutes=10, seconds=1), START + timedelta(minutes=11)]
    assert [feed.covers(polled(at, 1.0)) for at in inside] == [True, True, True]
    assert [feed.covers(polled(at, 1.0)) for at in hole] == [False, False]
    assert not feed.covers(polled(START - timedelta(seconds=1), 1.0))
    coverage = feed.coverage(timedelta(hours=1))
    assert coverage.venues == []  # no client for OKX in this feed
    await feed.flush()


# --- react at once --------------------------------------------------------------------------


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_two_crossings_inside_the_debounce_make_one_evaluation() -> None:
    history = StreamRows()
    seen: list[float] = []

    async def evaluate() -> None:
        seen.append(history.longs())  # what the evaluation reads is already written

    monotonic = Monotonic()
    feed = feed_at(
        history,
        {},
        FakeClock(START + timedelta(minutes=5)),
        on_crossing=evaluate,
        debounce_s=300,
        monotonic=monotonic,
    )
    await feed.on_events([event(START, 20e6)])
    await feed.flush()
    assert seen == []  # below $25M
    await feed.on_events([event(START + timedelta(seconds=1), 6e6)])  # $26M of longs: crossed
    await feed.flush()
    await feed.reaction_done()
    assert seen == [26e6]
    await feed.on_events([event(START + timedelta(seconds=2), 20e6, "short")])  # 57% longs
    await feed.on_events([event(START + timedelta(seconds=3), 30e6)])  # 76% longs: crossed again
    await feed.flush()
    await feed.reaction_done()
    assert seen == [26e6] and (feed.reactions, feed.skipped_reactions) == (1, 1)

    monotonic.now += 301  # past the debounce, a new crossing evaluates again
    await feed.on_events([event(START + timedelta(seconds=4), 60e6, "short")])
    await feed.on_events([event(START + timedelta(seconds=5), 200e6)])
    await feed.flush()
    await feed.reaction_done()
    assert seen == [26e6, 26e6 + 30e6 + 200e6]
    assert feed.reactions == 2


async def test_no_second_evaluation_while_one_runs() -> None:
    history = StreamRows()
    running = asyncio.Event()
    release = asyncio.Event()
    calls = 0

    async def evaluate() -> None:
        nonlocal calls
        calls += 1
        running.set()
        await release.wait()

    feed = feed_at(history, {}, FakeClock(START), on_crossing=evaluate, debounce_s=0)
    await feed.on_events([event(START, 30e6)])
    await feed.flush()
    await asyncio.wait_for(running.wait(), WAIT)
    await feed.on_events([event(START, 30e6, "short")])  # 50%: not crossed
    await feed.on_events([event(START, 100e6)])  # crossed again while the first still runs
    await feed.flush()
    release.set()
    await feed.reaction_done()
    assert calls == 1 and feed.skipped_reactions == 1


async def test_a_24h_crossing_counts_and_the_1h_window_forgets_older_minutes() -> None:
    t = Thresholds()
    tally = Tally()
    now = START + timedelta(hours=3)
    tally.add(START, "long", 80e6)  # 3h ago
    tally.add(now - timedelta(minutes=10), "long", 21e6)
    tally.add(now - timedelta(minutes=5), "short", 5e6)
    assert tally.totals(now, 1) == (21e6, 5e6)
    assert tally.totals(now, 24) == (101e6, 5e6)
    assert tally.crossed(now, t)  # $101M of longs in 24h, 95% of the total
    assert not tally.crossed(now + timedelta(hours=21, minutes=1), t)  # the $80M minute expired
    assert tally.totals(now + timedelta(hours=21, minutes=1), 24) == (21e6, 5e6)


@pytest.mark.parametrize(("shorts", "crossed"), [(30e6, True), (30.1e6, False)])
def test_longs_must_be_at_least_their_share_of_the_total(shorts: float, crossed: bool) -> None:
    tally = Tally()
    tally.add(START, "long", 70e6)
    tally.add(START, "short", shorts)
    assert tally.crossed(START, Thresholds()) is crossed  # 70% longs exactly crosses


def test_the_feed_says_how_completely_each_venue_is_streamed() -> None:
    from explainers.lookback import STREAM_MODES

    feed = feed_at(
        StreamRows(),
        {"bybit": "ws://127.0.0.1:1", "okx": "ws://127.0.0.1:1", "binance": "ws://127.0.0.1:1"},
        FakeClock(START),
    )
    assert feed.modes() == {"Bybit": "all", "OKX": "sampled", "Binance": "sampled"}
    # what an answer says of a venue an earlier run streamed agrees with the clients
    assert feed.modes() == STREAM_MODES
