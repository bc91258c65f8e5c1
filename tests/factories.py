"""Builders for core models, so tests state only the figures they are about."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from explainers.models import (
    Candle,
    Candles,
    CoinMarket,
    CutOdds,
    EtfDay,
    EtfFlows,
    FearGreed,
    FearGreedPoint,
    GlobalMarket,
    HashRate,
    IndexQuote,
    LiquidationTotals,
    Lookback,
    MacroKey,
    MacroQuote,
    Markets,
    OpenInterest,
    Snapshot,
    SourceStatus,
    StablecoinSupply,
    Transactions,
    YieldDay,
    Yields,
)

NOW = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


def snapshot(**fields: object) -> Snapshot:
    return Snapshot(taken_at=NOW, **fields)


def failed(key: str, label: str) -> dict[str, SourceStatus]:
    return {
        key: SourceStatus(
            source=key, label=label, state="failed", reason="timeout: no answer in time"
        )
    }


def stale(key: str, label: str, older_than: str) -> dict[str, SourceStatus]:
    return {
        key: SourceStatus(
            source=key,
            label=label,
            state="stale",
            reason=f"data older than {older_than}",
            as_of=NOW - timedelta(days=6),
        )
    }


def markets(
    btc_24h: float | None = -5.0, btc_1h: float | None = -1.0, alts: list[float] | None = None
) -> Markets:
    coins = [
        CoinMarket(
            id="bitcoin",
            symbol="btc",
            name="Bitcoin",
            rank=1,
            price=90000.0,
            change_1h=btc_1h,
            change_24h=btc_24h,
        ),
        CoinMarket(id="tether", symbol="usdt", name="Tether", rank=3, price=1.0, change_24h=0.01),
    ]
    for i, change in enumerate(alts if alts is not None else [-8.0, -9.0, -10.0]):
        coins.append(
            CoinMarket(
                id=f"alt{i}",
                symbol=f"a{i}",
                name=f"Alt {i}",
                rank=10 + i,
                price=1.0,
                change_24h=change,
            )
        )
    coins.append(
        CoinMarket(
            id="solana",
            symbol="sol",
            name="Solana",
            rank=5,
            price=150.0,
            change_1h=-2.0,
            change_24h=-12.0,
        )
    )
    return Markets(source="CoinGecko", as_of=NOW, coins=coins)


def global_market(change_24h: float | None = -4.0) -> GlobalMarket:
    return GlobalMarket(
        source="CoinGecko",
        as_of=NOW,
        total_market_cap_usd=3e12,
        market_cap_change_24h_pct=change_24h,
        btc_dominance=58.0,
    )


def liquidation_totals(
    long_1h: float, short_1h: float, long_24h: float = 0.0, short_24h: float = 0.0
) -> dict[str, LiquidationTotals]:
    since = NOW - timedelta(days=2)
    return {
        "liquidations_1h": LiquidationTotals(
            window_h=1, long_usd=long_1h, short_usd=short_1h, tracked_since=since
        ),
        "liquidations_24h": LiquidationTotals(
            window_h=24, long_usd=long_24h, short_usd=short_24h, tracked_since=since
        ),
    }


def lookback(**fields: object) -> Lookback:
    return Lookback(**fields)


def open_interest(usd: float) -> OpenInterest:
    return OpenInterest(source="OKX", as_of=NOW, instrument="BTC-USDT-SWAP", oi_usd=usd)


def etf(*totals: float | None) -> EtfFlows:
    start = date(2026, 11, 10)
    return EtfFlows(
        source="Farside",
        as_of=NOW,
        days=[EtfDay(day=start + timedelta(days=i), total_musd=v) for i, v in enumerate(totals)],
    )


def candles(source: str, closes: list[float]) -> Candles:
    start = NOW - timedelta(minutes=len(closes))
    return Candles(
        source=source,
        as_of=NOW,
        symbol="BTC",
        granularity_s=60,
        candles=[Candle(start=start + timedelta(minutes=i), close=c) for i, c in enumerate(closes)],
    )


def cut_odds(probability: float, meeting_date: date | None = None) -> CutOdds:
    return CutOdds(
        source="Polymarket",
        as_of=NOW,
        meeting="Fed Decision in December?",
        meeting_date=meeting_date,
        probability=probability,
    )


def hash_rate(change_pct: float) -> HashRate:
    """Hash rate whose 7-day mean is `change_pct` off its 30-day mean."""
    return HashRate(
        source="mempool.space",
        as_of=NOW - timedelta(hours=14),
        mean_7d=1e21 * (1 + change_pct / 100),
        mean_30d=1e21,
        days=30,
    )


def stablecoins(total_usd: float, week_ago_usd: float | None) -> StablecoinSupply:
    return StablecoinSupply(
        source="DefiLlama",
        as_of=NOW - timedelta(hours=14),
        total_usd=total_usd,
        week_ago_usd=week_ago_usd,
    )


def transactions(count: float, mean_30d: float) -> Transactions:
    return Transactions(
        source="blockchain.info",
        as_of=NOW - timedelta(hours=14),
        day=NOW.date() - timedelta(days=1),
        count=count,
        mean_30d=mean_30d,
    )


def macro(key: MacroKey, value: float, previous: float | None) -> MacroQuote:
    series = {"vix": "VIXCLS", "dollar": "DTWEXBGS", "usdjpy": "DEXJPUS"}[key]
    day = NOW.date() - timedelta(days=1)
    return MacroQuote(
        source="FRED",
        as_of=NOW - timedelta(hours=14),
        key=key,
        series=series,
        day=day,
        value=value,
        previous_day=day - timedelta(days=1) if previous is not None else None,
        previous=previous,
    )


def yields(*two_year: float | None) -> Yields:
    start = date(2026, 11, 10)
    return Yields(
        source="US Treasury",
        as_of=NOW,
        days=[
            YieldDay(day=start + timedelta(days=i), two_year=v, ten_year=4.0)
            for i, v in enumerate(two_year)
        ],
    )


def index(key: str, change: float) -> IndexQuote:
    name = {"spx": "S&P 500", "ndx": "Nasdaq Composite"}[key]
    return IndexQuote(
        source="Yahoo Finance",
        as_of=NOW,
        symbol=key,
        name=name,
        last=100 + change,
        previous_close=100.0,
        change_pct=change,
        session=date(2026, 11, 19),
    )


def fear_greed(*values: int) -> FearGreed:
    """Values oldest first, one a day, ending today."""
    start = NOW.date() - timedelta(days=len(values) - 1)
    return FearGreed(
        source="alternative.me",
        as_of=NOW,
        points=[
            FearGreedPoint(day=start + timedelta(days=i), value=v, label=_fng_label(v))
            for i, v in enumerate(values)
        ],
    )


def _fng_label(value: int) -> str:
    """alternative.me's classification bands."""
    for top, label in ((24, "Extreme Fear"), (46, "Fear"), (54, "Neutral"), (75, "Greed")):
        if value <= top:
            return label
    return "Extreme Greed"
