"""Implausible upstream figures never reach an answer, oversized bodies are refused before they are
in memory, future-dated headlines are dropped and echoed user text loses its control characters."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bot.commands import Replies
from bot.config import Settings
from explainers import render
from explainers.errors import BadResponse
from explainers.explain import verdict
from explainers.models import Move
from explainers.settings import SourceSettings, Thresholds
from explainers.sources import bounds, http, news
from tests.replay_helpers import Upstream

# --- fuzzed snapshots through the whole pipeline ---------------------------------------------

NAN_OR_INF = re.compile(r"(?<![a-z])(nan|inf|infinity)(?![a-z])", re.IGNORECASE)


def _set(path: list[Any], value: Any) -> Callable[[Any], None]:
    def mutate(body: Any) -> None:
        node = body
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def _first_coin(field: str, value: Any) -> Callable[[Any], None]:
    def mutate(body: Any) -> None:
        next(c for c in body if c["id"] == "bitcoin")[field] = value

    return mutate


# (request path, mutation of its recorded JSON body, a prefix of the failed source's label,
#  the driver that must go unknown or None)
MUTATIONS: dict[str, tuple[str, Callable[[Any], None], str, str | None]] = {
    "total market cap change NaN": (
        "/api/v3/global",
        _set(["data", "market_cap_change_percentage_24h_usd"], float("nan")),
        "CoinGecko",
        None,
    ),
    "BTC dominance -91000%": (
        "/api/v3/global",
        _set(["data", "market_cap_percentage", "btc"], -91000.0),
        "CoinGecko",
        None,
    ),
    "BTC 1h change +inf": (
        "/api/v3/coins/markets",
        _first_coin("price_change_percentage_1h_in_currency", float("inf")),
        "CoinGecko",
        None,
    ),
    "BTC price negative": (
        "/api/v3/coins/markets",
        _first_coin("current_price", -14631.9e12),
        "CoinGecko",
        None,
    ),
    "Fear & Greed 1,000,000": ("/fng/", _set(["data", 0, "value"], "1000000"), "Fear", "fear"),
    "Fear & Greed 1e30": ("/fng/", _set(["data", 0, "value"], 1e30), "Fear", "fear"),
    "open interest 4e22": (
        "/api/v5/public/open-interest",
        _set(["data", 0, "oiUsd"], "4e22"),
        "OKX",
        None,  # the liquidation driver still stands on the liquidations themselves
    ),
    "funding 1e32": (
        "/api/v5/public/funding-rate",
        _set(["data", 0, "fundingRate"], "1e32"),
        "OKX",
        None,
    ),
    "liquidation size NaN": (
        "/api/v5/public/liquidation-orders",
        _set(["data", 0, "details", 0, "sz"], "NaN"),
        "OKX",
        None,  # the other swap families' liquidations still count
    ),
}


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None, sources=SourceSettings(retry_backoff_s=0.0))


@pytest.mark.parametrize("case", list(MUTATIONS))
async def test_a_garbled_figure_is_a_named_bad_response_never_nan(
    case: str, settings: Settings
) -> None:
    path, mutate, label, driver_key = MUTATIONS[case]
    upstream = Upstream()

    def garble(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != path:
            return None
        recorded = upstream.scenario.handle(request)
        body = json.loads(recorded.content)
        mutate(body)
        return httpx.Response(200, content=json.dumps(body).encode())  # NaN/Infinity literals

    upstream.overrides.append(garble)
    async with upstream.client(settings) as client:
        explanation = await upstream.explainer(client, settings).explain()

    assert any(s.label.startswith(label) for s in explanation.failed_sources), case
    if driver_key is not None:
        assert next(d for d in explanation.drivers if d.key == driver_key).state == "unknown"
    rendered = [
        explanation.model_dump_json(),
        render.text(explanation),
        render.telegram_html(explanation),
        json.dumps(render.discord_embed(explanation)),
    ]
    for out in rendered:
        assert not NAN_OR_INF.search(out), (case, NAN_OR_INF.search(out))
    assert "$nan" not in rendered[1].lower()


def test_a_nan_change_makes_the_market_neither_down_nor_not_down() -> None:
    t = Thresholds()

    def move(label: str, h1: float | None, h24: float | None) -> Move:
        return Move(label=label, change_1h=h1, change_24h=h24, source="x", as_of=None)

    nan = float("nan")
    assert verdict([move("BTC", nan, nan), move("Total market cap", None, nan)], t)[0] == "unknown"
    # a finite figure still decides
    assert verdict([move("BTC", nan, -5.0)], t) == ("down", -5.0, None)
    assert verdict([move("BTC", float("inf"), 1.0)], t)[0] == "not_down"


# --- the body cap -----------------------------------------------------------------------------

MB = 1024 * 1024


class BigBody(httpx.AsyncByteStream):
    """A 50 MB body served 1 MB at a time, counting the chunks handed out."""

    def __init__(self, chunks: int = 50) -> None:
        self.chunks = chunks
        self.served = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.served += 1
            yield b"1," * (MB // 2)

    async def aclose(self) -> None:
        self.closed = True


async def test_a_50_mb_body_is_refused_while_streaming() -> None:
    stream = BigBody()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=stream))
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(BadResponse) as caught:
            await http.get_json(client, "Big", "https://big.example/data")
    assert caught.value.detail == "body larger than 5 MB"
    assert caught.value.source == "Big"
    # the read stopped just past the cap: 6 of 50 chunks, and the stream was closed
    assert stream.served == 6 and stream.closed


async def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    stream = BigBody()
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, headers={"Content-Length": str(50 * MB)}, stream=stream)
    )
    async with http.limit_body(httpx.AsyncClient(transport=transport), 2 * MB) as client:
        with pytest.raises(BadResponse, match="body larger than 2 MB"):
            await http.get(client, "Big", "https://big.example/data")
    assert stream.served == 0


async def test_a_body_under_the_cap_reads_whole() -> None:
    stream = BigBody(chunks=3)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=stream))
    async with httpx.AsyncClient(transport=transport) as client:
        response = await http.get(client, "Big", "https://big.example/data")
    assert len(response.content) == 3 * MB and response.text.startswith("1,1,")
    assert stream.served == 3


def test_the_cap_is_a_setting() -> None:
    assert SourceSettings().max_body_bytes == 5 * MB == http.DEFAULT_MAX_BODY_BYTES


# --- headlines and echoed text ----------------------------------------------------------------


def _rss(*items: tuple[str, datetime]) -> bytes:
    entries = "".join(
        f"<item><title>{title}</title><link>https://n.example/{i}</link>"
        f"<pubDate>{when:%a, %d %b %Y %H:%M:%S} +0000</pubDate></item>"
        for i, (title, when) in enumerate(items)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel>{entries}</channel></rss>'.encode()


def test_a_future_dated_headline_is_dropped() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    body = _rss(
        ("From next year", now + timedelta(days=400)),
        ("In a minute", now + timedelta(minutes=1)),  # within the clock skew
        ("An hour ago", now - timedelta(hours=1)),
        ("From 1970", datetime(1970, 1, 1, tzinfo=UTC)),
    )
    result = news.parse_feed(body, "Feed", {})
    assert [h.title for h in result.items] == ["In a minute", "An hour ago"]
    assert result.as_of == now + timedelta(minutes=1)


def test_feeds_are_capped_newest_first() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    body = _rss(*((f"Story {i}", now - timedelta(minutes=i)) for i in range(80)))
    result = news.parse_feed(body, "Feed", {}, max_items=50)
    assert [h.title for h in result.items] == [f"Story {i}" for i in range(50)]
    assert {f.max_items for f in news.feeds(SourceSettings(news_max_items=7))} == {7}


def test_headline_titles_lose_control_and_bidi_characters() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    body = _rss(("Bitcoin \u202eslides\u202c\u2066 below\u2069 $60K&#7;", now))
    assert news.parse_feed(body, "Feed", {}).items[0].title == "Bitcoin slides below $60K"


def test_an_echoed_unknown_coin_loses_bidi_and_control_characters() -> None:
    query = "\u202ecoin\u2066x\u2069\x07\x1b[31m\u0085"
    reply = Replies(None, "text").unknown_coin(query, [])
    assert reply == (
        'I don\'t know the coin "coinx[31m" (I look among the top 100 by market cap, by symbol '
        "or CoinGecko id)."
    )


def test_bounds_refuse_garbage_by_name() -> None:
    with pytest.raises(BadResponse, match="value 1e\\+06 is implausible"):
        bounds.index_0_100("1000000", "alternative.me", "value")
    with pytest.raises(BadResponse, match="price is not a finite number"):
        bounds.price("NaN", "X", "price")
    with pytest.raises(BadResponse, match=r"ts .* is in the future"):
        bounds.from_ms((datetime.now(UTC) + timedelta(days=1)).timestamp() * 1000, "X", "ts")
    with pytest.raises(BadResponse, match="not a plausible time"):
        bounds.from_s(1e18, "X", "ts")
    assert bounds.pct_change("-99.5", "X", "change") == -99.5
