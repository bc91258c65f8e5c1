"""Read every source concurrently into a `Snapshot`.

Each source runs under its own timeout with one retry on transient errors; one failing source
never delays or breaks the others. A chain lists a source and its fallbacks: the first that
delivers fills the snapshot. A source that refuses us (451/403) is skipped for a while instead
of being asked every cycle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from explainers.drivers import HEADLINE_PATTERNS
from explainers.errors import BadResponse, RateLimited, SourceBlocked, SourceError, SourceTimeout
from explainers.models import Liquidations, Snapshot, SourceState, SourceStatus, SpotPrice
from explainers.settings import SourceSettings
from explainers.sources import (
    binance,
    bybit,
    coinbase,
    coingecko,
    farside,
    feargreed,
    fred,
    kraken,
    news,
    okx,
    polymarket,
    sosovalue,
    stooq,
    treasury,
    yahoo,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Job:
    key: str  # status key, e.g. "okx_liquidations_btc"
    label: str  # shown to users, e.g. "OKX liquidations (BTC)"
    slot: str  # the Snapshot field it fills
    run: Callable[[], Awaitable[Any]]
    stale_after: timedelta | None = None  # None: the data has no regular cycle (news, liquidations)
    index: str | None = None  # key inside a dict slot (indices)


Chain = list[Job]

_MINUTES = timedelta(minutes=1)
_DAYS = timedelta(days=1)


class Collector:
    """Reads all upstreams with one shared client; remembers which sources refused us."""

    def __init__(
        self, client: httpx.AsyncClient, cfg: SourceSettings, clock: Clock = utcnow
    ) -> None:
        self.client = client
        self.cfg = cfg
        self.clock = clock
        self._blocked_until: dict[str, datetime] = {}

    def plan(self, now: datetime) -> tuple[list[Chain], list[SourceStatus]]:
        """The chains to run at `now`, and statuses of sources switched off in settings."""
        c, cfg = self.client, self.cfg

        def fallback_prices(
            fetch: Callable[[str], Awaitable[SpotPrice]], btc: str, eth: str
        ) -> Callable[[], Awaitable[tuple[SpotPrice, SpotPrice | None]]]:
            """BTC and ETH from one fallback venue; BTC is required, ETH is a bonus."""

            async def run() -> tuple[SpotPrice, SpotPrice | None]:
                btc_price, eth_price = await asyncio.gather(
                    fetch(btc), fetch(eth), return_exceptions=True
                )
                if isinstance(btc_price, BaseException):
                    raise btc_price
                return btc_price, eth_price if isinstance(eth_price, SpotPrice) else None

            return run

        chains: list[Chain] = [
            [
                Job(
                    "coingecko",
                    "CoinGecko markets",
                    "markets",
                    lambda: coingecko.fetch_markets(c, cfg),
                    30 * _MINUTES,
                ),
                Job(
                    "coinbase_stats",
                    "Coinbase 24h stats",
                    "fallback",
                    fallback_prices(
                        lambda p: coinbase.fetch_stats(c, cfg, p, now=now), "BTC-USD", "ETH-USD"
                    ),
                    30 * _MINUTES,
                ),
                Job(
                    "kraken",
                    "Kraken ticker",
                    "fallback",
                    fallback_prices(
                        lambda p: kraken.fetch_ticker(c, cfg, p, now=now), "XBTUSD", "ETHUSD"
                    ),
                    30 * _MINUTES,
                ),
            ],
            [
                Job(
                    "coingecko_global",
                    "CoinGecko global",
                    "global_market",
                    lambda: coingecko.fetch_global(c, cfg),
                    30 * _MINUTES,
                )
            ],
            [
                Job(
                    "coinbase",
                    "Coinbase BTC-USD candles",
                    "coinbase_btc",
                    lambda: coinbase.fetch_candles(c, cfg, "BTC-USD", now=now),
                    10 * _MINUTES,
                )
            ],
            [
                Job(
                    "okx_candles",
                    "OKX BTC-USDT candles",
                    "okx_btc",
                    lambda: okx.fetch_candles(c, cfg, "BTC-USDT"),
                    10 * _MINUTES,
                )
            ],
            [
                Job(
                    "okx_open_interest",
                    "OKX open interest",
                    "open_interest",
                    lambda: okx.fetch_open_interest(c, cfg, "BTC-USDT-SWAP"),
                    30 * _MINUTES,
                )
            ],
            [
                Job(
                    "okx_funding",
                    "OKX funding",
                    "funding",
                    lambda: okx.fetch_funding(c, cfg, "BTC-USDT-SWAP", now=now),
                    12 * 60 * _MINUTES,
                )
            ],
            [
                Job(
                    "farside",
                    "Farside ETF flows",
                    "etf",
                    lambda: farside.fetch_etf_flows(c, cfg),
                    4 * _DAYS,
                ),
                *(
                    [
                        Job(
                            "sosovalue",
                            "SoSoValue ETF flows",
                            "etf",
                            lambda: sosovalue.fetch_etf_flows(c, cfg),
                            4 * _DAYS,
                        )
                    ]
                    if cfg.sosovalue_api_key
                    else []
                ),
            ],
            [
                Job(
                    "treasury",
                    "US Treasury yields",
                    "yields",
                    lambda: treasury.fetch_yields(c, cfg, now.date()),
                    5 * _DAYS,
                ),
                Job(
                    "fred",
                    "FRED yields",
                    "yields",
                    lambda: fred.fetch_yields(c, cfg, today=now.date()),
                    5 * _DAYS,
                ),
            ],
            [
                Job(
                    "polymarket",
                    "Polymarket Fed odds",
                    "cut_odds",
                    lambda: polymarket.fetch_cut_odds(c, cfg, now),
                    _DAYS,
                )
            ],
            [
                Job(
                    "feargreed",
                    "Fear & Greed",
                    "fear_greed",
                    lambda: feargreed.fetch_fear_greed(c, cfg, 8),
                    2 * _DAYS,
                )
            ],
        ]
        for key, name in (("spx", "S&P 500"), ("ndx", "Nasdaq")):
            chains.append(
                [
                    Job(
                        f"yahoo_{key}",
                        f"Yahoo Finance {name}",
                        "indices",
                        _bind(yahoo.fetch_index, c, cfg, key),
                        4 * _DAYS,
                        key,
                    ),
                    Job(
                        f"stooq_{key}",
                        f"Stooq {name}",
                        "indices",
                        lambda key=key: stooq.fetch_index(c, cfg, key, today=now.date()),
                        4 * _DAYS,
                        key,
                    ),
                ]
            )
        chains.extend(self._liquidation_chains(now))
        for feed in news.feeds(cfg):
            chains.append(
                [
                    Job(
                        f"rss_{feed.key}",
                        feed.label,
                        "headlines",
                        _bind(news.fetch_feed, c, feed, HEADLINE_PATTERNS),
                    )
                ]
            )

        disabled: list[SourceStatus] = []
        optional = (
            ("binance", "Binance open interest", cfg.binance_enabled, binance.fetch_open_interest),
            ("bybit", "Bybit open interest", cfg.bybit_enabled, bybit.fetch_open_interest),
        )
        for key, label, enabled, fetch in optional:
            if enabled:
                chains.append(
                    [
                        Job(
                            key,
                            label,
                            "open_interest",
                            _bind(fetch, c, cfg, "BTCUSDT"),
                            30 * _MINUTES,
                        )
                    ]
                )
            else:
                disabled.append(
                    SourceStatus(
                        source=key, label=label, state="disabled", reason="off in settings"
                    )
                )
        if not cfg.sosovalue_api_key:
            disabled.append(
                SourceStatus(
                    source="sosovalue",
                    label="SoSoValue ETF flows",
                    state="disabled",
                    reason="no API key set",
                )
            )
        return chains, disabled

    def _liquidation_chains(self, now: datetime) -> list[Chain]:
        c, cfg = self.client, self.cfg
        chains: list[Chain] = []
        for family in cfg.liquidation_families:
            coin = family.split("-")[0]
            chains.append(
                [
                    Job(
                        f"okx_liquidations_{coin.lower()}",
                        f"OKX liquidations ({coin})",
                        "liquidations",
                        _bind(okx.fetch_liquidations, c, cfg, family, now),
                    )
                ]
            )
        return chains

    async def collect_liquidations(self) -> list[Liquidations]:
        """Only the liquidation feeds: polled more often than a full refresh, since OKX lists
        just the latest orders and a cascade can scroll past them within a minute."""
        now = self.clock()
        outcomes = await asyncio.gather(
            *(self._run_chain(chain, now) for chain in self._liquidation_chains(now))
        )
        return [value for job, value, _ in outcomes if job is not None]

    async def collect(self) -> Snapshot:
        now = self.clock()
        chains, disabled = self.plan(now)
        outcomes = await asyncio.gather(*(self._run_chain(chain, now) for chain in chains))

        fields: dict[str, Any] = {
            "liquidations": [],
            "open_interest": [],
            "funding": [],
            "indices": {},
        }
        headline_batches = []
        statuses = {s.source: s for s in disabled}
        for job, value, chain_statuses in outcomes:
            statuses.update({s.source: s for s in chain_statuses})
            if job is None:
                continue
            if job.slot == "fallback":
                fields["btc_fallback"], fields["eth_fallback"] = value
            elif job.slot == "headlines":
                headline_batches.append(value)
            elif job.slot == "indices":
                fields["indices"][job.index] = value
            elif job.slot in ("liquidations", "open_interest", "funding"):
                fields[job.slot].append(value)
            else:
                fields[job.slot] = value
        fields["headlines"] = news.merge(headline_batches)
        return Snapshot(taken_at=now, statuses=statuses, **fields)

    async def _run_chain(
        self, chain: Chain, now: datetime
    ) -> tuple[Job | None, Any, list[SourceStatus]]:
        statuses: list[SourceStatus] = []
        for job in chain:
            value, status = await self._run_job(job, now)
            statuses.append(status)
            if value is not None:
                return job, value, statuses
        return None, None, statuses

    async def _run_job(self, job: Job, now: datetime) -> tuple[Any, SourceStatus]:
        blocked_until = self._blocked_until.get(job.key)
        if blocked_until is not None and now < blocked_until:
            return None, SourceStatus(
                source=job.key,
                label=job.label,
                state="blocked",
                reason=f"refused from this location; not asked again until {blocked_until:%H:%M} UTC",
            )
        started = time.perf_counter()
        try:
            value = await self._attempt_with_retry(job)
        except SourceError as err:
            latency = (time.perf_counter() - started) * 1000
            state: SourceState = "failed"
            if isinstance(err, SourceBlocked):
                state = "blocked"
                self._blocked_until[job.key] = now + timedelta(seconds=self.cfg.blocked_backoff_s)
            log.warning("source %s %s: %s", job.key, err.kind, err.detail)
            return None, SourceStatus(
                source=job.key,
                label=job.label,
                state=state,
                reason=f"{err.kind}: {err.detail}",
                latency_ms=latency,
            )
        latency = (time.perf_counter() - started) * 1000
        self._blocked_until.pop(job.key, None)
        as_of = _as_of(value)
        stale = job.stale_after is not None and as_of is not None and now - as_of > job.stale_after
        return value, SourceStatus(
            source=job.key,
            label=job.label,
            state="stale" if stale else "ok",
            reason=f"data older than {_age(job.stale_after)}"
            if stale and job.stale_after
            else None,
            as_of=as_of,
            latency_ms=latency,
        )

    async def _attempt_with_retry(self, job: Job) -> Any:
        try:
            return await self._attempt(job)
        except SourceError as err:
            if not err.transient:
                raise
            wait = self.cfg.retry_backoff_s
            if isinstance(err, RateLimited) and err.retry_after is not None:
                wait = err.retry_after
            if wait > self.cfg.retry_wait_cap_s:
                raise  # the server asked for longer than a refresh can wait; try next cycle
            await asyncio.sleep(wait)
            return await self._attempt(job)

    async def _attempt(self, job: Job) -> Any:
        label = job.label
        try:
            async with asyncio.timeout(self.cfg.timeout_s):
                return await job.run()
        except TimeoutError as err:
            raise SourceTimeout(label, "no answer in time") from err
        except SourceError:
            raise
        except Exception as err:  # a parser tripped on a shape we did not foresee
            log.exception("source %s returned an unexpected shape", job.key)
            raise BadResponse(label, f"unexpected response ({type(err).__name__})") from err


def _bind(fn: Callable[..., Awaitable[Any]], *args: Any) -> Callable[[], Awaitable[Any]]:
    return lambda: fn(*args)


def _as_of(value: Any) -> datetime | None:
    if isinstance(value, tuple):
        value = value[0]
    return getattr(value, "as_of", None)


def _age(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return (
        f"{hours / 24:g} days"
        if hours >= 24
        else f"{hours:g} h"
        if hours >= 1
        else f"{delta.seconds // 60} min"
    )
