"""The scheduled jobs as `whydown run` wires them: refresh -> store -> explain -> alerts."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlite_utils
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic import SecretStr

from bot import runner
from bot.alerts import AlertEngine, AlertSettings
from bot.config import Settings
from bot.delivery import AlertMessage
from bot.jobs import Jobs
from bot.status import status_report
from bot.store import SCHEMA_VERSION, Store, Subscription, migrate, schema_version
from explainers.replay import Scenario
from explainers.sources import okx
from tests.alert_fakes import RecordingNotifier, explanation
from tests.replay_helpers import Upstream


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, database=tmp_path / "whydown.db")


async def _refresh_with(
    settings: Settings, subscriptions: int
) -> tuple[Upstream, RecordingNotifier, Store]:
    store = Store(settings.database)
    for i in range(subscriptions):
        store.subscribe("telegram", str(-1000 - i), None, 3, "test")
    okx.CONTRACT_VALUES.clear()  # each run starts cold, so both make the same requests
    upstream = Upstream()
    notifier = RecordingNotifier("telegram")
    async with upstream.client(settings) as client:
        explainer = upstream.explainer(client, settings, history=store.history)
        jobs = Jobs(explainer, store, AlertEngine(store, AlertSettings(), {"telegram": notifier}))
        await jobs.refresh()
        await asyncio.gather(*jobs.fanouts)
    return upstream, notifier, store


async def test_refresh_job_stores_state_and_alerts_every_subscription(settings: Settings) -> None:
    _, notifier, store = await _refresh_with(settings, subscriptions=3)
    with store:
        assert len(notifier.received) == 3
        assert {kind for _, kind, _ in notifier.received} == {"alert"}
        assert store.get_meta("last_refresh") == "2024-08-05T08:00:00+00:00"
        assert store.liquidations_tracked_since() is not None
        assert store.recent_alerts(1)[0].driver_count == 5


async def test_upstream_calls_do_not_grow_with_subscriptions(
    settings: Settings, tmp_path: Path
) -> None:
    few, _, store = await _refresh_with(settings, subscriptions=1)
    store.close()
    many_settings = settings.model_copy(update={"database": tmp_path / "many.db"})
    many, notifier, store = await _refresh_with(many_settings, subscriptions=40)
    store.close()
    assert len(notifier.received) == 40
    assert len(many.scenario.requests) == len(few.scenario.requests)


async def test_status_after_a_refresh(settings: Settings) -> None:
    _, _, store = await _refresh_with(settings, subscriptions=2)
    store.close()
    report = status_report(settings)
    assert "Subscriptions: telegram 2" in report
    assert "Last refresh: 2024-08-05T08:00:00+00:00" in report
    assert "Farside ETF flows            ok" in report
    last = report.splitlines()[-1]
    assert (
        last.startswith("Last alert: ")
        and ", 5 drivers (ETF outflows, Institutional selling" in last
    )
    assert last.endswith("market -13.9% in 24h")


class StoppingNotifier:
    """Asks the runner to stop while its first send is in flight, then completes that send."""

    platform = "telegram"

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.delivered: list[int] = []
        self.cancelled = False

    async def send(self, subscription: Subscription, message: AlertMessage) -> None:
        self.stop.set()
        try:
            await asyncio.sleep(0)  # the runner sees the stop while this send is in flight
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        self.delivered.append(message.alert_id)


class FakeFrontend:
    platform = "telegram"

    def __init__(self, notifier: StoppingNotifier) -> None:
        self.notifier = notifier
        self.stopped = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True


async def test_stopping_lets_a_resumed_send_in_flight_finish(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)  # the engine runs on the system clock: a young pending delivery
    with Store(settings.database) as store:
        subscription = store.subscribe("telegram", "-1001", None, 3, "test")
        alert = store.add_alert("alert", explanation(4, at=now), "left over", now)
        [delivery] = store.add_deliveries(alert.id, [subscription.id], now)
    stop = asyncio.Event()
    notifier = StoppingNotifier(stop)
    front = FakeFrontend(notifier)
    monkeypatch.setattr(runner, "frontends", lambda *args: [front])
    # no scheduled refresh: this is about the resumed delivery alone
    monkeypatch.setattr(runner, "scheduler_for", lambda *args: AsyncIOScheduler())
    token = settings.model_copy(update={"telegram_token": SecretStr("123:test-not-a-token")})

    assert await runner.run(token, stop=stop) == 0

    assert not notifier.cancelled
    assert notifier.delivered == [alert.id]
    assert front.stopped
    with Store(settings.database, lock=True) as store:  # closed, and the lock released
        [row] = store.deliveries(alert.id)
    assert (row.id, row.status, row.attempts) == (delivery.id, "sent", 1)


class StuckFrontend(FakeFrontend):
    """A front-end whose stop fails, as a connection torn down twice might."""

    async def stop(self) -> None:
        await super().stop()
        raise RuntimeError("the connection was already closed")


async def test_a_front_end_that_fails_to_stop_is_logged_and_the_others_still_stop(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    stop = asyncio.Event()
    stuck, other = StuckFrontend(StoppingNotifier(stop)), FakeFrontend(StoppingNotifier(stop))
    other.platform = "discord"
    monkeypatch.setattr(runner, "frontends", lambda *args: [other, stuck])
    monkeypatch.setattr(runner, "scheduler_for", lambda *args: AsyncIOScheduler())
    token = settings.model_copy(update={"telegram_token": SecretStr("123:test-not-a-token")})
    stop.set()

    with caplog.at_level(logging.ERROR, logger="whydown.runner"):
        assert await runner.run(token, stop=stop) == 0

    assert stuck.stopped and other.stopped
    [record] = caplog.records
    assert record.getMessage() == "the telegram front-end did not stop cleanly"
    assert record.exc_info is not None and "already closed" in str(record.exc_info[1])


async def test_a_failure_before_the_loop_closes_the_store_and_removes_signal_handlers(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> Scenario:
        raise RuntimeError("the recording is unreadable")

    monkeypatch.setattr(Scenario, "load", staticmethod(broken))
    token = settings.model_copy(update={"telegram_token": SecretStr("123:test-not-a-token")})

    with pytest.raises(RuntimeError, match="the recording is unreadable"):
        await runner.run(token, demo=True)

    loop = asyncio.get_running_loop()
    assert not loop.remove_signal_handler(signal.SIGINT)
    assert not loop.remove_signal_handler(signal.SIGTERM)
    with Store(settings.database, lock=True):
        pass  # the instance lock was released


def test_status_of_an_older_schema_says_so_and_leaves_it_as_it_is(settings: Settings) -> None:
    old = sqlite_utils.Database(settings.database)
    migrate(old, target=1)
    old.close()

    report = status_report(settings)

    assert report == (
        f"The database {settings.database} is at schema v1, older than this whydown "
        f"(v{SCHEMA_VERSION}): `whydown run` migrates it; status leaves it as it is."
    )
    after = sqlite_utils.Database(settings.database)
    assert schema_version(after) == 1
    assert after.journal_mode == "delete"  # not switched to WAL either
    after.close()


def test_status_of_a_newer_schema_asks_for_an_upgrade(settings: Settings) -> None:
    with Store(settings.database) as store:
        store.db.execute(
            "INSERT INTO schema_version VALUES (?, ?)", (SCHEMA_VERSION + 1, "2030-01-01")
        )

    report = status_report(settings)

    assert report == (
        f"The database {settings.database} is at schema v{SCHEMA_VERSION + 1}, newer than this "
        f"whydown (v{SCHEMA_VERSION}): upgrade whydown to read its status."
    )
