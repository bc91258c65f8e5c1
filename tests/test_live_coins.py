"""A coin asked about with /why is streamed too: the Bybit venue is asked for it on the live
socket and its frames are stored; OKX learns its contract value once through the sources layer
(or skips it and says so); beyond the limit the coin asked least recently is dropped."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot import feed_setup, status
from bot.actions import Actions, UnknownCoin
from bot.alerts import AlertSettings
from bot.config import Settings
from bot.live import LiquidationFeed
from bot.runner import okx_contract_value
from bot.store import Store
from explainers.service import Explainer
from explainers.settings import Thresholds
from explainers.streams import LiquidationEvent, LiquidationStream, OkxLiquidations
from tests.replay_helpers import Upstream
from tests.test_live import START, StreamRows, ms
from tests.ws_venue import (
    BybitRequests,
    Connection,
    FakeClock,
    FakeVenue,
    RecordingSink,
    Sleeps,
    bybit_frame,
    bybit_item,
    fixture,
    is_okx_ping,
    okx_detail,
    okx_frame,
)

WAIT = 5.0
DEMO = Path(__file__).parent.parent / "explainers" / "demo" / "aug-2024"


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None)


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


@pytest.fixture
async def client(upstream: Upstream, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with upstream.client(settings) as opened:
        yield opened


@pytest.fixture
def explainer(upstream: Upstream, client: httpx.AsyncClient, settings: Settings) -> Explainer:
    return upstream.explainer(client, settings)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "whydown.db") as opened:
        yield opened


def make_feed(venues: dict[Any, str | None], history: StreamRows, **kwargs: Any) -> LiquidationFeed:
    return LiquidationFeed(
        history,
        venues=venues,
        coins=["BTC", "ETH", "SOL"],
        thresholds=Thresholds(),
        clock=FakeClock(START),
        client_options={"sleep": Sleeps(block_from=1), "random": lambda: 0.0},
        **kwargs,
    )


def actions_for(explainer: Explainer, store: Store, feed: LiquidationFeed | Any) -> Actions:
    return Actions(
        explainer,
        store,
        thresholds=Thresholds(),
        alert_settings=AlertSettings(),
        on_coin_asked=feed.coin_asked if isinstance(feed, LiquidationFeed) else feed,
    )


async def until(client: LiquidationStream, events: int) -> None:
    await asyncio.wait_for(client.wait_for(lambda s: s.events_total >= events), WAIT)


async def test_why_for_a_new_coin_subscribes_it_on_bybit_and_stores_its_frames(
    explainer: Explainer, store: Store
) -> None:
    doge = bybit_item(ms(START), "Buy", "1000", "0.1", symbol="DOGEUSDT")
    script = BybitRequests({"allLiquidation.DOGEUSDT": [bybit_frame([doge], symbol="DOGEUSDT")]})
    history = StreamRows()
    async with FakeVenue([script]) as venue:
        feed = make_feed({"bybit": venue.url}, history)
        actions = actions_for(explainer, store, feed)
        feed.start()
        await script.next_request()  # the configured coins
        answer = await actions.why("dogecoin")  # resolved by the market data to DOGE
        await feed.watched()
        watch = await script.next_request()
        (bybit,) = feed.clients
        await until(bybit, 1)
        await feed.stop()
    assert answer.coin is not None and answer.coin.symbol == "DOGE"
    assert watch == {"req_id": "watch:DOGE", "op": "subscribe", "args": ["allLiquidation.DOGEUSDT"]}
    assert [(r.exchange, r.instrument, r.position_side, r.usd) for r in history.rows] == [
        ("Bybit", "DOGEUSDT", "long", 100.0)
    ]
    assert feed.extra_coins == ["DOGE"]
    assert feed.statuses()[0].coins == ("BTC", "ETH", "SOL", "DOGE")


async def test_only_a_coin_the_market_data_knows_is_streamed(
    explainer: Explainer, store: Store
) -> None:
    asked: list[str] = []
    actions = actions_for(explainer, store, asked.append)
    await actions.why()  # the market
    with pytest.raises(UnknownCoin):
        await actions.why("notacoin")
    await actions.why("SOL")
    await actions.why("xrp")
    assert asked == ["SOL", "XRP"]  # the feed ignores SOL: it is streamed already


async def test_a_failing_hook_never_costs_the_answer(
    explainer: Explainer, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(coin: str) -> None:
        raise RuntimeError("boom")

    actions = actions_for(explainer, store, broken)
    with caplog.at_level(logging.ERROR, logger="whydown.actions"):
        answer = await actions.why("doge")
    assert answer.coin is not None and answer.coin.symbol == "DOGE"
    assert [r.getMessage() for r in caplog.records] == ["the hook for a coin asked about failed"]


COINS = ["DOGE", "XRP", "ADA", "AVAX", "LINK", "DOT", "LTC", "BCH", "NEAR", "UNI"]


async def test_an_eleventh_coin_drops_the_one_asked_least_recently() -> None:
    script = BybitRequests()
    async with FakeVenue([script]) as venue:
        feed = make_feed({"bybit": venue.url}, StreamRows())
        feed.start()
        await script.next_request()
        for coin in COINS:
            assert await feed.watch_coin(coin)
        assert not await feed.watch_coin("XRP")  # asked again: now the most recent
        assert not await feed.watch_coin("btc")  # configured: always streamed
        assert not await feed.watch_coin("DOGE USDT")  # not a symbol
        assert await feed.watch_coin("pepe")  # the eleventh
        for _ in range(len(COINS) + 2):
            last = await script.next_request()
        await feed.stop()
    assert feed.extra_coins == [*COINS[2:], "XRP", "PEPE"]
    assert [m["req_id"] for m in script.log] == [
        "liquidations",
        *(f"watch:{coin}" for coin in COINS),
        "drop:DOGE",
        "watch:PEPE",
    ]
    assert last == {"req_id": "watch:PEPE", "op": "subscribe", "args": ["allLiquidation.PEPEUSDT"]}
    assert feed.clients[0].coins == ("BTC", "ETH", "SOL", *COINS[2:], "XRP", "PEPE")


async def test_no_coin_is_added_when_the_limit_is_zero() -> None:
    feed = make_feed({"bybit": None}, StreamRows(), extra_coins_max=0)
    assert not await feed.watch_coin("DOGE")
    assert feed.extra_coins == [] and feed.clients[0].coins == ("BTC", "ETH", "SOL")


def instruments(request: httpx.Request) -> httpx.Response | None:
    """OKX lists DOGE-USDT-SWAP (1,000 DOGE a contract) and no PEPE swap here."""
    if request.url.path != "/api/v5/public/instruments":
        return None
    inst_id = request.url.params["instId"]
    if inst_id != "DOGE-USDT-SWAP":
        return httpx.Response(200, json={"code": "51001", "msg": "Instrument ID does not exist"})
    body = json.loads((DEMO / "okx_instruments_sol_usdt_swap.json").read_text())
    body["data"][0].update(instId=inst_id, ctVal="1000", ctValCcy="DOGE", instFamily="DOGE-USDT")
    return httpx.Response(200, json=body)


async def test_okx_reads_a_new_coins_contract_value_once_or_skips_the_coin_and_says_so(
    upstream: Upstream, client: httpx.AsyncClient, settings: Settings
) -> None:
    upstream.overrides.append(instruments)
    added = asyncio.Event()
    frames = [
        okx_frame([okx_detail(ms(START), "long", "sell", "3", "0.1")], inst_id="DOGE-USDT-SWAP"),
        okx_frame(
            [okx_detail(ms(START), "long", "sell", "3", "0.00001")], inst_id="PEPE-USDT-SWAP"
        ),
    ]

    async def okx(conn: Connection) -> None:
        await conn.recv()
        await conn.send(fixture("okx_ws_subscribe_ack.json"))
        await added.wait()
        await conn.send(*frames)
        await conn.answer_pings(is_okx_ping, "pong")

    history = StreamRows()
    async with FakeVenue([okx]) as venue:
        feed = make_feed({"okx": venue.url}, history)
        feed.contract_value = okx_contract_value(client, settings)
        feed.start()
        assert await feed.watch_coin("DOGE")
        assert await feed.watch_coin("PEPE")
        assert not await feed.watch_coin("DOGE")
        added.set()
        (stream,) = feed.clients
        await until(stream, 1)
        await feed.flush()
        status = stream.status()
        await feed.stop()
    assert [(r.exchange, r.instrument, r.size, r.usd) for r in history.rows] == [
        ("OKX", "DOGE-USDT-SWAP", 3000.0, 300.0)
    ]
    assert status.coins == ("BTC", "ETH", "SOL", "DOGE")
    assert status.skipped == ("PEPE: no contract value",)
    assert feed.extra_coins == ["PEPE", "DOGE"]
    # DOGE's contract value was read once, not again when asked again; PEPE's was refused
    assert upstream.calls["www.okx.com/api/v5/public/instruments"] == 2


def test_the_runners_feed_takes_the_limit_from_the_settings(store: Store) -> None:
    settings = Settings(_env_file=None, streams={"extra_coins_max": 3})
    feed = feed_setup.feed_for(settings, store, demo=False, clock=FakeClock(START))
    assert feed is not None and feed.extra_coins_max == 3
    assert Settings(_env_file=None).streams.extra_coins_max == 10


async def test_status_names_a_coin_a_venue_does_not_stream(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, database=tmp_path / "whydown.db")
    okx = OkxLiquidations(RecordingSink(), coins=["BTC"])
    await okx.set_coins(["BTC", "PEPE"])
    with Store(settings.database) as store:
        store.set_meta("streams", json.dumps([status.stream_status_json(okx.status())]))
    lines = status.status_report(settings).splitlines()
    at = lines.index("Liquidation streams at the last refresh:")
    assert lines[at + 1 : at + 3] == [
        "  okx        connecting, sampled, 0 events, last none yet",
        "             not streamed: PEPE: no contract value",
    ]


async def test_a_coin_asked_about_is_stored_aside_from_the_market_totals_and_the_trigger(
    explainer: Explainer, store: Store
) -> None:
    doge = bybit_item(ms(START), "Buy", "300000000", "0.1", symbol="DOGEUSDT")  # $30M of longs
    script = BybitRequests({"allLiquidation.DOGEUSDT": [bybit_frame([doge], symbol="DOGEUSDT")]})
    evaluations: list[tuple[float, float]] = []
    hour_ago, now = START - timedelta(hours=1), START + timedelta(seconds=30)

    async def evaluate() -> None:
        evaluations.append(store.liquidation_totals(hour_ago, now))

    async with FakeVenue([script]) as venue:
        feed = LiquidationFeed(
            store,
            venues={"bybit": venue.url},
            coins=["BTC", "ETH", "SOL"],
            thresholds=Thresholds(),  # $25M of longs in an hour crosses
            on_crossing=evaluate,
            clock=FakeClock(START),
            client_options={"sleep": Sleeps(block_from=1), "random": lambda: 0.0},
        )
        actions = actions_for(explainer, store, feed)
        feed.start()
        await script.next_request()  # the configured coins
        await actions.why("dogecoin")
        await feed.watched()
        (bybit,) = feed.clients
        await until(bybit, 1)
        await feed.flush()
        await feed.reaction_done()
        after_doge = store.liquidation_totals(hour_ago, now)
        doge_own = store.history.instrument_totals(["DOGEUSDT"], hour_ago, now)
        hours_after_doge = store.liquidation_hours(hour_ago)
        reactions_after_doge = feed.reactions
        crossed_after_doge = feed.tally.crossed(START, Thresholds())

        # the same $30M of longs on BTC, a configured coin, through the same sink
        btc = LiquidationEvent(
            venue="bybit",
            coin="BTC",
            side="long",
            usd=30e6,
            price=50_000.0,
            quantity=600.0,
            at=START + timedelta(seconds=1),
            event_id="bybit:BTCUSDT:btc",
        )
        await feed.on_events([btc])
        await feed.flush()
        await feed.reaction_done()
        await feed.stop()

    assert feed.extra_coins == ["DOGE"]
    assert after_doge == (0.0, 0.0)  # the market's 1h total does not see DOGE
    assert hours_after_doge == []  # nor does the chart's hourly sums
    assert reactions_after_doge == 0 and not crossed_after_doge  # nor the trigger
    assert doge_own == (30e6, 0.0)  # DOGE's own liquidations stay readable
    assert store.liquidation_totals(hour_ago, now) == (30e6, 0.0)
    assert feed.reactions == 1 and evaluations == [(30e6, 0.0)]
    assert [h.instruments for h in store.liquidation_hours(hour_ago)] == [["BTCUSDT"]]
    assert store.history.instrument_totals(["DOGEUSDT", "BTCUSDT"], hour_ago, now) == (60e6, 0.0)


def test_the_market_coins_are_the_streamed_ones_and_the_okx_rest_families(store: Store) -> None:
    settings = Settings(
        _env_file=None,
        streams={"coins": ["BTC", "ETH"]},
        sources={"liquidation_families": ["BTC-USDT", "XRP-USDT"]},
    )
    assert feed_setup.market_coins(settings) == ["BTC", "ETH", "XRP"]
    feed = feed_setup.feed_for(settings, store, demo=False, clock=FakeClock(START))
    assert feed is not None and feed.market_coins == {"BTC", "ETH", "XRP"}


async def test_a_coins_venues_say_since_when_they_stream_it() -> None:
    script = BybitRequests({"allLiquidation.DOGEUSDT": []})
    clock = FakeClock(START)
    async with FakeVenue([script]) as venue:
        feed = LiquidationFeed(
            StreamRows(),
            venues={"bybit": venue.url},
            coins=["BTC", "ETH", "SOL"],
            thresholds=Thresholds(),
            clock=clock,
            client_options={"sleep": Sleeps(block_from=1), "random": lambda: 0.0},
        )
        assert feed.coin_venues("doge") == []  # not streamed yet: asking would add it
        assert feed.coin_venues("not a coin") is None  # no perpetual these streams could carry
        feed.start()
        await script.next_request()  # the configured coins
        (bybit,) = feed.clients
        await asyncio.wait_for(bybit.wait_for(lambda s: s.state == "ok"), WAIT)
        connected = clock()
        clock.advance(300)
        await feed.watch_coin("DOGE")
        await script.next_request()
        doge = feed.coin_venues("DOGE")
        btc = feed.coin_venues("BTC")
        await feed.stop()
    assert doge is not None and btc is not None
    # a coin added later counts from its addition, a configured one from the connection
    assert [(v.exchange, v.mode, v.tracked_since) for v in doge] == [
        ("Bybit", "all", connected + timedelta(seconds=300))
    ]
    assert [(v.exchange, v.tracked_since) for v in btc] == [("Bybit", connected)]
