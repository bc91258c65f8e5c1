"""The explainer every front-end asks: a cached answer, refreshed at most once at a time.

When the cache is cold or older than `max_age`, one refresh runs and every concurrent caller
awaits that same refresh (single flight), so upstream calls never grow with the number of users.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from explainers import drivers, lookback
from explainers.collect import Clock, Collector, utcnow
from explainers.explain import explain
from explainers.history import History, MemoryHistory
from explainers.models import (
    CoinMarket,
    DriverResult,
    Explanation,
    LiquidationMode,
    LiquidationVenue,
    Lookback,
    Onset,
    Replay,
    Snapshot,
)
from explainers.settings import Thresholds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refreshed:
    """One refresh's results, kept together so every answer from it is consistent."""

    snapshot: Snapshot
    lookback: Lookback
    drivers: list[DriverResult]
    explanation: Explanation


class Explainer:
    def __init__(
        self,
        collector: Collector,
        thresholds: Thresholds,
        *,
        history: History | None = None,
        max_age: timedelta = timedelta(seconds=60),
        clock: Clock = utcnow,
        replay: Replay | None = None,
        liquidation_modes: Callable[[], Mapping[str, LiquidationMode]] | None = None,
        coin_venues: Callable[[str], Sequence[LiquidationVenue] | None] | None = None,
    ) -> None:
        """liquidation_modes: how completely each venue is streamed now (exchange -> "all" or
        "sampled"), asked at each refresh; None: no streams run (REST polls only).
        coin_venues: for a coin asked about, the venues streaming its perpetual now and since
        when (empty: not yet; None: it cannot be streamed); None: no streams run, and a coin's
        answer says nothing about its liquidations."""
        self.collector = collector
        self.liquidation_modes = liquidation_modes
        self.coin_venues = coin_venues
        self.thresholds = thresholds
        self.history: History = history if history is not None else MemoryHistory()
        self.max_age = max_age
        self.clock = clock
        self.replay = replay
        self._latest: Refreshed | None = None
        self._inflight: asyncio.Task[Refreshed] | None = None

    @property
    def latest(self) -> Refreshed | None:
        return self._latest

    def _fresh(self, now: datetime) -> bool:
        return self._latest is not None and now - self._latest.snapshot.taken_at < self.max_age

    async def refresh(self) -> Refreshed:
        """Run a refresh, or join the one already running."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self._refresh())
        # shield: a caller that gives up (a cancelled command) must not cancel everyone's refresh
        return await asyncio.shield(self._inflight)

    async def _refresh(self) -> Refreshed:
        snapshot = await self.collector.collect()
        # the history's reads and writes (SQLite, CPU) run in a worker thread: the loop stays free
        lb, results, seen = await asyncio.to_thread(self._digest, snapshot)
        explanation = explain(
            snapshot,
            results,
            lb,
            self.thresholds,
            now=self.clock(),
            replay=self.replay,
            onsets=seen,
        )
        refreshed = Refreshed(snapshot, lb, results, explanation)
        self._latest = refreshed
        ok = sum(1 for s in snapshot.statuses.values() if s.state == "ok")
        log.info(
            "refresh: %s, %d drivers firing, %d/%d sources ok",
            explanation.verdict,
            len(explanation.fired),
            ok,
            len(snapshot.statuses),
        )
        return refreshed

    def _digest(self, snapshot: Snapshot) -> tuple[Lookback, list[DriverResult], list[Onset]]:
        """Remember the snapshot, look back, evaluate the drivers and store their states, and
        read back where the firing ones began (off the event loop)."""
        lookback.remember(snapshot, self.history)
        modes = self.liquidation_modes() if self.liquidation_modes is not None else None
        lb = lookback.lookback(snapshot, self.history, self.thresholds, modes)
        results = drivers.evaluate(snapshot, lb, self.thresholds)
        # each driver's state over time, so charts can mark where one started firing
        self.history.add_figures(
            snapshot.taken_at,
            {
                lookback.driver_state_figure(d.key): 1.0 if d.state == "fired" else 0.0
                for d in results
                if d.state != "unknown"
            },
        )
        fired = [d.key for d in results if d.state == "fired"]
        return lb, results, lookback.onsets(self.history, fired, snapshot.taken_at)

    async def poll_liquidations(self) -> int:
        """Read the liquidation feeds between refreshes; return how many events were new."""
        polled_at = self.clock()
        batches = await self.collector.collect_liquidations()
        return await asyncio.to_thread(
            lookback.track_liquidations, self.history, batches, polled_at
        )

    async def current(self) -> Refreshed:
        """The cached refresh when fresh enough, else a (shared) new one."""
        if self._fresh(self.clock()) and self._latest is not None:
            return self._latest
        return await self.refresh()

    async def explain(self, coin: str | None = None) -> Explanation:
        """The answer to /why [coin]. Raises UnknownCoin or CoinDataUnavailable for a bad coin."""
        refreshed = await self.current()
        if not coin:
            return refreshed.explanation
        # a coin's answer reads its streamed liquidations from the history: off the event loop
        return await asyncio.to_thread(self.explain_from, refreshed, coin)

    def explain_from(self, refreshed: Refreshed, coin: str | None = None) -> Explanation:
        """The answer to /why [coin] from one given refresh, without refreshing."""
        if not coin:
            return refreshed.explanation
        now = self.clock()
        explanation = explain(
            refreshed.snapshot,
            refreshed.drivers,
            refreshed.lookback,
            self.thresholds,
            now=now,
            coin=coin,
            replay=self.replay,
            onsets=refreshed.explanation.onsets,
        )
        view = explanation.coin
        venues = None if view is None or self.coin_venues is None else self.coin_venues(view.symbol)
        if view is None or venues is None:
            return explanation
        own = lookback.coin_liquidations(self.history, view.symbol, venues, now)
        return explanation.model_copy(
            update={"coin": view.model_copy(update={"liquidations": own})}
        )

    def coins(self) -> list[CoinMarket]:
        """Coins the latest market data knows, by rank (for autocomplete)."""
        if self._latest is None or self._latest.snapshot.markets is None:
            return []
        return sorted(self._latest.snapshot.markets.coins, key=lambda c: c.rank or 10**9)
