"""The composition root: one event loop holding one httpx client, one store, the explainer, the
scheduler, the alert engine and whichever chat front-ends have a token.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.actions import Actions
from bot.alerts import AlertEngine
from bot.config import Settings, VenueStream
from bot.delivery import FanOutReport, Notifier
from bot.live import BackfillHistory, LiquidationFeed, StreamHistory
from bot.store import (
    SCHEMA_VERSION,
    AlreadyRunning,
    DatabaseFault,
    Platform,
    StorageFull,
    Store,
    is_full,
)
from explainers.backtest import TimeMachine
from explainers.chart_service import ChartMaker
from explainers.collect import Collector, utcnow
from explainers.history import History
from explainers.models import Explanation, Replay
from explainers.replay import Scenario, not_recorded
from explainers.service import Explainer
from explainers.sources import okx
from explainers.sources.http import USER_AGENT, limit_body
from explainers.streams import StreamStatus, Venue
from explainers.streams.okx import okx_swap

if TYPE_CHECKING:  # prometheus-client loads only when health is enabled
    from bot.health import Health

log = logging.getLogger("whydown.runner")

EXIT_CONFIG = 2
EXIT_ALREADY_RUNNING = 3
EXIT_START_FAILED = 4
EXIT_DATABASE = 5


def http_client(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The one client every source shares: explicit timeouts, a descriptive User-Agent."""
    timeout = settings.sources.timeout_s
    client = httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=True,
        limits=httpx.Limits(max_connections=40, max_keepalive_connections=20),
    )
    return limit_body(client, settings.sources.max_body_bytes)


def build_explainer(
    client: httpx.AsyncClient,
    settings: Settings,
    *,
    history: History | None = None,
    clock: Callable[[], datetime] = utcnow,
    replay: Replay | None = None,
    feed: LiquidationFeed | None = None,
) -> Explainer:
    return Explainer(
        Collector(client, settings.sources, clock=clock, off=not_recorded() if replay else None),
        settings.thresholds,
        history=history,
        max_age=timedelta(seconds=settings.refresh_interval_s),
        clock=clock,
        replay=replay,
        liquidation_modes=feed.modes if feed is not None else None,
    )


def demo_client(settings: Settings, scenario: Scenario) -> httpx.AsyncClient:
    """A client that answers from the scenario's recorded responses; nothing leaves the machine."""
    return http_client(settings, transport=scenario.transport())


class Frontend(Protocol):
    """A chat front-end as the runner sees it: its platform, its alert notifier, its lifecycle."""

    @property
    def platform(self) -> Platform: ...

    @property
    def notifier(self) -> Notifier: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def missing_tokens_message() -> str:
    return (
        "No chat platform is configured, so there is nothing to run.\n"
        "Set at least one of these (in the environment or in .env):\n"
        "  WHYDOWN_TELEGRAM_TOKEN   a bot token from @BotFather\n"
        "  WHYDOWN_DISCORD_TOKEN    a bot token from the Discord developer portal\n"
        "Or post alerts to a webhook only: `whydown webhook add URL`.\n"
        "See .env.example for every setting. `whydown demo` works without any token."
    )


def has_webhooks(settings: Settings) -> bool:
    """Whether the database holds an active webhook: then `whydown run` has work without a chat
    token. A database that cannot be read says so later, where `run` opens it."""
    if not settings.database.exists():
        return False
    try:
        with Store(settings.database, read_only=True) as store:
            return store.subscription_counts().get("webhook", 0) > 0
    except (DatabaseFault, sqlite3.Error):
        return True


def frontends(settings: Settings, actions: Actions) -> list[Frontend]:
    """A front-end for each platform whose token is set (imported only when needed), all calling
    the one set of actions, and the webhooks' (`run` starts without a chat token only when a
    webhook is subscribed)."""
    result: list[Frontend] = []
    if settings.telegram_token is not None:
        from bot.telegram.bot import TelegramFrontend

        result.append(
            TelegramFrontend(
                token=settings.telegram_token,
                actions=actions,
                api_url=settings.telegram_api_url,
                file_url=settings.telegram_file_url,
            )
        )
    if settings.discord_token is not None:
        from bot.discord.bot import DiscordFrontend

        result.append(
            DiscordFrontend(
                token=settings.discord_token, actions=actions, guild_id=settings.discord_guild_id
            )
        )
    # webhooks have nothing to start, only a session to close
    from bot.webhook.notifier import WebhookFrontend

    result.append(WebhookFrontend(settings.thresholds, timeout_s=settings.webhooks.timeout_s))
    return result


class MetaGapMemory:
    """Keeps in the store's meta the start of each venue's stream gap still open at exit."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def open_gap(self, exchange: str) -> datetime | None:
        value = self.store.get_meta(f"stream_open_gap:{exchange}")
        return datetime.fromisoformat(value) if value else None

    def set_open_gap(self, exchange: str, start: datetime | None) -> None:
        self.store.set_meta(f"stream_open_gap:{exchange}", start.isoformat() if start else "")


def feed_for(
    settings: Settings, store: Store, *, demo: bool, clock: Callable[[], datetime]
) -> LiquidationFeed | None:
    """The liquidation streams of `whydown run`: every enabled venue, except in a demo replay,
    where only venues given a URL are read (a replay never reaches the real venues)."""
    streams = settings.streams
    if not streams.enabled:
        return None
    configured: dict[Venue, VenueStream] = {
        "bybit": streams.bybit,
        "okx": streams.okx,
        "binance": streams.binance,
    }
    venues: dict[Venue, str | None] = {
        venue: cfg.url
        for venue, cfg in configured.items()
        if cfg.enabled and (not demo or cfg.configured_url())
    }
    if not venues:
        return None
    history = store.history
    if not isinstance(history, StreamHistory):
        log.warning("this store cannot keep streamed liquidations: the streams stay off")
        return None
    return LiquidationFeed(
        history,
        venues=venues,
        coins=streams.coins,
        market_coins=market_coins(settings),
        thresholds=settings.thresholds,
        debounce_s=streams.alert_debounce_s,
        clock=clock,
        gap_memory=MetaGapMemory(store),
        extra_coins_max=streams.extra_coins_max,
    )


def market_coins(settings: Settings) -> list[str]:
    """The coins whose liquidations make the market totals: the streamed ones and the OKX
    families polled over REST ("BTC-USDT" is BTC); a coin streamed because a user asked about
    it is not one of them."""
    families = [family.split("-")[0] for family in settings.sources.liquidation_families]
    return list(dict.fromkeys(c.upper() for c in [*settings.streams.coins, *families]))


def okx_contract_value(
    client: httpx.AsyncClient, settings: Settings
) -> Callable[[str], Awaitable[float]]:
    """The OKX contract value of a coin's USDT swap, read once through the sources layer."""

    async def lookup(coin: str) -> float:
        inst_id = okx_swap(coin)
        values = await okx.fetch_contract_values(client, settings.sources, [inst_id])
        return values[inst_id]

    return lookup


def _status_json(status: StreamStatus) -> dict[str, object]:
    return {
        "venue": status.venue,
        "coverage": status.coverage,
        "state": status.state,
        "reason": status.reason,
        "connected_since": status.connected_since.isoformat() if status.connected_since else None,
        "last_event_at": status.last_event_at.isoformat() if status.last_event_at else None,
        "events_total": status.events_total,
        "coins": list(status.coins),
        "skipped": list(status.skipped),
    }


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
                "streams", json.dumps([_status_json(s) for s in self.feed.statuses()])
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


async def run(settings: Settings, *, demo: bool = False, stop: asyncio.Event | None = None) -> int:
    """`whydown run`: until SIGINT/SIGTERM (or `stop`), then a clean shutdown."""
    webhooks_only = settings.telegram_token is None and settings.discord_token is None
    if webhooks_only and not has_webhooks(settings):
        print(missing_tokens_message())
        return EXIT_CONFIG
    try:
        store = Store(settings.database, lock=True)
    except AlreadyRunning as err:
        print(err)
        return EXIT_ALREADY_RUNNING
    except DatabaseFault as err:
        # a restart cannot mend it: say what is wrong and how to recover, with its own code
        print(err, file=sys.stderr)
        return EXIT_DATABASE
    # entered at once: whatever fails from here on still closes the database and frees the lock
    with store:
        store.checkpoint_off_the_loop()
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        handled: list[signal.Signals] = []
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
                handled.append(sig)
            scenario = (
                (Scenario.load(settings.demo_folder) if settings.demo_folder else Scenario.load())
                if demo
                else None
            )
            code = await _serve(settings, store, scenario, stop)
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
    log.info("stopped; database closed")
    return code


async def _serve(
    settings: Settings, store: Store, scenario: Scenario | None, stop: asyncio.Event
) -> int:
    """Run the client, the front-ends, the scheduler and the alert engine until `stop` is set."""
    clock: Callable[[], datetime] = (lambda: scenario.now) if scenario else utcnow
    feed = feed_for(settings, store, demo=scenario is not None, clock=clock)
    async with demo_client(settings, scenario) if scenario else http_client(settings) as client:
        explainer = build_explainer(
            client,
            settings,
            # polls add only what the live streams did not deliver
            history=BackfillHistory(store.history, feed) if feed else store.history,
            clock=clock,
            replay=scenario.replay if scenario else None,
            feed=feed,
        )
        # one chart maker for both platforms: a chart is drawn once per refresh and resent
        charts = ChartMaker(explainer, settings.sources, clock=clock)
        actions = Actions(
            explainer,
            store,
            thresholds=settings.thresholds,
            alert_settings=settings.alerts,
            charts=charts,
            clock=clock,
            # a coin asked about is streamed too
            on_coin_asked=feed.coin_asked if feed is not None else None,
            # /why <date> and /preview: rebuilt days cached in the store's archive
            timemachine=TimeMachine(
                client, settings.sources, settings.thresholds, archive=store.archive, clock=clock
            ),
        )
        if feed is not None:
            feed.contract_value = okx_contract_value(client, settings)
        fronts = frontends(settings, actions)
        health: Health | None = None
        if settings.health.enabled:
            from bot.health import Health  # prometheus-client only when asked for

            health = Health(
                store,
                streams=feed,
                stale_after_s=settings.health.stale_after_refreshes * settings.refresh_interval_s,
            )
        # the alert's chart is drawn once, kept with the alert and carried by every delivery
        engine = AlertEngine(
            store,
            settings.alerts,
            {f.platform: f.notifier for f in fronts},
            charts=charts,
            observer=health,
        )
        jobs = Jobs(explainer, store, engine, feed, health, archive_days=settings.archive_days)
        if feed is not None:
            feed.on_crossing = jobs.react
        scheduler = scheduler_for(jobs, settings)
        started: list[Frontend] = []
        resume: asyncio.Task[FanOutReport] | None = None
        try:
            for front in fronts:
                try:
                    await front.start()
                except Exception as err:
                    # a wrong token or an unreachable API: say so plainly and stop. The log
                    # scrubs secrets, and some libraries put the token in this message.
                    log.error(
                        "could not start the %s bot (%s: %s); check its token and API URL",
                        front.platform,
                        type(err).__name__,
                        err,
                    )
                    await _stop(front)  # whatever it opened before failing
                    return EXIT_START_FAILED
                started.append(front)
                log.info("%s front-end started", front.platform)
            if health is not None:
                await health.start(settings.health.port)
            # everything the start-up made (modules, clients, settings) lives as long as the
            # process: kept out of the collector's full passes, which then stay short enough
            # not to stall the event loop during a large fan-out (bench/fanout_large.py)
            gc.collect()
            gc.freeze()
            resume = asyncio.create_task(engine.resume_pending())
            scheduler.start()
            if feed is not None:
                feed.start()
            log.info(
                "whydown running: %s; refresh every %d s%s",
                ", ".join(f.platform for f in fronts),
                settings.refresh_interval_s,
                " (demo replay)" if scenario else "",
            )
            await stop.wait()
            log.info("stopping")
        finally:
            if scheduler.running:
                scheduler.shutdown(wait=False)
            if feed is not None:
                await feed.stop()  # closing gaps recorded, buffered events written
            # in-flight sends finish, the rest stay pending; the resumed fan-out then returns
            # on its own (cancelling it first would cancel the sends it has in flight)
            await engine.aclose()
            if resume is not None:
                await asyncio.wait([resume])
                _log_resume_failure(resume)
            if jobs.fanouts:
                await asyncio.wait(jobs.fanouts)
            for front in reversed(started):
                await _stop(front)
            if health is not None:
                await health.stop()
    return 0


async def _stop(front: Frontend) -> None:
    """Stop a front-end; one that fails to stop is logged, and the others still stop."""
    try:
        await front.stop()
    except Exception:
        log.exception("the %s front-end did not stop cleanly", front.platform)


def _log_resume_failure(task: asyncio.Task[FanOutReport]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("resuming pending deliveries failed", exc_info=task.exception())


def status_report(settings: Settings) -> str:
    """`whydown status`: read the database without the instance lock, and never write to it.
    Raises DatabaseFault for a database that cannot be read."""
    if not settings.database.exists():
        return f"No database at {settings.database} yet: `whydown run` creates it."
    try:
        return _status_of(settings)
    except sqlite3.DatabaseError as err:  # damage found past the file's first pages
        raise DatabaseFault(settings.database, err) from err


def _status_of(settings: Settings) -> str:
    with Store(settings.database, read_only=True) as store:
        version = store.schema_version
        if version != SCHEMA_VERSION:
            # its tables are not the ones this code reads; migrating is `whydown run`'s job
            return _schema_mismatch(settings, version)
        counts = store.subscription_counts()
        last_refresh = store.get_meta("last_refresh")
        sources = json.loads(store.get_meta("sources") or "[]")
        streams = json.loads(store.get_meta("streams") or "[]")
        alerts = store.recent_alerts(1)
    lines = [
        "Subscriptions: "
        + (", ".join(f"{platform} {n}" for platform, n in counts.items()) or "none"),
        f"Last refresh: {last_refresh or 'never'}",
    ]
    if sources:
        lines.append("Sources at the last refresh:")
        for s in sources:
            if s["state"] == "disabled":
                continue
            note = f" ({s['reason']})" if s.get("reason") else ""
            lines.append(f"  {s['label']:<28} {s['state']}{note}")
    if streams:
        lines.append("Liquidation streams at the last refresh:")
        for st in streams:
            note = f" ({st['reason']})" if st.get("reason") else ""
            lines.append(
                f"  {st['venue']:<10} {st['state']}{note}, {st['coverage']}, "
                f"{st['events_total']} events, last {st['last_event_at'] or 'none yet'}"
            )
            if st.get("skipped"):
                lines.append(f"  {'':<10} not streamed: {'; '.join(st['skipped'])}")
    if alerts:
        a = alerts[0]
        lines.append(
            f"Last alert: {a.created_at:%Y-%m-%d %H:%M} UTC, {a.driver_count} drivers "
            f"({', '.join(a.drivers)}), market {a.market_change_24h:+.1f}% in 24h"
            if a.market_change_24h is not None
            else f"Last alert: {a.created_at:%Y-%m-%d %H:%M} UTC, {a.driver_count} drivers"
        )
    else:
        lines.append("Last alert: none")
    return "\n".join(lines)


def _schema_mismatch(settings: Settings, version: int) -> str:
    """What status says about a database whose schema this whydown does not read."""
    where = f"The database {settings.database} is at schema v{version}"
    if version > SCHEMA_VERSION:
        return (
            f"{where}, newer than this whydown (v{SCHEMA_VERSION}): "
            "upgrade whydown to read its status."
        )
    return (
        f"{where}, older than this whydown (v{SCHEMA_VERSION}): "
        "`whydown run` migrates it; status leaves it as it is."
    )
