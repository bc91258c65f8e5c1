"""The scheduled jobs as `whydown run` wires them: refresh -> store -> explain -> alerts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.alerts import AlertEngine, AlertSettings
from bot.config import Settings
from bot.runner import Jobs, status_report
from bot.store import Store
from explainers.sources import okx
from tests.alert_fakes import RecordingNotifier
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
        explainer = upstream.explainer(client, settings, history=store)
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
    assert last.startswith("Last alert: ") and ", 5 drivers (Fear spreading, ETF outflows" in last
    assert last.endswith("market -13.9% in 24h")
