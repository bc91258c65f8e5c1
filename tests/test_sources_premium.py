"""USDT-USD quote (Coinbase, Kraken fallback) and the premium against OKX converted to USD."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from explainers.errors import BadResponse, RateLimited
from explainers.sources import usdt
from explainers.sources.shape import check_shape

API = Path(__file__).parent / "fixtures" / "api"
NOW = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)


def body(name: str) -> Any:
    return json.loads((API / name).read_bytes())


def test_kraken_usdt_answer_keyed_by_its_own_pair_name() -> None:
    quote = usdt.parse_kraken_ticker(body("kraken_ticker_usdtusd.json"), NOW)
    assert quote == usdt.UsdtQuote(rate=0.99967, source="Kraken", at=NOW)


def test_kraken_error_list_is_a_bad_response() -> None:
    with pytest.raises(BadResponse, match="EQuery:Unknown asset pair"):
        usdt.parse_kraken_ticker({"error": ["EQuery:Unknown asset pair"]}, NOW)


def test_coinbase_ticker_shape_and_time() -> None:
    # the recorded ticker is BTC-USD (same shape as USDT-USD): its price is no USDT rate
    btc = body("coinbase_exchange_ticker.json")
    assert check_shape(btc, usdt.COINBASE_TICKER_SHAPE) == []
    with pytest.raises(BadResponse, match=r"73367\.8 is outside 0\.9\.\.1\.1"):
        usdt.parse_coinbase_ticker(btc)
    quote = usdt.parse_coinbase_ticker(btc, bounds=(1, 1e6))
    assert quote.rate == 73367.8
    assert quote.at == datetime(2024, 3, 13, 11, 10, 41, 270099, tzinfo=UTC)


def test_coinbase_ticker_without_time_names_it() -> None:
    with pytest.raises(BadResponse, match="time is missing"):
        usdt.parse_coinbase_ticker({"price": "1.0001"})


def route(replies: dict[str, httpx.Response]) -> tuple[httpx.AsyncClient, list[str]]:
    hosts: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return replies[request.url.host]

    return httpx.AsyncClient(transport=httpx.MockTransport(handle)), hosts


async def test_kraken_stands_in_when_coinbase_answers_an_implausible_quote() -> None:
    client, hosts = route(
        {
            "api.exchange.coinbase.com": httpx.Response(
                200, content=(API / "coinbase_exchange_ticker.json").read_bytes()
            ),
            "api.kraken.com": httpx.Response(
                200, content=(API / "kraken_ticker_usdtusd.json").read_bytes()
            ),
        }
    )
    async with client:
        quote = await usdt.fetch_usdt_quote(
            client, "https://api.exchange.coinbase.com", "https://api.kraken.com", NOW
        )
    assert hosts == ["api.exchange.coinbase.com", "api.kraken.com"]
    assert (quote.source, quote.rate) == ("Kraken", 0.99967)


async def test_coinbase_quote_is_used_first() -> None:
    ticker = {"price": "1.0002", "time": "2026-10-01T11:59:58.5Z", "bid": "1.0001", "ask": "1.0003"}
    client, hosts = route({"api.exchange.coinbase.com": httpx.Response(200, json=ticker)})
    async with client:
        quote = await usdt.fetch_usdt_quote(
            client, "https://api.exchange.coinbase.com", "https://api.kraken.com", NOW
        )
    assert hosts == ["api.exchange.coinbase.com"]
    assert quote.source == "Coinbase" and quote.rate == 1.0002


async def test_both_failing_raise_the_coinbase_error() -> None:
    client, _ = route(
        {
            "api.exchange.coinbase.com": httpx.Response(429, headers={"Retry-After": "3"}),
            "api.kraken.com": httpx.Response(200, text="{not json"),
        }
    )
    async with client:
        with pytest.raises(RateLimited) as caught:
            await usdt.fetch_usdt_quote(
                client, "https://api.exchange.coinbase.com", "https://api.kraken.com", NOW
            )
    assert caught.value.retry_after == 3


def test_premium_converts_okx_usdt_to_usd_first() -> None:
    quote = usdt.parse_kraken_ticker(body("kraken_ticker_usdtusd.json"), NOW)
    premium = usdt.coinbase_premium(80_000.0, 80_010.0, quote)
    assert premium.okx_usd == pytest.approx(80_010.0 * 0.99967)
    assert premium.pct == pytest.approx((80_000 - 79_983.5967) / 79_983.5967 * 100)
    # treating USDT as a dollar would show a discount where there is a premium
    assert premium.pct > 0 > (80_000 - 80_010) / 80_010 * 100
