"""The composition root: one event loop holding one httpx client, one store, the explainer, the
scheduler, the alert engine and whichever chat front-ends have a token.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import httpx

from bot.actions import Actions
from bot.alerts import AlertEngine
from bot.config import Settings
from bot.delivery import FanOutReport, Notifier
from bot.feed_setup import feed_for
from bot.jobs import Jobs, scheduler_for
from bot.live import BackfillHistory, LiquidationFeed
from bot.store import (
    AlreadyRunning,
    DatabaseFault,
    Platform,
    Store,
)
from explainers.backtest import TimeMachine
from explainers.chart_service import ChartMaker
from explainers.collect import Collector, utcnow
from explainers.history import History
from explainers.models import Replay
from explainers.replay import Scenario, not_recorded
from explainers.service import Explainer
from explainers.sources import okx
from explainers.sources.http import USER_AGENT, limit_body
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
        coin_venues=feed.coin_venues if feed is not None else None,
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


def okx_contract_value(
    client: httpx.AsyncClient, settings: Settings
) -> Callable[[str], Awaitable[float]]:
    """The OKX contract value of a coin's USDT swap, read once through the sources layer."""

    async def lookup(coin: str) -> float:
        inst_id = okx_swap(coin)
        values = await okx.fetch_contract_values(client, settings.sources, [inst_id])
        return values[inst_id]

    return lookup


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
