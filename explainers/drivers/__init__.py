"""The sell-off drivers, one module each, and the registry that lists them.

Each module owns one driver: its key, long and short names, headline keyword patterns, the rule
(`evaluate`), its typed figures, the one figure a chart shows, and (in
``templates/drivers/<key>.j2``) the words that phrase its figures. Adding a driver is one module,
one template and one line in `DRIVERS`.
"""

from __future__ import annotations

import re
from typing import Any

from explainers.drivers import etf, fear, fed, institutional, liquidations, stocks
from explainers.drivers.base import Driver
from explainers.models import ROLES, DriverResult, Figures, Lookback, Snapshot
from explainers.settings import Thresholds

#: every driver; ties in the ranking keep this order
DRIVERS: tuple[Driver[Any], ...] = (
    liquidations.DRIVER,
    etf.DRIVER,
    institutional.DRIVER,
    fed.DRIVER,
    stocks.DRIVER,
    fear.DRIVER,
)
BY_KEY: dict[str, Driver[Any]] = {d.key: d for d in DRIVERS}
#: driver key -> keywords that tag a headline to it (what the news source is given)
HEADLINE_PATTERNS: dict[str, re.Pattern[str]] = {d.key: d.patterns for d in DRIVERS}

__all__ = [
    "BY_KEY",
    "DRIVERS",
    "HEADLINE_PATTERNS",
    "Driver",
    "evaluate",
    "figures_of",
    "rank",
    "subject",
]


def evaluate(s: Snapshot, lb: Lookback, t: Thresholds) -> list[DriverResult]:
    """Every driver, ranked: fired by role (what set a sell-off off, what amplified it, how
    sentiment answered), then by severity within a role; then quiet, then unknown."""
    return rank([driver.evaluate(s, lb, t) for driver in DRIVERS])


def rank(results: list[DriverResult]) -> list[DriverResult]:
    """Fired drivers by role then severity, then quiet ones, then unknown ones (ties keep order)."""
    order = {"fired": 0, "quiet": 1, "unknown": 2}

    def role(d: DriverResult) -> int:
        known = d.role or (BY_KEY[d.key].role if d.key in BY_KEY else None)
        return ROLES.index(known) if known is not None and d.state == "fired" else 0

    return sorted(results, key=lambda d: (order[d.state], role(d), -d.severity))


def subject(result: DriverResult) -> str:
    """What the summary calls a driver mid-sentence (its name, lowercased, when not registered)."""
    driver = BY_KEY.get(result.key)
    return driver.subject if driver is not None else result.name.lower()


def figures_of(result: DriverResult) -> Figures:
    """The result's figures typed as its driver's (as they are when read back from JSON)."""
    driver = BY_KEY.get(result.key)
    return driver.figures_of(result) if driver is not None else result.figures
