"""What the core remembers between refreshes: figures over time and tracked liquidations.

`History` is the interface; `MemoryHistory` serves the CLI and tests; the bot's SQLite store
implements the same methods so restarts keep 7-day comparisons and 24h liquidation totals.

Liquidations are kept as per-minute sums per venue, instrument and side (USD and event count):
totals and charts read at most a day of minutes, whatever the number of events. Two ways in:
REST polls list the same recent orders again and again, so their raw events are kept for
`LIQUIDATION_DEDUPE_WINDOW` to tell new from seen, and only new ones are added to the sums;
streams deliver each event once, so `add_streamed_liquidations` adds them straight to the sums.
A coin streamed only because a user asked about it is stored aside (`market=False`): kept per
instrument for that coin's own reads (`instrument_totals`), left out of the market totals and the
hourly sums, so what the market alert reads never depends on which coins users asked about.
Totals have minute resolution: a window counts every minute it touches, less the polled events
of its first minute that came before its start (tracking often begins mid-minute, at the oldest
event a poll could vouch for, and what came before it there must not count). Streamed events of
that first minute all count. Hourly sums (for charts) count whole hours.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from explainers.models import (
    CoverageGap,
    Liquidation,
    LiquidationCoverage,
    LiquidationHour,
    VenueCoverage,
)

#: polls further apart than this leave a hole in the tracked events: coverage starts again
MAX_POLL_GAP = timedelta(minutes=10)
#: polled events are remembered this long to recognise them when a later poll lists them again;
#: events older than this (relative to the poll) cannot be told apart from repeats and are ignored
LIQUIDATION_DEDUPE_WINDOW = timedelta(hours=48)
#: per-minute sums back this far serve the 24h totals and charts
LIQUIDATION_MINUTES_KEEP = timedelta(hours=25)

#: a minute's sums: (minute, exchange, instrument, side) -> [usd, events]
MinuteKey = tuple[datetime, str, str, str]
#: a venue's recorded gaps: start -> end (None: still open)
Gaps = Mapping[str, Mapping[datetime, datetime | None]]


class History(Protocol):
    def add_figures(self, at: datetime, figures: Mapping[str, float]) -> None:
        """Store named figures (e.g. "premium_pct", "cut_odds") observed at `at`."""

    def figures(self, name: str, since: datetime) -> list[tuple[datetime, float]]:
        """One figure's stored values since `since`, oldest first."""

    def add_liquidations(
        self, events: Iterable[Liquidation], *, polled_at: datetime, covered_since: datetime
    ) -> int:
        """Add one poll's events not seen before (by `Liquidation.key`) to the sums; return how
        many were new. Events older than `polled_at - LIQUIDATION_DEDUPE_WINDOW` are ignored.

        `covered_since` is how far back this poll's lists reach; it becomes the start of
        tracking when there was none, or when the previous poll is more than MAX_POLL_GAP ago.
        """

    def add_streamed_liquidations(
        self, events: Sequence[Liquidation], *, market: bool = True
    ) -> int:
        """Add events a stream delivered (each once, already de-duplicated) to the sums; return
        how many were added. No raw event is kept. `market=False`: a coin streamed only on
        request, kept aside (see the module's docstring)."""

    def record_liquidation_gap(self, exchange: str, start: datetime, end: datetime | None) -> None:
        """A venue's stream was not listening from `start` to `end` (None: still down). A stream
        records one when it connects (`start` = when it last listened, or `end` on a first
        start); recording the same `start` again sets its end."""

    def liquidation_coverage(self, since: datetime, until: datetime) -> LiquidationCoverage:
        """Per venue, since when it has been tracked and whether a gap lies in the window."""

    def liquidations(self, since: datetime) -> list[Liquidation]:
        """Polled events kept for de-duplication with `ts >= since` (streamed ones are not kept)."""

    def liquidations_tracked_since(self) -> datetime | None:
        """Since when polled events have been tracked without a gap, or None."""

    def liquidations_last_poll(self) -> datetime | None:
        """When the liquidation feeds last answered, or None."""

    def liquidation_totals(self, since: datetime, until: datetime) -> tuple[float, float]:
        """(long USD, short USD) over the minutes from `since`'s to `until`'s, less the polled
        events of `since`'s minute that came before it."""

    def instrument_totals(
        self, instruments: Iterable[str], since: datetime, until: datetime
    ) -> tuple[float, float]:
        """(long USD, short USD) of these instruments (any venue) over the minutes from
        `since`'s to `until`'s, market coins and coins streamed on request alike."""

    def liquidation_hours(self, since: datetime) -> list[LiquidationHour]:
        """Hourly sums from `since`'s hour on, oldest first; hours without events are absent."""


class MemoryHistory:
    """History kept in process memory; lost on exit. A lock makes it safe to use from the
    refresh's worker thread and the event loop at once."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._figures: dict[str, list[tuple[datetime, float]]] = {}
        self._polled: dict[str, Liquidation] = {}
        self._minutes: dict[MinuteKey, list[float]] = {}
        self._aside: dict[MinuteKey, list[float]] = {}  # coins streamed on request
        self._gaps: dict[str, dict[datetime, datetime | None]] = {}
        self._polled_exchanges: set[str] = set()
        self._tracked_since: datetime | None = None
        self._last_poll: datetime | None = None

    def add_figures(self, at: datetime, figures: Mapping[str, float]) -> None:
        with self._lock:
            for name, value in figures.items():
                series = self._figures.setdefault(name, [])
                series.append((at, value))
                series.sort(key=lambda item: item[0])

    def figures(self, name: str, since: datetime) -> list[tuple[datetime, float]]:
        with self._lock:
            return [item for item in self._figures.get(name, []) if item[0] >= since]

    def _add_to_minutes(self, events: Iterable[Liquidation], market: bool = True) -> int:
        minutes = self._minutes if market else self._aside
        added = 0
        for event in events:
            key = (minute_of(event.ts), event.exchange, event.instrument, event.position_side)
            sums = minutes.setdefault(key, [0.0, 0])
            sums[0] += event.usd
            sums[1] += 1
            added += 1
        return added

    def add_liquidations(
        self, events: Iterable[Liquidation], *, polled_at: datetime, covered_since: datetime
    ) -> int:
        oldest = polled_at - LIQUIDATION_DEDUPE_WINDOW
        with self._lock:
            new: list[Liquidation] = []
            for event in events:
                if event.ts >= oldest and event.key not in self._polled:
                    self._polled[event.key] = event
                    new.append(event)
            self._add_to_minutes(new)
            self._polled_exchanges.update(e.exchange for e in new)
            if starts_coverage(self._tracked_since, self._last_poll, polled_at):
                self._tracked_since = covered_since
            self._last_poll = polled_at
            return len(new)

    def add_streamed_liquidations(
        self, events: Sequence[Liquidation], *, market: bool = True
    ) -> int:
        with self._lock:
            return self._add_to_minutes(events, market)

    def record_liquidation_gap(self, exchange: str, start: datetime, end: datetime | None) -> None:
        with self._lock:
            self._gaps.setdefault(exchange, {})[start] = end

    def liquidation_coverage(self, since: datetime, until: datetime) -> LiquidationCoverage:
        with self._lock:
            return coverage_of(
                self._gaps,
                self._polled_exchanges,
                self._tracked_since,
                self._last_poll,
                since,
                until,
            )

    def liquidations(self, since: datetime) -> list[Liquidation]:
        with self._lock:
            return [e for e in self._polled.values() if e.ts >= since]

    def liquidations_tracked_since(self) -> datetime | None:
        return self._tracked_since

    def liquidations_last_poll(self) -> datetime | None:
        return self._last_poll

    def _minutes_between(
        self, since: datetime, until: datetime | None = None
    ) -> list[tuple[MinuteKey, list[float]]]:
        first, last = minute_of(since), None if until is None else minute_of(until)
        with self._lock:
            return [
                (key, sums)
                for key, sums in self._minutes.items()
                if key[0] >= first and (last is None or key[0] <= last)
            ]

    def liquidation_totals(self, since: datetime, until: datetime) -> tuple[float, float]:
        rows = self._minutes_between(since, until)
        with self._lock:
            before = [e for e in self._polled.values() if minute_of(since) <= e.ts < since]
        return (
            sum(sums[0] for key, sums in rows if key[3] == "long")
            - sum(e.usd for e in before if e.position_side == "long"),
            sum(sums[0] for key, sums in rows if key[3] == "short")
            - sum(e.usd for e in before if e.position_side == "short"),
        )

    def instrument_totals(
        self, instruments: Iterable[str], since: datetime, until: datetime
    ) -> tuple[float, float]:
        """(long USD, short USD) of these instruments over the minutes from `since`'s to
        `until`'s, market coins and coins streamed on request alike."""
        wanted = set(instruments)
        first, last = minute_of(since), minute_of(until)
        with self._lock:
            rows = [
                (key, sums)
                for minutes in (self._minutes, self._aside)
                for key, sums in minutes.items()
                if key[2] in wanted and first <= key[0] <= last
            ]
        return (
            sum(sums[0] for key, sums in rows if key[3] == "long"),
            sum(sums[0] for key, sums in rows if key[3] == "short"),
        )

    def liquidation_hours(self, since: datetime) -> list[LiquidationHour]:
        hours: dict[datetime, list[tuple[MinuteKey, list[float]]]] = {}
        for key, sums in self._minutes_between(since.replace(minute=0, second=0, microsecond=0)):
            hours.setdefault(key[0].replace(minute=0), []).append((key, sums))
        return [
            LiquidationHour(
                hour=hour,
                long_usd=sum(sums[0] for key, sums in rows if key[3] == "long"),
                short_usd=sum(sums[0] for key, sums in rows if key[3] == "short"),
                instruments=sorted({key[2] for key, _ in rows}),
            )
            for hour, rows in sorted(hours.items())
        ]

    def prune(self, now: datetime) -> None:
        """Forget minutes past their use and polled events past the de-duplication window."""
        with self._lock:
            first = minute_of(now - LIQUIDATION_MINUTES_KEEP)
            self._minutes = {k: v for k, v in self._minutes.items() if k[0] >= first}
            self._aside = {k: v for k, v in self._aside.items() if k[0] >= first}
            oldest = now - LIQUIDATION_DEDUPE_WINDOW
            self._polled = {k: e for k, e in self._polled.items() if e.ts >= oldest}


def minute_of(moment: datetime) -> datetime:
    """The UTC minute a time falls in."""
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def coverage_of(
    gaps: Gaps,
    polled_exchanges: Iterable[str],
    tracked_since: datetime | None,
    last_poll: datetime | None,
    since: datetime,
    until: datetime,
) -> LiquidationCoverage:
    """Coverage per venue: streamed venues from their gaps; polled venues (without a stream)
    from the REST tracking, which holds while polls keep coming (no more than MAX_POLL_GAP
    apart) and restarts after a gap."""
    venues: list[VenueCoverage] = []
    for exchange, venue_gaps in sorted(gaps.items()):
        started = sorted((s, e) for s, e in venue_gaps.items() if s <= until)
        down = any(e is None or e > until for _, e in started)
        ends = [e for _, e in started if e is not None and e <= until]
        venues.append(
            VenueCoverage(
                exchange=exchange,
                tracked_since=None if down or not ends else max(ends),
                gap_in_window=any(e is None or e >= since for _, e in started),
                # the first gap is where tracking began, not a disconnection
                gaps=[
                    CoverageGap(start=s, end=None if e is None or e > until else e)
                    for s, e in started[1:]
                    if e is None or e >= since
                ],
            )
        )
    polling = (
        tracked_since is not None
        and last_poll is not None
        and tracked_since <= until
        and until - last_poll <= MAX_POLL_GAP
    )
    for exchange in sorted(set(polled_exchanges) - set(gaps)):
        venues.append(
            VenueCoverage(
                exchange=exchange,
                tracked_since=tracked_since if polling else None,
                gap_in_window=not polling or (tracked_since is not None and tracked_since > since),
                via="rest",
            )
        )
    return LiquidationCoverage(since=since, until=until, venues=venues)


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
