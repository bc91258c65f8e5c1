"""`whydown sources` as a doctor: every source asked once, every stream listened to briefly.

For each source: its status, latency and as-of (as a refresh sees them), and whether the body it
answered still has the fields its parser reads (`sources.checks.CHECKS`; the drift is named).
For each liquidation stream (Bybit, OKX, Binance): connected or not, the age of its last frame,
and liquidations per minute over the listen.

Bodies are seen through a transport that keeps a copy of each response; `route` says which
source and which shape check a request belongs to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from explainers.collect import Collector
from explainers.models import SourceStatus
from explainers.sources.checks import CHECKS
from explainers.streams import (
    BinanceLiquidations,
    BybitLiquidations,
    LiquidationEvent,
    LiquidationStream,
    OkxLiquidations,
    StreamGap,
    StreamStatus,
)

#: what a doctor lists when a body fits, when nothing could be checked
FITS = "fits"
NOT_CHECKED = "-"


@dataclass(frozen=True)
class Seen:
    """One response a source got: where, its status and its raw text."""

    url: httpx.URL
    status: int
    text: str


class CaptureTransport(httpx.AsyncBaseTransport):
    """Passes every request to `inner` and keeps a copy of each response body."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[Seen] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        self.seen.append(
            Seen(request.url, response.status_code, content.decode("utf-8", "replace"))
        )
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=content,
            request=request,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


#: FRED series id -> (source key, check key) of the markets read outside crypto
_MACRO_ROUTES = {
    "VIXCLS": ("fred_vix", "fred_vixcls"),
    "DTWEXBGS": ("fred_dollar", "fred_dtwexbgs"),
    "DEXJPUS": ("fred_usdjpy", "fred_dexjpus"),
}


def route(url: httpx.URL) -> tuple[str, str] | None:
    """(source key, check key) of a request whose body has a shape check, else None."""
    host, path, params = url.host, url.path, url.params
    if host.endswith("okx.com") and path == "/api/v5/public/open-interest":
        return ("okx_open_interest" if "instId" in params else "oi_okx", "okx_open_interest")
    if host.endswith("bybit.com") and path == "/v5/market/tickers":
        return "oi_bybit", "bybit_tickers_linear"
    if host.endswith("binance.com") and path == "/fapi/v1/openInterest":
        return "oi_binance", "binance_open_interest"
    if host.endswith("binance.com") and path == "/fapi/v1/premiumIndex":
        return "oi_binance", "binance_premium_index"
    if "hyperliquid" in host and path == "/info":
        return "oi_hyperliquid", "hyperliquid_meta_and_asset_ctxs"
    if path.endswith("/products/USDT-USD/ticker"):
        return "usdt_coinbase", "coinbase_ticker"
    if path.endswith("/0/public/Ticker") and params.get("pair") == "USDTUSD":
        return "usdt_kraken", "kraken_ticker"
    if "/v8/finance/chart/" in path:
        return ("yahoo_spx" if "GSPC" in path else "yahoo_ndx"), "yahoo_chart"
    if "cnbc" in host and path.endswith("/restQuote/symbolType/symbol"):
        return ("cnbc_spx" if params.get("symbols") == ".SPX" else "cnbc_ndx"), "cnbc_quote"
    if path.endswith("/graph/fredgraph.csv") and params.get("id") in ("SP500", "NASDAQCOM"):
        if params.get("id") == "SP500":
            return "fred_spx", "fred_sp500"
        return "fred_ndx", "fred_nasdaqcom"
    if host.endswith("stooq.com") and path == "/q/d/l/":
        return ("stooq_spx" if params.get("s") == "^spx" else "stooq_ndx"), "stooq_daily"
    if "kalshi" in host and path.endswith("/markets"):
        return "kalshi", "kalshi_markets"
    if "kalshi" in host and path.endswith("/orderbook"):
        return "kalshi", "kalshi_orderbook"
    if path.endswith("/graph/fredgraph.csv") and params.get("id") in _MACRO_ROUTES:
        return _MACRO_ROUTES[params["id"]]
    if path.endswith("/api/v1/mining/hashrate/1m"):
        return "mempool_hashrate", "mempool_hashrate"
    if path.endswith("/api/v1/difficulty-adjustment"):
        return "mempool_difficulty", "mempool_difficulty_adjustment"
    if path.endswith("/stablecoincharts/all"):
        return "defillama_stablecoins", "defillama_stablecoincharts"
    if path.endswith("/charts/n-transactions"):
        return "blockchain_transactions", "blockchain_info_chart"
    if path.endswith("/wp-json/wp/v2/pages") and params.get("slug") == "btc":
        return "farside", "farside_page"
    return None


def drift_of(check: str, text: str) -> list[str]:
    """The check's drift for one body; Farside's page is read out of its WordPress JSON first."""
    if check == "farside_page":
        with contextlib.suppress(ValueError, AttributeError, IndexError, KeyError, TypeError):
            text = json.loads(text)[0]["content"]["rendered"]
    return CHECKS[check](text)


@dataclass(frozen=True)
class SourceCheck:
    status: SourceStatus
    #: None: no body of this source was checked (no check for it, not asked, or an error status)
    drift: list[str] | None = None

    @property
    def shape(self) -> str:
        if self.drift is None:
            return NOT_CHECKED
        return "; ".join(self.drift) if self.drift else FITS


def source_checks(statuses: Sequence[SourceStatus], seen: Sequence[Seen]) -> list[SourceCheck]:
    """Each status with the drift of the bodies its source answered (2xx only)."""
    drift: dict[str, list[str]] = {}
    for response in seen:
        routed = route(response.url)
        if routed is None or not 200 <= response.status < 300:
            continue
        key, check = routed
        found = drift.setdefault(key, [])
        found.extend(p for p in drift_of(check, response.text) if p not in found)
    return [SourceCheck(s, drift.get(s.source)) for s in sorted(statuses, key=lambda s: s.label)]


async def check_sources(collector: Collector, capture: CaptureTransport) -> list[SourceCheck]:
    """One full refresh through `capture` (the collector's client must use it)."""
    snapshot = await collector.collect()
    return source_checks(list(snapshot.statuses.values()), capture.seen)


# --- streams -------------------------------------------------------------------------------


@dataclass
class _Counter:
    events: int = 0
    gaps: list[StreamGap] = field(default_factory=list)

    async def on_events(self, events: list[LiquidationEvent]) -> None:
        self.events += len(events)

    async def on_gap(self, gap: StreamGap) -> None:
        self.gaps.append(gap)


@dataclass(frozen=True)
class StreamCheck:
    venue: str
    connected: bool
    state: str
    reason: str | None
    last_frame_age_s: float | None  # None: no frame arrived
    events: int
    per_minute: float
    listened_s: float


#: how a listen waits: given the seconds and the started clients
Wait = Callable[[float, list[LiquidationStream]], Awaitable[None]]


async def _sleep(seconds: float, clients: list[LiquidationStream]) -> None:
    await asyncio.sleep(seconds)


#: the streams a doctor listens to, with their default URLs
STREAMS: tuple[type[LiquidationStream], ...] = (
    BybitLiquidations,
    OkxLiquidations,
    BinanceLiquidations,
)


async def listen(
    seconds: float,
    *,
    urls: dict[str, str] | None = None,
    streams: Sequence[type[LiquidationStream]] = STREAMS,
    wait: Wait | None = None,
    clock: Callable[[], datetime] | None = None,
) -> list[StreamCheck]:
    """Start each stream, wait `seconds` (through `wait`, given the clients), and say how each
    fared; events per minute are over at least `seconds`.

    `urls` maps a venue ("bybit") to another websocket URL (tests: a local server).
    """
    counters = [_Counter() for _ in streams]
    clients: list[LiquidationStream] = []
    for cls, counter in zip(streams, counters, strict=True):
        kwargs: dict[str, object] = {}
        if urls and cls.venue in urls:
            kwargs["url"] = urls[cls.venue]
        if clock is not None:
            kwargs["clock"] = clock
        clients.append(cls(counter, **kwargs))  # type: ignore[arg-type]
    for client in clients:
        client.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await (wait or _sleep)(seconds, clients)
    finally:
        statuses: list[StreamStatus] = [c.status() for c in clients]
        listened = max(loop.time() - started, seconds, 1e-9)
        await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)
    now = clock() if clock is not None else None
    checks: list[StreamCheck] = []
    for status, counter in zip(statuses, counters, strict=True):
        at = now or datetime.now(status.last_frame_at.tzinfo if status.last_frame_at else None)
        age = (at - status.last_frame_at).total_seconds() if status.last_frame_at else None
        checks.append(
            StreamCheck(
                venue=status.venue,
                connected=status.connected,
                state=status.state,
                reason=status.reason,
                last_frame_age_s=age,
                events=counter.events,
                per_minute=counter.events / listened * 60,
                listened_s=listened,
            )
        )
    return checks


# --- the table -----------------------------------------------------------------------------


def _latency(s: SourceStatus) -> str:
    return f"{s.latency_ms:.0f} ms" if s.latency_ms is not None else "-"


def _as_of(s: SourceStatus) -> str:
    return f"{s.as_of:%Y-%m-%d %H:%M} UTC" if s.as_of else "-"


def source_table(checks: Sequence[SourceCheck]) -> list[str]:
    lines = [f"{'source':<34} {'status':<9} {'latency':>9}  {'as of':<22} {'shape':<6} note"]
    for c in checks:
        s = c.status
        shape = c.shape if c.shape in (FITS, NOT_CHECKED) else "DRIFT"
        note = "; ".join(
            part for part in (s.reason, c.shape if shape == "DRIFT" else None) if part is not None
        )
        lines.append(
            f"{s.label:<34} {s.state:<9} {_latency(s):>9}  {_as_of(s):<22} {shape:<6} {note}"
        )
    return lines


def stream_table(checks: Sequence[StreamCheck]) -> list[str]:
    if not checks:
        return []
    listened = checks[0].listened_s
    lines = [
        f"streams (listened {listened:.0f} s):",
        f"{'venue':<10} {'connected':<10} {'last frame':>11}  {'events/min':>10}  note",
    ]
    for c in checks:
        age = f"{c.last_frame_age_s:.1f} s ago" if c.last_frame_age_s is not None else "none"
        note = c.state if c.reason is None else f"{c.state}: {c.reason}"
        lines.append(
            f"{c.venue:<10} {'yes' if c.connected else 'no':<10} {age:>11}  "
            f"{c.per_minute:>10.1f}  {note}"
        )
    return lines
