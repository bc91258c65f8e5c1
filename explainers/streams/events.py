"""What the liquidation streams hand out: events, gap markers, statuses, and the sink protocol.

Every time is a timezone-aware UTC datetime taken from the client's injectable clock, except an
event's `at`, which is the venue's own time for the liquidation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

Venue = Literal["bybit", "okx", "binance"]
Side = Literal["long", "short"]
#: "all": the venue pushes every liquidation; "sampled": at most one per symbol per second
Coverage = Literal["all", "sampled"]
#: connecting: first attempt under way; ok: subscribed and receiving; reconnecting: between
#: attempts or mid-handshake after a failure; blocked: refused from this location (long back-off);
#: stopped: stop() was called
StreamState = Literal["connecting", "ok", "reconnecting", "blocked", "stopped"]

#: the coins streamed when a caller names none
DEFAULT_COINS: tuple[str, ...] = ("BTC", "ETH", "SOL")


@dataclass(frozen=True, slots=True)
class LiquidationEvent:
    """One forced close, normalised across venues."""

    venue: Venue
    coin: str  # "BTC"
    side: Side  # the position that was liquidated
    usd: float  # notional in USD (quantity x price); always finite and > 0
    price: (
        float  # the venue's price for it (bankruptcy price on Bybit/OKX, average fill on Binance)
    )
    quantity: float  # in coins (OKX contracts already converted with the contract value)
    at: datetime  # the venue's time of the liquidation, UTC
    event_id: str  # stable identity built from venue fields, for de-duplication downstream


@dataclass(frozen=True, slots=True)
class StreamGap:
    """A period in which a venue's stream was not delivering: totals over it are partial.

    A client sends each gap twice: open (`end` None) when it starts, then again with the same
    `gap_id` and `start` and an `end` once the stream is subscribed again. The first gap of a run
    starts when the client starts (reason "start"); a store that kept events from an earlier
    process may extend it back to its own last covered time.
    """

    venue: Venue
    gap_id: int  # per client, increasing
    start: datetime
    end: datetime | None  # None: still open
    reason: str

    @property
    def is_open(self) -> bool:
        return self.end is None

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """Whether this gap touches the window [start, end) (an open gap runs to the present)."""
        return self.start < end and (self.end is None or self.end > start)


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """A snapshot of one venue's stream, for a doctor command and an answer's coverage line."""

    venue: Venue
    coverage: Coverage
    state: StreamState
    reason: str | None  # why it is not ok (the last failure), None when ok
    connected: bool  # a socket is open (it may still be waiting for the subscription ack)
    connected_since: datetime | None
    last_frame_at: datetime | None  # any frame, pongs and acks included
    last_event_at: datetime | None  # the last liquidation received (clock time)
    events_total: int  # liquidations passed to the sink, duplicates excluded
    malformed: int  # frames or liquidation items dropped as unusable
    unknown: int  # well-formed frames of a kind the client does not know
    duplicates: int  # liquidations already seen (replays after a reconnect)
    attempts: int  # connection attempts since the client started
    next_attempt_at: datetime | None  # when the next attempt is due, while waiting for it
    gap_since: datetime | None  # start of the open gap, None while covered
    coins: tuple[str, ...] = ()  # the coins streamed now ("BTC", ...)
    #: coins asked for that this venue does not stream, each with why ("PEPE: not listed")
    skipped: tuple[str, ...] = ()


class LiquidationSink(Protocol):
    """Where a stream client delivers; called from the client's task, one call per frame."""

    async def on_events(self, events: list[LiquidationEvent]) -> None: ...

    async def on_gap(self, gap: StreamGap) -> None: ...
