"""Fed uncertainty: the market's odds of a cut at the next FOMC falling, or the 2-year yield rising."""

from __future__ import annotations

import re

from explainers import formatting as fmt
from explainers.drivers.base import Driver, ratio, status_labels
from explainers.models import DriverFigures, DriverResult, Evidence, Lookback, Snapshot
from explainers.settings import Thresholds

KALSHI_URL = "https://kalshi.com/markets/{series}"
TREASURY_URL = "https://home.treasury.gov/resource-center/data-chart-center/interest-rates"


class FedFigures(DriverFigures):
    cut_odds: float | None = None  # probability of a cut at the next FOMC, %
    cut_odds_change_7d: float | None = None  # points
    kalshi_cut_odds: float | None = None  # Kalshi's odds of a cut at the next FOMC, %
    two_year: float | None = None  # 2-year Treasury yield, %
    two_year_change_5d_bp: float | None = None  # over 5 sessions, basis points


def evaluate(s: Snapshot, lb: Lookback, t: Thresholds) -> DriverResult:
    threshold = (
        f"cut odds at the next FOMC down ≥ {t.cut_odds_drop_pts:g} pts in 7 days, "
        f"or the 2-year yield up ≥ {t.two_year_rise_bp:g} bp in 5 days"
    )
    evidence: list[Evidence] = []
    severities: list[float] = []
    cut_odds = change = two_year = rise = None
    odds = s.cut_odds
    if odds is not None:
        cut_odds = odds.probability * 100
        change = (
            (odds.probability - lb.cut_odds_7d_ago) * 100
            if lb.cut_odds_7d_ago is not None
            else None
        )
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
            severities.append(ratio(-change, t.cut_odds_drop_pts))
    kalshi = s.kalshi_odds
    if kalshi is not None:
        # evidence beside Polymarket's; the 7-day rule uses Polymarket's history
        evidence.append(
            Evidence(
                label=f"Cut odds, {kalshi.meeting}",
                value=f"{kalshi.cut_pct:.0f}% ({kalshi.price_basis} of {kalshi.ticker})",
                source=kalshi.source,
                url=KALSHI_URL.format(series=kalshi.event_ticker.split("-")[0].lower()),
                as_of=kalshi.as_of,
            )
        )
    two_year_days = [d for d in s.yields.days if d.two_year is not None] if s.yields else []
    if s.yields is not None and two_year_days:
        latest = two_year_days[-1]
        two_year = latest.two_year
        rise = (
            (latest.two_year - lb.two_year_5d_ago) * 100
            if lb.two_year_5d_ago is not None and latest.two_year is not None
            else None
        )
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
            severities.append(ratio(rise, t.two_year_rise_bp))
    figures = FedFigures(
        cut_odds=cut_odds,
        cut_odds_change_7d=change,
        kalshi_cut_odds=kalshi.cut_pct if kalshi is not None else None,
        two_year=two_year,
        two_year_change_5d_bp=rise,
    )
    missing = status_labels(s, "polymarket", "kalshi", "treasury", "fred")
    if not severities:
        return DRIVER.unknown(threshold, missing, evidence=evidence, figures=figures)
    return DRIVER.judged(
        threshold, max(severities), evidence=evidence, missing=missing, figures=figures
    )


def chart_figure(f: FedFigures) -> str | None:
    if f.cut_odds_change_7d is not None:
        return f"cut odds {fmt.pts(f.cut_odds_change_7d, 0)}"
    if f.two_year_change_5d_bp is not None:
        return f"2y {fmt.bp(f.two_year_change_5d_bp)}"
    return None


#: word boundaries; "Fed" is case-sensitive to skip "fed up"
PATTERNS = re.compile(
    r"\bFed\b|(?i:\bFederal (?:Reserve|Open Market)\b|\bFOMC\b|\bPowell\b|\brate (?:cut|hike)s?\b"
    r"|\byields?\b|\binflation\b|\bCPI\b)"
)

DRIVER = Driver(
    key="fed",
    name="Fed uncertainty",
    short_name="Fed",
    role="set_off",
    subject="Fed uncertainty",
    patterns=PATTERNS,
    figures=FedFigures,
    rule=evaluate,
    chart_figure=chart_figure,
)
