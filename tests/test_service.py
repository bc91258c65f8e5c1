"""The cached, single-flight explainer over the recorded demo responses."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta

import pytest

from bot.config import Settings
from explainers.errors import UnknownCoin
from explainers.history import MemoryHistory
from explainers.models import Liquidation, Liquidations, Snapshot
from explainers.service import Explainer
from explainers.settings import Thresholds
from explainers.sources import okx
from tests import factories as f
from tests.replay_helpers import Upstream


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None)


async def test_demo_pipeline_fires_at_least_three_drivers(settings: Settings) -> None:
    upstream = Upstream()
    async with upstream.client(settings) as client:
        explanation = await upstream.explainer(client, settings).explain()
    assert explanation.verdict == "down"
    assert explanation.market_change_24h == pytest.approx(-13.9, abs=0.01)
    fired = {d.key for d in explanation.fired}
    assert {"liquidations", "etf", "institutional", "stocks", "fear"} <= fired
    assert next(d for d in explanation.drivers if d.key == "fed").state == "quiet"
    assert explanation.altcoins is not None and explanation.altcoins.falling_harder
    assert (
        explanation.replay is not None
        and explanation.replay.scenario_date.isoformat() == "2024-08-05"
    )


async def test_thousand_concurrent_requests_on_a_cold_cache_share_one_refresh(
    settings: Settings,
) -> None:
    single = Upstream()
    async with single.client(settings) as client:
        await single.explainer(client, settings).explain()
    one_refresh = len(single.scenario.requests)
    okx.CONTRACT_VALUES.clear()  # cold again: contract values are fetched once per process

    upstream = Upstream()
    async with upstream.client(settings) as client:
        explainer = upstream.explainer(client, settings)
        answers = await asyncio.gather(*(explainer.explain() for _ in range(1000)))
    assert len({id(a) for a in answers}) == 1
    urls = [str(r.url) for r in upstream.scenario.requests]
    assert len(urls) == one_refresh
    assert len(urls) == len(set(urls)), "some endpoint was called more than once"


async def test_cached_answer_is_reused_until_it_is_older_than_the_interval(
    settings: Settings,
) -> None:
    upstream = Upstream()
    async with upstream.client(settings) as client:
        explainer = upstream.explainer(client, settings)
        await explainer.explain()
        first = len(upstream.scenario.requests)
        upstream.advance(settings.refresh_interval_s - 1)
        await explainer.explain("sol")
        assert len(upstream.scenario.requests) == first
        upstream.advance(2)
        await explainer.explain()
        # a second full refresh (contract values stay cached, so it asks a little less)
        assert first < len(upstream.scenario.requests) <= 2 * first


async def test_a_cancelled_caller_does_not_cancel_the_shared_refresh(settings: Settings) -> None:
    upstream = Upstream()
    async with upstream.client(settings) as client:
        explainer = upstream.explainer(client, settings)
        impatient = asyncio.create_task(explainer.explain())
        patient = asyncio.create_task(explainer.explain())
        await asyncio.sleep(0)  # let both join the refresh
        impatient.cancel()
        explanation = await patient
    assert explanation.verdict == "down"


async def test_coin_is_explained_against_btc_and_the_market(settings: Settings) -> None:
    upstream = Upstream()
    async with upstream.client(settings) as client:
        explanation = await upstream.explainer(client, settings).explain("SOL")
    assert explanation.coin is not None
    assert (explanation.coin.id, explanation.coin.symbol) == ("solana", "SOL")
    assert explanation.coin.vs_btc_24h == pytest.approx(-18.2 - -13.1, abs=0.01)
    assert explanation.coin.vs_market_24h == pytest.approx(-18.2 - -13.9, abs=0.01)


@pytest.mark.parametrize("query", ["solana", "Solana", "sol", " SOL "])
async def test_coin_by_id_name_or_symbol_any_case(settings: Settings, query: str) -> None:
    upstream = Upstream()
    async with upstream.client(settings) as client:
        explanation = await upstream.explainer(client, settings).explain(query)
    assert explanation.coin is not None and explanation.coin.id == "solana"


async def test_unknown_coin_gets_close_matches(settings: Settings) -> None:
    upstream = Upstream()
    async with upstream.client(settings) as client:
        with pytest.raises(UnknownCoin) as caught:
            await upstream.explainer(client, settings).explain("solanaa")
    assert "solana" in caught.value.suggestions


class _RecordedCollector:
    """Returns one recorded snapshot, once released: every caller must be waiting by then."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.released = asyncio.Event()
        self.calls = 0

    async def collect(self) -> Snapshot:
        self.calls += 1
        await self.released.wait()
        return self.snapshot


class _ThreadRecordingHistory(MemoryHistory):
    def __init__(self) -> None:
        super().__init__()
        self.writer_threads: list[int] = []

    def add_figures(self, at: datetime, figures: Mapping[str, float]) -> None:
        self.writer_threads.append(threading.get_ident())
        super().add_figures(at, figures)


async def test_the_history_work_runs_off_the_loop_and_still_single_flights() -> None:
    liquidation = Liquidation(
        exchange="OKX",
        instrument="BTC-USDT-SWAP",
        position_side="long",
        price=50000.0,
        size=100.0,
        usd=5e6,
        ts=f.NOW - timedelta(minutes=10),
    )
    snapshot = f.snapshot(
        liquidations=[Liquidations(source="OKX", as_of=f.NOW, events=[liquidation])]
    )
    collector = _RecordedCollector(snapshot)
    history = _ThreadRecordingHistory()
    explainer = Explainer(collector, Thresholds(), history=history, clock=lambda: f.NOW)  # type: ignore[arg-type]

    waiting = [asyncio.create_task(explainer.refresh()) for _ in range(50)]
    await asyncio.sleep(0)  # let every caller join before the collector answers
    collector.released.set()
    refreshed = await asyncio.gather(*waiting)

    assert collector.calls == 1 and len({id(r) for r in refreshed}) == 1
    # the snapshot's figures and the drivers' states: written once, by a worker thread
    assert len(history.writer_threads) == 2
    assert threading.get_ident() not in history.writer_threads
    totals = refreshed[0].lookback.liquidations_1h
    assert totals is not None and (totals.long_usd, totals.exchanges) == (5e6, ["OKX"])
