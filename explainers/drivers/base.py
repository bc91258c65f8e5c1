"""What one sell-off driver is, and the helpers every driver module shares.

A driver is a pure function of (snapshot, lookback, thresholds) returning a `DriverResult`: fired,
quiet, or unknown when the data it needs could not be read. A driver with part of its data
missing decides on the part it has and names what is missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from explainers.models import DriverFigures, DriverResult, Evidence, Lookback, Role, Snapshot
from explainers.settings import Thresholds

F = TypeVar("F", bound=DriverFigures)

Rule = Callable[[Snapshot, Lookback, Thresholds], DriverResult]


@dataclass(frozen=True)
class Driver(Generic[F]):
    """One driver as a unit: everything the answers, charts and headline tagging need of it.

    Its words live in ``templates/drivers/<key>.j2``; that template is given the result as ``d``
    and its typed figures as ``f``, and says only the figures that are known.
    """

    key: str
    name: str  # in answers: "Liquidation cascade"
    short_name: str  # on charts, where space is short: "Liquidations"
    #: its part in a sell-off: what set it off, what amplified it, or how sentiment answered
    role: Role
    #: what the summary calls it, mid-sentence: "long liquidations", "falling stocks"
    subject: str
    #: headline keywords (word boundaries) that tag a news item to this driver
    patterns: re.Pattern[str]
    figures: type[F]
    rule: Rule
    #: the one figure that best says why it fired or not, in a few characters (None: not known)
    chart_figure: Callable[[F], str | None]

    @property
    def template(self) -> str:
        return f"drivers/{self.key}.j2"

    def evaluate(self, s: Snapshot, lb: Lookback, t: Thresholds) -> DriverResult:
        return self.rule(s, lb, t)

    def figures_of(self, result: DriverResult) -> F:
        """The result's figures as this driver's type; figures read back from JSON (or built by
        hand) are retyped, attributes this driver does not know dropped, missing ones None."""
        if isinstance(result.figures, self.figures):
            return result.figures
        known = {
            k: v for k, v in result.figures.model_dump().items() if k in self.figures.model_fields
        }
        return self.figures.model_validate(known)

    def key_figure(self, result: DriverResult) -> str | None:
        return self.chart_figure(self.figures_of(result))

    def unknown(
        self,
        threshold: str,
        missing: list[str],
        *,
        evidence: list[Evidence] | None = None,
        figures: F | None = None,
    ) -> DriverResult:
        """A driver that cannot be judged: never quiet, never zero. `missing` names only sources
        that failed; empty when they answered but there is too little data so far."""
        return DriverResult(
            key=self.key,
            name=self.name,
            state="unknown",
            role=self.role,
            threshold=threshold,
            evidence=evidence or [],
            missing=missing,
            figures=figures if figures is not None else self.figures(),
        )

    def judged(
        self,
        threshold: str,
        severity: float,
        *,
        evidence: list[Evidence],
        figures: F,
        missing: list[str] | None = None,
        fired: bool | None = None,
    ) -> DriverResult:
        """A driver decided on its data: fired when past its threshold (severity >= 1)."""
        return DriverResult(
            key=self.key,
            name=self.name,
            role=self.role,
            state="fired" if (severity >= 1.0 if fired is None else fired) else "quiet",
            severity=severity,
            threshold=threshold,
            evidence=evidence,
            missing=missing or [],
            figures=figures,
        )


def ratio(value: float, threshold: float) -> float:
    """How far past a threshold a value is, as a multiple of it (both on the same side of 0)."""
    # rounded so a figure exactly at its threshold is not lost to float noise (14.999... bp)
    return round(value / threshold, 9) if threshold else 0.0


def status_labels(snapshot: Snapshot, *keys: str) -> list[str]:
    """Labels of the listed sources that did not deliver this refresh."""
    return [
        snapshot.statuses[k].label
        for k in keys
        if k in snapshot.statuses and snapshot.statuses[k].state in ("failed", "blocked")
    ]
