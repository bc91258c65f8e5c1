"""Market-data sources (CoinGecko, OKX, Coinbase, Kraken, Binance, Bybit) against recorded bodies."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from explainers.errors import BadResponse, RateLimited, SourceBlocked, SourceError
from explainers.replay import Scenario
from explainers.settings import SourceSettings
from explainers.sources import binance, bybit, coinbase, coingecko, kraken, okx
from explainers.sources.http import USER_AGENT

FIXTURES = Path(__file__).parent / "fixtures" / "api"
CFG = SourceSettings()

Reply = httpx.Response | Callable[[httpx.Request], httpx.Response]


def sample(name: str, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    """A recorded upstream body from tests/fixtures/api, served as it came."""
    return httpx.Response(status, headers=headers, content=(FIXTURES / name).read_bytes())


def inline(body: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body)


class Upstream:
    """A MockTransport answering by URL path, recording every request."""

    def __init__(self, routes: dict[str, Reply]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.routes.get(request.url.path)
        if reply is None:
            return httpx.Response(404, text="not recorded")
        return reply(request) if callable(reply) else reply

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


def instruments(*pairs: tuple[str, str]) -> dict[str, Any]:
    """An /api/v5/public/instruments body (documented format) with the given contract values."""
    return {
        "code": "0",
        "msg": "",
        "data": [
            {"instType": "SWAP", "instId": inst_id, "ctVal": ct_val, "ctType": "linear"}
            for inst_id, ct_val in pairs
        ],
    }


# --- CoinGecko --------------------------------------------------------------------------------


async def test_markets_live_body_gives_prices_changes_and_newest_update_time() -> None:
    upstream = Upstream({"/api/v3/coins/markets": sample("coingecko_coins_markets_live.json")})
    async with upstream.client() as client:
        markets = await coingecko.fetch_markets(client, CFG)

    assert markets.source == "CoinGecko"
    assert [c.id for c in markets.coins] == ["bitcoin", "ethereum", "solana"]
    btc = markets.coins[0]
    assert btc.price == 76105
    assert btc.rank == 1
    assert btc.change_24h == pytest.approx(0.3321, abs=1e-4)
    assert btc.change_1h is None  # this recording did not ask for 1h: unknown, not 0
    assert markets.as_of == datetime(2026, 4, 30, 17, 25, 1, 44000, tzinfo=UTC)

    request = upstream.requests[0]
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.url.params["vs_currency"] == "usd"
    assert request.url.params["per_page"] == "100"
    assert request.url.params["price_change_percentage"] == "1h,24h,7d"
    assert "x-cg-demo-api-key" not in request.headers


async def test_markets_sends_the_key_header_only_when_a_key_is_set() -> None:
    upstream = Upstream(
        {"/api/v3/coins/markets": sample("coingecko_coins_markets_price_change_1h_24h.json")}
    )
    cfg = SourceSettings(coingecko_api_key=SecretStr("CG-test"))
    async with upstream.client() as client:
        markets = await coingecko.fetch_markets(client, cfg)

    assert upstream.requests[0].headers["x-cg-demo-api-key"] == "CG-test"
    eth = markets.coins[0]
    assert eth.change_1h == pytest.approx(-0.1456, abs=1e-4)
    assert eth.change_24h == pytest.approx(-9.0047, abs=1e-4)
    assert eth.change_7d is None


def moved_elsewhere(final: httpx.Response) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    """Every host but elsewhere.example answers 302 to it; the client follows redirects, as the
    bot's client does."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "elsewhere.example":
            return final
        return httpx.Response(302, headers={"Location": "https://elsewhere.example/moved"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle), follow_redirects=True)
    return client, seen


@pytest.mark.parametrize("fetch", ["markets", "global", "market_chart"])
async def test_coingecko_with_a_key_does_not_follow_a_redirect(fetch: str) -> None:
    cfg = SourceSettings(coingecko_api_key=SecretStr("CG-test"))
    client, seen = moved_elsewhere(httpx.Response(200, json={}))
    calls = {
        "markets": lambda: coingecko.fetch_markets(client, cfg),
        "global": lambda: coingecko.fetch_global(client, cfg),
        "market_chart": lambda: coingecko.fetch_market_chart(client, cfg, "bitcoin"),
    }
    async with client:
        with pytest.raises(BadResponse) as raised:
            await calls[fetch]()
    assert raised.value.detail == "redirected (HTTP 302)"
    assert "elsewhere" not in str(raised.value)
    assert [r.url.host for r in seen] == ["api.coingecko.com"]  # the key went nowhere else


async def test_coingecko_without_a_key_follows_redirects_as_the_client_does() -> None:
    client, seen = moved_elsewhere(sample("coingecko_coins_markets_price_change_1h_24h.json"))
    async with client:
        markets = await coingecko.fetch_markets(client, CFG)
    assert markets.coins
    assert [r.url.host for r in seen] == ["api.coingecko.com", "elsewhere.example"]


def test_markets_doc_example_falls_back_to_the_plain_24h_field() -> None:
    body = json.loads((FIXTURES / "coingecko_coins_markets.json").read_text())
    btc = coingecko.parse_markets(body).coins[0]
    assert btc.change_24h == pytest.approx(3.12502)
    assert btc.market_cap == 1381651251183


def test_markets_nulls_are_unknown_not_zero() -> None:
    body = [
        {
            "id": "bitcoin",
            "symbol": "btc",
            "name": "Bitcoin",
            "current_price": None,
            "market_cap_rank": None,
            "price_change_percentage_24h": None,
            "last_updated": "2024-08-05T07:59:41.522Z",
        }
    ]
    coin = coingecko.parse_markets(body).coins[0]
    assert coin.price is None
    assert coin.rank is None
    assert coin.change_24h is None


def test_markets_update_time_without_offset_is_utc() -> None:
    coin = {"symbol": "x", "name": "X", "current_price": 1.0}
    body = [
        coin | {"id": "naive", "last_updated": "2024-08-05T07:59:41.522"},
        coin | {"id": "zulu", "last_updated": "2024-08-05T07:58:00Z"},
    ]
    markets = coingecko.parse_markets(body)
    assert markets.coins[0].last_updated == datetime(2024, 8, 5, 7, 59, 41, 522000, tzinfo=UTC)
    assert markets.as_of == markets.coins[0].last_updated


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"data": []},
        [{"symbol": "btc", "name": "Bitcoin", "last_updated": "2024-08-05T07:59:41Z"}],
        [{"id": "bitcoin", "symbol": "btc", "name": "Bitcoin", "last_updated": None}],
    ],
    ids=["empty", "not-a-list", "id-missing", "no-update-time"],
)
def test_markets_unusable_bodies_are_bad_responses(body: Any) -> None:
    with pytest.raises(BadResponse):
        coingecko.parse_markets(body)


@pytest.mark.parametrize("name", ["coingecko_global.json", "coingecko_global_live.json"])
def test_global_doc_and_live_bodies(name: str) -> None:
    body = json.loads((FIXTURES / name).read_text())
    result = coingecko.parse_global(body)
    data = body["data"]
    assert result.total_market_cap_usd == pytest.approx(data["total_market_cap"]["usd"])
    assert result.market_cap_change_24h_pct == pytest.approx(
        data["market_cap_change_percentage_24h_usd"]
    )
    assert result.btc_dominance == pytest.approx(data["market_cap_percentage"]["btc"])
    assert result.as_of == datetime.fromtimestamp(data["updated_at"], UTC)


def test_global_nulls_and_missing_data() -> None:
    partial = {"data": {"total_market_cap": {"usd": None}, "updated_at": 1722844780}}
    with pytest.raises(BadResponse):
        coingecko.parse_global(partial)
    with pytest.raises(BadResponse):
        coingecko.parse_global({"data": {"market_cap_change_percentage_24h_usd": -2.0}})
    some = {"data": {"market_cap_change_percentage_24h_usd": -2.0, "updated_at": 1722844780}}
    result = coingecko.parse_global(some)
    assert result.total_market_cap_usd is None
    assert result.market_cap_change_24h_pct == -2.0


async def test_coingecko_429_body_is_rate_limited_with_retry_after() -> None:
    upstream = Upstream(
        {
            "/api/v3/global": sample(
                "coingecko_error_429.json", status=429, headers={"Retry-After": "30"}
            )
        }
    )
    async with upstream.client() as client:
        with pytest.raises(RateLimited) as caught:
            await coingecko.fetch_global(client, CFG)
    assert caught.value.retry_after == 30
    assert "coingecko.com" not in str(caught.value)


def test_coingecko_429_body_sent_with_200_is_still_rate_limited() -> None:
    body = json.loads((FIXTURES / "coingecko_error_429.json").read_text())
    with pytest.raises(RateLimited):
        coingecko.parse_markets(body)


async def test_html_page_instead_of_json_is_a_bad_response() -> None:
    page = httpx.Response(200, text="<!DOCTYPE html><html><body>Just a moment...</body></html>")
    upstream = Upstream({"/api/v3/coins/markets": page})
    async with upstream.client() as client:
        with pytest.raises(BadResponse, match="HTML"):
            await coingecko.fetch_markets(client, CFG)


# --- OKX ------------------------------------------------------------------------------------


async def test_okx_liquidations_convert_contracts_to_usd() -> None:
    upstream = Upstream(
        {
            "/api/v5/public/liquidation-orders": sample("okx_liquidation_orders.json"),
            "/api/v5/public/instruments": inline(instruments(("BTC-USDT-SWAP", "0.01"))),
        }
    )
    async with upstream.client() as client:
        result = await okx.fetch_liquidations(client, CFG, "BTC-USDT")

    assert result.source == "OKX"
    short, long = result.events  # oldest first
    assert long.position_side == "long"
    assert long.size == 3.62  # contracts
    assert long.size * 0.01 == pytest.approx(0.0362)  # BTC
    assert long.usd == pytest.approx(2315.19634)  # 0.0362 BTC x 63955.7, about $2,315
    assert short.position_side == "short"
    assert short.usd == pytest.approx(5.3 * 0.01 * 64168.9)
    assert long.ts == datetime.fromtimestamp(1786408771.714, UTC)
    assert result.as_of == long.ts

    liq = upstream.requests[0]
    assert liq.url.params["instType"] == "SWAP"
    assert liq.url.params["instFamily"] == "BTC-USDT"
    assert liq.url.params["state"] == "filled"
    assert upstream.requests[1].url.params["instId"] == "BTC-USDT-SWAP"


async def test_okx_contract_values_are_read_once_per_process() -> None:
    upstream = Upstream(
        {
            "/api/v5/public/liquidation-orders": sample("okx_liquidation_orders.json"),
            "/api/v5/public/instruments": inline(instruments(("BTC-USDT-SWAP", "0.01"))),
        }
    )
    async with upstream.client() as client:
        await okx.fetch_liquidations(client, CFG, "BTC-USDT")
        await okx.fetch_liquidations(client, CFG, "BTC-USDT")
    assert upstream.paths().count("/api/v5/public/instruments") == 1
    assert upstream.paths().count("/api/v5/public/liquidation-orders") == 2


async def test_okx_failed_contract_value_lookup_fails_the_read_and_is_not_cached() -> None:
    upstream = Upstream(
        {
            "/api/v5/public/liquidation-orders": sample("okx_liquidation_orders.json"),
            "/api/v5/public/instruments": httpx.Response(503),
        }
    )
    async with upstream.client() as client:
        with pytest.raises(SourceError):
            await okx.fetch_liquidations(client, CFG, "BTC-USDT")
    assert okx.CONTRACT_VALUES == {}


def test_okx_liquidation_side_is_inferred_when_pos_side_is_empty() -> None:
    body = {
        "code": "0",
        "msg": "",
        "data": [
            {
                "instId": "ETH-USDT-SWAP",
                "details": [
                    {
                        "bkPx": "2300",
                        "sz": "10",
                        "side": "sell",
                        "posSide": "",
                        "ts": "1722844000000",
                    },
                    {
                        "bkPx": "2310",
                        "sz": "4",
                        "side": "buy",
                        "posSide": "",
                        "ts": "1722844100000",
                    },
                ],
            }
        ],
    }
    events = okx.parse_liquidations(body, {"ETH-USDT-SWAP": 0.1}).events
    assert [e.position_side for e in events] == ["long", "short"]
    assert events[0].usd == pytest.approx(10 * 0.1 * 2300)


def test_okx_liquidation_with_null_price_is_a_bad_response() -> None:
    body = {
        "code": "0",
        "data": [
            {
                "instId": "BTC-USDT-SWAP",
                "details": [{"bkPx": None, "sz": "1", "posSide": "long", "ts": "1722844000000"}],
            }
        ],
    }
    with pytest.raises(BadResponse, match="bkPx"):
        okx.parse_liquidations(body, {"BTC-USDT-SWAP": 0.01})


def test_okx_error_codes() -> None:
    with pytest.raises(RateLimited):
        okx.okx_data({"code": "50011", "msg": "Too Many Requests", "data": []})
    with pytest.raises(BadResponse, match="51001"):
        okx.okx_data({"code": "51001", "msg": "Instrument ID does not exist", "data": []})
    with pytest.raises(BadResponse):
        okx.okx_data({"code": "0", "msg": ""})


@pytest.mark.parametrize(
    ("name", "instrument", "oi_usd"),
    [
        ("okx_open_interest.json", "BTC-USDT-SWAP", 2078892496.935),
        ("okx_open_interest_btcusd_swap.json", "BTC-USD-SWAP", 470195869.999),
    ],
)
async def test_okx_open_interest_with_its_own_history(
    name: str, instrument: str, oi_usd: float
) -> None:
    history = {
        "code": "0",
        "msg": "",
        "data": [
            ["1786413000000", "3240000", "32400", "2075000000"],
            ["1786409400000", "3300000", "33000", "2150000000"],
        ],
    }
    upstream = Upstream(
        {
            "/api/v5/public/open-interest": sample(name),
            "/api/v5/rubik/stat/contracts/open-interest-history": inline(history),
        }
    )
    async with upstream.client() as client:
        result = await okx.fetch_open_interest(client, CFG, instrument)

    assert result.instrument == instrument
    assert result.oi_usd == pytest.approx(oi_usd, abs=1)
    assert [p.oi_usd for p in result.history] == [2150000000, 2075000000]  # oldest first
    params = {r.url.path: r.url.params for r in upstream.requests}
    assert params["/api/v5/rubik/stat/contracts/open-interest-history"]["period"] == "5m"


async def test_okx_open_interest_history_failure_keeps_the_current_value() -> None:
    upstream = Upstream(
        {
            "/api/v5/public/open-interest": sample("okx_open_interest.json"),
            "/api/v5/rubik/stat/contracts/open-interest-history": httpx.Response(500),
        }
    )
    async with upstream.client() as client:
        result = await okx.fetch_open_interest(client, CFG)
    assert result.oi_usd == pytest.approx(2078892496.935)
    assert result.history == []


async def test_okx_open_interest_current_failure_is_an_error() -> None:
    upstream = Upstream(
        {
            "/api/v5/public/open-interest": inline({"code": "0", "msg": "", "data": []}),
            "/api/v5/rubik/stat/contracts/open-interest-history": inline(
                {"code": "0", "msg": "", "data": []}
            ),
        }
    )
    async with upstream.client() as client:
        with pytest.raises(BadResponse):
            await okx.fetch_open_interest(client, CFG)


async def test_okx_funding_rate() -> None:
    now = datetime(2026, 8, 11, 1, 0, tzinfo=UTC)
    upstream = Upstream({"/api/v5/public/funding-rate": sample("okx_funding_rate.json")})
    async with upstream.client() as client:
        result = await okx.fetch_funding(client, CFG, now=now)
    assert result.rate == pytest.approx(0.0001)
    assert result.instrument == "BTC-USDT-SWAP"
    assert result.as_of == now  # this body has no ts; fundingTime is a settlement to come

    body = json.loads((FIXTURES / "okx_funding_rate_btcusd_swap.json").read_text())
    live = okx.parse_funding(body)
    assert live.rate == pytest.approx(-0.0000258648920016)
    assert live.as_of == datetime.fromtimestamp(1779567747.336, UTC)


async def test_okx_candles_keep_confirmed_minutes_oldest_first() -> None:
    # documented row layout [ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm], newest first
    body = {
        "code": "0",
        "msg": "",
        "data": [
            ["1722844800000", "52838.6", "52840.1", "52829.4", "52831.7", "0.4", "21", "21", "0"],
            [
                "1722844740000",
                "52852.2",
                "52859.2",
                "52832.9",
                "52838.6",
                "33",
                "1.7e6",
                "1.7e6",
                "1",
            ],
            [
                "1722844680000",
                "52817.5",
                "52868.1",
                "52810.0",
                "52852.2",
                "30",
                "1.6e6",
                "1.6e6",
                "1",
            ],
        ],
    }
    upstream = Upstream({"/api/v5/market/candles": inline(body)})
    async with upstream.client() as client:
        result = await okx.fetch_candles(client, CFG, limit=5)
    assert [c.close for c in result.candles] == [52852.2, 52838.6]
    assert result.as_of == datetime(2024, 8, 5, 8, 0, tzinfo=UTC)
    assert upstream.requests[0].url.params["bar"] == "1m"


# --- Coinbase -------------------------------------------------------------------------------


async def test_coinbase_candles_recorded_body() -> None:
    upstream = Upstream({"/products/BTC-USD/candles": sample("coinbase_exchange_candles.json")})
    async with upstream.client() as client:
        result = await coinbase.fetch_candles(
            client, CFG, now=datetime(2024, 3, 13, 11, 5, tzinfo=UTC)
        )
    assert result.source == "Coinbase"
    assert [(c.start, c.close) for c in result.candles] == [
        (datetime(2024, 3, 13, 11, 0, tzinfo=UTC), 73370.65)
    ]
    assert upstream.requests[0].url.params["granularity"] == "60"


def test_coinbase_candles_drop_the_open_minute_and_keep_the_last_ones() -> None:
    start = datetime(2024, 8, 5, 7, 53, tzinfo=UTC)
    rows = [
        [int((start + timedelta(minutes=m)).timestamp()), 1.0, 2.0, 1.5, 100.0 + m, 3.0]
        for m in range(7, -1, -1)  # 08:00 down to 07:53, newest first
    ]
    now = datetime(2024, 8, 5, 8, 0, 20, tzinfo=UTC)
    result = coinbase.parse_candles(rows, "BTC-USD", limit=5, now=now)
    assert [c.close for c in result.candles] == [102.0, 103.0, 104.0, 105.0, 106.0]
    assert result.candles[-1].start == datetime(2024, 8, 5, 7, 59, tzinfo=UTC)


def test_coinbase_candles_bad_rows() -> None:
    with pytest.raises(BadResponse):
        coinbase.parse_candles({"message": "NotFound"}, "BTC-USD")
    with pytest.raises(BadResponse):
        coinbase.parse_candles([[1722844740, 1.0, 2.0, 1.5, None, 3.0]], "BTC-USD")


async def test_coinbase_stats_24h_change() -> None:
    # documented body: 24h open, high, low, last and volumes, as strings
    body = {
        "open": "60765.01",
        "high": "61212.00",
        "low": "51650.00",
        "last": "52778.91",
        "volume": "41872.35",
        "volume_30day": "412865.90",
    }
    now = datetime(2024, 8, 5, 8, 0, tzinfo=UTC)
    upstream = Upstream({"/products/BTC-USD/stats": inline(body)})
    async with upstream.client() as client:
        result = await coinbase.fetch_stats(client, CFG, now=now)
    assert result.price == 52778.91
    assert result.change_24h_pct == pytest.approx(-13.14, abs=0.01)
    assert result.as_of == now
    with pytest.raises(BadResponse):
        coinbase.parse_stats({"open": None, "last": "1"}, "BTC-USD")


# --- Kraken ---------------------------------------------------------------------------------


async def test_kraken_ticker_last_price_and_no_invented_24h_change() -> None:
    upstream = Upstream({"/0/public/Ticker": sample("kraken_ticker.json")})
    now = datetime(2024, 3, 13, 11, 0, tzinfo=UTC)
    async with upstream.client() as client:
        result = await kraken.fetch_ticker(client, CFG, pair="XBTUSDT", now=now)
    assert result.price == 73380.6
    assert result.change_24h_pct is None
    assert result.as_of == now
    assert upstream.requests[0].url.params["pair"] == "XBTUSDT"


def test_kraken_takes_the_single_result_under_its_own_pair_name() -> None:
    body = json.loads((FIXTURES / "kraken_ticker.json").read_text())
    assert kraken.parse_ticker(body, "XBTUSD").price == 73380.6


def test_kraken_error_list_is_a_bad_response() -> None:
    with pytest.raises(BadResponse, match="Unknown asset pair"):
        kraken.parse_ticker({"error": ["EQuery:Unknown asset pair"]}, "XBTUSD")
    with pytest.raises(BadResponse):
        kraken.parse_ticker({"error": [], "result": {}}, "XBTUSD")


# --- Binance and Bybit (optional) -----------------------------------------------------------


async def test_binance_open_interest_in_usd() -> None:
    upstream = Upstream(
        {
            "/fapi/v1/openInterest": sample("binance_open_interest.json"),
            "/fapi/v1/premiumIndex": sample("binance_premium_index.json"),
        }
    )
    async with upstream.client() as client:
        result = await binance.fetch_open_interest(client, CFG)
    assert result.source == "Binance"
    assert result.oi_usd == pytest.approx(10659.509 * 11793.63104562)
    assert result.as_of == datetime.fromtimestamp(1589437530.011, UTC)


async def test_binance_451_is_blocked() -> None:
    refused = sample("binance_error_451.json", status=451)
    upstream = Upstream({"/fapi/v1/openInterest": refused, "/fapi/v1/premiumIndex": refused})
    async with upstream.client() as client:
        with pytest.raises(SourceBlocked) as caught:
            await binance.fetch_open_interest(client, CFG)
    assert "binance.com" not in str(caught.value)


async def test_bybit_open_interest_value() -> None:
    upstream = Upstream({"/v5/market/tickers": sample("bybit_tickers_linear.json")})
    async with upstream.client() as client:
        result = await bybit.fetch_open_interest(client, CFG)
    assert result.oi_usd == pytest.approx(4103494619.75)
    assert result.as_of == datetime.fromtimestamp(1779567773.148, UTC)
    assert upstream.requests[0].url.params["category"] == "linear"


def test_bybit_error_codes() -> None:
    with pytest.raises(BadResponse):
        bybit.parse_open_interest({"retCode": 10001, "retMsg": "params error"}, "BTCUSDT")
    with pytest.raises(RateLimited):
        bybit.parse_open_interest({"retCode": 10006, "retMsg": "Too many visits"}, "BTCUSDT")


# --- the demo recording ---------------------------------------------------------------------


async def test_demo_scenario_market_figures() -> None:
    scenario = Scenario.load()
    now = scenario.now
    async with httpx.AsyncClient(transport=scenario.transport()) as client:
        markets = await coingecko.fetch_markets(client, CFG)
        global_market = await coingecko.fetch_global(client, CFG)
        liquidations = [
            await okx.fetch_liquidations(client, CFG, family, now=now)
            for family in CFG.liquidation_families
        ]
        oi = await okx.fetch_open_interest(client, CFG)
        funding = await okx.fetch_funding(client, CFG, now=now)
        okx_candles = await okx.fetch_candles(client, CFG)
        cb_candles = await coinbase.fetch_candles(client, CFG, now=now)
        cb_btc = await coinbase.fetch_stats(client, CFG, now=now)
        cb_eth = await coinbase.fetch_stats(client, CFG, product="ETH-USD", now=now)
        kraken_btc = await kraken.fetch_ticker(client, CFG, now=now)
        kraken_eth = await kraken.fetch_ticker(client, CFG, pair="ETHUSD", now=now)

    coins = {c.id: c for c in markets.coins}
    btc, eth, sol = coins["bitcoin"], coins["ethereum"], coins["solana"]
    assert (btc.price, btc.change_1h, btc.change_24h, btc.change_7d) == pytest.approx(
        (52800, -2.4, -13.1, -23.5), abs=0.01
    )
    assert (eth.price, eth.change_1h, eth.change_24h, eth.change_7d) == pytest.approx(
        (2290, -3.0, -21.0, -31.0), abs=0.01
    )
    assert (sol.price, sol.change_24h) == pytest.approx((122.4, -18.2), abs=0.01)
    assert len(markets.coins) >= 60
    top_alts = [c.change_24h for c in markets.coins if c.rank and 2 <= c.rank <= 51]
    assert statistics.median(x for x in top_alts if x is not None) == pytest.approx(-17, abs=1)
    for stable in ("tether", "usd-coin", "dai"):
        assert abs(coins[stable].change_24h or 99) < 0.5

    assert global_market.total_market_cap_usd == pytest.approx(1.79e12)
    assert global_market.market_cap_change_24h_pct == pytest.approx(-13.9, abs=0.01)
    assert global_market.btc_dominance == pytest.approx(57.8)

    hour = [
        e for batch in liquidations for e in batch.events if now - timedelta(hours=1) <= e.ts <= now
    ]
    longs = sum(e.usd for e in hour if e.position_side == "long")
    shorts = sum(e.usd for e in hour if e.position_side == "short")
    assert longs == pytest.approx(48e6, rel=0.02)
    assert shorts == pytest.approx(6e6, rel=0.05)
    assert longs / (longs + shorts) > 0.85
    assert {e.instrument for e in hour} == {"BTC-USDT-SWAP", "ETH-USDT-SWAP", "SOL-USDT-SWAP"}

    assert oi.oi_usd == pytest.approx(2.31e9, rel=0.005)
    hour_ago = next(p for p in oi.history if p.ts == now - timedelta(hours=1))
    assert (oi.oi_usd - hour_ago.oi_usd) / hour_ago.oi_usd * 100 == pytest.approx(-6.9, abs=0.1)
    assert funding.rate == pytest.approx(-0.0000512, abs=1e-7)

    okx_close = {c.start: c.close for c in okx_candles.candles}
    assert [c.start for c in cb_candles.candles] == list(okx_close)
    premiums = [
        (c.close - okx_close[c.start]) / okx_close[c.start] * 100 for c in cb_candles.candles
    ]
    assert len(premiums) == 5
    assert all(-0.13 <= p <= -0.09 for p in premiums)

    assert cb_btc.change_24h_pct == pytest.approx(-13.1, abs=0.1)
    assert cb_eth.change_24h_pct == pytest.approx(-21.0, abs=0.1)
    assert kraken_btc.price == pytest.approx(52800, rel=0.001)
    assert kraken_eth.price == pytest.approx(2290, rel=0.001)

    fresh = [markets, global_market, *liquidations, oi, funding, okx_candles, cb_candles]
    for result in fresh:
        assert now - timedelta(minutes=5) <= result.as_of <= now, result.source
    assert all(p.ts <= now for p in oi.history)
