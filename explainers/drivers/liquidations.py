"""Liquidation cascade: longs force-closed (summed over the venues read: Bybit's stream lists
every one, OKX's and Binance's sample them, OKX's REST lists its latest orders per family), or
open interest falling fast (summed across OKX, Bybit, Binance and Hyperliquid; OKX's own history
until an hour of sums is stored). The evidence names the venues summed; a total over a window
holding a gap says so (the answer's footer says how completely each venue is read)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from explainers import formatting as fmt
from explainers.drivers.base import Driver, ratio, status_labels
from explainers.models import (
    CoverageGap,
    DriverFigures,
    DriverResult,
    Evidence,
    LiquidationTotals,
    Lookback,
    Snapshot,
)
from explainers.settings import Thresholds
from explainers.sources.open_interest import sum_by_coin


class LiquidationFigures(DriverFigures):
    long_1h: float | None = None  # USD of longs liquidated in the last hour
    share_1h: float | None = None  # longs' share of all liquidations, 0..1
    long_24h: float | None = None
    share_24h: float | None = None
    # when tracking began less than 24h ago: the totals since then instead of 24h ones
    long_tracked: float | None = None
    share_tracked: float | None = None
    oi_change_1h: float | None = None  # BTC open interest change, %
    oi_venues: float | None = None  # venues the change is summed over (None: OKX alone)
    funding: float | None = None  # BTC funding rate per funding period (0.0001 = 0.01%)
    venues_read: float | None = None  # venues the liquidation totals sum (None: not known)


def _span(gap: CoverageGap, now: datetime) -> str:
    start = fmt.when(gap.start, now)
    if gap.end is None:
        return f"down since {start}"
    if gap.end.date() == gap.start.date():
        return f"disconnected {start.removesuffix(' UTC')}-{gap.end:%H:%M} UTC"
    return f"disconnected {start} to {fmt.when(gap.end, now)}"


def partial_note(totals: LiquidationTotals, window_start: datetime, now: datetime) -> str | None:
    """Why a total is partial: "partial: Binance disconnected 14:10-14:12 UTC"; a venue down
    now is not summed; else the venues with a gap. None when it is not partial, or only because
    tracking began inside the window (the coverage line says since when)."""
    if not totals.partial:
        return None
    notes = [f"{v.exchange} {_span(gap, now)}" for v in totals.venues for gap in v.gaps]
    notes += [
        f"{v.exchange} not connected"
        for v in totals.venues
        if v.tracked_since is None and not v.gaps
    ]
    if not notes:
        # tracking that began inside the window is said by the coverage line's "since"
        gapped = [v.exchange for v in totals.venues if v.gap_in_window and v.via == "stream"]
        started = totals.tracked_since is not None and totals.tracked_since > window_start
        if started and not gapped:
            return None
        return f"partial: a gap in {', '.join(gapped)}" if gapped else "partial"
    return "partial: " + ", ".join(notes)


def evaluate(s: Snapshot, lb: Lookback, t: Thresholds) -> DriverResult:
    threshold = (
        f"longs ≥ {fmt.usd(t.liq_long_1h_usd)} in 1h or ≥ {fmt.usd(t.liq_long_24h_usd)} in 24h "
        f"with longs ≥ {t.liq_long_share:.0%} of the total; or open interest ≥ {t.oi_drop_1h_pct:g}% down in 1h"
    )
    evidence: list[Evidence] = []
    severities: list[float] = []
    # "1h", "24h" or "tracked" -> (longs, longs' share)
    longs: dict[str, tuple[float, float | None]] = {}
    okx_label = s.liquidations[0].source if s.liquidations else "OKX"
    newest = max((b.as_of for b in s.liquidations), default=None)

    for window, totals, limit in (
        ("1h", lb.liquidations_1h, t.liq_long_1h_usd),
        ("24h", lb.liquidations_24h, t.liq_long_24h_usd),
    ):
        if totals is None:
            continue
        share = totals.long_usd / totals.total_usd if totals.total_usd else None
        # a window longer than tracking so far is a lower bound: say since when, not "24h"
        since = totals.tracked_since
        if (
            window == "24h"
            and since is not None
            and since > s.taken_at - timedelta(hours=totals.window_h)
        ):
            if (
                lb.liquidations_1h is not None
                and lb.liquidations_1h.tracked_since == since
                and (s.taken_at - since) <= timedelta(hours=1)
            ):
                continue  # the 1h line already covers everything tracked
            window_label = f"since {fmt.when(since, s.taken_at)} (tracked)"
        else:
            window_label = window
        longs["tracked" if window_label != window else window] = (totals.long_usd, share)
        # a "since ... (tracked)" label already says where the window starts
        note = partial_note(
            totals,
            since
            if window_label != window and since is not None
            else s.taken_at - timedelta(hours=totals.window_h),
            s.taken_at,
        )
        evidence.append(
            Evidence(
                label=f"Long liquidations, {window_label}",
                value=f"{fmt.usd(totals.long_usd)} of {fmt.usd(totals.total_usd)}"
                + (f" ({share:.0%} longs)" if share is not None else "")
                + (f" ({note})" if note else ""),
                source=", ".join(totals.exchanges) or okx_label,
                # streamed venues are read up to the refresh; polled ones as of their last list
                as_of=s.taken_at if any(v.via == "stream" for v in totals.venues) else newest,
            )
        )
        if share is not None and share >= t.liq_long_share:
            severities.append(ratio(totals.long_usd, limit))

    read = lb.liquidations_24h or lb.liquidations_1h
    oi_change, oi_venues = _open_interest(s, lb, t, evidence, severities)
    funding = next((f for f in s.funding if f.instrument == "BTC-USDT-SWAP"), None)
    if funding is not None:
        evidence.append(
            Evidence(
                label="BTC funding rate",
                value=f"{funding.rate * 100:+.4f}% per funding period",
                source=funding.source,
                as_of=funding.as_of,
            )
        )

    none: tuple[float | None, float | None] = (None, None)
    figures = LiquidationFigures(
        long_1h=longs.get("1h", none)[0],
        share_1h=longs.get("1h", none)[1],
        long_24h=longs.get("24h", none)[0],
        share_24h=longs.get("24h", none)[1],
        long_tracked=longs.get("tracked", none)[0],
        share_tracked=longs.get("tracked", none)[1],
        oi_change_1h=oi_change,
        oi_venues=oi_venues,
        funding=funding.rate if funding is not None else None,
        venues_read=float(len(read.exchanges)) if read is not None and read.exchanges else None,
    )
    missing = status_labels(
        s,
        "okx_open_interest",
        *(k for k in s.statuses if k.startswith(("okx_liquidations", "oi_"))),
    )
    if lb.liquidations_1h is None and oi_change is None:
        return DRIVER.unknown(threshold, missing, evidence=evidence, figures=figures)
    return DRIVER.judged(
        threshold,
        max(severities, default=0.0),
        evidence=evidence,
        missing=missing,
        figures=figures,
    )


def _open_interest(
    s: Snapshot, lb: Lookback, t: Thresholds, evidence: list[Evidence], severities: list[float]
) -> tuple[float | None, float | None]:
    """BTC open interest's 1h change (and over how many venues): summed across the venues
    that answered now and ~1h ago; else OKX's own history (the first hour). Each venue's
    figure is evidence."""
    btc = sum_by_coin(s.venue_open_interest).get("BTC")
    change: float | None = None
    venues: float | None = None
    if btc is not None:
        both = [v for v in btc.venues if v.venue in lb.oi_venues_1h_ago_usd]
        before = sum(lb.oi_venues_1h_ago_usd[v.venue] for v in both)
        if both and before > 0:
            now_usd = sum(v.usd for v in both)
            change = (now_usd - before) / before * 100
            venues = float(len(both))
            evidence.append(
                Evidence(
                    label=f"BTC open interest, 1h, {len(both)} venues",
                    value=f"{fmt.usd(now_usd)} ({fmt.pct(change)})",
                    source=", ".join(v.venue for v in both),
                    as_of=min(v.at for v in both),
                )
            )
    oi_okx = next((o for o in s.open_interest if o.instrument == "BTC-USDT-SWAP"), None)
    if change is None and oi_okx is not None and lb.oi_1h_ago_usd:
        change = (oi_okx.oi_usd - lb.oi_1h_ago_usd) / lb.oi_1h_ago_usd * 100
        evidence.append(
            Evidence(
                label="BTC open interest, 1h",
                value=f"{fmt.usd(oi_okx.oi_usd)} ({fmt.pct(change)})",
                source=oi_okx.source,
                as_of=oi_okx.as_of,
            )
        )
    if change is not None:
        severities.append(ratio(-change, t.oi_drop_1h_pct))
    if btc is not None:
        for venue in btc.venues:
            evidence.append(
                Evidence(
                    label=f"BTC open interest, {venue.venue}",
                    value=fmt.usd(venue.usd),
                    source=venue.venue,
                    as_of=venue.at,
                )
            )
    return change, venues


def chart_figure(f: LiquidationFigures) -> str | None:
    if f.long_1h is not None:
        return f"{fmt.usd(f.long_1h)} longs 1h"
    if f.oi_change_1h is not None:
        return f"OI {fmt.pct(f.oi_change_1h)} 1h"
    return None


DRIVER = Driver(
    key="liquidations",
    name="Liquidation cascade",
    short_name="Liquidations",
    role="amplifier",
    subject="long liquidations",
    patterns=re.compile(r"(?i:\bliquidat\w*)"),
    figures=LiquidationFigures,
    rule=evaluate,
    chart_figure=chart_figure,
)
