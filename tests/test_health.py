"""/healthz and /metrics: scraped from `whydown run` wired in-process (the demo replay, a fake
chat front-end), and the 503 reasons of stale refreshes and broken streams."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from bot import runner
from bot.config import HealthSettings, Settings
from bot.delivery import AlertMessage
from bot.health import Health
from bot.store import Store, Subscription
from explainers.streams import StreamStatus
from tests.alert_fakes import explanation


class Chat:
    platform = "telegram"

    def __init__(self) -> None:
        self.delivered = asyncio.Event()

    async def send(self, subscription: Subscription, message: AlertMessage) -> None:
        self.delivered.set()


class Front:
    platform = "telegram"

    def __init__(self) -> None:
        self.notifier = Chat()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


def _value(metrics: str, line_start: str) -> float:
    [line] = [line for line in metrics.splitlines() if line.startswith(line_start)]
    return float(line.rsplit(" ", 1)[1])


async def test_run_serves_healthz_and_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unused_tcp_port: int
) -> None:
    db = tmp_path / "whydown.db"
    with Store(db) as store:
        store.subscribe("telegram", "42", None, 3, "x")
    front = Front()
    monkeypatch.setattr(runner, "frontends", lambda *args: [front])
    settings = Settings(
        _env_file=None,
        database=db,
        telegram_token=SecretStr("123:test-not-a-token"),
        health=HealthSettings(enabled=True, port=unused_tcp_port),
    )
    stop = asyncio.Event()
    run = asyncio.create_task(runner.run(settings, demo=True, stop=stop))
    try:
        await asyncio.wait_for(front.notifier.delivered.wait(), timeout=60)
        base = f"http://127.0.0.1:{unused_tcp_port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200, await response.text()
                health = await response.json()
            async with http.get(f"{base}/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain")
                metrics = await response.text()
    finally:
        stop.set()
        assert await run == 0

    assert health["status"] == "ok"
    assert 0 <= health["last_refresh_age_s"] < 60
    assert health["store"]["writable"] is True
    assert health["streams"] == {}  # the demo replay reaches no venue
    assert _value(metrics, "whydown_refresh_duration_seconds_count") == 1.0
    assert _value(metrics, 'whydown_alerts_recorded_total{kind="alert"}') == 1.0
    assert _value(metrics, 'whydown_deliveries_total{outcome="sent",platform="telegram"}') == 1.0
    assert _value(metrics, "whydown_outbox_pending ") == 0.0
    assert 'whydown_source_up{source="coingecko_global",state="ok"} 1.0' in metrics


class FakeStreams:
    def __init__(self, statuses: list[StreamStatus]) -> None:
        self.list = statuses

    def statuses(self) -> list[StreamStatus]:
        return self.list


NOW = datetime(2024, 8, 5, 8, 0, tzinfo=UTC)


def status(venue: str, state: str, events: int, frame_s_ago: float) -> StreamStatus:
    return StreamStatus(
        venue=venue,  # type: ignore[arg-type]
        coverage="all",  # type: ignore[arg-type]
        state=state,  # type: ignore[arg-type]
        reason=None if state == "ok" else "connection reset",
        connected=state == "ok",
        connected_since=NOW - timedelta(hours=1),
        last_frame_at=NOW - timedelta(seconds=frame_s_ago),
        last_event_at=NOW - timedelta(seconds=frame_s_ago),
        events_total=events,
        malformed=0,
        unknown=0,
        duplicates=0,
        attempts=1,
        next_attempt_at=None,
        gap_since=None,
    )


def test_healthz_is_503_with_reasons_and_metrics_show_stream_lag_and_rate(tmp_path: Path) -> None:
    mono = [0.0]
    streams = FakeStreams([status("bybit", "ok", 100, 2.0), status("okx", "reconnecting", 5, 90)])
    with Store(tmp_path / "whydown.db") as store:
        health = Health(
            store, streams=streams, stale_after_s=180, clock=lambda: NOW, monotonic=lambda: mono[0]
        )
        code, body = health.check()
        assert code == 503
        assert body["reasons"] == [
            "no refresh has completed yet",
            "stream okx is reconnecting: connection reset",
        ]
        health.refreshed(explanation(3, at=NOW), 1.5)
        mono[0] = 60.0
        streams.list = [status("bybit", "ok", 160, 2.0), dataclasses.replace(streams.list[1])]
        code, body = health.check()
        assert code == 503 and body["reasons"] == ["stream okx is reconnecting: connection reset"]
        assert body["streams"]["bybit"] == {"state": "ok", "age_s": 2.0, "events_per_minute": 60.0}
        streams.list = streams.list[:1]
        code, body = health.check()
        assert code == 200 and "reasons" not in body
        from prometheus_client import generate_latest

        metrics = generate_latest(health.registry).decode()
        assert _value(metrics, 'whydown_stream_lag_seconds{venue="bybit"}') == 2.0
        assert _value(metrics, 'whydown_stream_up{venue="bybit"}') == 1.0
        assert _value(metrics, "whydown_refresh_duration_seconds_sum") == 1.5
        health.last_refresh_at = NOW - timedelta(seconds=181)
        code, body = health.check()
        assert code == 503 and body["reasons"] == ["the last refresh is 181 s old"]


def test_healthz_says_history_is_not_kept_while_the_disk_is_full(tmp_path: Path) -> None:
    with Store(tmp_path / "whydown.db") as store:
        health = Health(store, streams=None, stale_after_s=180, clock=lambda: NOW)
        health.refreshed(explanation(3, at=NOW), 1.0)
        assert health.check()[0] == 200
        store.faults.failed(sqlite3.OperationalError("database or disk is full"), "a test write")
        code, body = health.check()
        assert code == 503
        assert body["store"] == {"writable": False, "age_s": body["store"]["age_s"]}
        fault = store.faults.current
        assert fault is not None
        assert body["reasons"] == [
            f"history is not being kept: {fault.reason} (since {fault.since:%H:%M} UTC)"
        ]
