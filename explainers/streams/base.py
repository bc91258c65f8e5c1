"""The shared client loop of the liquidation streams: connect, subscribe, heartbeat, parse,
de-duplicate, deliver, and reconnect with jittered exponential back-off.

A venue subclass says how to subscribe, how to ping and how to read a frame (`parse`); this
module does the rest, identically for every venue. Times for statuses and gaps come from the
injectable `clock`; waiting between attempts goes through the injectable `sleep`; heartbeat and
silence timers use the event loop's clock with the (small, in tests) timeouts given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as _random
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from explainers.errors import BadResponse
from explainers.sources import bounds
from explainers.streams.events import (
    DEFAULT_COINS,
    Coverage,
    LiquidationEvent,
    LiquidationSink,
    StreamGap,
    StreamState,
    StreamStatus,
    Venue,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]

#: a venue that refuses this location is asked again after this long (plus up to 10% jitter)
BLOCKED_RETRY_S = 6 * 3600.0
#: events remembered per client to drop the ones a venue sends again (it replays its last frames
#: after a reconnect, which the back-off keeps within about two minutes): 20,000 keys are over
#: three minutes at 100 events/s, ten times a busy day's rate for a few coins (~2 MB)
DEDUP_SIZE = 20_000


def utc_now() -> datetime:
    return datetime.now(UTC)


# --- parsing helpers shared by the venues ---------------------------------------------------


class Malformed(ValueError):
    """A frame or item that cannot be used; the message says which field."""


def _read(read: Callable[[Any, str, str], float], value: Any, field_name: str) -> float:
    """A value through the shared plausibility bounds; an implausible one makes the item
    malformed (dropped and counted), never an event."""
    try:
        return read(value, "stream", field_name)
    except BadResponse as err:
        raise Malformed(err.detail) from None


def positive(value: Any, field_name: str) -> float:
    """A finite quantity > 0 (coins or contracts) from a JSON number or numeric string."""
    return _read(bounds.quantity, value, field_name)


def price(value: Any, field_name: str) -> float:
    """A plausible USD price (see `explainers.sources.bounds`)."""
    return _read(bounds.price, value, field_name)


def ms_time(value: Any, field_name: str) -> datetime:
    """A plausible UTC time from epoch milliseconds (number or numeric string)."""
    try:
        return bounds.from_ms(value, "stream", field_name)
    except BadResponse as err:
        raise Malformed(err.detail) from None


def usd_of(quantity: float, price: float) -> float:
    """A liquidation's USD value, > 0 and below the bounds' ceiling."""
    return _read(bounds.liquidation_usd, quantity * price, "USD value")


@dataclass(slots=True)
class Parsed:
    """What one frame turned out to be."""

    kind: Literal[
        "events", "ack", "rejected", "coin_refused", "pong", "ignored", "unknown", "malformed"
    ]
    events: list[LiquidationEvent] = field(default_factory=list)
    #: liquidation items dropped inside an otherwise usable frame
    bad_items: int = 0
    #: "coin_refused": the coin; otherwise what was wrong or ignored
    detail: str = ""


# --- errors that end a session --------------------------------------------------------------


class SessionEnded(Exception):
    """A session ended for a reason worth showing in the status (no URL in the text)."""


class SilentSocket(SessionEnded):
    pass


class SubscriptionRejected(SessionEnded):
    pass


# --- bounded de-duplication -----------------------------------------------------------------


class RecentKeys:
    """The last `size` keys seen; older keys are forgotten first (insertion order).

    Compact: a key is remembered by its hash (a 64-bit int, not the key itself) in a set, and
    in a ring that says which one to forget next, about 90 bytes a key whatever its length. Two
    different keys sharing a hash (odds of about size / 2**64 per key) would make the second
    one look seen."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._size = size
        self._hashes: set[int] = set()
        self._order: deque[int] = deque()

    def add(self, key: Hashable) -> bool:
        """Remember `key`; False if it was already remembered."""
        h = hash(key)
        if h in self._hashes:
            return False
        self._hashes.add(h)
        self._order.append(h)
        if len(self._order) > self._size:
            self._hashes.discard(self._order.popleft())
        return True

    def __contains__(self, key: Hashable) -> bool:
        return hash(key) in self._hashes

    def __len__(self) -> int:
        return len(self._order)


# --- the client -----------------------------------------------------------------------------


class LiquidationStream(ABC):
    """One venue's liquidation stream. `run()` until `stop()` (or cancel the task).

    Subclasses set the class attributes and implement `subscribe_messages` and `parse`.
    """

    venue: ClassVar[Venue]
    coverage: ClassVar[Coverage]
    default_url: ClassVar[str]
    #: whether the venue acknowledges a subscribe message (else the socket is live once open)
    needs_ack: ClassVar[bool] = True
    #: application-level ping text, None when the venue pings the client itself
    ping_text: ClassVar[str | None] = None
    #: True: ping when nothing arrived for `ping_interval`; False: ping every `ping_interval`
    ping_when_idle: ClassVar[bool] = False
    default_ping_interval: ClassVar[float | None] = None

    def __init__(
        self,
        sink: LiquidationSink,
        *,
        coins: Sequence[str] = DEFAULT_COINS,
        url: str | None = None,
        clock: Clock = utc_now,
        sleep: Sleep = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        backoff_base: float = 1.0,
        backoff_cap: float = 120.0,
        blocked_retry: float = BLOCKED_RETRY_S,
        stable_after: float = 60.0,
        open_timeout: float = 10.0,
        ack_timeout: float = 10.0,
        ping_interval: float | None = None,
        pong_timeout: float = 10.0,
        keepalive_interval: float | None = None,
        keepalive_timeout: float | None = 20.0,
        close_timeout: float = 2.0,
        dedup_size: int = DEDUP_SIZE,
        max_frame_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        """
        coins: coin symbols ("BTC"), mapped to the venue's USDT perpetual.
        url: the venue's websocket URL (tests point it at a local server).
        backoff_base/backoff_cap: the delay after n consecutive failed sessions is
            min(cap, base * 2**(n-1)), scaled by a jitter factor in [0.5, 1).
        blocked_retry: the delay after an HTTP 451/403 refusal (no hot reconnect from a
            blocked location).
        stable_after: a session subscribed for this long resets the back-off.
        ack_timeout: a subscription not acknowledged within this ends the session.
        ping_interval/pong_timeout: the venue-level heartbeat (None: the venue's default);
            a socket that sends nothing within `pong_timeout` of a ping is replaced.
        keepalive_interval/keepalive_timeout: websocket protocol pings sent by the client
            (off unless the venue or the caller asks for them).
        dedup_size: how many recent events are remembered to drop repeats (see DEDUP_SIZE).
        """
        self.sink = sink
        self.coins = tuple(dict.fromkeys(c.upper() for c in coins))
        if not self.coins:
            raise ValueError("at least one coin is needed")
        #: the coins given at construction (later ones come and go through `set_coins`)
        self.configured_coins = self.coins
        #: coin -> why it is not streamed here, for the status
        self._skipped: dict[str, str] = {}
        self.url = url or self.default_url
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.blocked_retry = blocked_retry
        self.stable_after = stable_after
        self.open_timeout = open_timeout
        self.ack_timeout = ack_timeout
        self.ping_interval = (
            ping_interval if ping_interval is not None else self.default_ping_interval
        )
        self.pong_timeout = pong_timeout
        self.keepalive_interval = keepalive_interval
        self.keepalive_timeout = keepalive_timeout
        self.close_timeout = close_timeout
        self.max_frame_bytes = max_frame_bytes
        self._seen = RecentKeys(dedup_size)

        self._state: StreamState = "connecting"
        self._reason: str | None = None
        self._ws: ClientConnection | None = None
        self._connected_since: datetime | None = None
        self._subscribed = False
        self._last_frame_at: datetime | None = None
        self._last_event_at: datetime | None = None
        self._last_alive: datetime | None = None
        self._events_total = 0
        self._malformed = 0
        self._unknown = 0
        self._duplicates = 0
        self._attempts = 0
        self._next_attempt_at: datetime | None = None
        self._gap: StreamGap | None = None
        self._gap_count = 0
        self._failures = 0
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    # --- venue hooks --------------------------------------------------------------------

    @abstractmethod
    def subscribe_messages(self) -> list[str]:
        """Text frames to send once connected (may be empty: the URL names the stream)."""

    @abstractmethod
    def parse(self, text: str) -> Parsed:
        """Read one text frame; never raises for bad input (returns kind "malformed")."""

    def streamable(self, coins: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        """The coins this venue can stream, and the others with why (all, by default)."""
        return list(coins), {}

    @abstractmethod
    def coins_changed(self) -> None:
        """`self.coins` changed: rebuild what the parser filters on."""

    def change_messages(self, added: Sequence[str], removed: Sequence[str]) -> list[str]:
        """Text frames that tell the live socket about added and removed coins (none by
        default: a venue that pushes every symbol on one channel only filters differently)."""
        return []

    # --- public API ---------------------------------------------------------------------

    def status(self) -> StreamStatus:
        return StreamStatus(
            venue=self.venue,
            coverage=self.coverage,
            state=self._state,
            reason=self._reason,
            connected=self._ws is not None,
            connected_since=self._connected_since,
            last_frame_at=self._last_frame_at,
            last_event_at=self._last_event_at,
            events_total=self._events_total,
            malformed=self._malformed,
            unknown=self._unknown,
            duplicates=self._duplicates,
            attempts=self._attempts,
            next_attempt_at=self._next_attempt_at,
            gap_since=self._gap.start if self._gap else None,
            coins=self.coins,
            skipped=tuple(f"{coin}: {why}" for coin, why in self._skipped.items()),
        )

    async def set_coins(self, coins: Sequence[str]) -> None:
        """Stream these coins from now on. A coin the venue cannot stream is skipped (and named
        in the status); the live socket, if any, is told at once where the venue needs it, and
        a later connection subscribes to the new set."""
        wanted = list(dict.fromkeys(c.upper() for c in coins))
        if not wanted:
            raise ValueError("at least one coin is needed")
        kept, skipped = self.streamable(wanted)
        if not kept:
            raise ValueError("none of these coins can be streamed here")
        added = [c for c in kept if c not in self.coins]
        removed = [c for c in self.coins if c not in kept]
        self.coins = tuple(kept)
        self._skipped = skipped
        self.coins_changed()
        ws = self._ws
        if ws is not None and (added or removed):
            for message in self.change_messages(added, removed):
                try:
                    await ws.send(message)
                except ConnectionClosed:
                    break  # the next connection subscribes to the new set
        if added or removed:
            log.info(
                "%s liquidation stream: now %s", self.venue, ", ".join(self.coins) or "nothing"
            )
        self._notify()

    def _refuse_coin(self, coin: str, reason: str) -> None:
        """The venue refused a coin added later: stop asking for it, say so in the status."""
        if coin not in self.coins or coin in self.configured_coins:
            return
        self.coins = tuple(c for c in self.coins if c != coin)
        self._skipped[coin] = reason
        self.coins_changed()
        log.info("%s liquidation stream: %s refused (%s)", self.venue, coin, reason)

    async def wait_for(self, predicate: Callable[[StreamStatus], bool]) -> StreamStatus:
        """Wait until the status satisfies `predicate` (wrap in a timeout)."""
        while True:
            changed = self._changed
            current = self.status()
            if predicate(current):
                return current
            await changed.wait()

    def start(self) -> asyncio.Task[None]:
        """Run in a new task (keep a reference to it)."""
        self._task = asyncio.ensure_future(self.run())
        return self._task

    async def stop(self, timeout: float = 5.0) -> None:
        """Close the socket, record the end of coverage as a gap, and wait for `run` to end."""
        self._stopping = True
        self._stop_requested.set()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), self.close_timeout)
        if self._task is None and not self._done.is_set():
            return  # never started
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except TimeoutError:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task

    async def run(self) -> None:
        """Connect and deliver until stopped; failures are reported in `status()`, never raised."""
        if self._task is None:
            self._task = asyncio.current_task()
        try:
            await self._open_gap(self._clock(), "start")
            while not self._stopping:
                await self._attempt()
                if self._stopping:
                    break
                await self._wait_before_next()
            await self._open_gap(self._clock(), "stopped")
            self._set_state("stopped", None)
        finally:
            self._ws = None
            self._done.set()
            self._notify()

    # --- the loop -----------------------------------------------------------------------

    async def _attempt(self) -> None:
        self._attempts += 1
        self._next_attempt_at = None
        if self._state != "connecting":
            self._set_state("reconnecting", self._reason)
        loop = asyncio.get_running_loop()
        subscribed_at: float | None = None
        try:
            async with connect(
                self.url,
                open_timeout=self.open_timeout,
                ping_interval=self.keepalive_interval,
                ping_timeout=self.keepalive_timeout,
                close_timeout=self.close_timeout,
                max_size=self.max_frame_bytes,
                compression=None,
            ) as ws:
                self._ws = ws
                self._connected_since = self._clock()
                self._last_alive = self._connected_since
                self._notify()
                subscribed_at = await self._session(ws)
        except InvalidStatus as err:
            status = err.response.status_code
            if status in (451, 403):
                self._set_state("blocked", f"refused from this location (HTTP {status})")
            elif status == 429:
                self._set_state("reconnecting", "rate limited (HTTP 429)")
            else:
                self._set_state("reconnecting", f"handshake refused (HTTP {status})")
        except SessionEnded as err:
            self._set_state("reconnecting", str(err))
        except ConnectionClosed as err:
            self._set_state("reconnecting", _closed_reason(err))
        except TimeoutError:
            self._set_state("reconnecting", "no answer in time")
        except (OSError, WebSocketException) as err:
            # the class name says what happened; str(err) may hold the host
            self._set_state("reconnecting", f"connection failed ({type(err).__name__})")
        finally:
            if self._ws is not None:
                self._ws = None
                self._connected_since = None
                self._notify()
            if self._subscribed:
                self._subscribed = False
                if self._stopping:
                    await self._open_gap(self._clock(), "stopped")
                else:
                    # coverage is only proven up to the last frame the socket delivered
                    await self._open_gap(self._last_alive or self._clock(), "disconnected")
        if subscribed_at is not None and loop.time() - subscribed_at >= self.stable_after:
            self._failures = 0
        if self._stopping:
            return
        self._failures += 1
        if self._state == "ok":  # a clean close by the venue
            self._set_state("reconnecting", "closed by the venue")

    async def _wait_before_next(self) -> None:
        if self._state == "blocked":
            delay = self.blocked_retry * (1 + 0.1 * self._random())
        else:
            raw = min(self.backoff_cap, self.backoff_base * 2 ** max(0, self._failures - 1))
            delay = raw * (0.5 + 0.5 * self._random())
        self._next_attempt_at = self._clock() + timedelta(seconds=delay)
        self._notify()
        log.info(
            "%s liquidation stream: %s; next attempt in %.1fs", self.venue, self._reason, delay
        )
        sleeper = asyncio.ensure_future(self._sleep(delay))
        stopper = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, stopper):
                if not task.done():
                    task.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)

    async def _session(self, ws: ClientConnection) -> float | None:
        """Subscribe and read until the socket ends (raises) or stop() closes it (returns).

        Returns the loop time of the subscription (None if it never happened)."""
        loop = asyncio.get_running_loop()
        opened = loop.time()
        subscribed_at: float | None = None
        for message in self.subscribe_messages():
            await ws.send(message)
        if not self.needs_ack:
            await self._mark_subscribed()
            subscribed_at = opened
        last_rx = last_ping = opened
        ping_sent: float | None = None
        while True:
            deadlines: list[float] = []
            if not self._subscribed:
                deadlines.append(opened + self.ack_timeout)
            if ping_sent is not None:
                deadlines.append(ping_sent + self.pong_timeout)
            elif self.ping_text is not None and self.ping_interval is not None:
                base = max(last_rx, last_ping) if self.ping_when_idle else last_ping
                deadlines.append(base + self.ping_interval)
            timeout = max(0.0, min(deadlines) - loop.time()) if deadlines else None
            try:
                async with asyncio.timeout(timeout):
                    raw = await ws.recv()
            except TimeoutError:
                now = loop.time()
                if ping_sent is not None and now >= ping_sent + self.pong_timeout:
                    raise SilentSocket("silent socket (no frame or pong after a ping)") from None
                if not self._subscribed and now >= opened + self.ack_timeout:
                    raise SessionEnded("subscription not acknowledged in time") from None
                if ping_sent is None and self.ping_text is not None:
                    await ws.send(self.ping_text)
                    last_ping = ping_sent = now
                continue
            except ConnectionClosed:
                if self._stopping:
                    return subscribed_at
                raise
            last_rx = loop.time()
            ping_sent = None
            if await self._handle(raw) and subscribed_at is None:
                subscribed_at = last_rx

    async def _handle(self, raw: str | bytes) -> bool:
        """Process one frame; True once the subscription is confirmed."""
        now = self._clock()
        self._last_frame_at = self._last_alive = now
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                self._count_malformed(1, "binary frame")
                return self._subscribed
        try:
            parsed = self.parse(raw)
        except Exception:  # a parser bug must not end the stream: count and keep going
            log.exception("%s liquidation stream: parser failed", self.venue)
            parsed = Parsed("malformed", detail="parser error")
        if parsed.kind == "rejected":
            raise SubscriptionRejected(f"subscription refused ({parsed.detail})")
        if parsed.kind == "coin_refused":
            self._refuse_coin(parsed.detail, "not listed (subscription refused)")
        if parsed.kind == "ack":
            await self._mark_subscribed()
        elif parsed.kind == "events":
            if not self._subscribed:  # data proves the subscription even if the ack was lost
                await self._mark_subscribed()
            if parsed.bad_items:
                self._count_malformed(parsed.bad_items, parsed.detail)
            await self._deliver(parsed.events, now)
        elif parsed.kind == "malformed":
            self._count_malformed(1, parsed.detail)
        elif parsed.kind == "unknown":
            self._unknown += 1
            log.debug("%s liquidation stream: unknown frame (%s)", self.venue, parsed.detail)
        self._notify()
        return self._subscribed

    async def _deliver(self, events: Iterable[LiquidationEvent], now: datetime) -> None:
        fresh: list[LiquidationEvent] = []
        for event in events:
            if self._seen.add(event.event_id):
                fresh.append(event)
            else:
                self._duplicates += 1
        if not fresh:
            return
        self._events_total += len(fresh)
        self._last_event_at = now
        try:
            await self.sink.on_events(fresh)
        except Exception:
            log.exception(
                "%s liquidation stream: the sink failed on %d events", self.venue, len(fresh)
            )

    async def _mark_subscribed(self) -> None:
        if self._subscribed:
            return
        self._subscribed = True
        self._set_state("ok", None)
        await self._close_gap(self._clock())

    # --- gaps and state -----------------------------------------------------------------

    async def _open_gap(self, start: datetime, reason: str) -> None:
        if self._gap is not None:
            return  # still uncovered since an earlier gap: that one goes on
        self._gap_count += 1
        self._gap = StreamGap(self.venue, self._gap_count, start, None, reason)
        await self._send_gap(self._gap)

    async def _close_gap(self, end: datetime) -> None:
        if self._gap is None:
            return
        closed = replace(self._gap, end=max(end, self._gap.start))
        self._gap = None
        await self._send_gap(closed)

    async def _send_gap(self, gap: StreamGap) -> None:
        self._notify()
        try:
            await self.sink.on_gap(gap)
        except Exception:
            log.exception("%s liquidation stream: the sink failed on a gap", self.venue)

    def _count_malformed(self, count: int, detail: str) -> None:
        self._malformed += count
        log.debug("%s liquidation stream: %d malformed (%s)", self.venue, count, detail)

    def _set_state(self, state: StreamState, reason: str | None) -> None:
        self._state = state
        self._reason = reason
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


def _closed_reason(err: ConnectionClosed) -> str:
    close = err.rcvd or err.sent
    if close is None:
        return "connection lost"
    return f"connection closed (code {close.code})"
