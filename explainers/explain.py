"""Snapshot + driver results -> `Explanation`: the verdict, ranked drivers and their context."""

from __future__ import annotations

import difflib
import math
import statistics
from datetime import datetime, timedelta

from explainers import formatting as fmt
from explainers.errors import CoinDataUnavailable, UnknownCoin
from explainers.models import (
    AltcoinView,
    CoinMarket,
    CoinView,
    DriverResult,
    Explanation,
    Headline,
    Lookback,
    Move,
    Onset,
    Replay,
    Sentiment,
    Snapshot,
    Verdict,
    WatchItem,
)
from explainers.settings import Thresholds

ALTCOIN_SAMPLE = 50
HEADLINES = 5
DRIVER_HEADLINES = 2
#: older headlines are history, not news about this move
HEADLINE_MAX_AGE = timedelta(hours=48)
# stablecoins and wrapped or staked copies of BTC/ETH do not tell whether altcoins fall harder
PEGGED = {
    "usdt",
    "usdc",
    "dai",
    "fdusd",
    "usde",
    "tusd",
    "pyusd",
    "usdd",
    "busd",
    "frax",
    "usds",
    "rlusd",
    "usd1",
    "usdtb",
    "usdf",
    "gusd",
    "lusd",
    "susds",
    "susde",
    "usdx",
    "eurc",
    "xaut",
    "paxg",
    "bsc-usd",
    "wbtc",
    "weth",
    "steth",
    "wsteth",
    "weeth",
    "cbbtc",
    "reth",
    "cbeth",
    "meth",
    "ezeth",
    "rseth",
    "wbeth",
    "lbtc",
    "solvbtc",
    "tbtc",
    "btcb",
    "jitosol",
    "msol",
    "bnsol",
    "lseth",
    "clbtc",
}


def coin_by_query(snapshot: Snapshot, query: str) -> CoinMarket:
    """Find a coin by symbol or CoinGecko id, case-insensitively; the best-ranked symbol wins."""
    if snapshot.markets is None:
        raise CoinDataUnavailable(query)
    q = query.strip().lower()
    coins = snapshot.markets.coins
    exact = [c for c in coins if c.id.lower() == q or c.symbol.lower() == q or c.name.lower() == q]
    if exact:
        return min(exact, key=lambda c: c.rank if c.rank is not None else 10**9)
    names = {c.symbol.lower(): c.symbol.upper() for c in coins} | {
        c.id.lower(): c.id for c in coins
    }
    close = difflib.get_close_matches(q, list(names), n=3, cutoff=0.6)
    raise UnknownCoin(query, [names[m] for m in close])


def _coin(snapshot: Snapshot, coin_id: str) -> CoinMarket | None:
    if snapshot.markets is None:
        return None
    return next((c for c in snapshot.markets.coins if c.id == coin_id), None)


def moves(snapshot: Snapshot) -> list[Move]:
    result: list[Move] = []
    g = snapshot.global_market
    if g is not None:
        result.append(
            Move(
                label="Total market cap",
                change_1h=None,  # /global has no 1h change
                change_24h=g.market_cap_change_24h_pct,
                price=g.total_market_cap_usd,
                source=g.source,
                as_of=g.as_of,
            )
        )
    for coin_id, fallback in (
        ("bitcoin", snapshot.btc_fallback),
        ("ethereum", snapshot.eth_fallback),
    ):
        coin = _coin(snapshot, coin_id)
        if coin is not None and snapshot.markets is not None:
            result.append(
                Move(
                    label=coin.symbol.upper(),
                    change_1h=coin.change_1h,
                    change_24h=coin.change_24h,
                    price=coin.price,
                    source=snapshot.markets.source,
                    as_of=coin.last_updated or snapshot.markets.as_of,
                )
            )
        elif fallback is not None:
            result.append(
                Move(
                    label="BTC" if coin_id == "bitcoin" else "ETH",
                    change_1h=None,
                    change_24h=fallback.change_24h_pct,
                    price=fallback.price,
                    source=fallback.source,
                    as_of=fallback.as_of,
                )
            )
    return result


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def verdict(all_moves: list[Move], t: Thresholds) -> tuple[Verdict, float | None, float | None]:
    """Down when total cap or BTC is at/below the 24h threshold, or BTC at/below the 1h one."""
    by_label = {m.label: m for m in all_moves}
    cap = by_label.get("Total market cap")
    btc = by_label.get("BTC")
    # a change that is not a finite number is unknown: it makes the market neither down nor not
    changes_24h = [
        m.change_24h
        for m in (cap, btc)
        if m is not None and m.change_24h is not None and math.isfinite(m.change_24h)
    ]
    btc_1h = btc.change_1h if btc is not None and _finite(btc.change_1h) else None
    worst_24h = min(changes_24h) if changes_24h else None
    if worst_24h is None and btc_1h is None:
        return "unknown", None, None
    down = (worst_24h is not None and worst_24h <= t.market_down_24h_pct) or (
        btc_1h is not None and btc_1h <= t.btc_down_1h_pct
    )
    return ("down" if down else "not_down"), worst_24h, btc_1h


def altcoins(snapshot: Snapshot, t: Thresholds) -> AltcoinView | None:
    if snapshot.markets is None:
        return None
    btc = _coin(snapshot, "bitcoin")
    alts = [
        c
        for c in sorted(snapshot.markets.coins, key=lambda c: c.rank or 10**9)
        if c.id != "bitcoin" and c.symbol.lower() not in PEGGED and c.id not in PEGGED
    ][:ALTCOIN_SAMPLE]
    changes = [c.change_24h for c in alts if c.change_24h is not None]
    median = statistics.median(changes) if changes else None
    btc_24h = btc.change_24h if btc else None
    gap = median - btc_24h if median is not None and btc_24h is not None else None
    dominance = snapshot.global_market.btc_dominance if snapshot.global_market else None
    return AltcoinView(
        median_alt_24h=median,
        btc_24h=btc_24h,
        alt_vs_btc_24h=gap,
        btc_dominance=dominance,
        sample=len(changes),
        falling_harder=None if gap is None else gap <= -t.alt_gap_pts,
    )


def sentiment(snapshot: Snapshot) -> Sentiment | None:
    fg = snapshot.fear_greed
    if fg is None or not fg.points:
        return None
    latest = fg.points[-1]
    week_ago = next((p for p in fg.points if (latest.day - p.day).days == 7), None)
    return Sentiment(
        value=latest.value,
        label=latest.label,
        change_7d=latest.value - week_ago.value if week_ago else None,
        as_of=fg.as_of,
    )


def recent_headlines(snapshot: Snapshot) -> list[Headline]:
    """Headlines published within HEADLINE_MAX_AGE before the snapshot; undated ones stay."""
    cutoff = snapshot.taken_at - HEADLINE_MAX_AGE
    return [h for h in snapshot.headlines if h.published is None or h.published >= cutoff]


def _with_headlines(drivers: list[DriverResult], headlines: list[Headline]) -> list[DriverResult]:
    return [
        d.model_copy(
            update={"headlines": [h for h in headlines if d.key in h.drivers][:DRIVER_HEADLINES]}
        )
        for d in drivers
    ]


def watch(snapshot: Snapshot, lb: Lookback, now: datetime) -> list[WatchItem]:
    """The signals to follow next, each with its current value."""
    items: list[WatchItem] = []
    for key in ("spx", "ndx"):
        quote = snapshot.indices.get(key)
        if quote is not None:
            when = "today" if quote.market_open else f"last session {fmt.day(quote.session)}"
            items.append(
                WatchItem(
                    label=f"{quote.name} ({when})",
                    value=fmt.pct(quote.change_pct, 2),
                    source=quote.source,
                    as_of=quote.as_of,
                )
            )
    if snapshot.etf is not None:
        reported = [d for d in snapshot.etf.days if d.total_musd is not None]
        if reported:
            items.append(
                WatchItem(
                    label=f"ETF net flow ({fmt.day(reported[-1].day)}); next day due after the US close",
                    value=fmt.musd(reported[-1].total_musd),
                    source=snapshot.etf.source,
                    as_of=snapshot.etf.as_of,
                )
            )
    if lb.liquidations_24h is not None:
        tracked = lb.liquidations_24h.tracked_since
        window = (
            f"since {fmt.when(tracked, now)} (tracking began then)"
            if tracked is not None and tracked > now - timedelta(hours=24)
            else "24h"
        )
        items.append(
            WatchItem(
                label=f"Long liquidations, {window}",
                value=fmt.usd(lb.liquidations_24h.long_usd),
                source=", ".join(lb.liquidations_24h.exchanges)
                or ", ".join(sorted({b.source for b in snapshot.liquidations}))
                or "stored",
                as_of=max((b.as_of for b in snapshot.liquidations), default=None),
            )
        )
    if snapshot.cut_odds is not None:
        items.append(
            WatchItem(
                label=f"Cut odds, {snapshot.cut_odds.meeting}",
                value=f"{snapshot.cut_odds.probability:.0%}",
                source=snapshot.cut_odds.source,
                as_of=snapshot.cut_odds.as_of,
            )
        )
    return items


def explain(
    snapshot: Snapshot,
    drivers: list[DriverResult],
    lb: Lookback,
    t: Thresholds,
    *,
    now: datetime,
    coin: str | None = None,
    replay: Replay | None = None,
    onsets: list[Onset] | None = None,
) -> Explanation:
    """Build the answer; raises UnknownCoin / CoinDataUnavailable for a coin it cannot find."""
    all_moves = moves(snapshot)
    the_verdict, worst_24h, btc_1h = verdict(all_moves, t)
    coin_view: CoinView | None = None
    if coin:
        found = coin_by_query(snapshot, coin)
        btc = _coin(snapshot, "bitcoin")
        cap = next((m for m in all_moves if m.label == "Total market cap"), None)
        coin_view = CoinView(
            id=found.id,
            symbol=found.symbol.upper(),
            name=found.name,
            move=Move(
                label=found.symbol.upper(),
                change_1h=found.change_1h,
                change_24h=found.change_24h,
                price=found.price,
                source=snapshot.markets.source if snapshot.markets else "",
                as_of=found.last_updated,
            ),
            vs_btc_24h=_diff(found.change_24h, btc.change_24h if btc else None),
            vs_market_24h=_diff(found.change_24h, cap.change_24h if cap else None),
        )
    tracked = lb.liquidations_24h.tracked_since if lb.liquidations_24h else None
    headlines = recent_headlines(snapshot)
    return Explanation(
        generated_at=now,
        data_time=snapshot.taken_at,
        verdict=the_verdict,
        market_change_24h=worst_24h,
        btc_change_1h=btc_1h,
        moves=all_moves,
        drivers=_with_headlines(drivers, headlines),
        coin=coin_view,
        altcoins=altcoins(snapshot, t),
        sentiment=sentiment(snapshot),
        headlines=headlines[:HEADLINES],
        watch=watch(snapshot, lb, now),
        sources=sorted(snapshot.statuses.values(), key=lambda s: s.label),
        liquidations_tracked_since=tracked,
        liquidation_venues=lb.liquidations_24h.venues if lb.liquidations_24h else [],
        replay=replay,
        onsets=[o for o in onsets or [] if o.key in {d.key for d in drivers if d.state == "fired"}],
    )


def _diff(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None
