"""The six sell-off drivers of DESIGN.md as pure functions of (snapshot, lookback, thresholds).

Each returns a `DriverResult`: fired, quiet, or unknown when the data it needs could not be read.
A driver with part of its data missing decides on the part it has and names what is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from explainers import formatting as fmt
from explainers.models import DriverResult, Evidence, Lookback, Snapshot
from explainers.settings import Thresholds
from explainers.sources.okx import SOURCE as OKX

FEAR_GREED_URL = "https://alternative.me/crypto/fear-and-greed-index/"
TREASURY_URL = "https://home.treasury.gov/resource-center/data-chart-center/interest-rates"
YAHOO_QUOTE_URL = "https://finance.yahoo.com/quote/{symbol}"
INDEX_SYMBOLS = {"spx": "%5EGSPC", "ndx": "%5EIXIC"}

NAMES = {
    "liquidations": "Liquidation cascade",
    "etf": "ETF outflows",
    "institutional": "Institutional selling",
    "fed": "Fed uncertainty",
    "stocks": "Stock market weakness",
    "fear": "Fear spreading",
}


def _ratio(value: float, threshold: float) -> float:
    """How far past a threshold a value is, as a multiple of it (both on the same side of 0)."""
    # rounded so a figure exactly at its threshold is not lost to float noise (14.999... bp)
    return round(value / threshold, 9) if threshold else 0.0


def _status_labels(snapshot: Snapshot, *keys: str) -> list[str]:
    """Labels of the listed sources that did not deliver this refresh."""
    return [
        snapshot.statuses[k].label
        for k in keys
        if k in snapshot.statuses and snapshot.statuses[k].state in ("failed", "blocked")
    ]


def _unknown(
    key: str,
    threshold: str,
    missing: list[str],
    *,
    evidence: list[Evidence] | None = None,
    figures: dict[str, float | None] | None = None,
) -> DriverResult:
    """A driver that cannot be judged: never quiet, never zero. `missing` names only sources that
    failed; empty when they answered but there is too little data so far."""
    return DriverResult(
        key=key,
        name=NAMES[key],
        state="unknown",
        threshold=threshold,
        evidence=evidence or [],
        missing=missing,
        figures=figures or {},
    )


def _judged(
    key: str,
    threshold: str,
    severity: float,
    *,
    evidence: list[Evidence],
    figures: dict[str, float | None],
    missing: list[str] | None = None,
    fired: bool | None = None,
) -> DriverResult:
    """A driver decided on its data: fired when past its threshold (severity >= 1)."""
    return DriverResult(
        key=key,
        name=NAMES[key],
        state="fired" if (severity >= 1.0 if fired is None else fired) else "quiet",
        severity=severity,
        threshold=threshold,
        evidence=evidence,
        missing=missing or [],
        figures=figures,
    )


def liquidations(s: Snapshot, lb: Lookback, t: Thresholds) -> DriverResult:
    threshold = (
        f"longs ≥ {fmt.usd(t.liq_long_1h_usd)} in 1h or ≥ {fmt.usd(t.liq_long_24h_usd)} in 24h "
        f"with longs ≥ {t.liq_long_share:.0%} of the total; or open interest ≥ {t.oi_drop_1h_pct:g}% down in 1h"
    )
    evidence: list[Evidence] = []
    severities: list[float] = []
    figures: dict[str, float | None] = {}
    okx_label = s.liquidations[0].source if s.liquidations else "OKX"
    newest = max((b.as_of for b in s.liquidations), default=None)

    for window, totals, limit in (
        ("1h", lb.liquidations_1h, t.liq_long_1h_usd),
        ("24h", lb.liquidations_24h, t.liq_long_24h_usd),
    ):
        if totals is None:
            figures[f"long_{window}"] = None
            continue
        share = totals.long_usd / totals.total_usd if totals.total_usd else None
        # a window longer than tracking so far is a lower bound: say since when, not "24h"
        partial = (
            totals.tracked_since is not None
            and totals.tracked_since > s.taken_at - timedelta(hours=totals.window_h)
        )
        if partial and window == "24h":
            if (
                lb.liquidations_1h is not None
                and lb.liquidations_1h.tracked_since == totals.tracked_since
                and (s.taken_at - totals.tracked_since) <= timedelta(hours=1)
            ):
                continue  # the 1h line already covers everything tracked
            window_label = f"since {fmt.when(totals.tracked_since, s.taken_at)} (tracked)"
        else:
            window_label = window
        name = "tracked" if window_label != window else window
        figures[f"long_{name}"] = totals.long_usd
        figures[f"share_{name}"] = share
        evidence.append(
            Evidence(
                label=f"Long liquidations, {window_label}",
                value=f"{fmt.usd(totals.long_usd)} of {fmt.usd(totals.total_usd)}"
                + (f" ({share:.0%} longs)" if share is not None else ""),
                source=okx_label,
                as_of=newest,
            )
        )
        if share is not None and share >= t.liq_long_share:
            severities.append(_ratio(totals.long_usd, limit))

    oi_now = next((o for o in s.open_interest if o.instrument == "BTC-USDT-SWAP"), None)
    oi_change: float | None = None
    if oi_now is not None and lb.oi_1h_ago_usd:
        oi_change = (oi_now.oi_usd - lb.oi_1h_ago_usd) / lb.oi_1h_ago_usd * 100
        evidence.append(
            Evidence(
                label="BTC open interest, 1h",
                value=f"{fmt.usd(oi_now.oi_usd)} ({fmt.pct(oi_change)})",
                source=oi_now.source,
                as_of=oi_now.as_of,
            )
        )
        severities.append(_ratio(-oi_change, t.oi_drop_1h_pct))
    figures["oi_change_1h"] = oi_change
    # other venues' open interest (Binance, Bybit where enabled): context only, not judged
    for other in s.open_interest:
        if other.source != OKX:
            evidence.append(
                Evidence(
                    label=f"Open interest, {other.source} {other.instrument}",
                    value=fmt.usd(other.oi_usd),
                    source=other.source,
                    as_of=other.as_of,
                )
            )
    funding = next((f for f in s.funding if f.instrument == "BTC-USDT-SWAP"), None)
    if funding is not None:
        figures["funding"] = funding.rate
        evidence.append(
            Evidence(
                label="BTC funding rate",
                value=f"{funding.rate * 100:+.4f}% per funding period",
                source=funding.source,
                as_of=funding.as_of,
            )
        )

    missing = _status_labels(
        s, "okx_open_interest", *(k for k in s.statuses if k.startswith("okx_liquidations"))
    )
    if lb.liquidations_1h is None and oi_change is None:
        return _unknown(
            "liquidations",
            threshold,
            missing,
            evidence=evidence,
            figures=figures,
        )
    severity = max(severities, default=0.0)
    return _judged(
        "liquidations",
        threshold,
        severity,
        evidence=evidence,
        missing=missing,
        figures=figures,
    )


def etf(s: Snapshot, lb: Lookback, t: Thresholds) -> DriverResult:
    threshold = (
        f"latest day ≤ {fmt.musd(t.etf_day_musd)} or 3-day sum ≤ {fmt.musd(t.etf_3day_musd)}"
    )
    reported = [d for d in s.etf.days if d.total_musd is not None] if s.etf else []
    if s.etf is None or not reported:
        return _unknown(
            "etf",
            threshold,
            _status_labels(s, "farside", "sosovalue"),
        )
    latest = reported[-1]
    last3 = reported[-3:]
    sum3 = sum(d.total_musd for d in last3 if d.total_musd is not None) if len(last3) == 3 else None
    evidence = [
        Evidence(
            label=f"US spot-BTC ETF net flow, {fmt.day(latest.day)}",
            value=fmt.musd(latest.total_musd),
            source=s.etf.source,
            url=s.etf.url,
            as_of=s.etf.as_of,
        )
    ]
    severities = [_ratio(latest.total_musd or 0.0, t.etf_day_musd)]
    if sum3 is not None:
        evidence.append(
            Evidence(
                label=f"3-day sum ({fmt.day(last3[0].day)} to {fmt.day(latest.day)})",
                value=fmt.musd(sum3),
                source=s.etf.source,
                url=s.etf.url,
                as_of=s.etf.as_of,
            )
        )
        severities.append(_ratio(sum3, t.etf_3day_musd))
    figures: dict[str, float | None] = {"latest": latest.total_musd, "sum3": sum3}
    severity = max(severities)
    return _judged(
        "etf",
        threshold,
        severity,
        evidence=evidence,
        figures=figures,
    )


def institutional(s: Snapshot, lb: Lookback, t: Thresholds) -> DriverResult:
    threshold = (
        f"Coinbase premium ≤ {t.premium_pct:+.2f}% over the last {t.premium_samples} samples"
    )
    samples = lb.premium_samples
    missing = _status_labels(s, "coinbase", "okx_candles")
    if not samples:
        return _unknown(
            "institutional",
            threshold,
            missing,
        )
    current = samples[-1]
    as_of = s.coinbase_btc.as_of if s.coinbase_btc else None
    evidence = [
        Evidence(
            label="Coinbase premium (BTC-USD vs OKX BTC-USDT)",
            value=", ".join(f"{v:+.3f}%" for v in samples),
            source="Coinbase, OKX",
            as_of=as_of,
        )
    ]
    figures: dict[str, float | None] = {"premium": current, "samples": float(len(samples))}
    if len(samples) < t.premium_samples:
        # "held over 3 samples" cannot be judged on fewer: say so rather than guess
        return _unknown(
            "institutional",
            threshold,
            missing,
            evidence=evidence,
            figures=figures,
        )
    held = all(v <= t.premium_pct for v in samples)
    severity = _ratio(max(samples), t.premium_pct) if held else 0.0
    return _judged(
        "institutional",
        threshold,
        severity,
        evidence=evidence,
        missing=missing,
        figures=figures,
        fired=held,
    )


def fed(s: Snapshot, lb: Lookback, t: Thresholds) -> DriverResult:
    threshold = (
        f"cut odds at the next FOMC down ≥ {t.cut_odds_drop_pts:g} pts in 7 days, "
        f"or the 2-year yield up ≥ {t.two_year_rise_bp:g} bp in 5 days"
    )
    evidence: list[Evidence] = []
    severities: list[float] = []
    figures: dict[str, float | None] = {}
    odds = s.cut_odds
    if odds is not None:
        change = (
            (odds.probability - lb.cut_odds_7d_ago) * 100
            if lb.cut_odds_7d_ago is not None
            else None
        )
        figures |= {"cut_odds": odds.probability * 100, "cut_odds_change_7d": change}
        evidence.append(
            Evidence(
                label=f"Cut odds, {odds.meeting}",
                value=f"{odds.probability:.0%}"
                + (f" ({fmt.pts(change, 0)} in 7 days)" if change is not None else ""),
                source=odds.source,
                url=odds.url,
                as_of=odds.as_of,
            )
        )
        if change is not None:
            severities.append(_ratio(-change, t.cut_odds_drop_pts))
    two_year_days = [d for d in s.yields.days if d.two_year is not None] if s.yields else []
    if s.yields is not None and two_year_days:
        latest = two_year_days[-1]
        rise = (
            (latest.two_year - lb.two_year_5d_ago) * 100
            if lb.two_year_5d_ago is not None and latest.two_year is not None
            else None
        )
        figures |= {"two_year": latest.two_year, "two_year_change_5d_bp": rise}
        evidence.append(
            Evidence(
                label=f"2-year Treasury yield, {fmt.day(latest.day)}",
                value=f"{latest.two_year:.2f}%"
                + (f" ({fmt.bp(rise)} in 5 sessions)" if rise is not None else ""),
                source=s.yields.source,
                url=TREASURY_URL,
                as_of=s.yields.as_of,
            )
        )
        if rise is not None:
            severities.append(_ratio(rise, t.two_year_rise_bp))
    missing = _status_labels(s, "polymarket", "treasury", "fred")
    if not severities:
        return _unknown(
            "fed",
            threshold,
            missing,
            evidence=evidence,
            figures=figures,
        )
    severity = max(severities)
    return _judged(
        "fed",
        threshold,
        severity,
        evidence=evidence,
        missing=missing,
        figures=figures,
    )


def stocks(s: Snapshot, lb: Lookback, t: Thresholds) -> DriverResult:
    threshold = f"S&P 500 ≤ {t.spx_day_pct:+g}% or Nasdaq ≤ {t.ndx_day_pct:+g}% on the day (or the last session)"
    evidence: list[Evidence] = []
    severities: list[float] = []
    figures: dict[str, float | None] = {}
    for key, limit in (("spx", t.spx_day_pct), ("ndx", t.ndx_day_pct)):
        quote = s.indices.get(key)
        figures[key] = quote.change_pct if quote else None
        if quote is None:
            continue
        session = "today" if quote.market_open else f"session of {fmt.day(quote.session)}"
        evidence.append(
            Evidence(
                label=f"{quote.name}, {session}",
                value=f"{fmt.pct(quote.change_pct, 2)} ({fmt.number(quote.last, 2)})",
                source=quote.source,
                url=YAHOO_QUOTE_URL.format(symbol=INDEX_SYMBOLS[key])
                if quote.source.startswith("Yahoo")
                else None,
                as_of=quote.as_of,
            )
        )
        severities.append(_ratio(quote.change_pct, limit))
    missing = _status_labels(s, "yahoo_spx", "yahoo_ndx", "stooq_spx", "stooq_ndx")
    if not severities:
        return _unknown(
            "stocks",
            threshold,
            missing,
            figures=figures,
        )
    severity = max(severities)
    return _judged(
        "stocks",
        threshold,
        severity,
        evidence=evidence,
        missing=missing,
        figures=figures,
    )


def fear(s: Snapshot, lb: Lookback, t: Thresholds) -> DriverResult:
    threshold = f"Fear & Greed ≤ {t.fear_level} or down ≥ {t.fear_drop_7d} points in 7 days"
    fg = s.fear_greed
    if fg is None or not fg.points:
        return _unknown(
            "fear",
            threshold,
            _status_labels(s, "feargreed"),
        )
    latest = fg.points[-1]
    week_ago = next((p for p in fg.points if (latest.day - p.day).days == 7), None)
    change = latest.value - week_ago.value if week_ago else None
    evidence = [
        Evidence(
            label="Crypto Fear & Greed",
            value=f"{latest.value} ({latest.label})"
            + (f", {change:+d} in 7 days" if change is not None else ""),
            source=fg.source,
            url=FEAR_GREED_URL,
            as_of=fg.as_of,
        )
    ]
    # a level of 0 would be extreme fear, so the ratio is taken on distance below 50 (neutral)
    severities = [(50 - latest.value) / (50 - t.fear_level) if latest.value < 50 else 0.0]
    if change is not None:
        severities.append(_ratio(-change, t.fear_drop_7d))
    severity = max(severities)
    return _judged(
        "fear",
        threshold,
        severity,
        evidence=evidence,
        figures={
            "value": float(latest.value),
            "change_7d": float(change) if change is not None else None,
        },
        fired=latest.value <= t.fear_level or (change is not None and -change >= t.fear_drop_7d),
    )


ALL: tuple[Callable[[Snapshot, Lookback, Thresholds], DriverResult], ...] = (
    liquidations,
    etf,
    institutional,
    fed,
    stocks,
    fear,
)


def evaluate(s: Snapshot, lb: Lookback, t: Thresholds) -> list[DriverResult]:
    """Every driver, ranked: fired by severity, then quiet, then unknown."""
    order = {"fired": 0, "quiet": 1, "unknown": 2}
    results = [driver(s, lb, t) for driver in ALL]
    return sorted(results, key=lambda d: (order[d.state], -d.severity))
