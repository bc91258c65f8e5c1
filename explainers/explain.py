"""Snapshot + driver results -> `Explanation`: the verdict, ranked drivers and their context."""

from __future__ import annotations

import difflib
import math
import statistics
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from explainers import formatting as fmt
from explainers.errors import CoinDataUnavailable, UnknownCoin
from explainers.models import (
    AltcoinView,
    Calendar,
    CoinMarket,
    CoinView,
    DriverResult,
    Explanation,
    FomcDecision,
    Fundamentals,
    Headline,
    Lookback,
    Move,
    Onset,
    Replay,
    RiskGauge,
    RiskOff,
    Sentiment,
    Snapshot,
    Verdict,
    WatchItem,
    change_pct,
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


# --- context: never a driver, never counted toward an alert --------------------------------


def fundamentals(snapshot: Snapshot, t: Thresholds) -> Fundamentals | None:
    """The network and the stablecoin float against their own recent past; None when none of
    their sources answered."""
    hr, sc, tx = snapshot.hash_rate, snapshot.stablecoins, snapshot.transactions
    read = [r for r in (hr, sc, tx) if r is not None]
    if not read:
        return None
    hash_change = hr.change_pct if hr is not None else None
    supply_change = sc.change_7d_pct if sc is not None else None
    return Fundamentals(
        hash_rate_vs_30d=hash_change,
        stablecoin_usd=sc.total_usd if sc is not None else None,
        stablecoin_change_7d=supply_change,
        transactions_vs_30d=tx.change_pct if tx is not None else None,
        hash_rate_falling=hash_change is not None and hash_change <= t.hash_rate_drop_pct,
        capital_leaving=supply_change is not None and supply_change <= t.stablecoin_drop_7d_pct,
        sources=[r.source for r in read],
        as_of=min(r.as_of for r in read),
    )


def risk_off(snapshot: Snapshot, t: Thresholds) -> RiskOff | None:
    """VIX, the dollar index and the yen on their latest day; None when FRED gave none."""
    gauges: list[RiskGauge] = []
    vix = snapshot.macro.get("vix")
    if vix is not None:
        change = vix.change_pct
        gauges.append(
            RiskGauge(
                key="vix",
                level=vix.value,
                change_pct=change,
                day=vix.day,
                source=vix.source,
                notable=vix.value >= t.vix_level
                or (change is not None and change >= t.vix_rise_pct),
            )
        )
    dollar = snapshot.macro.get("dollar")
    if dollar is not None:
        change = dollar.change_pct
        gauges.append(
            RiskGauge(
                key="dollar",
                level=dollar.value,
                change_pct=change,
                day=dollar.day,
                source=dollar.source,
                notable=change is not None and change >= t.dollar_rise_pct,
            )
        )
    usdjpy = snapshot.macro.get("usdjpy")
    if usdjpy is not None:
        # yen per dollar falling is the yen rising: its change against the dollar
        yen = change_pct(usdjpy.previous, usdjpy.value) if usdjpy.previous is not None else None
        gauges.append(
            RiskGauge(
                key="usdjpy",
                level=usdjpy.value,
                change_pct=yen,
                day=usdjpy.day,
                source=usdjpy.source,
                notable=yen is not None and yen >= t.yen_rise_pct,
            )
        )
    return RiskOff(gauges=gauges) if gauges else None


#: FOMC statements come out at 2 pm Eastern on a meeting's second day
EASTERN = ZoneInfo("America/New_York")
FOMC_TIME = time(14, 0)
#: US spot-ETF flows are published after the US close (4 pm Eastern)
US_CLOSE = time(16, 0)
FED_SCHEDULE = "Fed schedule"


def decision_time(day: date) -> datetime:
    return datetime.combine(day, FOMC_TIME, EASTERN).astimezone(UTC)


def next_fomc(snapshot: Snapshot, t: Thresholds, now: datetime) -> FomcDecision | None:
    """The soonest decision ahead that a prediction market read (Polymarket, Kalshi) or the Fed's
    published schedule (settings) names, with the cut odds of a market for that meeting."""
    markets: list[tuple[date, str, float]] = []
    polymarket, kalshi = snapshot.cut_odds, snapshot.kalshi_odds
    if polymarket is not None and polymarket.meeting_date is not None:
        markets.append((polymarket.meeting_date, polymarket.source, polymarket.probability))
    if kalshi is not None:
        markets.append((kalshi.meeting_date, kalshi.source, kalshi.cut_pct / 100))
    days = {d for d, _, _ in markets} | {date.fromisoformat(d) for d in t.fomc_dates}
    ahead = sorted(d for d in days if decision_time(d) > now)
    if not ahead:
        return None
    day = ahead[0]
    named = [(source, odds) for d, source, odds in markets if d == day]
    if named:
        source, odds = named[0]
        return FomcDecision(at=decision_time(day), source=source, cut_odds=odds, odds_source=source)
    return FomcDecision(at=decision_time(day), source=FED_SCHEDULE)


def last_fomc(t: Thresholds, now: datetime) -> datetime | None:
    """The last decision of the Fed's schedule (settings) before now."""
    past = [decision_time(date.fromisoformat(d)) for d in t.fomc_dates]
    return max((at for at in past if at <= now), default=None)


def etf_due(snapshot: Snapshot, now: datetime) -> datetime | None:
    """When today's US spot-ETF flows come (today's US close, a weekday), if not yet reported."""
    if snapshot.etf is None:
        return None
    today = now.astimezone(EASTERN).date()
    reported = [d.day for d in snapshot.etf.days if d.total_musd is not None]
    if today.weekday() >= 5 or (reported and max(reported) >= today):
        return None
    return datetime.combine(today, US_CLOSE, EASTERN).astimezone(UTC)


def calendar(snapshot: Snapshot, t: Thresholds, now: datetime) -> Calendar:
    return Calendar(
        fomc=next_fomc(snapshot, t, now),
        last_fomc=last_fomc(t, now),
        etf_due=etf_due(snapshot, now),
    )


def _etf_pending(due: datetime | None, now: datetime) -> str:
    if due is None:
        return "next day due after the US close"
    if due > now:
        return f"flows for today after the US close, {fmt.until(due, now)}"
    return f"flows for today due (the US closed {fmt.since(due, now)})"


def _odds_time(snapshot: Snapshot, source: str | None) -> datetime | None:
    for odds in (snapshot.cut_odds, snapshot.kalshi_odds):
        if odds is not None and source == odds.source:
            return odds.as_of
    return None


def watch(
    snapshot: Snapshot, lb: Lookback, now: datetime, cal: Calendar | None = None
) -> list[WatchItem]:
    """The signals to follow next, each with its current value, and what is due when."""
    items: list[WatchItem] = []
    fomc = cal.fomc if cal is not None else None
    if fomc is not None:
        odds = f"cut odds {fomc.cut_odds:.0%}" if fomc.cut_odds is not None else "cut odds unknown"
        items.append(
            WatchItem(
                label=f"FOMC decision {fmt.until(fomc.at, now)} ({fmt.day_time(fomc.at)})",
                value=odds,
                source=fomc.odds_source or fomc.source,
                as_of=_odds_time(snapshot, fomc.odds_source),
            )
        )
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
                    label=f"ETF net flow ({fmt.day(reported[-1].day)}); "
                    + _etf_pending(cal.etf_due if cal is not None else None, now),
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
    if snapshot.cut_odds is not None and (fomc is None or fomc.source != snapshot.cut_odds.source):
        items.append(
            WatchItem(
                label=f"Cut odds, {snapshot.cut_odds.meeting}",
                value=f"{snapshot.cut_odds.probability:.0%}",
                source=snapshot.cut_odds.source,
                as_of=snapshot.cut_odds.as_of,
            )
        )
    difficulty = snapshot.difficulty
    if difficulty is not None and difficulty.retarget_at > now:
        items.append(
            WatchItem(
                label=f"Bitcoin difficulty adjustment {fmt.until(difficulty.retarget_at, now)} "
                f"({difficulty.remaining_blocks:,} blocks)",
                value=f"{fmt.pct(difficulty.change_pct)} estimated",
                source=difficulty.source,
                as_of=difficulty.as_of,
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
    cal = calendar(snapshot, t, now)
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
        watch=watch(snapshot, lb, now, cal),
        sources=sorted(snapshot.statuses.values(), key=lambda s: s.label),
        liquidations_tracked_since=tracked,
        liquidation_venues=lb.liquidations_24h.venues if lb.liquidations_24h else [],
        replay=replay,
        onsets=[o for o in onsets or [] if o.key in {d.key for d in drivers if d.state == "fired"}],
        fundamentals=fundamentals(snapshot, t),
        risk_off=risk_off(snapshot, t),
        calendar=cal,
    )


def _diff(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None
