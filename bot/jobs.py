"""What the scheduler of `whydown run` runs: the refresh (then the alert rule), the liquidation
poll and pruning; each job logs and survives its own failures."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.alerts import AlertEngine
from bot.config import Settings
from bot.live import LiquidationFeed
from bot.status import stream_status_json
from bot.store import StorageFull, Store, is_full
from explainers.collect import utcnow
from explainers.models import Explanation
from explainers.service import Explainer

if TYPE_CHECKING:  # prometheus-client loads only when health is enabled
    from bot.health import Health

log = logging.getLogger("whydown.runner")


class Jobs:
    """What the scheduler runs; each job logs and survives its own failures."""

    def __init__(
        self,
        explainer: Explainer,
        store: Store,
        engine: AlertEngine,
        feed: LiquidationFeed | None = None,
        health: Health | None = None,
        *,
        archive_days: int = 0,
    ) -> None:
        self.explainer = explainer
        self.archive_days = archive_days
        self.store = store
        self.engine = engine
        self.feed = feed
        self.health = health
        self.fanouts: set[asyncio.Task[None]] = set()

    async def refresh(self) -> None:
        """Collect, store, explain, then evaluate the alert rule for every subscription."""
        started = time.perf_counter()
        try:
            refreshed = await self.explainer.refresh()
        except Exception:
            log.exception("refresh failed")
            if self.health is not None:
                self.health.refreshed(None, time.perf_counter() - started)
            return
        e = refreshed.explanation
        try:
            self._record(e)
        except sqlite3.OperationalError as err:
            if not is_full(err):
                raise
            # the alert rule still runs: an alert it cannot record is not sent
            self.store.faults.failed(err, "recording the refresh")
        if self.health is not None:
            self.health.refreshed(e, time.perf_counter() - started)
        # a large fan-out takes minutes at 30 messages/s; the next refresh must not wait for it.
        # Each subscription's state is recorded before any send, so an overlapping evaluation
        # cannot alert the same chat twice.
        task = asyncio.create_task(self._evaluate(e))
        self.fanouts.add(task)
        task.add_done_callback(self.fanouts.discard)

    def _record(self, e: Explanation) -> None:
        """What `whydown status` and `/why <date>` read of this refresh."""
        self.store.set_meta("last_refresh", e.data_time.isoformat())
        try:  # the day's record for `/why <date>`; losing one must not stop alerts
            self.store.archive.record(e)
        except Exception as err:
            if is_full(err):
                raise
            log.exception("archiving the explanation failed")
        self.store.set_meta("sources", json.dumps([s.model_dump(mode="json") for s in e.sources]))
        if self.feed is not None:
            self.store.set_meta(
                "streams", json.dumps([stream_status_json(s) for s in self.feed.statuses()])
            )

    async def _evaluate(self, e: Explanation) -> None:
        """Evaluate the alert rule and fan out, logging rather than raising."""
        try:
            await self.engine.evaluate(e)
        except Exception:
            log.exception("alert evaluation failed")

    async def react(self) -> None:
        """Streamed liquidations crossed the liquidation driver's threshold: refresh and
        evaluate the alert rule now rather than at the next scheduled refresh."""
        log.info("liquidation threshold crossed: refreshing and evaluating alerts now")
        await self.refresh()

    async def liquidations(self) -> None:
        """Poll the liquidation feeds between refreshes."""
        try:
            new = await self.explainer.poll_liquidations()
        except Exception:
            log.exception("liquidation poll failed")
            return
        if new:
            log.debug("liquidations: %d new events", new)

    async def prune(self) -> None:
        """Delete rows past their retention."""
        try:
            removed = self.store.prune(utcnow())
        except StorageFull:
            return  # the fault is noted and logged once; the next prune tries again
        except sqlite3.OperationalError as err:
            if not is_full(err):
                raise
            self.store.faults.failed(err, "pruning")
            return
        removed["archived explanations"] = self.store.archive.prune(utcnow(), self.archive_days)
        log.info(
            "pruned %s", ", ".join(f"{n} {table}" for table, n in removed.items()) or "nothing"
        )


def scheduler_for(jobs: Jobs, settings: Settings) -> AsyncIOScheduler:
    """Refresh, liquidation polling and pruning; one instance of each at a time, missed runs merged."""
    scheduler = AsyncIOScheduler(
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 30}
    )
    now = utcnow()
    scheduler.add_job(
        jobs.refresh,
        "interval",
        seconds=settings.refresh_interval_s,
        next_run_time=now,
        id="refresh",
    )
    scheduler.add_job(
        jobs.liquidations,
        "interval",
        seconds=settings.liquidation_poll_s,
        next_run_time=now + timedelta(seconds=settings.liquidation_poll_s),
        id="liquidations",
    )
    scheduler.add_job(jobs.prune, "interval", seconds=settings.prune_interval_s, id="prune")
    return scheduler
