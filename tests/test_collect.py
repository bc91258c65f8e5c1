"""Collection: retries, Retry-After, blocked sources left alone, stale data marked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.config import Settings
from explainers import source_table as source_table_module
from explainers.collect import Collector
from explainers.errors import SourceBlocked
from explainers.models import FearGreed
from explainers.settings import SourceSettings
from explainers.source_table import FetchContext, SnapshotDraft, Source
from explainers.sources import feargreed
from tests.replay_helpers import Upstream


def _settings(**sources: object) -> Settings:
    return Settings(_env_file=None, sources=SourceSettings(retry_backoff_s=0.0, **sources))


async def _collect(upstream: Upstream, settings: Settings):
    async with upstream.client(settings) as client:
        explainer = upstream.explainer(client, settings)
        return explainer, (await explainer.refresh()).snapshot


def _fail_first(host: str, response: httpx.Response) -> tuple[list[int], object]:
    seen: list[int] = []

    def override(request: httpx.Request) -> httpx.Response | None:
        if request.url.host != host:
            return None
        seen.append(1)
        return response if len(seen) == 1 else None

    return seen, override


async def test_a_transient_error_is_retried_once() -> None:
    upstream = Upstream()
    seen, override = _fail_first("api.alternative.me", httpx.Response(503, text="busy"))
    upstream.overrides.append(override)
    _, snapshot = await _collect(upstream, _settings())
    assert len(seen) == 2
    assert snapshot.statuses["feargreed"].state == "ok"


async def test_a_short_retry_after_is_waited_out_and_retried() -> None:
    upstream = Upstream()
    seen, override = _fail_first(
        "api.alternative.me", httpx.Response(429, headers={"Retry-After": "0"})
    )
    upstream.overrides.append(override)
    _, snapshot = await _collect(upstream, _settings())
    assert len(seen) == 2 and snapshot.fear_greed is not None


async def test_a_long_retry_after_is_left_to_the_next_refresh() -> None:
    upstream = Upstream()
    upstream.overrides.append(
        lambda r: (
            httpx.Response(429, headers={"Retry-After": "600"})
            if r.url.host == "api.alternative.me"
            else None
        )
    )
    _, snapshot = await _collect(upstream, _settings())
    status = snapshot.statuses["feargreed"]
    assert (status.state, status.reason) == ("failed", "rate-limited: rate limited (HTTP 429)")
    assert upstream.calls["api.alternative.me/fng/"] == 1


async def test_a_blocked_source_is_not_asked_again_every_cycle() -> None:
    upstream = Upstream()
    upstream.overrides.append(
        lambda r: (
            httpx.Response(451, json={"code": 0, "msg": "restricted location"})
            if r.url.host == "farside.co.uk"
            else None
        )
    )
    settings = _settings()
    async with upstream.client(settings) as client:
        explainer = upstream.explainer(client, settings)
        first = (await explainer.refresh()).snapshot.statuses["farside"]
        asked = sum(n for path, n in upstream.calls.items() if path.startswith("farside.co.uk"))
        upstream.advance(60)
        second = (await explainer.refresh()).snapshot.statuses["farside"]
        asked_again = sum(
            n for path, n in upstream.calls.items() if path.startswith("farside.co.uk")
        )
    assert first.state == "blocked" and "HTTP 451" in (first.reason or "")
    assert second.state == "blocked" and "not asked again until" in (second.reason or "")
    assert asked_again == asked


async def test_old_data_is_marked_stale() -> None:
    upstream = Upstream()
    upstream.advance(timedelta(days=6).total_seconds())  # the recording is now six days old
    _, snapshot = await _collect(upstream, _settings())
    assert snapshot.statuses["farside"].state == "stale"
    assert snapshot.statuses["coingecko"].state == "stale"
    assert snapshot.statuses["rss_coindesk"].state == "ok"  # news has no regular cycle


def test_sources_switched_off_are_planned_as_disabled_not_run() -> None:
    collector = Collector(httpx.AsyncClient(), SourceSettings())
    chains, disabled = collector.plan(datetime(2024, 8, 5, 8, tzinfo=UTC))
    reasons = {s.source: (s.state, s.reason) for s in disabled}
    assert reasons == {
        "sosovalue": ("disabled", "no API key set"),
        "stooq_spx": ("disabled", "no API key set"),
        "stooq_ndx": ("disabled", "no API key set"),
    }
    planned = [source.key for chain in chains for source in chain]
    assert not set(reasons) & set(planned)
    assert [s.key for s in chains[0]] == ["coingecko", "coinbase_stats", "kraken"]
    assert "okx_liquidations_sol" in planned and "rss_fed" in planned
    # the keyless venues' open interest is on by default; each can be switched off
    assert {"oi_okx", "oi_bybit", "oi_binance", "oi_hyperliquid"} <= set(planned)
    off = Collector(httpx.AsyncClient(), SourceSettings(binance_enabled=False, bybit_enabled=False))
    _, disabled = off.plan(datetime(2024, 8, 5, 8, tzinfo=UTC))
    assert {(s.source, s.reason) for s in disabled} >= {
        ("oi_binance", "off in settings"),
        ("oi_bybit", "off in settings"),
    }


async def test_a_source_added_to_the_table_is_read_and_its_fallback_fills_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def refused(ctx: FetchContext) -> FearGreed:
        raise SourceBlocked("Other index", "refused from this location (HTTP 451)")

    def put(draft: SnapshotDraft, value: FearGreed) -> None:
        draft.fear_greed = value

    extra = Source(
        "other_fear",
        "Other fear index",
        fetch=refused,
        apply=put,
        fallbacks=(
            Source(
                "feargreed_again",
                "Fear & Greed (again)",
                fetch=lambda x: feargreed.fetch_fear_greed(x.client, x.cfg, 8),
                apply=put,
            ),
        ),
    )
    table = [s for s in source_table_module.SOURCES if s.key != "feargreed"]
    monkeypatch.setattr(source_table_module, "SOURCES", (*table, extra))
    _, snapshot = await _collect(Upstream(), _settings())
    assert "feargreed" not in snapshot.statuses
    assert snapshot.statuses["other_fear"].state == "blocked"
    assert snapshot.statuses["feargreed_again"].state == "ok"
    assert snapshot.fear_greed is not None and snapshot.fear_greed.source == "alternative.me"


async def test_liquidations_alone_read_one_feed_per_family() -> None:
    upstream = Upstream()
    settings = _settings()
    async with upstream.client(settings) as client:
        collector = Collector(client, settings.sources, clock=upstream.clock)
        batches = await collector.collect_liquidations()
    assert len(batches) == len(settings.sources.liquidation_families)
    assert not any(path.startswith("api.alternative.me") for path in upstream.calls)
