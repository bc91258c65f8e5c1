"""Open interest per coin across venues (Hyperliquid, OKX, Bybit, Binance) on recorded bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from explainers.errors import BadResponse, RateLimited, SourceBlocked
from explainers.sources import binance, bybit, hyperliquid, okx
from explainers.sources.open_interest import VenueOpenInterest, sum_by_coin
from explainers.sources.shape import check_shape

API = Path(__file__).parent / "fixtures" / "api"
NOW = datetime(2026, 9, 3, 12, 0, tzinfo=UTC)


def body(name: str) -> Any:
    return json.loads((API / name).read_bytes())


def raw(name: str, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=(API / name).read_bytes())


def client_for(
    routes: dict[str, httpx.Response],
) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return routes.get(request.url.path, httpx.Response(404, text="not recorded"))

    return httpx.AsyncClient(transport=httpx.MockTransport(handle)), seen


# --- Hyperliquid ------------------------------------------------------------------------------


def test_hyperliquid_values_coins_at_the_mark_price_matching_by_index() -> None:
    got = hyperliquid.parse_open_interest(
        body("hyperliquid_meta_and_asset_ctxs.json"), ["BTC", "ETH", "ATOM"], NOW
    )
    assert [v.coin for v in got] == ["BTC", "ETH", "ATOM"]
    # openInterest is in coins: 36295.80812 BTC x markPx 80639.0 (not oraclePx 80684.7)
    assert got[0].usd == pytest.approx(36295.80812 * 80639.0)
    assert got[0].usd == pytest.approx(2_926_857_670.99, abs=0.01)
    assert got[1].usd == pytest.approx(897134.8736000003 * 2499.93)
    assert got[2].usd == pytest.approx(1846225.26 * 1.5008)
    assert all(v.venue == "Hyperliquid" and v.at == NOW for v in got)


def test_hyperliquid_skips_delisted_and_unlisted_coins() -> None:
    got = hyperliquid.parse_open_interest(
        body("hyperliquid_meta_and_asset_ctxs.json"), ["MATIC", "SOL"], NOW
    )
    assert got == []  # MATIC is isDelisted (null midPx/premium), SOL is not in the trimmed body


def test_hyperliquid_universe_and_ctxs_of_different_length_is_refused() -> None:
    meta, ctxs = body("hyperliquid_meta_and_asset_ctxs.json")
    with pytest.raises(BadResponse, match="differ in length"):
        hyperliquid.parse_open_interest([meta, ctxs[:3]], ["BTC"], NOW)
    assert hyperliquid.check([meta, ctxs[:3]]) == ["universe has 4 assets but ctxs 3"]


async def test_hyperliquid_fetch_posts_the_info_request() -> None:
    client, seen = client_for({"/info": raw("hyperliquid_meta_and_asset_ctxs.json")})
    async with client:
        got = await hyperliquid.fetch_venue_open_interest(
            client, "https://api.hyperliquid.xyz", ["BTC"], NOW
        )
    assert seen[0].method == "POST"
    assert json.loads(seen[0].content) == {"type": "metaAndAssetCtxs"}
    assert got[0].coin == "BTC"


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (httpx.Response(200, text="<html><body>maintenance</body></html>"), BadResponse),
        (httpx.Response(200, text='[{"universe": ['), BadResponse),
        (httpx.Response(200, json={"error": "bad"}), BadResponse),
        (httpx.Response(429, headers={"Retry-After": "7"}), RateLimited),
    ],
)
async def test_hyperliquid_faults(reply: httpx.Response, error: type[Exception]) -> None:
    client, _ = client_for({"/info": reply})
    async with client:
        with pytest.raises(error):
            await hyperliquid.fetch_venue_open_interest(client, "https://h", ["BTC"], NOW)


def test_hyperliquid_shape_names_a_renamed_field() -> None:
    meta, ctxs = body("hyperliquid_meta_and_asset_ctxs.json")
    assert hyperliquid.check([meta, ctxs]) == []
    drifted = [meta, [{**c, "markPrice": c["markPx"]} for c in ctxs]]
    for c in drifted[1]:
        del c["markPx"]
    assert check_shape(drifted, hyperliquid.SHAPE) == ["[1][0].markPx is missing (has: markPrice)"]


# --- OKX --------------------------------------------------------------------------------------


def test_okx_reads_oi_usd_per_coin() -> None:
    got = okx.parse_venue_open_interest(body("okx_open_interest.json"), ["BTC", "ETH"])
    assert len(got) == 1
    assert got[0].coin == "BTC"
    assert got[0].usd == pytest.approx(2078892496.9350092274435)
    assert got[0].at == datetime.fromtimestamp(1786413061228 / 1000, UTC)
    assert got[0].instruments == ["BTC-USDT-SWAP"]


def test_okx_sums_a_coins_usdt_and_usd_margined_swaps() -> None:
    # the data items of two recorded answers, as one instType=SWAP answer lists them
    usdt, usd = body("okx_open_interest.json"), body("okx_open_interest_btcusd_swap.json")
    both = {"code": "0", "msg": "", "data": usdt["data"] + usd["data"]}
    (btc,) = okx.parse_venue_open_interest(both, ["BTC"])
    assert btc.usd == pytest.approx(2078892496.9350092 + 470195869.999999998)
    assert btc.instruments == ["BTC-USD-SWAP", "BTC-USDT-SWAP"]
    assert btc.at == datetime.fromtimestamp(1786413061228 / 1000, UTC)


async def test_okx_fetch_asks_every_swap_at_once() -> None:
    client, seen = client_for({"/api/v5/public/open-interest": raw("okx_open_interest.json")})
    async with client:
        got = await okx.fetch_venue_open_interest(client, "https://www.okx.com", ["BTC"])
    assert dict(seen[0].url.params) == {"instType": "SWAP"}
    assert got[0].venue == "OKX"


def test_okx_error_code_and_missing_usd() -> None:
    with pytest.raises(RateLimited):
        okx.parse_venue_open_interest({"code": "50011", "msg": "Too Many", "data": []}, ["BTC"])
    item = dict(body("okx_open_interest.json")["data"][0])
    del item["oiUsd"]
    with pytest.raises(BadResponse, match="oiUsd is missing"):
        okx.parse_venue_open_interest({"code": "0", "data": [item]}, ["BTC"])
    assert check_shape({"code": "0", "data": [item]}, okx.OPEN_INTEREST_SHAPE) == [
        "data[0].oiUsd is missing"
    ]


# --- Bybit ------------------------------------------------------------------------------------


def test_bybit_linear_open_interest_value_is_usd() -> None:
    got = bybit.parse_venue_open_interest(body("bybit_tickers_linear.json"), ["BTC", "ETH"])
    assert got == [
        VenueOpenInterest(
            venue="Bybit",
            coin="BTC",
            usd=4103494619.75,
            at=datetime.fromtimestamp(1779567773148 / 1000, UTC),
            instruments=["BTCUSDT"],
        )
    ]


def test_bybit_inverse_tickers_are_not_read_as_usd() -> None:
    # inverse openInterestValue is in coins (22505.67 BTC), so no USDT perpetual, no figure
    assert bybit.parse_venue_open_interest(body("bybit_tickers_inverse.json"), ["BTC"]) == []
    assert check_shape(body("bybit_open_interest.json"), bybit.TICKERS_SHAPE) == [
        "result.list[0].symbol is missing",
        "result.list[0].openInterestValue is missing (has: openInterest)",
    ]


async def test_bybit_fetch_reads_all_linear_tickers_and_maps_403() -> None:
    client, seen = client_for({"/v5/market/tickers": raw("bybit_tickers_linear.json")})
    async with client:
        got = await bybit.fetch_venue_open_interest(client, "https://api.bybit.com", ["BTC"])
    assert dict(seen[0].url.params) == {"category": "linear"}
    assert got[0].usd == 4103494619.75
    client, _ = client_for({"/v5/market/tickers": httpx.Response(403, text="Forbidden")})
    async with client:
        with pytest.raises(SourceBlocked):
            await bybit.fetch_venue_open_interest(client, "https://api.bybit.com", ["BTC"])


# --- Binance ----------------------------------------------------------------------------------


def test_binance_values_coins_at_the_mark_price() -> None:
    (btc,) = binance.parse_venue_open_interest(
        [body("binance_open_interest.json")], body("binance_premium_index.json")
    )
    assert btc.coin == "BTC"
    assert btc.usd == pytest.approx(10659.509 * 11793.63104562)
    assert btc.at == datetime.fromtimestamp(1589437530011 / 1000, UTC)


async def test_binance_fetch_asks_each_symbol_and_all_mark_prices() -> None:
    client, seen = client_for(
        {
            "/fapi/v1/openInterest": raw("binance_open_interest.json"),
            "/fapi/v1/premiumIndex": raw("binance_premium_index.json"),
        }
    )
    async with client:
        got = await binance.fetch_venue_open_interest(client, "https://fapi.binance.com", ["BTC"])
    assert sorted(str(r.url) for r in seen) == [
        "https://fapi.binance.com/fapi/v1/openInterest?symbol=BTCUSDT",
        "https://fapi.binance.com/fapi/v1/premiumIndex",
    ]
    assert got[0].usd == pytest.approx(125714316.27, abs=0.01)


async def test_binance_451_is_blocked() -> None:
    client, _ = client_for(
        {
            "/fapi/v1/openInterest": raw("binance_error_451.json", 451),
            "/fapi/v1/premiumIndex": raw("binance_error_451.json", 451),
        }
    )
    async with client:
        with pytest.raises(SourceBlocked):
            await binance.fetch_venue_open_interest(client, "https://fapi.binance.com", ["BTC"])


def test_binance_without_a_mark_price_is_a_bad_response() -> None:
    with pytest.raises(BadResponse, match="no mark price for BTCUSDT"):
        binance.parse_venue_open_interest([body("binance_open_interest.json")], [])


# --- the sum ----------------------------------------------------------------------------------


def test_sum_by_coin_adds_venues_and_keeps_each_as_evidence() -> None:
    t1, t2 = datetime(2026, 9, 3, 12, 0, tzinfo=UTC), datetime(2026, 9, 3, 12, 1, tzinfo=UTC)
    items = [
        VenueOpenInterest(venue="OKX", coin="BTC", usd=2e9, at=t2),
        VenueOpenInterest(venue="Hyperliquid", coin="BTC", usd=3e9, at=t1),
        VenueOpenInterest(venue="Bybit", coin="eth", usd=1e9, at=t2),
        VenueOpenInterest(venue="OKX", coin="BTC", usd=1e9, at=t1),  # older answer: dropped
    ]
    sums = sum_by_coin(items)
    assert sums["BTC"].usd == 5e9
    assert sums["BTC"].at == t1
    assert [v.venue for v in sums["BTC"].venues] == ["Hyperliquid", "OKX"]
    assert sums["ETH"].usd == 1e9
