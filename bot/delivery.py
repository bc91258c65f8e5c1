"""Sending recorded alerts: the Notifier protocol, its error tree, and the paced fan-out.

    DeliveryError               a send failed; str() is safe to log and store (no token, no URL);
    │                           raised as such, our message was refused: given up at once
    ├── RetryAfter              the server said "wait `seconds`": honoured exactly, then retried
    │                           (not counted as a failed attempt)
    ├── TransientDeliveryError  network trouble, 5xx: retried with exponential back-off
    └── PermanentDeliveryError  the chat is gone, or blocked or removed the bot: not retried;
                                enough of these in a row deactivate the subscription

A front-end's Notifier translates its library's errors into this tree, ``raise ... from err``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from bot.pacing import Clock, Pacer, PlatformLimits
from bot.store import AlertChart, Store, Subscription
from explainers.models import Explanation

log = logging.getLogger("whydown.delivery")


class DeliveryError(Exception):
    """A message could not be delivered."""


class RetryAfter(DeliveryError):
    """The server asked us to wait before sending again (HTTP 429 / flood control)."""

    def __init__(self, seconds: float, *, platform_wide: bool = False) -> None:
        scope = "every chat" if platform_wide else "this chat"
        super().__init__(f"rate limited: retry after {seconds:g} s ({scope})")
        self.seconds = seconds
        self.platform_wide = platform_wide  # Discord's global limit, for instance


class TransientDeliveryError(DeliveryError):
    """A failure that may pass: timeouts, connection errors, 5xx."""


class PermanentDeliveryError(DeliveryError):
    """The target will not accept messages: chat deleted, bot blocked, removed or muted."""


class AlertMessage(BaseModel):
    """What a Notifier sends: the front-end renders the explanation itself."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["alert", "eased"]
    alert_id: int
    explanation: Explanation
    # the alert's chart, kept with the alert (None: none was drawn; a front-end may draw one)
    chart: AlertChart | None = None


class DeliveryObserver(Protocol):
    """Told of each delivery's outcome (the metrics)."""

    def delivered(self, platform: str, outcome: Literal["sent", "failed"]) -> None: ...


class Notifier(Protocol):
    """One chat platform's way to post a message to a subscription's chat, channel or topic."""

    platform: str

    async def send(self, subscription: Subscription, message: AlertMessage) -> None:
        """Post the message; raise a DeliveryError subtype when it could not be posted."""


@dataclass
class FanOutReport:
    """What one fan-out did."""

    sent: int = 0
    failed: int = 0  # given up: permanent failure, or retries exhausted
    retried: int = 0  # sends tried again: after a failure, or a server's "retry after"
    deactivated: int = 0
    expired: int = 0  # pending from before a restart and too old to send
    unfinished: int = 0  # still pending because the engine was stopping

    def add(self, other: FanOutReport) -> None:
        """Accumulate another report into this one."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Job:
    """One pending delivery on its way out."""

    delivery_id: int
    subscription: Subscription
    message: AlertMessage
    attempts: int = 0


#: a feed of jobs for one platform, a batch at a time (a large fan-out is never all in memory)
JobFeed = AsyncIterator[Sequence[Job]]


async def _once(jobs: Sequence[Job]) -> JobFeed:
    yield jobs


@dataclass
class _Run:
    queues: dict[str, asyncio.Queue[Job | None]] = field(default_factory=dict)
    workers_per_platform: dict[str, int] = field(default_factory=dict)
    remaining: int = 0
    feeding: int = 0  # platforms whose feed has more jobs to come
    report: FanOutReport = field(default_factory=FanOutReport)
    timers: set[asyncio.Task[None]] = field(default_factory=set)
    workers: list[asyncio.Task[None]] = field(default_factory=list)
    feeders: list[asyncio.Task[None]] = field(default_factory=list)
    room: dict[str, asyncio.Event] = field(default_factory=dict)  # a queue fell below its mark

    def release_workers(self) -> None:
        for platform, queue in self.queues.items():
            for _ in range(self.workers_per_platform[platform]):
                queue.put_nowait(None)


class Dispatcher:
    """Fans jobs out concurrently per platform, paced, each target isolated from the others."""

    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        limits: Mapping[str, PlatformLimits],
        clock: Clock,
        *,
        max_attempts: int,
        backoff_base_s: float,
        deactivate_after: int,
        queue_mark: int = 1000,
        observer: DeliveryObserver | None = None,
    ) -> None:
        missing = sorted(set(notifiers) - set(limits))
        if missing:
            raise ValueError(f"no rate limits known for platform(s): {', '.join(missing)}")
        self._store = store
        self._notifiers = notifiers
        self._limits = limits
        self._clock = clock
        self._pacer = Pacer(limits, clock)
        self._max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s
        self._deactivate_after = deactivate_after
        self._active: dict[int, _Run] = {}
        self.stopping = False
        #: a platform's feed is read on while its queue holds fewer jobs than this
        self.queue_mark = queue_mark
        self._observer = observer

    async def run(self, jobs: Sequence[Job]) -> FanOutReport:
        """Deliver every job (or give up on it); return the tally."""
        by_platform: dict[str, list[Job]] = {}
        for job in jobs:
            by_platform.setdefault(job.subscription.platform, []).append(job)
        return await self.run_feeds({p: _once(items) for p, items in by_platform.items()})

    async def run_feeds(self, feeds: Mapping[str, JobFeed]) -> FanOutReport:
        """Deliver every job each platform's feed yields, a batch at a time: a platform's feed is
        read on only while its queue holds less than `queue_mark` jobs, so memory stays flat
        however large the audience, and a slow platform never holds up the others."""
        run = _Run()
        if self.stopping:
            for feed in feeds.values():
                async for batch in feed:
                    run.report.unfinished += len(batch)
            return run.report
        self._active[id(run)] = run
        run.feeding = len(feeds)
        for platform, feed in feeds.items():
            run.queues[platform] = asyncio.Queue()
            run.workers_per_platform[platform] = 0
            run.room[platform] = asyncio.Event()
            run.feeders.append(asyncio.create_task(self._feed(run, platform, feed)))
        try:
            await asyncio.gather(*run.feeders)
            if run.remaining == 0:
                run.release_workers()
            await asyncio.gather(*run.workers)
        finally:
            for task in [*run.feeders, *run.workers, *run.timers]:
                task.cancel()
            await asyncio.gather(*run.feeders, *run.workers, *run.timers, return_exceptions=True)
            del self._active[id(run)]
            self._pacer.forget_idle()
        run.report.unfinished = run.remaining
        return run.report

    async def _feed(self, run: _Run, platform: str, feed: JobFeed) -> None:
        queue, room = run.queues[platform], run.room[platform]
        try:
            async for batch in feed:
                if self.stopping:
                    return  # the rest stays pending in the store
                while queue.qsize() >= self.queue_mark and not self.stopping:
                    room.clear()
                    await room.wait()
                for job in batch:
                    queue.put_nowait(job)
                run.remaining += len(batch)
                wanted = min(self._limits[platform].concurrency, run.remaining)
                while run.workers_per_platform[platform] < wanted and not self.stopping:
                    run.workers.append(asyncio.create_task(self._worker(run, queue, room)))
                    run.workers_per_platform[platform] += 1
        finally:
            run.feeding -= 1

    def stop(self) -> None:
        """Start no new send; sends already in flight finish; the rest stay pending in the store."""
        self.stopping = True
        for run in self._active.values():
            for timer in run.timers:
                timer.cancel()
            for room in run.room.values():
                room.set()
            run.release_workers()

    def workers(self) -> list[asyncio.Task[None]]:
        """The worker tasks of every fan-out under way."""
        return [task for run in self._active.values() for task in run.workers]

    async def _worker(
        self, run: _Run, queue: asyncio.Queue[Job | None], room: asyncio.Event
    ) -> None:
        while not self.stopping:
            job = await queue.get()
            if queue.qsize() < self.queue_mark:
                room.set()
            if job is None:
                return
            await self._pacer.acquire(job.subscription.platform, job.subscription.chat_id)
            if self.stopping:
                return
            await self._attempt(run, queue, job)

    async def _attempt(self, run: _Run, queue: asyncio.Queue[Job | None], job: Job) -> None:
        subscription = job.subscription
        notifier = self._notifiers[subscription.platform]
        job.attempts += 1
        try:
            await notifier.send(subscription, job.message)
        except RetryAfter as err:
            chat = None if err.platform_wide else subscription.chat_id
            self._pacer.pause(subscription.platform, err.seconds, chat)
            # the server asked us to wait: not a failed attempt, so never a reason to give up
            job.attempts -= 1
            self._retry_later(run, queue, job, str(err), err.seconds)
        except TransientDeliveryError as err:
            backoff = self._backoff_base_s * 2 ** (job.attempts - 1)
            self._retry_or_give_up(run, queue, job, err, backoff)
        except PermanentDeliveryError as err:
            self._store.mark_failed(job.delivery_id, job.attempts, str(err))
            run.report.failed += 1
            self._observe(subscription.platform, "failed")
            if self._store.note_permanent_failure(subscription.id, self._deactivate_after):
                run.report.deactivated += 1
                log.warning(
                    "deactivated %s subscription %d after %d permanent failures: %s",
                    subscription.platform,
                    subscription.id,
                    self._deactivate_after,
                    err,
                )
            self._finish(run)
        except DeliveryError as err:
            # our message was refused (Telegram's Bad Request, say): the same message would be
            # refused again, and it says nothing about the chat, so no retry and no deactivation
            self._store.mark_failed(job.delivery_id, job.attempts, str(err))
            run.report.failed += 1
            self._observe(subscription.platform, "failed")
            log.warning("gave up on delivery %d: %s", job.delivery_id, err)
            self._finish(run)
        except Exception as err:
            # a bug or an untranslated error in one notifier must not stop the other targets.
            # Its text may hold a URL with the bot token in it: only the type is logged by
            # default, the traceback at DEBUG.
            log.error(
                "unexpected %s sending to subscription %d; retrying as transient",
                type(err).__name__,
                subscription.id,
            )
            log.debug("details of the unexpected send error", exc_info=True)
            backoff = self._backoff_base_s * 2 ** (job.attempts - 1)
            self._retry_or_give_up(run, queue, job, err, backoff, detail=type(err).__name__)
        else:
            # no await between the send and this mark: a crash can repeat only in-flight sends
            self._store.mark_sent(job.delivery_id, subscription.id, job.attempts, self._clock.now())
            run.report.sent += 1
            self._observe(subscription.platform, "sent")
            self._finish(run)

    def _retry_or_give_up(
        self,
        run: _Run,
        queue: asyncio.Queue[Job | None],
        job: Job,
        err: Exception,
        delay: float,
        detail: str | None = None,
    ) -> None:
        error = detail or str(err)
        if job.attempts >= self._max_attempts:
            self._store.mark_failed(job.delivery_id, job.attempts, error)
            run.report.failed += 1
            self._observe(job.subscription.platform, "failed")
            log.warning(
                "gave up on delivery %d after %d attempts: %s", job.delivery_id, job.attempts, error
            )
            self._finish(run)
            return
        self._retry_later(run, queue, job, error, delay)

    def _retry_later(
        self, run: _Run, queue: asyncio.Queue[Job | None], job: Job, error: str, delay: float
    ) -> None:
        self._store.note_attempt(job.delivery_id, job.attempts, error)
        run.report.retried += 1
        # the job waits off the queue, so its worker moves on to other targets meanwhile
        timer = asyncio.create_task(self._requeue_later(queue, job, delay))
        run.timers.add(timer)
        timer.add_done_callback(run.timers.discard)

    async def _requeue_later(
        self, queue: asyncio.Queue[Job | None], job: Job, delay: float
    ) -> None:
        await self._clock.sleep(delay)
        queue.put_nowait(job)

    def _observe(self, platform: str, outcome: Literal["sent", "failed"]) -> None:
        if self._observer is not None:
            self._observer.delivered(platform, outcome)

    def _finish(self, run: _Run) -> None:
        run.remaining -= 1
        if run.remaining == 0 and run.feeding == 0:
            run.release_workers()
