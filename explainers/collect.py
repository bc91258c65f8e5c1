"""Read every source concurrently into a `Snapshot`.

The sources are the table in `explainers.source_table`. Each chain (a source and its fallbacks)
runs concurrently with the others through one `SourceRunner`, so one failing source never delays
or breaks the others; the first link of a chain that delivers fills the snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from explainers.models import Liquidations, Snapshot, SourceStatus
from explainers.settings import SourceSettings
from explainers.source_runner import Clock, SourceRunner, utcnow
from explainers.source_table import (
    FetchContext,
    SnapshotDraft,
    Source,
    liquidation_sources,
    source_table,
)
from explainers.sources.yahoo import YahooSession

__all__ = ["Chain", "Clock", "Collector", "utcnow"]

#: a source and the fallbacks that are switched on, in the order they are asked
Chain = list[Source[Any]]


class Collector:
    """Reads all upstreams with one shared client and one runner (which remembers the sources
    that refused us)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        cfg: SourceSettings,
        clock: Clock = utcnow,
        *,
        off: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        self.cfg = cfg
        self.clock = clock
        self.runner = SourceRunner(cfg)
        # one Yahoo cookie + crumb and 429 breaker for the whole process
        self.yahoo = YahooSession.from_settings(cfg)
        # source key -> why it is not asked (e.g. "not in the recording" in a replay)
        self.off: dict[str, str] = dict(off or {})

    def plan(self, now: datetime) -> tuple[list[Chain], list[SourceStatus]]:
        """The chains to run at `now`, and statuses of sources switched off in settings."""
        return _plan(source_table(self.cfg), self.cfg, self.off)

    async def collect(self) -> Snapshot:
        now = self.clock()
        chains, disabled = self.plan(now)
        draft = SnapshotDraft()
        statuses = {s.source: s for s in disabled}
        for chain_statuses in await asyncio.gather(
            *(self._run_chain(chain, now, draft) for chain in chains)
        ):
            statuses.update({s.source: s for s in chain_statuses})
        return draft.snapshot(now, statuses)

    async def collect_liquidations(self) -> list[Liquidations]:
        """Only the liquidation feeds: polled more often than a full refresh, since OKX lists
        just the latest orders and a cascade can scroll past them within a minute."""
        now = self.clock()
        chains, _ = _plan(liquidation_sources(self.cfg), self.cfg, self.off)
        draft = SnapshotDraft()
        await asyncio.gather(*(self._run_chain(chain, now, draft) for chain in chains))
        return draft.liquidations

    async def _run_chain(
        self, chain: Chain, now: datetime, draft: SnapshotDraft | None = None
    ) -> list[SourceStatus]:
        """Ask the chain's links in order until one delivers; it puts its data into `draft`."""
        ctx = FetchContext(self.client, self.cfg, now, self.yahoo)
        statuses: list[SourceStatus] = []
        for source in chain:
            value, status = await self.runner.call(source.call(ctx), now)
            statuses.append(status)
            if value is not None:
                if draft is not None:
                    source.apply(draft, value)
                break
        return statuses


def _plan(
    table: list[Source[Any]], cfg: SourceSettings, off: Mapping[str, str] | None = None
) -> tuple[list[Chain], list[SourceStatus]]:
    chains: list[Chain] = []
    disabled: list[SourceStatus] = []
    for entry in table:
        chain: Chain = []
        for source in entry.chain():
            if off and source.key in off:
                disabled.append(
                    SourceStatus(
                        source=source.key,
                        label=source.label,
                        state="disabled",
                        reason=off[source.key],
                    )
                )
            elif source.enabled(cfg):
                chain.append(source)
            else:
                disabled.append(source.disabled_status())
        if chain:
            chains.append(chain)
    return chains, disabled
