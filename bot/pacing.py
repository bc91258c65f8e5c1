"""Pacing outgoing messages within each chat platform's rate limits.

The limits are data (`PLATFORM_LIMITS`). The limiter is our own sliding window rather than
aiolimiter, for two reasons: aiolimiter is a leaky bucket, which after an idle spell lets a full
bucket through and then keeps leaking, so "20 per minute per group" would allow up to 40 in one
minute; and it reads the event loop's clock directly, while the tests and the benchmark need to
inject a clock (virtual or scaled time). A sliding window of the last N send times never puts more
than N sends in any window of T seconds, which is what the fake notifiers check.

Each send is counted at its slot: the moment the windows first allowed it, or the moment it was
admitted if later. A send admitted after its slot (a timer wakes a little late, the loop was busy)
is counted at most `late` seconds before it was admitted, so a late wake-up does not push every
later slot back by as much, which would lower the rate a little on every round; and as windows are
kept longer than the platform's by more than `late`, sends that really leave at most `late` after
the time they are counted at still never crowd any platform window.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

# below any server's resolution; lets float rounding of a wake-up time count as on time
_EPSILON_S = 1e-6
# every window is kept 3% longer than the platform's: sends are counted up to LATE_FRACTION of a
# window before they leave (below); what is left covers the jitter of their arrival at the server
SAFETY_MARGIN = 0.03
# a send admitted late is counted at its slot, but never more than this fraction of its gate's
# shortest window before it was admitted: at most 20 ms of a one-second window
LATE_FRACTION = 0.02
# the pacer drops the state of chats that no longer constrain anything every this many sends
FORGET_EVERY = 1000


class Clock(Protocol):
    """Wall time for cooldowns, monotonic time and sleep for pacing."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class Window:
    """At most `count` sends in any `seconds`-long window."""

    count: int
    seconds: float


@dataclass(frozen=True)
class PlatformLimits:
    """One platform's limits: overall, per chat, and per group chat where groups are slower."""

    overall: Window
    per_chat: Window
    per_group: Window | None = None
    # group chats are recognised by this chat-id prefix (Telegram: negative ids)
    group_prefix: str | None = None
    # sends in flight at once; one second's worth of the overall limit keeps the pipe full
    concurrency: int = 30

    def chat_windows(self, chat_id: str) -> tuple[Window, ...]:
        """The windows that apply to one chat."""
        if self.per_group and self.group_prefix and chat_id.startswith(self.group_prefix):
            return (self.per_chat, self.per_group)
        return (self.per_chat,)


TELEGRAM_LIMITS = PlatformLimits(
    overall=Window(30, 1.0),
    per_chat=Window(1, 1.0),
    per_group=Window(20, 60.0),
    group_prefix="-",
    concurrency=30,
)
# Discord: 50 requests/s per bot; 5 messages per 5 s per channel
DISCORD_LIMITS = PlatformLimits(overall=Window(50, 1.0), per_chat=Window(5, 5.0), concurrency=50)
# webhooks: our own limits, as a good citizen; one post a second per endpoint is what Slack's
# incoming webhooks allow, and 20 in flight keeps slow endpoints from hogging the others' pace
WEBHOOK_LIMITS = PlatformLimits(overall=Window(50, 1.0), per_chat=Window(1, 1.0), concurrency=20)
PLATFORM_LIMITS: Mapping[str, PlatformLimits] = {
    "telegram": TELEGRAM_LIMITS,
    "discord": DISCORD_LIMITS,
    "webhook": WEBHOOK_LIMITS,
}


class _Gate:
    """Sliding windows for one key (a platform or a chat), plus a server-imposed pause."""

    __slots__ = ("late", "paused_until", "stamps", "windows")

    def __init__(self, windows: tuple[Window, ...]) -> None:
        self.windows = windows
        # the times sends were counted at, in order, never after the send was admitted
        self.stamps: deque[float] = deque(maxlen=max(w.count for w in windows))
        self.paused_until = 0.0
        self.late = LATE_FRACTION * min(w.seconds for w in windows)

    def delay(self, now: float) -> float:
        wait = self.paused_until - now
        for window in self.windows:
            if len(self.stamps) >= window.count:
                span = window.seconds * (1 + SAFETY_MARGIN)
                wait = max(wait, self.stamps[-window.count] + span - now)
        return wait

    def count(self, now: float, wait: float) -> None:
        """Count a send admitted at `now`, `wait` (<= 0) after the windows allowed it: at that
        slot, but not more than `late` before `now` nor before the previous send."""
        slot = max(now + wait, now - self.late)
        if self.stamps:
            slot = max(slot, self.stamps[-1])
        self.stamps.append(slot)

    def idle(self, now: float) -> bool:
        horizon = max(w.seconds for w in self.windows) * (1 + SAFETY_MARGIN)
        return self.paused_until <= now and (not self.stamps or self.stamps[-1] + horizon <= now)


class Pacer:
    """Admits sends so that no platform, chat or group limit is ever exceeded."""

    def __init__(self, limits: Mapping[str, PlatformLimits], clock: Clock) -> None:
        self._limits = limits
        self._clock = clock
        self._platforms = {name: _Gate((lim.overall,)) for name, lim in limits.items()}
        self._chats: dict[tuple[str, str], _Gate] = {}
        self._admitted = 0
        self._forgotten_at = 0  # sends admitted at the last forget_idle

    def _chat(self, platform: str, chat_id: str) -> _Gate:
        gate = self._chats.get((platform, chat_id))
        if gate is None:
            gate = _Gate(self._limits[platform].chat_windows(chat_id))
            self._chats[(platform, chat_id)] = gate
        return gate

    async def acquire(self, platform: str, chat_id: str) -> None:
        """Wait until one more send to this chat fits every window, and count it."""
        if self._admitted - self._forgotten_at >= FORGET_EVERY:
            # a long fan-out must not keep a gate for every chat it ever sent to. Done before
            # the admission, not after it: nothing should come between a send's admission and
            # the send itself
            self.forget_idle()
        gates = (self._platforms[platform], self._chat(platform, chat_id))
        while True:
            now = self._clock.monotonic()
            waits = [gate.delay(now) for gate in gates]
            wait = max(waits)
            if wait <= _EPSILON_S:
                # check and count with no await between: no other task can take the slot
                for gate, gate_wait in zip(gates, waits, strict=True):
                    gate.count(now, min(gate_wait, 0.0))
                self._admitted += 1
                return
            await self._clock.sleep(wait)

    def pause(self, platform: str, seconds: float, chat_id: str | None = None) -> None:
        """Hold every send to a chat (or, with no chat, the whole platform) for `seconds`."""
        gate = self._platforms[platform] if chat_id is None else self._chat(platform, chat_id)
        gate.paused_until = max(gate.paused_until, self._clock.monotonic() + seconds)

    def forget_idle(self) -> None:
        """Drop per-chat state that no longer constrains anything (keeps memory flat)."""
        now = self._clock.monotonic()
        self._forgotten_at = self._admitted
        for key in [key for key, gate in self._chats.items() if gate.idle(now)]:
            del self._chats[key]
