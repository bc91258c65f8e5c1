"""Streamed liquidations as a long-running part of `whydown run`.

`LiquidationFeed` owns the venue clients (`explainers.streams`) and is their sink: it turns each
`LiquidationEvent` into an `explainers.models.Liquidation`, writes them in batches to the history
in a worker thread (one batch at a time, from a bounded buffer), records the streams' gaps, keeps
a per-minute rolling tally per side for the liquidation driver's thresholds and, when streamed
long liquidations cross them, asks for an alert evaluation at once (debounced, one at a time).
A coin asked about with `/why COIN` is streamed too (`coin_asked`), the last few of them at most.
Its events are stored aside (per instrument, for that coin's own reads) and count neither in the
market totals nor in the tally: what the market alert sees never depends on what users asked.

`BackfillHistory` wraps the explainer's history so REST polls (OKX's liquidation orders) add only
what the live streams did not already deliver: REST stays the backfill after a start or a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from explainers.history import History
from explainers.models import Liquidation, LiquidationHour, LiquidationVenue
from explainers.settings import Thresholds
from explainers.sources.binance import SOURCE as BINANCE
from explainers.sources.bybit import SOURCE as BYBIT
from explainers.sources.okx import SOURCE as OKX
from explainers.streams import (
    BinanceLiquidations,
    BybitLiquidations,
    Coverage,
    LiquidationEvent,
    LiquidationStream,
    OkxLiquidations,
    RecentKeys,
    StreamGap,
    StreamStatus,
    Venue,
)
from explainers.streams.binance import binance_symbol
from explainers.streams.bybit import bybit_symbol
from explainers.streams.okx import CONTRACT_VALUES, okx_swap

log = logging.getLogger("whydown.live")

Clock = Callable[[], datetime]
#: streamed events remembered to recognise the same order in a later REST poll: a poll lists an
#: OKX family's latest 100 orders, and what the stream delivered while subscribed is recognised
#: by its time anyway, so this covers minutes of streaming at a busy rate (~2 MB)
STREAMED_KEYS = 20_000
Trigger = Callable[[], Awaitable[None]]
#: coin -> OKX coins per contract of its USDT swap; raises when OKX lists no such swap
ContractValue = Callable[[str], Awaitable[float]]
#: what a coin symbol streamed on request may look like (it becomes part of a topic name)
COIN_SYMBOL = re.compile(r"[A-Z0-9]{1,20}")

#: the exchange name a venue's rows carry: the same as its REST source's, so a venue polled and
#: streamed is one venue in the history
EXCHANGES: dict[Venue, str] = {"bybit": BYBIT, "okx": OKX, "binance": BINANCE}
CLIENTS: dict[Venue, type[LiquidationStream]] = {
    "bybit": BybitLiquidations,
    "okx": OkxLiquidations,
    "binance": BinanceLiquidations,
}
SYMBOLS: dict[Venue, Callable[[str], str]] = {
    "bybit": bybit_symbol,
    "okx": okx_swap,
    "binance": binance_symbol,
}


@runtime_checkable
class StreamHistory(Protocol):
    """What the feed writes to (the history's stream half)."""

    def add_streamed_liquidations(
        self, events: Sequence[Liquidation], *, market: bool = True
    ) -> int: ...

    def record_liquidation_gap(
        self, exchange: str, start: datetime, end: datetime | None
    ) -> None: ...


class GapMemory(Protocol):
    """Where the start of a gap still open at exit is kept, so the next run closes that gap
    instead of leaving the venue "down" for good."""

    def open_gap(self, exchange: str) -> datetime | None: ...

    def set_open_gap(self, exchange: str, start: datetime | None) -> None: ...


def to_liquidation(event: LiquidationEvent) -> Liquidation:
    return Liquidation(
        exchange=EXCHANGES[event.venue],
        instrument=SYMBOLS[event.venue](event.coin),
        position_side=event.side,
        price=event.price,
        size=event.quantity,
        usd=event.usd,
        ts=event.at,
    )


Signature = tuple[str, str, int, str, float]


def _signature(exchange: str, instrument: str, ts: datetime, side: str, price: float) -> Signature:
    """An identity shared by a streamed event and the same order listed by REST (sizes differ in
    unit: coins streamed, contracts polled); its time in whole milliseconds."""
    return (exchange, instrument, round(ts.timestamp() * 1000), side, price)


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


class Tally:
    """Long and short USD per minute over the last 24h, with running totals: adding an event and
    reading the 1h/24h totals cost a few additions, whatever the number of events."""

    def __init__(self) -> None:
        self._minutes: deque[list[Any]] = deque()  # [minute, long, short], oldest first
        self._long_24h = 0.0
        self._short_24h = 0.0

    def add(self, at: datetime, side: str, usd: float) -> None:
        minute = _minute(at)
        bucket = next((b for b in reversed(self._minutes) if b[0] == minute), None)
        if bucket is None:
            bucket = [minute, 0.0, 0.0]
            # events arrive nearly in order; a late one finds its place from the end
            index = len(self._minutes)
            while index > 0 and self._minutes[index - 1][0] > minute:
                index -= 1
            self._minutes.insert(index, bucket)
        if side == "long":
            bucket[1] += usd
            self._long_24h += usd
        else:
            bucket[2] += usd
            self._short_24h += usd

    def expire(self, now: datetime) -> None:
        oldest = _minute(now - timedelta(hours=24))
        while self._minutes and self._minutes[0][0] <= oldest:
            _, long_usd, short_usd = self._minutes.popleft()
            self._long_24h -= long_usd
            self._short_24h -= short_usd

    def totals(self, now: datetime, hours: int) -> tuple[float, float]:
        """(long, short) USD over the minutes after `now - hours` (later minutes included)."""
        self.expire(now)
        if hours >= 24:
            return max(self._long_24h, 0.0), max(self._short_24h, 0.0)
        start = _minute(now - timedelta(hours=hours))
        long_usd = short_usd = 0.0
        for minute, long_part, short_part in reversed(self._minutes):
            if minute <= start:
                break
            long_usd += long_part
            short_usd += short_part
        return long_usd, short_usd

    def crossed(self, now: datetime, t: Thresholds) -> bool:
        """The liquidation driver's rule on these totals: longs ≥ the 1h or 24h limit with
        longs ≥ their share of the total."""
        for hours, limit in ((1, t.liq_long_1h_usd), (24, t.liq_long_24h_usd)):
            long_usd, short_usd = self.totals(now, hours)
            total = long_usd + short_usd
            if total > 0 and long_usd >= limit and long_usd / total >= t.liq_long_share:
                return True
        return False


@dataclass(frozen=True)
class VenueCoverageLine:
    """One venue in an answer's coverage line."""

    exchange: str
    coverage: Coverage  # "all" or "sampled"
    state: str
    since: datetime | None  # start of the unbroken coverage reaching now; None: not covered
    gaps_in_window: int


@dataclass(frozen=True)
class FeedCoverage:
    """Which venues the streams read over a window, and how completely."""

    since: datetime
    until: datetime
    venues: list[VenueCoverageLine] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        return any(v.since is None or v.since > self.since or v.gaps_in_window for v in self.venues)


@dataclass
class _Rows:
    """Events waiting to be written: market ones, or a coin's streamed only on request."""

    events: list[Liquidation]
    market: bool


@dataclass
class _Gap:
    exchange: str
    start: datetime
    end: datetime | None


class LiquidationFeed:
    """The venue clients and their sink. `start()` then, at shutdown, `await stop()`."""

    def __init__(
        self,
        history: StreamHistory,
        *,
        venues: Mapping[Venue, str | None],
        coins: Sequence[str],
        thresholds: Thresholds,
        on_crossing: Trigger | None = None,
        debounce_s: float = 60.0,
        clock: Clock,
        monotonic: Callable[[], float] = time.monotonic,
        gap_memory: GapMemory | None = None,
        batch_size: int = 500,
        max_buffered: int = 20_000,
        client_options: Mapping[str, Any] | None = None,
        extra_coins_max: int = 10,
        contract_value: ContractValue | None = None,
        market_coins: Iterable[str] | None = None,
    ) -> None:
        """venues: venue -> websocket URL (None: the client's default).
        coins: streamed from the start and for good.
        market_coins: the coins whose liquidations make the market totals and the tally
            (None: `coins`); any other coin's events (a coin asked about) are stored aside.
        extra_coins_max: coins asked about (`coin_asked`) streamed besides `coins`; asking for
            one more drops the one asked least recently. 0: none.
        contract_value: looks up an OKX contract value for a coin asked about (None: OKX
            streams only the coins whose contract value it knows).
        on_crossing: awaited when streamed longs cross the thresholds (after the events that
            crossed them are written), at most once per `debounce_s`, never twice at once.
        max_buffered: events waiting to be written beyond this hold the stream clients back.
        client_options: passed to every client (tests: clock, sleep, timeouts)."""
        self.history = history
        self.thresholds = thresholds
        self.on_crossing = on_crossing
        self.debounce_s = debounce_s
        self._clock = clock
        self._monotonic = monotonic
        self._gap_memory = gap_memory
        self.batch_size = batch_size
        self.max_buffered = max_buffered
        options = {"clock": clock, **(client_options or {})}
        self.coins = list(dict.fromkeys(c.upper() for c in coins))
        self.market_coins = frozenset(
            c.upper() for c in (self.coins if market_coins is None else market_coins)
        )
        self.extra_coins_max = extra_coins_max
        self.contract_value = contract_value
        # coins asked about, least recently asked first
        self._extra: OrderedDict[str, None] = OrderedDict()
        # (exchange, coin asked about) -> when that venue's stream took the coin on
        self._coin_since: dict[tuple[str, str], datetime] = {}
        self._watch_lock = asyncio.Lock()
        self._watching: set[asyncio.Task[bool]] = set()
        self.clients: list[LiquidationStream] = []
        for venue, url in venues.items():
            venue_coins = [c.upper() for c in coins]
            if venue == "okx":
                skipped = [c for c in venue_coins if c not in CONTRACT_VALUES]
                if skipped:
                    log.warning("OKX stream: no contract size known for %s", ", ".join(skipped))
                venue_coins = [c for c in venue_coins if c in CONTRACT_VALUES]
            if not venue_coins:
                continue
            self.clients.append(CLIENTS[venue](self, coins=venue_coins, url=url, **options))
        self.tally = Tally()
        # what waits to be written, in order: events, and gaps
        self._queue: deque[_Rows | _Gap] = deque()
        self._buffered = 0
        self._room = asyncio.Event()
        self._room.set()
        self._writer: asyncio.Task[None] | None = None
        self._enqueued = 0  # events queued so far
        self._written = 0  # events handed to the history so far (written or failed)
        self._armed_at: int | None = None  # fire once this many events are written
        self._crossed = False
        self._last_fire: float | None = None
        self._reaction: asyncio.Task[None] | None = None
        self.reactions = 0
        self.skipped_reactions = 0
        # coverage, read from worker threads by BackfillHistory
        self._lock = threading.Lock()
        self._covered: dict[str, list[tuple[datetime, datetime | None]]] = {}
        self._gaps: dict[str, list[tuple[datetime, datetime | None]]] = {}
        self._streamed = RecentKeys(STREAMED_KEYS)
        self._first_gap: dict[str, int] = {}
        self._gap_starts: dict[tuple[str, int], datetime] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        for client in self.clients:
            self._tasks.append(client.start())
        log.info(
            "liquidation streams started: %s",
            ", ".join(f"{c.venue} ({c.coverage})" for c in self.clients) or "none",
        )

    async def stop(self) -> None:
        """Stop the clients (their closing gaps are recorded), write what is buffered, and
        cancel an evaluation still under way."""
        await asyncio.gather(*(client.stop() for client in self.clients))
        await self.flush()
        if self._reaction is not None and not self._reaction.done():
            self._reaction.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaction

    async def flush(self) -> None:
        """Wait until everything queued so far is written."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def watched(self) -> None:
        """Wait until every coin asked about so far is added to the streams (tests, benches)."""
        while self._watching:
            await asyncio.wait(set(self._watching))

    async def reaction_done(self) -> None:
        """Wait for the evaluation under way, if any (tests, benchmarks)."""
        if self._reaction is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._reaction)

    # --- the sink -----------------------------------------------------------------------

    async def on_events(self, events: list[LiquidationEvent]) -> None:
        while self._buffered >= self.max_buffered:
            self._room.clear()
            await self._room.wait()
        rows = [to_liquidation(event) for event in events]
        with self._lock:
            for row in rows:
                self._streamed.add(
                    _signature(row.exchange, row.instrument, row.ts, row.position_side, row.price)
                )
        market: list[Liquidation] = []
        aside: list[Liquidation] = []
        for event, row in zip(events, rows, strict=True):
            if event.coin.upper() in self.market_coins:
                self.tally.add(event.at, event.side, event.usd)
                market.append(row)
            else:
                aside.append(row)
        self._queue.extend(
            _Rows(part, flag) for part, flag in ((market, True), (aside, False)) if part
        )
        self._buffered += len(rows)
        self._enqueued += len(rows)
        crossed = self.tally.crossed(self._clock(), self.thresholds)
        if crossed and not self._crossed:
            log.info("streamed long liquidations crossed the liquidation driver's threshold")
            self._armed_at = self._enqueued
        self._crossed = crossed
        self._wake_writer()

    async def on_gap(self, gap: StreamGap) -> None:
        exchange = EXCHANGES[gap.venue]
        gap = self._continue_earlier_gap(exchange, gap)
        with self._lock:
            gaps = self._gaps.setdefault(exchange, [])
            gaps[:] = [g for g in gaps if g[0] != gap.start] + [(gap.start, gap.end)]
            covered = self._covered.setdefault(exchange, [])
            if gap.end is None:
                if covered and covered[-1][1] is None:
                    covered[-1] = (covered[-1][0], gap.start)
            else:
                covered.append((gap.end, None))
        if self._gap_memory is not None:
            self._gap_memory.set_open_gap(exchange, gap.start if gap.end is None else None)
        self._queue.append(_Gap(exchange, gap.start, gap.end))
        self._wake_writer()

    def _continue_earlier_gap(self, exchange: str, gap: StreamGap) -> StreamGap:
        """A run's first gap continues one an earlier run left open (its stop), so that one is
        closed and the time between the runs counts as uncovered."""
        first = self._first_gap.setdefault(exchange, gap.gap_id)
        key = (exchange, gap.gap_id)
        if gap.gap_id == first and key not in self._gap_starts and self._gap_memory is not None:
            earlier = self._gap_memory.open_gap(exchange)
            self._gap_starts[key] = (
                earlier if earlier is not None and earlier < gap.start else gap.start
            )
        start = self._gap_starts.get(key)
        return gap if start is None else replace(gap, start=start)

    # --- writing ------------------------------------------------------------------------

    def _wake_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())

    async def _write_all(self) -> None:
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, _Gap):
                await self._write(
                    self.history.record_liquidation_gap, item.exchange, item.start, item.end
                )
                continue
            batch = item.events
            while (
                self._queue
                and isinstance(nxt := self._queue[0], _Rows)
                and nxt.market == item.market
                and len(batch) + len(nxt.events) <= self.batch_size
            ):
                self._queue.popleft()
                batch = batch + nxt.events
            await self._write(self._add_rows, batch, item.market)
            self._buffered -= len(batch)
            self._written += len(batch)
            if self._buffered < self.max_buffered:
                self._room.set()
            if self._armed_at is not None and self._written >= self._armed_at:
                self._armed_at = None
                self._react()

    def _add_rows(self, batch: list[Liquidation], market: bool) -> None:
        if market:
            self.history.add_streamed_liquidations(batch)
        else:
            self.history.add_streamed_liquidations(batch, market=False)

    async def _write(self, write: Callable[..., object], *args: Any) -> None:
        try:
            await asyncio.to_thread(write, *args)
        except Exception:
            log.exception("writing streamed liquidations failed")

    # --- react at once ------------------------------------------------------------------

    def _react(self) -> None:
        if self.on_crossing is None:
            return
        if self._reaction is not None and not self._reaction.done():
            self.skipped_reactions += 1
            log.info("liquidation threshold crossed again while an evaluation runs: skipped")
            return
        now = self._monotonic()
        if self._last_fire is not None and now - self._last_fire < self.debounce_s:
            self.skipped_reactions += 1
            log.info("liquidation threshold crossed again within %gs: skipped", self.debounce_s)
            return
        self._last_fire = now
        self.reactions += 1
        self._reaction = asyncio.create_task(self._run_reaction(self.on_crossing))

    async def _run_reaction(self, trigger: Trigger) -> None:
        try:
            await trigger()
        except Exception:
            log.exception("the evaluation after a liquidation crossing failed")

    # --- coins asked about -------------------------------------------------------------

    @property
    def extra_coins(self) -> list[str]:
        """The coins streamed because they were asked about, least recently asked first."""
        return list(self._extra)

    def coin_asked(self, coin: str) -> None:
        """A user asked about `coin` (a symbol the market data knows): stream it from now on,
        in the background (the answer does not wait for it)."""
        task = asyncio.create_task(self.watch_coin(coin))
        self._watching.add(task)
        task.add_done_callback(self._watching.discard)

    async def watch_coin(self, coin: str) -> bool:
        """Add `coin`'s USDT perpetual to every stream that can read it; True if the set of
        streamed coins changed. A coin asked again becomes the most recent; beyond
        `extra_coins_max` the least recently asked one is dropped."""
        coin = coin.strip().upper()
        if (
            self.extra_coins_max <= 0
            or not COIN_SYMBOL.fullmatch(coin)
            or coin in self.coins
            or not self.clients
        ):
            return False
        async with self._watch_lock:
            known = coin in self._extra
            self._extra[coin] = None
            self._extra.move_to_end(coin)
            dropped: list[str] = []
            while len(self._extra) > self.extra_coins_max:
                dropped.append(self._extra.popitem(last=False)[0])
            await self._okx_contract_value(coin)
            wanted = self.coins + list(self._extra)
            for client in self.clients:
                exchange = EXCHANGES[client.venue]
                had = coin in client.coins
                try:
                    await client.set_coins(wanted)
                except Exception:
                    log.exception("%s stream: could not add %s", client.venue, coin)
                if coin in client.coins and not had:
                    self._coin_since[(exchange, coin)] = self._clock()
                for gone in dropped:
                    self._coin_since.pop((exchange, gone), None)
            if not known:
                log.info(
                    "streaming %s liquidations on request%s",
                    coin,
                    f" (dropped {', '.join(dropped)})" if dropped else "",
                )
            return not known or bool(dropped)

    async def _okx_contract_value(self, coin: str) -> None:
        """Learn the OKX contract value of `coin` once; without it OKX skips the coin (its
        status says so)."""
        okx = next((c for c in self.clients if isinstance(c, OkxLiquidations)), None)
        if okx is None or coin in okx.contract_values or self.contract_value is None:
            return
        try:
            okx.add_contract_values({coin: await self.contract_value(coin)})
        except Exception as err:
            log.info("OKX stream: no contract value for %s (%s)", coin, err)

    def coin_venues(self, coin: str) -> list[LiquidationVenue] | None:
        """The venues streaming `coin`'s perpetual now, each with since when it has been
        tracked without a break (the later of the stream's last connection and the coin's
        addition; None while the stream is down). An empty list: a coin not streamed yet that
        asking about it would add; None: one these streams cannot carry."""
        coin = coin.strip().upper()
        if not self.clients:
            return None
        if coin not in self.coins and coin not in self._extra:
            watchable = self.extra_coins_max > 0 and COIN_SYMBOL.fullmatch(coin) is not None
            return [] if watchable else None
        venues: list[LiquidationVenue] = []
        with self._lock:
            for client in self.clients:
                if coin not in client.coins:
                    continue
                exchange = EXCHANGES[client.venue]
                covered = self._covered.get(exchange, [])
                since = covered[-1][0] if covered and covered[-1][1] is None else None
                added = self._coin_since.get((exchange, coin))
                if since is not None and added is not None:
                    since = max(since, added)
                venues.append(
                    LiquidationVenue(exchange=exchange, mode=client.coverage, tracked_since=since)
                )
        return venues

    # --- what the rest of the bot reads -------------------------------------------------

    def statuses(self) -> list[StreamStatus]:
        return [client.status() for client in self.clients]

    def modes(self) -> dict[str, Coverage]:
        """How completely each streamed venue is read: exchange -> "all" or "sampled"."""
        return {EXCHANGES[client.venue]: client.coverage for client in self.clients}

    def covers(self, event: Liquidation) -> bool:
        """Whether a live stream delivered (or was listening for) this polled event: the same
        order was streamed, or it happened while the venue's stream was subscribed."""
        with self._lock:
            signature = _signature(
                event.exchange, event.instrument, event.ts, event.position_side, event.price
            )
            if signature in self._streamed:
                return True
            return any(
                start <= event.ts and (end is None or event.ts < end)
                for start, end in self._covered.get(event.exchange, ())
            )

    def coverage(self, window: timedelta = timedelta(hours=1)) -> FeedCoverage:
        until = self._clock()
        since = until - window
        lines: list[VenueCoverageLine] = []
        with self._lock:
            for client in self.clients:
                exchange = EXCHANGES[client.venue]
                covered = self._covered.get(exchange, [])
                current = covered[-1] if covered and covered[-1][1] is None else None
                lines.append(
                    VenueCoverageLine(
                        exchange=exchange,
                        coverage=client.coverage,
                        state=client.status().state,
                        since=current[0] if current else None,
                        gaps_in_window=sum(
                            1
                            for start, end in self._gaps.get(exchange, [])
                            if start < until and (end is None or end > since)
                        ),
                    )
                )
        return FeedCoverage(since=since, until=until, venues=lines)


class BackfillHistory:
    """The explainer's history, less the polled events a live stream already delivered."""

    def __init__(self, inner: History, feed: LiquidationFeed) -> None:
        self.inner = inner
        self.feed = feed

    def add_liquidations(
        self, events: Iterable[Liquidation], *, polled_at: datetime, covered_since: datetime
    ) -> int:
        fresh = [event for event in events if not self.feed.covers(event)]
        return self.inner.add_liquidations(fresh, polled_at=polled_at, covered_since=covered_since)

    def add_figures(self, at: datetime, figures: Mapping[str, float]) -> None:
        self.inner.add_figures(at, figures)

    def figures(self, name: str, since: datetime) -> list[tuple[datetime, float]]:
        return self.inner.figures(name, since)

    def liquidations(self, since: datetime) -> list[Liquidation]:
        return self.inner.liquidations(since)

    def liquidations_tracked_since(self) -> datetime | None:
        return self.inner.liquidations_tracked_since()

    def liquidations_last_poll(self) -> datetime | None:
        return self.inner.liquidations_last_poll()

    def liquidation_totals(self, since: datetime, until: datetime) -> tuple[float, float]:
        return self.inner.liquidation_totals(since, until)

    def liquidation_hours(self, since: datetime) -> list[LiquidationHour]:
        return self.inner.liquidation_hours(since)

    def instrument_totals(
        self, instruments: Iterable[str], since: datetime, until: datetime
    ) -> tuple[float, float]:
        return self.inner.instrument_totals(instruments, since, until)

    def __getattr__(self, name: str) -> Any:
        # methods the history gains later (stream coverage) pass straight through
        return getattr(self.inner, name)
