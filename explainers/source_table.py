"""Every source a refresh reads, as one table: what to call, what stands in when it fails, how
old its data may get, whether settings switch it on, and where its data goes in the snapshot.

Adding a source is one `Source(...)` entry in `SOURCES` (or in a family such as `INDICES`): the
collector plans, runs and applies it without further changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import httpx

from explainers.drivers import HEADLINE_PATTERNS
from explainers.models import (
    Candles,
    CutOdds,
    DifficultyAdjustment,
    EtfFlows,
    FearGreed,
    FedCutOdds,
    Funding,
    GlobalMarket,
    HashRate,
    Headlines,
    IndexQuote,
    Liquidations,
    MacroKey,
    MacroQuote,
    Markets,
    OpenInterest,
    Snapshot,
    SourceStatus,
    SpotPrice,
    StablecoinSupply,
    Transactions,
    UsdtQuote,
    VenueOpenInterest,
    Yields,
)
from explainers.settings import SourceSettings
from explainers.source_runner import SourceCall
from explainers.sources import (
    binance,
    blockchain_info,
    bybit,
    cnbc,
    coinbase,
    coingecko,
    defillama,
    farside,
    feargreed,
    fred,
    hyperliquid,
    kalshi,
    kraken,
    mempool,
    news,
    okx,
    polymarket,
    sosovalue,
    stooq,
    treasury,
    usdt,
    yahoo,
)
from explainers.sources.stocks import StockQuote
from explainers.sources.yahoo import YahooSession

T = TypeVar("T")

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class FetchContext:
    """What a source's fetch may use: the shared client, the settings, the refresh's time, and
    the process's one Yahoo session (cookie, crumb and 429 breaker)."""

    client: httpx.AsyncClient
    cfg: SourceSettings
    now: datetime
    yahoo_session: YahooSession | None = None

    def yahoo(self) -> YahooSession:
        """The shared Yahoo session; a context built without one (tests) gets its own."""
        if self.yahoo_session is None:
            object.__setattr__(self, "yahoo_session", YahooSession.from_settings(self.cfg))
        assert self.yahoo_session is not None
        return self.yahoo_session


@dataclass
class SnapshotDraft:
    """What a refresh has read so far; each source's `apply` puts its data in here."""

    markets: Markets | None = None
    global_market: GlobalMarket | None = None
    btc_fallback: SpotPrice | None = None
    eth_fallback: SpotPrice | None = None
    coinbase_btc: Candles | None = None
    okx_btc: Candles | None = None
    liquidations: list[Liquidations] = field(default_factory=list)
    open_interest: list[OpenInterest] = field(default_factory=list)
    funding: list[Funding] = field(default_factory=list)
    etf: EtfFlows | None = None
    yields: Yields | None = None
    cut_odds: CutOdds | None = None
    indices: dict[str, IndexQuote] = field(default_factory=dict)
    fear_greed: FearGreed | None = None
    headline_batches: list[Headlines] = field(default_factory=list)
    venue_open_interest: list[VenueOpenInterest] = field(default_factory=list)
    usdt: UsdtQuote | None = None
    kalshi_odds: FedCutOdds | None = None
    hash_rate: HashRate | None = None
    difficulty: DifficultyAdjustment | None = None
    stablecoins: StablecoinSupply | None = None
    transactions: Transactions | None = None
    macro: dict[str, MacroQuote] = field(default_factory=dict)

    def snapshot(self, taken_at: datetime, statuses: dict[str, SourceStatus]) -> Snapshot:
        # every draft field but the headline batches has a Snapshot field of the same name and
        # type; Snapshot forbids extra fields, so a draft field it lacks fails loudly
        read = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "headline_batches"}
        return Snapshot(
            taken_at=taken_at,
            headlines=news.merge(self.headline_batches),
            statuses=statuses,
            **read,
        )


def _always(cfg: SourceSettings) -> bool:
    return True


@dataclass(frozen=True)
class Source(Generic[T]):
    """One upstream source: `fetch` reads it, `apply` puts what it read into the snapshot.

    `fallbacks` are asked in order when it fails; the first that delivers fills the snapshot
    through its own `apply`. A source `enabled` returns False for is not asked: its status says
    "disabled" with `off_reason`.
    """

    key: str  # status key, e.g. "okx_liquidations_btc"
    label: str  # shown to users, e.g. "OKX liquidations (BTC)"
    fetch: Callable[[FetchContext], Awaitable[T]]
    apply: Callable[[SnapshotDraft, T], None]
    stale_after: timedelta | None = None  # None: the data has no regular cycle (news, liquidations)
    timeout_s: float | None = None  # None: the settings' timeout_s
    enabled: Callable[[SourceSettings], bool] = _always
    off_reason: str = "off in settings"
    fallbacks: tuple[Source[Any], ...] = ()

    def chain(self) -> list[Source[Any]]:
        """The source, then its fallbacks in the order they are asked."""
        return [self, *(link for fallback in self.fallbacks for link in fallback.chain())]

    def call(self, ctx: FetchContext) -> SourceCall[T]:
        return SourceCall(
            self.key, self.label, lambda: self.fetch(ctx), self.stale_after, self.timeout_s
        )

    def disabled_status(self) -> SourceStatus:
        return SourceStatus(
            source=self.key, label=self.label, state="disabled", reason=self.off_reason
        )


# --- where each source's data goes ---------------------------------------------------------


def _markets(draft: SnapshotDraft, value: Markets) -> None:
    draft.markets = value


def _global_market(draft: SnapshotDraft, value: GlobalMarket) -> None:
    draft.global_market = value


def _spot_prices(draft: SnapshotDraft, value: tuple[SpotPrice, SpotPrice | None]) -> None:
    draft.btc_fallback, draft.eth_fallback = value


def _coinbase_btc(draft: SnapshotDraft, value: Candles) -> None:
    draft.coinbase_btc = value


def _okx_btc(draft: SnapshotDraft, value: Candles) -> None:
    draft.okx_btc = value


def _etf(draft: SnapshotDraft, value: EtfFlows) -> None:
    draft.etf = value


def _yields(draft: SnapshotDraft, value: Yields) -> None:
    draft.yields = value


def _cut_odds(draft: SnapshotDraft, value: CutOdds) -> None:
    draft.cut_odds = value


def _fear_greed(draft: SnapshotDraft, value: FearGreed) -> None:
    draft.fear_greed = value


def _open_interest(draft: SnapshotDraft, value: OpenInterest) -> None:
    draft.open_interest.append(value)


def _funding(draft: SnapshotDraft, value: Funding) -> None:
    draft.funding.append(value)


def _liquidations(draft: SnapshotDraft, value: Liquidations) -> None:
    draft.liquidations.append(value)


def _headlines(draft: SnapshotDraft, value: Headlines) -> None:
    draft.headline_batches.append(value)


def _venue_open_interest(draft: SnapshotDraft, value: list[VenueOpenInterest]) -> None:
    draft.venue_open_interest.extend(value)


def _usdt(draft: SnapshotDraft, value: UsdtQuote) -> None:
    draft.usdt = value


def _kalshi(draft: SnapshotDraft, value: FedCutOdds) -> None:
    draft.kalshi_odds = value


def _hash_rate(draft: SnapshotDraft, value: HashRate) -> None:
    draft.hash_rate = value


def _difficulty(draft: SnapshotDraft, value: DifficultyAdjustment) -> None:
    draft.difficulty = value


def _stablecoins(draft: SnapshotDraft, value: StablecoinSupply) -> None:
    draft.stablecoins = value


def _transactions(draft: SnapshotDraft, value: Transactions) -> None:
    draft.transactions = value


def _macro(draft: SnapshotDraft, value: MacroQuote) -> None:
    draft.macro[value.key] = value


def _index(key: yahoo.IndexKey) -> Callable[[SnapshotDraft, StockQuote], None]:
    def apply(draft: SnapshotDraft, value: StockQuote) -> None:
        draft.indices[key] = value

    return apply


# --- fetch helpers -------------------------------------------------------------------------


def _btc_and_eth(
    fetch: Callable[[FetchContext, str], Awaitable[SpotPrice]], btc: str, eth: str
) -> Callable[[FetchContext], Awaitable[tuple[SpotPrice, SpotPrice | None]]]:
    """BTC and ETH from one fallback venue; BTC is required, ETH is a bonus."""

    async def run(ctx: FetchContext) -> tuple[SpotPrice, SpotPrice | None]:
        btc_price, eth_price = await asyncio.gather(
            fetch(ctx, btc), fetch(ctx, eth), return_exceptions=True
        )
        if isinstance(btc_price, BaseException):
            raise btc_price
        return btc_price, eth_price if isinstance(eth_price, SpotPrice) else None

    return run


def _has_sosovalue_key(cfg: SourceSettings) -> bool:
    return cfg.sosovalue_api_key is not None


def _has_stooq_key(cfg: SourceSettings) -> bool:
    return cfg.stooq_api_key is not None


def _binance_enabled(cfg: SourceSettings) -> bool:
    return cfg.binance_enabled


def _bybit_enabled(cfg: SourceSettings) -> bool:
    return cfg.bybit_enabled


def _usdt_bounds(x: FetchContext) -> tuple[float, float]:
    return (x.cfg.usdt_usd_min, x.cfg.usdt_usd_max)


async def _kalshi_odds(x: FetchContext) -> FedCutOdds:
    """Kalshi's cut odds need the current upper bound of the target range: FRED's DFEDTARU."""
    _, upper = await fred.fetch_latest(x.client, x.cfg.fred_url, "DFEDTARU", today=x.now.date())
    return await kalshi.fetch_cut_odds(
        x.client, x.cfg.kalshi_url, upper, x.now, series=x.cfg.kalshi_fed_series
    )


# --- the table -----------------------------------------------------------------------------


def _index_sources(key: yahoo.IndexKey, name: str) -> Source[StockQuote]:
    """One stock index: Yahoo (intraday, crumb flow), else CNBC (intraday, keyless), else FRED's
    close, else Stooq (keyed)."""
    series, _ = fred.INDEX_SERIES[key]
    return Source(
        f"yahoo_{key}",
        f"Yahoo Finance {name}",
        fetch=lambda x: yahoo.fetch_quote(x.client, x.cfg.yahoo_url, key, session=x.yahoo()),
        apply=_index(key),
        stale_after=4 * DAY,
        fallbacks=(
            Source(
                f"cnbc_{key}",
                f"CNBC {name}",
                fetch=lambda x: cnbc.fetch_quote(x.client, x.cfg.cnbc_url, key),
                apply=_index(key),
                stale_after=4 * DAY,
            ),
            Source(
                f"fred_{key}",
                f"FRED {name} ({series})",
                fetch=lambda x: fred.fetch_index_close(
                    x.client, x.cfg.fred_url, key, today=x.now.date()
                ),
                apply=_index(key),
                stale_after=4 * DAY,
            ),
            Source(
                f"stooq_{key}",
                f"Stooq {name}",
                fetch=lambda x: stooq.fetch_quote(
                    x.client, x.cfg.stooq_url, key, x.cfg.stooq_api_key, today=x.now.date()
                ),
                apply=_index(key),
                stale_after=4 * DAY,
                enabled=_has_stooq_key,
                off_reason="no API key set",
            ),
        ),
    )


#: the stock indices, one entry each
INDICES: tuple[Source[StockQuote], ...] = (
    _index_sources("spx", "S&P 500"),
    _index_sources("ndx", "Nasdaq"),
)

#: open interest per coin on every venue (summed across venues by the liquidation driver)
OPEN_INTEREST: tuple[Source[list[VenueOpenInterest]], ...] = (
    Source(
        "oi_okx",
        "OKX open interest (all swaps)",
        fetch=lambda x: okx.fetch_venue_open_interest(
            x.client, x.cfg.okx_url, x.cfg.open_interest_coins
        ),
        apply=_venue_open_interest,
        stale_after=30 * MINUTE,
    ),
    Source(
        "oi_bybit",
        "Bybit open interest",
        fetch=lambda x: bybit.fetch_venue_open_interest(
            x.client, x.cfg.bybit_url, x.cfg.open_interest_coins
        ),
        apply=_venue_open_interest,
        stale_after=30 * MINUTE,
        enabled=_bybit_enabled,
    ),
    Source(
        "oi_binance",
        "Binance open interest",
        fetch=lambda x: binance.fetch_venue_open_interest(
            x.client, x.cfg.binance_url, x.cfg.open_interest_coins
        ),
        apply=_venue_open_interest,
        stale_after=30 * MINUTE,
        enabled=_binance_enabled,
    ),
    Source(
        "oi_hyperliquid",
        "Hyperliquid open interest",
        fetch=lambda x: hyperliquid.fetch_venue_open_interest(
            x.client, x.cfg.hyperliquid_url, x.cfg.open_interest_coins, x.now
        ),
        apply=_venue_open_interest,
        stale_after=30 * MINUTE,
    ),
)


def _macro_source(key: MacroKey, name: str, stale_after: timedelta) -> Source[MacroQuote]:
    series = fred.MACRO_SERIES[key]
    return Source(
        f"fred_{key}",
        f"FRED {name} ({series})",
        fetch=lambda x: fred.fetch_macro(x.client, x.cfg.fred_url, key, today=x.now.date()),
        apply=_macro,
        stale_after=stale_after,
    )


#: context, never a driver: the network, stablecoins, and markets outside crypto
CONTEXT: tuple[Source[Any], ...] = (
    Source(
        "mempool_hashrate",
        "mempool.space hash rate",
        fetch=lambda x: mempool.fetch_hash_rate(x.client, x.cfg.mempool_url),
        apply=_hash_rate,
        stale_after=3 * DAY,
    ),
    Source(
        "mempool_difficulty",
        "mempool.space difficulty adjustment",
        fetch=lambda x: mempool.fetch_difficulty(x.client, x.cfg.mempool_url, x.now),
        apply=_difficulty,
    ),
    Source(
        "defillama_stablecoins",
        "DefiLlama stablecoin supply",
        fetch=lambda x: defillama.fetch_supply(x.client, x.cfg.defillama_stablecoins_url),
        apply=_stablecoins,
        stale_after=3 * DAY,
    ),
    Source(
        "blockchain_transactions",
        "blockchain.info transactions",
        fetch=lambda x: blockchain_info.fetch_transactions(
            x.client, x.cfg.blockchain_info_url, x.now
        ),
        apply=_transactions,
        stale_after=3 * DAY,
    ),
    # VIX is published the next morning; the H.10 dollar series weekly (on Mondays)
    _macro_source("vix", "VIX", 5 * DAY),
    _macro_source("dollar", "dollar index", 10 * DAY),
    _macro_source("usdjpy", "USD/JPY", 10 * DAY),
)

#: every source of a refresh but the per-family ones (liquidations, news feeds)
SOURCES: tuple[Source[Any], ...] = (
    Source(
        "coingecko",
        "CoinGecko markets",
        fetch=lambda x: coingecko.fetch_markets(x.client, x.cfg),
        apply=_markets,
        stale_after=30 * MINUTE,
        fallbacks=(
            Source(
                "coinbase_stats",
                "Coinbase 24h stats",
                fetch=_btc_and_eth(
                    lambda x, p: coinbase.fetch_stats(x.client, x.cfg, p, now=x.now),
                    "BTC-USD",
                    "ETH-USD",
                ),
                apply=_spot_prices,
                stale_after=30 * MINUTE,
            ),
            Source(
                "kraken",
                "Kraken ticker",
                fetch=_btc_and_eth(
                    lambda x, p: kraken.fetch_ticker(x.client, x.cfg, p, now=x.now),
                    "XBTUSD",
                    "ETHUSD",
                ),
                apply=_spot_prices,
                stale_after=30 * MINUTE,
            ),
        ),
    ),
    Source(
        "coingecko_global",
        "CoinGecko global",
        fetch=lambda x: coingecko.fetch_global(x.client, x.cfg),
        apply=_global_market,
        stale_after=30 * MINUTE,
    ),
    Source(
        "coinbase",
        "Coinbase BTC-USD candles",
        fetch=lambda x: coinbase.fetch_candles(x.client, x.cfg, "BTC-USD", now=x.now),
        apply=_coinbase_btc,
        stale_after=10 * MINUTE,
    ),
    Source(
        "okx_candles",
        "OKX BTC-USDT candles",
        fetch=lambda x: okx.fetch_candles(x.client, x.cfg, "BTC-USDT"),
        apply=_okx_btc,
        stale_after=10 * MINUTE,
    ),
    Source(
        "usdt_coinbase",
        "Coinbase USDT-USD",
        fetch=lambda x: usdt.fetch_coinbase_usdt(x.client, x.cfg.coinbase_url, _usdt_bounds(x)),
        apply=_usdt,
        stale_after=30 * MINUTE,
        fallbacks=(
            Source(
                "usdt_kraken",
                "Kraken USDT-USD",
                fetch=lambda x: usdt.fetch_kraken_usdt(
                    x.client, x.cfg.kraken_url, x.now, _usdt_bounds(x)
                ),
                apply=_usdt,
                stale_after=30 * MINUTE,
            ),
        ),
    ),
    Source(
        "okx_open_interest",
        "OKX open interest",
        fetch=lambda x: okx.fetch_open_interest(x.client, x.cfg, "BTC-USDT-SWAP"),
        apply=_open_interest,
        stale_after=30 * MINUTE,
    ),
    *OPEN_INTEREST,
    Source(
        "okx_funding",
        "OKX funding",
        fetch=lambda x: okx.fetch_funding(x.client, x.cfg, "BTC-USDT-SWAP", now=x.now),
        apply=_funding,
        stale_after=12 * HOUR,
    ),
    Source(
        "farside",
        "Farside ETF flows",
        fetch=lambda x: farside.fetch_etf_flows(x.client, x.cfg),
        apply=_etf,
        stale_after=4 * DAY,
        fallbacks=(
            Source(
                "sosovalue",
                "SoSoValue ETF flows",
                fetch=lambda x: sosovalue.fetch_etf_flows(x.client, x.cfg),
                apply=_etf,
                stale_after=4 * DAY,
                enabled=_has_sosovalue_key,
                off_reason="no API key set",
            ),
        ),
    ),
    Source(
        "treasury",
        "US Treasury yields",
        fetch=lambda x: treasury.fetch_yields(x.client, x.cfg, x.now.date()),
        apply=_yields,
        stale_after=5 * DAY,
        fallbacks=(
            Source(
                "fred",
                "FRED yields",
                fetch=lambda x: fred.fetch_yields(x.client, x.cfg, today=x.now.date()),
                apply=_yields,
                stale_after=5 * DAY,
            ),
        ),
    ),
    Source(
        "polymarket",
        "Polymarket Fed odds",
        fetch=lambda x: polymarket.fetch_cut_odds(x.client, x.cfg, x.now),
        apply=_cut_odds,
        stale_after=DAY,
    ),
    Source(
        "kalshi",
        "Kalshi Fed odds",
        fetch=_kalshi_odds,
        apply=_kalshi,
        stale_after=DAY,
    ),
    Source(
        "feargreed",
        "Fear & Greed",
        fetch=lambda x: feargreed.fetch_fear_greed(x.client, x.cfg, 8),
        apply=_fear_greed,
        stale_after=2 * DAY,
    ),
    *INDICES,
    *CONTEXT,
)


def _liquidation_source(family: str) -> Source[Liquidations]:
    coin = family.split("-")[0]
    return Source(
        f"okx_liquidations_{coin.lower()}",
        f"OKX liquidations ({coin})",
        fetch=lambda x: okx.fetch_liquidations(x.client, x.cfg, family, x.now),
        apply=_liquidations,
    )


def liquidation_sources(cfg: SourceSettings) -> list[Source[Liquidations]]:
    """OKX liquidations, one entry per swap family in the settings (e.g. "BTC-USDT")."""
    return [_liquidation_source(family) for family in cfg.liquidation_families]


def _news_source(feed: news.Feed) -> Source[Headlines]:
    return Source(
        f"rss_{feed.key}",
        feed.label,
        fetch=lambda x: news.fetch_feed(x.client, feed, HEADLINE_PATTERNS),
        apply=_headlines,
    )


def news_sources(cfg: SourceSettings) -> list[Source[Headlines]]:
    """One entry per news feed in the settings."""
    return [_news_source(feed) for feed in news.feeds(cfg)]


def source_table(cfg: SourceSettings) -> list[Source[Any]]:
    """Every source a full refresh reads with these settings, in the order they are listed."""
    return [*SOURCES, *liquidation_sources(cfg), *news_sources(cfg)]
