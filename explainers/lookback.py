"""Comparisons over time: from a source's own history where it has one, else from stored figures.

`remember` writes this refresh's figures and liquidation events into the history; `lookback`
reads back what the drivers compare against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from explainers.history import MAX_POLL_GAP, History, coverage_start
from explainers.models import (
    CoinLiquidations,
    LiquidationCoverage,
    LiquidationMode,
    Liquidations,
    LiquidationTotals,
    LiquidationVenue,
    Lookback,
    Onset,
    Snapshot,
)
from explainers.settings import Thresholds
from explainers.sources.open_interest import sum_by_coin
from explainers.streams.binance import binance_symbol
from explainers.streams.bybit import bybit_symbol
from explainers.streams.okx import okx_swap

PREMIUM_INSTRUMENT = "BTC-USDT-SWAP"
#: how far back the stored driver states are read to find where a firing streak began
ONSET_WINDOW = timedelta(hours=24)
#: a streak's start is seen only when the stored state just before it (quiet) is at most this
#: much older: across a longer hole (the bot down) the driver may have begun anywhere in between
ONSET_MAX_GAP = timedelta(minutes=15)
#: the cross-venue BTC open interest sum, and (with ":<venue>") each venue's part of it
OI_BTC = "oi_usd_btc"
#: how completely each venue's stream lists liquidations, when the running streams do not say
#: (a venue streamed by an earlier run): Bybit pushes every one, OKX and Binance sample
STREAM_MODES: dict[str, LiquidationMode] = {"Bybit": "all", "OKX": "sampled", "Binance": "sampled"}
#: the order venues are named in
VENUE_ORDER = ("Bybit", "OKX", "Binance")
#: REST polls list only each instrument family's latest orders: always a sample
REST_MODE: LiquidationMode = "sampled"


def premium_series(snapshot: Snapshot) -> list[tuple[datetime, float]]:
    """Coinbase premium in % for each minute both venues closed, oldest first. OKX's USDT price
    is converted to USD with the snapshot's USDT-USD quote; without one it is taken as USD
    (unadjusted: the driver's evidence says so)."""
    if snapshot.coinbase_btc is None or snapshot.okx_btc is None:
        return []
    rate = snapshot.usdt.rate if snapshot.usdt is not None else 1.0
    okx = {c.start: c.close * rate for c in snapshot.okx_btc.candles}
    return [
        (c.start, (c.close - okx[c.start]) / okx[c.start] * 100)
        for c in snapshot.coinbase_btc.candles
        if c.start in okx and okx[c.start] > 0
    ]


def _btc_oi(snapshot: Snapshot) -> float | None:
    for oi in snapshot.open_interest:
        if oi.instrument == PREMIUM_INSTRUMENT:
            return oi.oi_usd
    return None


def figures_of(snapshot: Snapshot) -> dict[str, float]:
    """The figures `lookback` reads back later (only those this refresh actually read)."""
    figures: dict[str, float] = {}
    premiums = premium_series(snapshot)
    if premiums:
        figures["premium_pct"] = premiums[-1][1]
    if (oi := _btc_oi(snapshot)) is not None:
        figures["oi_usd"] = oi
    btc = sum_by_coin(snapshot.venue_open_interest).get("BTC")
    if btc is not None:
        figures[OI_BTC] = btc.usd
        figures.update({f"{OI_BTC}:{v.venue}": v.usd for v in btc.venues})
    if snapshot.cut_odds is not None:
        figures["cut_odds"] = snapshot.cut_odds.probability
    return figures


def track_liquidations(history: History, batches: list[Liquidations], polled_at: datetime) -> int:
    """Store one poll's liquidation lists; return how many events were new."""
    if not batches:
        return 0  # nothing read: the gap since the last poll grows, and is seen as one
    return history.add_liquidations(
        [e for batch in batches for e in batch.events],
        polled_at=polled_at,
        covered_since=coverage_start((b.events for b in batches), polled_at),
    )


def remember(snapshot: Snapshot, history: History) -> None:
    history.add_figures(snapshot.taken_at, figures_of(snapshot))
    track_liquidations(history, snapshot.liquidations, snapshot.taken_at)


def _nearest(
    series: Sequence[tuple[datetime, float]], target: datetime, tolerance: timedelta
) -> float | None:
    best = min(series, key=lambda item: abs(item[0] - target), default=None)
    if best is None or abs(best[0] - target) > tolerance:
        return None
    return best[1]


def venue_rank(exchange: str) -> tuple[int, str]:
    return (VENUE_ORDER.index(exchange) if exchange in VENUE_ORDER else len(VENUE_ORDER), exchange)


def venues_of(
    coverage: LiquidationCoverage, modes: Mapping[str, LiquidationMode] | None = None
) -> list[LiquidationVenue]:
    """Each venue of a coverage with how completely it is read: a streamed venue as the running
    stream says (`modes`, exchange -> "all"/"sampled"), else as its stream is known to; a
    polled one sampled."""
    return [
        LiquidationVenue(
            exchange=v.exchange,
            mode=(
                REST_MODE
                if v.via == "rest"
                else (modes or {}).get(v.exchange, STREAM_MODES.get(v.exchange, "sampled"))
            ),
            via=v.via,
            tracked_since=v.tracked_since,
            gap_in_window=v.gap_in_window,
            gaps=v.gaps,
        )
        for v in sorted(coverage.venues, key=lambda v: venue_rank(v.exchange))
    ]


def _totals(
    history: History,
    now: datetime,
    hours: int,
    modes: Mapping[str, LiquidationMode] | None = None,
) -> LiquidationTotals | None:
    """Totals over the window, counted from when every venue tracked now has been tracked; None
    when nothing is tracked now (no venue streaming, and the polls have not answered for longer
    than a poll gap: what is stored is no longer "the last hour"). Partial when a venue started,
    dropped or restarted inside the window."""
    window_start = now - timedelta(hours=hours)
    coverage = history.liquidation_coverage(window_start, now)
    starts = [v.tracked_since for v in coverage.tracked if v.tracked_since is not None]
    tracked_since = history.liquidations_tracked_since()
    last_poll = history.liquidations_last_poll()
    if tracked_since is not None and last_poll is not None and now - last_poll <= MAX_POLL_GAP:
        starts.append(tracked_since)  # polls answer even when no venue has listed an event yet
    if not starts:
        return None
    since = max(window_start, *starts)
    long_usd, short_usd = history.liquidation_totals(since, now)
    return LiquidationTotals(
        window_h=hours,
        long_usd=long_usd,
        short_usd=short_usd,
        tracked_since=max(starts),
        exchanges=sorted((v.exchange for v in coverage.tracked), key=venue_rank),
        partial=coverage.partial or since > window_start,
        venues=venues_of(coverage, modes),
    )


def _premium_samples(snapshot: Snapshot, history: History, t: Thresholds) -> list[float]:
    from_candles = [value for _, value in premium_series(snapshot)]
    if len(from_candles) >= t.premium_samples:
        return from_candles[-t.premium_samples :]
    # the candle history was short or missing: fall back to the premiums stored at past refreshes
    stored = history.figures("premium_pct", snapshot.taken_at - timedelta(minutes=15))
    return [value for _, value in stored][-t.premium_samples :]


def lookback(
    snapshot: Snapshot,
    history: History,
    t: Thresholds,
    modes: Mapping[str, LiquidationMode] | None = None,
) -> Lookback:
    """modes: how completely each streamed venue is read now (exchange -> "all"/"sampled")."""
    now = snapshot.taken_at
    hour_ago = now - timedelta(hours=1)

    oi_1h_ago: float | None = None
    for oi in snapshot.open_interest:
        if oi.instrument == PREMIUM_INSTRUMENT and oi.history:
            oi_1h_ago = _nearest(
                [(p.ts, p.oi_usd) for p in oi.history], hour_ago, timedelta(minutes=10)
            )
    if oi_1h_ago is None:
        oi_1h_ago = _nearest(
            history.figures("oi_usd", hour_ago - timedelta(minutes=10)),
            hour_ago,
            timedelta(minutes=10),
        )

    # each venue's stored BTC open interest ~1h ago (the cross-venue change compares like with
    # like: only venues that answered both then and now)
    oi_venues_1h_ago: dict[str, float] = {}
    for venue in {v.venue for v in snapshot.venue_open_interest}:
        value = _nearest(
            history.figures(f"{OI_BTC}:{venue}", hour_ago - timedelta(minutes=10)),
            hour_ago,
            timedelta(minutes=10),
        )
        if value is not None:
            oi_venues_1h_ago[venue] = value

    week_ago = now - timedelta(days=7)
    cut_7d: float | None = None
    if snapshot.cut_odds is not None and snapshot.cut_odds.history:
        cut_7d = _nearest(
            [(p.ts, p.probability) for p in snapshot.cut_odds.history], week_ago, timedelta(days=1)
        )
    if cut_7d is None:
        cut_7d = _nearest(
            history.figures("cut_odds", week_ago - timedelta(days=1)), week_ago, timedelta(days=1)
        )

    two_5d: float | None = None
    if snapshot.yields is not None:
        reported = [d.two_year for d in snapshot.yields.days if d.two_year is not None]
        if len(reported) >= 6:
            two_5d = reported[-6]

    return Lookback(
        liquidations_1h=_totals(history, now, 1, modes),
        liquidations_24h=_totals(history, now, 24, modes),
        premium_samples=_premium_samples(snapshot, history, t),
        oi_1h_ago_usd=oi_1h_ago,
        oi_venues_1h_ago_usd=oi_venues_1h_ago,
        cut_odds_7d_ago=cut_7d,
        two_year_5d_ago=two_5d,
    )


def driver_state_figure(key: str) -> str:
    """The stored figure of a driver's state after each refresh: 1 fired, 0 quiet."""
    return f"driver_{key}"


def onsets(history: History, keys: Sequence[str], now: datetime) -> list[Onset]:
    """For each firing driver in `keys`, when its current streak began, where the stored states
    show it begin: a fired state right after a quiet one no more than ONSET_MAX_GAP older. A
    driver firing since the first state stored in the window, or after a hole, is left out: its
    start was not seen. Oldest first."""
    found: list[Onset] = []
    for key in keys:
        series = history.figures(driver_state_figure(key), now - ONSET_WINDOW)
        start: datetime | None = None
        previous: tuple[datetime, float] | None = None
        for at, value in series:
            if value >= 1.0:
                if previous is not None and previous[1] < 1.0:
                    start = at if at - previous[0] <= ONSET_MAX_GAP else None
                elif previous is None:
                    start = None
            else:
                start = None
            previous = (at, value)
        if start is not None and previous is not None and previous[1] >= 1.0:
            found.append(Onset(key=key, at=start))
    return sorted(found, key=lambda o: o.at)


def coin_instruments(coin: str) -> list[str]:
    """A coin's USDT perpetual on each streamed venue (Bybit and Binance share a name)."""
    return sorted({bybit_symbol(coin), binance_symbol(coin), okx_swap(coin)})


def coin_liquidations(
    history: History, coin: str, venues: Sequence[LiquidationVenue], now: datetime
) -> CoinLiquidations:
    """One coin's own liquidations over the last 1h and 24h, from where its tracking began
    when that is later (the earliest start among the venues streaming it now). No venue
    tracking it: not tracked yet, no sums."""
    starts = [v.tracked_since for v in venues if v.tracked_since is not None]
    if not starts:
        return CoinLiquidations(venues=list(venues), until=now)
    tracked = min(starts)
    instruments = coin_instruments(coin)
    long_1h, short_1h = history.instrument_totals(
        instruments, max(tracked, now - timedelta(hours=1)), now
    )
    day: tuple[float | None, float | None] = (None, None)
    if tracked <= now - timedelta(hours=1):
        day = history.instrument_totals(instruments, max(tracked, now - timedelta(hours=24)), now)
    return CoinLiquidations(
        venues=list(venues),
        tracked_since=tracked,
        until=now,
        long_1h=long_1h,
        short_1h=short_1h,
        long_24h=day[0],
        short_24h=day[1],
    )
