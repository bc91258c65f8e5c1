"""ETF outflows: US spot-Bitcoin ETFs' net flow on the latest reported day, or over three days."""

from __future__ import annotations

import re

from explainers import formatting as fmt
from explainers.drivers.base import Driver, ratio, status_labels
from explainers.models import DriverFigures, DriverResult, Evidence, Lookback, Snapshot
from explainers.settings import Thresholds


class EtfFigures(DriverFigures):
    latest: float | None = None  # net flow of the latest reported day, $M
    sum3: float | None = None  # of the last three reported days, $M


def evaluate(s: Snapshot, lb: Lookback, t: Thresholds) -> DriverResult:
    threshold = (
        f"latest day ≤ {fmt.musd(t.etf_day_musd)} or 3-day sum ≤ {fmt.musd(t.etf_3day_musd)}"
    )
    reported = [d for d in s.etf.days if d.total_musd is not None] if s.etf else []
    if s.etf is None or not reported:
        return DRIVER.unknown(threshold, status_labels(s, "farside", "sosovalue"))
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
    severities = [ratio(latest.total_musd or 0.0, t.etf_day_musd)]
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
        severities.append(ratio(sum3, t.etf_3day_musd))
    return DRIVER.judged(
        threshold,
        max(severities),
        evidence=evidence,
        figures=EtfFigures(latest=latest.total_musd, sum3=sum3),
    )


def chart_figure(f: EtfFigures) -> str | None:
    return f"{fmt.musd(f.latest)} day" if f.latest is not None else None


DRIVER = Driver(
    key="etf",
    name="ETF outflows",
    short_name="ETF outflows",
    role="set_off",
    subject="US spot-Bitcoin ETF outflows",
    patterns=re.compile(r"(?i:\bETFs?\b|\boutflows?\b)"),
    figures=EtfFigures,
    rule=evaluate,
    chart_figure=chart_figure,
)
