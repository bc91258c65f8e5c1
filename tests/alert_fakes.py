"""Test helpers for the store and alert engine: explanations, clocks, virtual time, fake notifiers."""

from __future__ import annotations

import asyncio
import selectors
from collections import defaultdict
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from bot.delivery import (
    AlertMessage,
    PermanentDeliveryError,
    RetryAfter,
    TransientDeliveryError,
)
from bot.pacing import Window
from bot.store import Subscription
from explainers.models import DriverResult, DriverState, Explanation, Move, Verdict

T = TypeVar("T")

START = datetime(2024, 8, 5, 8, 0, tzinfo=UTC)
DRIVER_KEYS = ("liquidations", "etf", "institutional", "fed", "stocks", "fear")


def explanation(
    fired: int,
    *,
    verdict: Verdict = "down",
    change_24h: float | None = -6.0,
    unknown: int = 0,
    at: datetime = START,
) -> Explanation:
    """An Explanation with `fired` fired drivers, `unknown` unreadable ones, the rest quiet."""
    states: list[DriverState] = ["fired"] * fired + ["unknown"] * unknown
    states += ["quiet"] * (len(DRIVER_KEYS) - len(states))
    drivers = [
        DriverResult(
            key=key,
            name=key.title(),
            state=state,
            severity=2.0 if state == "fired" else 0.0,
            threshold="test threshold",
        )
        for key, state in zip(DRIVER_KEYS, states, strict=True)
    ]
    return Explanation(
        generated_at=at,
        data_time=at,
        verdict=verdict,
        market_change_24h=change_24h,
        btc_change_1h=-1.0,
        moves=[
            Move(label="Total market", change_1h=-1.0, change_24h=change_24h, source="t", as_of=at)
        ],
        drivers=drivers,
    )


class ManualClock:
    """A clock that moves only when told to (sleeping moves it too, and yields once)."""

    def __init__(self, start: datetime = START) -> None:
        self.current = start
        self.mono = 0.0

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
        self.mono += seconds

    async def sleep(self, seconds: float) -> None:
        self.advance(max(seconds, 0.0))
        await asyncio.sleep(0)


# --- virtual time: the event loop's clock jumps to the next timer whenever nothing is ready ----


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[Any]:
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            # nothing is scheduled and nothing is ready: in these tests that is a deadlock
            events = super().select(2.0)
            if not events:
                raise RuntimeError("virtual-time loop is idle with no timer: deadlock")
            return events
        assert self.loop is not None
        self.loop.virtual_now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose time() is virtual: sleeps cost no real time, ordering is kept."""

    def __init__(self) -> None:
        selector = _JumpingSelector()
        self.virtual_now = 0.0
        super().__init__(selector)
        selector.loop = self

    def time(self) -> float:
        return self.virtual_now

    def advance(self, seconds: float) -> None:
        """Jump ahead between steps (e.g. past a cooldown)."""
        self.virtual_now += seconds


def run_virtual(main: Callable[[VirtualTimeLoop], Coroutine[Any, Any, T]]) -> T:
    """Run `main(loop)` to completion on a fresh virtual-time loop."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main(loop))
    finally:
        loop.close()


class LoopClock:
    """The engine's clock read from a (virtual-time) event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, start: datetime = START) -> None:
        self.loop = loop
        self.start = start

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.loop.time())

    def monotonic(self) -> float:
        return self.loop.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# --- notifiers ----------------------------------------------------------------------------------

Target = tuple[str, str, int | None]


def target(subscription: Subscription) -> Target:
    return (subscription.platform, subscription.chat_id, subscription.topic_id)


class RecordingNotifier:
    """Delivers by appending to `received`; failures are scripted per chat id."""

    def __init__(
        self,
        platform: str,
        script: dict[str, list[Exception]] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.platform = platform
        self.script = {chat: list(errors) for chat, errors in (script or {}).items()}
        self.received: list[tuple[Target, str, int]] = []
        self.attempts: list[tuple[str, float]] = []
        self._clock = clock or (lambda: 0.0)

    async def send(self, subscription: Subscription, message: AlertMessage) -> None:
        self.attempts.append((subscription.chat_id, self._clock()))
        errors = self.script.get(subscription.chat_id)
        if errors:
            raise errors.pop(0)
        self.received.append((target(subscription), message.kind, message.alert_id))


# the platforms' published limits, written out here independently of bot.pacing on purpose
TELEGRAM_RULES = {"overall": Window(30, 1.0), "chat": Window(1, 1.0), "group": Window(20, 60.0)}
DISCORD_RULES = {"overall": Window(50, 1.0), "chat": Window(5, 5.0)}


class EnforcingNotifier:
    """A platform double that checks rate limits and server-imposed waits on every request.

    It counts every request, failed or not, as the real servers do. Violations are collected
    (not only raised), because the engine treats an unexpected exception as a transient failure.
    Telegram groups are the negative chat ids.
    """

    def __init__(
        self,
        platform: str,
        rules: dict[str, Window],
        loop: asyncio.AbstractEventLoop,
        *,
        dead: set[str] = frozenset(),  # type: ignore[assignment]
        retry_after: dict[str, float] | None = None,  # chat -> seconds, once
        flaky: set[str] = frozenset(),  # type: ignore[assignment]
        platform_retry_after_at: int | None = None,  # the n-th request gets a global 429
        latency_s: float = 0.05,
    ) -> None:
        self.platform = platform
        self.rules = rules
        self.loop = loop
        self.dead = dead
        self.retry_after = dict(retry_after or {})
        self.flaky = set(flaky)
        self.platform_retry_after_at = platform_retry_after_at
        self.latency_s = latency_s
        self.requests = 0
        self.violations: list[str] = []
        self.received: defaultdict[Target, list[int]] = defaultdict(list)
        self._stamps: defaultdict[str, list[float]] = defaultdict(list)
        self._blocked_chat: dict[str, float] = {}
        self._blocked_all = 0.0

    def _check(self, key: str, window: Window, now: float) -> None:
        # sends in the half-open window (now - T, now], this one included
        recent = [t for t in self._stamps[key] if t > now - window.seconds + 1e-6]
        if len(recent) > window.count:
            self.violations.append(f"{key}: {len(recent)} sends within {window.seconds} s")

    async def send(self, subscription: Subscription, message: AlertMessage) -> None:
        now = self.loop.time()
        chat = subscription.chat_id
        self.requests += 1
        if now < self._blocked_all - 1e-6:
            self.violations.append(f"sent during a platform-wide retry-after, at {now}")
        if now < self._blocked_chat.get(chat, 0.0) - 1e-6:
            self.violations.append(f"{chat}: sent during its retry-after, at {now}")
        self._stamps["*"].append(now)
        self._stamps[chat].append(now)
        self._check("*", self.rules["overall"], now)
        self._check(chat, self.rules["chat"], now)
        if "group" in self.rules and chat.startswith("-"):
            self._check(chat, self.rules["group"], now)
        await asyncio.sleep(self.latency_s)
        if self.requests == self.platform_retry_after_at:
            self._blocked_all = now + 1.5
            raise RetryAfter(1.5, platform_wide=True)
        if chat in self.dead:
            raise PermanentDeliveryError("Forbidden: bot was kicked from the chat")
        if chat in self.retry_after:
            seconds = self.retry_after.pop(chat)
            self._blocked_chat[chat] = now + seconds
            raise RetryAfter(seconds)
        if chat in self.flaky:
            self.flaky.discard(chat)
            raise TransientDeliveryError("connection reset")
        self.received[target(subscription)].append(message.alert_id)


def append_line(path: Path, line: str) -> None:
    """Append one line; once write() returns, a killed process cannot lose it."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
