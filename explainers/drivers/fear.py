"""Fear spreading: the Crypto Fear & Greed index low, or falling fast over a week."""

from __future__ import annotations

import re

from explainers.drivers.base import Driver, ratio, status_labels
from explainers.models import DriverFigures, DriverResult, Evidence, Lookback, Snapshot
from explainers.settings import Thresholds

FEAR_GREED_URL = "https://alternative.me/crypto/fear-and-greed-index/"


class FearFigures(DriverFigures):
    value: int | None = None  # index today, 0 (extreme fear) to 100 (extreme greed)
    change_7d: int | None = None  # points since 7 days ago


def evaluate(s: Snapshot, lb: Lookback, t: Thresholds) -> DriverResult:
    threshold = f"Fear & Greed ≤ {t.fear_level} or down ≥ {t.fear_drop_7d} points in 7 days"
    fg = s.fear_greed
    if fg is None or not fg.points:
        return DRIVER.unknown(threshold, status_labels(s, "feargreed"))
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
        severities.append(ratio(-change, t.fear_drop_7d))
    return DRIVER.judged(
        threshold,
        max(severities),
        evidence=evidence,
        figures=FearFigures(value=latest.value, change_7d=change),
        fired=latest.value <= t.fear_level or (change is not None and -change >= t.fear_drop_7d),
    )


def chart_figure(f: FearFigures) -> str | None:
    return f"index {f.value:.0f}" if f.value is not None else None


DRIVER = Driver(
    key="fear",
    name="Fear spreading",
    short_name="Fear",
    role="sentiment",
    subject="fear",
    patterns=re.compile(r"(?i:\bfear\w*|\bpanic\w*|\bcapitulat\w*)"),
    figures=FearFigures,
    rule=evaluate,
    chart_figure=chart_figure,
)
