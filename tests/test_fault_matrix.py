"""Every source and every way an upstream fails: an answer still comes out, the affected driver is
unknown, the failed source is named, and nothing escapes."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from bot.config import Settings
from explainers import render
from explainers.settings import SourceSettings
from tests.replay_helpers import Upstream

# host(s) -> (the driver that depends on them, a status label that must be named)
SOURCES: dict[str, tuple[tuple[str, ...], str | None, str]] = {
    "coingecko": (("api.coingecko.com",), None, "CoinGecko markets"),
    "okx": (("www.okx.com",), "liquidations", "OKX open interest"),
    "coinbase": (("api.exchange.coinbase.com",), "institutional", "Coinbase BTC-USD candles"),
    "farside": (("farside.co.uk",), "etf", "Farside ETF flows"),
    "fed": (
        ("gamma-api.polymarket.com", "clob.polymarket.com", "home.treasury.gov"),
        "fed",
        "Polymarket Fed odds",
    ),
    "yahoo": (("query1.finance.yahoo.com",), "stocks", "Yahoo Finance S&P 500"),
    "feargreed": (("api.alternative.me",), "fear", "Fear & Greed"),
    "rss": (
        (
            "www.coindesk.com",
            "cointelegraph.com",
            "decrypt.co",
            "www.theblock.co",
            "www.federalreserve.gov",
        ),
        None,
        "CoinDesk",
    ),
}

HTML_PAGE = "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>Checking your browser</body></html>"


def _raise(exc: type[httpx.TransportError]) -> Callable[[httpx.Request], httpx.Response]:
    def fault(request: httpx.Request) -> httpx.Response:
        raise exc("injected", request=request)

    return fault


FAULTS: dict[str, Callable[[httpx.Request], httpx.Response]] = {
    "timeout": _raise(httpx.ReadTimeout),
    "connection refused": _raise(httpx.ConnectError),
    "429 with Retry-After": lambda r: httpx.Response(
        429, headers={"Retry-After": "120"}, json={"status": {"error_code": 429}}
    ),
    "500": lambda r: httpx.Response(500, text="Internal Server Error"),
    "451": lambda r: httpx.Response(
        451, json={"code": 0, "msg": "Service unavailable from a restricted location"}
    ),
    "html page": lambda r: httpx.Response(
        200, headers={"Content-Type": "text/html"}, text=HTML_PAGE
    ),
    "malformed json": lambda r: httpx.Response(
        200, headers={"Content-Type": "application/json"}, text='{"data": [{"price": '
    ),
    "empty body": lambda r: httpx.Response(200, text=""),
    "missing fields": lambda r: httpx.Response(200, json={"unexpected": {"shape": True}}),
    "nulls": lambda r: httpx.Response(
        200,
        json={
            "code": "0",
            "data": [{"price": None, "value": None}],
            "result": None,
            "chart": {"result": None, "error": None},
        },
    ),
}


@pytest.fixture
def settings() -> Settings:
    # no pause before retries: the test is about outcomes, not timing
    return Settings(_env_file=None, sources=SourceSettings(retry_backoff_s=0.0))


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("source", list(SOURCES))
async def test_fault(source: str, fault: str, settings: Settings) -> None:
    hosts, driver_key, label = SOURCES[source]
    upstream = Upstream()
    inject = FAULTS[fault]
    upstream.overrides.append(lambda r: inject(r) if r.url.host in hosts else None)
    async with upstream.client(settings) as client:
        explanation = await upstream.explainer(client, settings).explain()

    failed = {s.label for s in explanation.failed_sources}
    assert label in failed
    if driver_key is not None:
        driver = next(d for d in explanation.drivers if d.key == driver_key)
        assert driver.state == "unknown"
        assert driver.missing
    # the other drivers keep working
    assert len(explanation.fired) >= 2
    text = render.text(explanation)
    assert label in text.split("Not available:")[1]
    assert "Traceback" not in text and "http" not in text.split("Not available:")[1]
