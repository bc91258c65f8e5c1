"""What the core remembers between refreshes: figures over time and tracked liquidation events.

`History` is the interface; `MemoryHistory` serves the CLI and tests; the bot's SQLite store
implements the same methods so restarts keep 7-day comparisons and 24h liquidation totals.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Protocol

from explainers.models import Liquidation


class History(Protocol):
    def add_figures(self, at: datetime, figures: Mapping[str, float]) -> None:
        """Store named figures (e.g. "premium_pct", "cut_odds") observed at `at`."""

    def figures(self, name: str, since: datetime) -> list[tuple[datetime, float]]:
        """One figure's stored values since `since`, oldest first."""

    def add_liquidations(self, events: Iterable[Liquidation]) -> int:
        """Store events not seen before (by `Liquidation.key`); return how many were new."""

    def liquidations(self, since: datetime) -> list[Liquidation]:
        """Stored events with `ts >= since`."""

    def liquidations_tracked_since(self) -> datetime | None:
        """When tracking began (the first poll that stored anything), or None."""


class MemoryHistory:
    """History kept in process memory; lost on exit."""

    def __init__(self) -> None:
        self._figures: dict[str, list[tuple[datetime, float]]] = {}
        self._liquidations: dict[str, Liquidation] = {}
        self._tracked_since: datetime | None = None

    def add_figures(self, at: datetime, figures: Mapping[str, float]) -> None:
        for name, value in figures.items():
            series = self._figures.setdefault(name, [])
            series.append((at, value))
            series.sort(key=lambda item: item[0])

    def figures(self, name: str, since: datetime) -> list[tuple[datetime, float]]:
        return [item for item in self._figures.get(name, []) if item[0] >= since]

    def add_liquidations(self, events: Iterable[Liquidation]) -> int:
        new = 0
        for event in events:
            if event.key not in self._liquidations:
                self._liquidations[event.key] = event
                new += 1
                if self._tracked_since is None or event.ts < self._tracked_since:
                    self._tracked_since = event.ts
        return new

    def liquidations(self, since: datetime) -> list[Liquidation]:
        return [e for e in self._liquidations.values() if e.ts >= since]

    def liquidations_tracked_since(self) -> datetime | None:
        return self._tracked_since
