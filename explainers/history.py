"""What the core remembers between refreshes: figures over time and tracked liquidation events.

`History` is the interface; `MemoryHistory` serves the CLI and tests; the bot's SQLite store
implements the same methods so restarts keep 7-day comparisons and 24h liquidation totals.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Protocol

from explainers.models import Liquidation, LiquidationHour

#: polls further apart than this leave a hole in the tracked events: coverage starts again
MAX_POLL_GAP = timedelta(minutes=10)


class History(Protocol):
    def add_figures(self, at: datetime, figures: Mapping[str, float]) -> None:
        """Store named figures (e.g. "premium_pct", "cut_odds") observed at `at`."""

    def figures(self, name: str, since: datetime) -> list[tuple[datetime, float]]:
        """One figure's stored values since `since`, oldest first."""

    def add_liquidations(
        self, events: Iterable[Liquidation], *, polled_at: datetime, covered_since: datetime
    ) -> int:
        """Store events not seen before (by `Liquidation.key`); return how many were new.

        `covered_since` is how far back this poll's lists reach; it becomes the start of
        tracking when there was none, or when the previous poll is more than MAX_POLL_GAP ago.
        """

    def liquidations(self, since: datetime) -> list[Liquidation]:
        """Stored events with `ts >= since`."""

    def liquidations_tracked_since(self) -> datetime | None:
        """Since when events have been tracked without a gap, or None."""

    def liquidations_last_poll(self) -> datetime | None:
        """When the liquidation feeds last answered, or None."""

    def liquidation_totals(self, since: datetime, until: datetime) -> tuple[float, float]:
        """(long USD, short USD) of stored events with `since <= ts <= until`."""

    def liquidation_hours(self, since: datetime) -> list[LiquidationHour]:
        """Hourly sums of stored events with `ts >= since`, oldest first; hours without events
        are absent."""


class MemoryHistory:
    """History kept in process memory; lost on exit."""

    def __init__(self) -> None:
        self._figures: dict[str, list[tuple[datetime, float]]] = {}
        self._liquidations: dict[str, Liquidation] = {}
        self._tracked_since: datetime | None = None
        self._last_poll: datetime | None = None

    def add_figures(self, at: datetime, figures: Mapping[str, float]) -> None:
        for name, value in figures.items():
            series = self._figures.setdefault(name, [])
            series.append((at, value))
            series.sort(key=lambda item: item[0])

    def figures(self, name: str, since: datetime) -> list[tuple[datetime, float]]:
        return [item for item in self._figures.get(name, []) if item[0] >= since]

    def add_liquidations(
        self, events: Iterable[Liquidation], *, polled_at: datetime, covered_since: datetime
    ) -> int:
        new = 0
        for event in events:
            if event.key not in self._liquidations:
                self._liquidations[event.key] = event
                new += 1
        if starts_coverage(self._tracked_since, self._last_poll, polled_at):
            self._tracked_since = covered_since
        self._last_poll = polled_at
        return new

    def liquidations(self, since: datetime) -> list[Liquidation]:
        return [e for e in self._liquidations.values() if e.ts >= since]

    def liquidations_tracked_since(self) -> datetime | None:
        return self._tracked_since

    def liquidations_last_poll(self) -> datetime | None:
        return self._last_poll

    def liquidation_totals(self, since: datetime, until: datetime) -> tuple[float, float]:
        events = [e for e in self._liquidations.values() if since <= e.ts <= until]
        return (
            sum(e.usd for e in events if e.position_side == "long"),
            sum(e.usd for e in events if e.position_side == "short"),
        )

    def liquidation_hours(self, since: datetime) -> list[LiquidationHour]:
        hours: dict[datetime, list[Liquidation]] = {}
        for event in self.liquidations(since):
            hours.setdefault(event.ts.replace(minute=0, second=0, microsecond=0), []).append(event)
        return [
            LiquidationHour(
                hour=hour,
                long_usd=sum(e.usd for e in events if e.position_side == "long"),
                short_usd=sum(e.usd for e in events if e.position_side == "short"),
                instruments=sorted({e.instrument for e in events}),
            )
            for hour, events in sorted(hours.items())
        ]


def starts_coverage(
    tracked_since: datetime | None, last_poll: datetime | None, polled_at: datetime
) -> bool:
    """Whether a poll at `polled_at` begins tracking anew (first poll, or after a gap)."""
    return tracked_since is None or last_poll is None or polled_at - last_poll > MAX_POLL_GAP


def coverage_start(batches: Iterable[Iterable[Liquidation]], polled_at: datetime) -> datetime:
    """How far back one poll's lists reach together: the latest of their earliest events
    (an empty list vouches for nothing before the poll)."""
    starts = [min((e.ts for e in batch), default=polled_at) for batch in map(list, batches)]
    return max(starts, default=polled_at)
