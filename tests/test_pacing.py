"""The pacer on a controlled clock: sends counted at their slots, late wake-ups, exact windows."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from bot.pacing import (
    LATE_FRACTION,
    PLATFORM_LIMITS,
    SAFETY_MARGIN,
    Pacer,
    PlatformLimits,
    Window,
)
from tests.alert_fakes import LoopClock, ManualClock, VirtualTimeLoop, run_virtual

SPAN = 1.0 * (1 + SAFETY_MARGIN)  # a one-second window as the pacer keeps it
LATE = LATE_FRACTION * 1.0


def test_the_margin_leaves_room_for_sends_counted_before_they_leave() -> None:
    assert 0 < LATE_FRACTION < SAFETY_MARGIN <= 0.03


@pytest.mark.parametrize(
    ("late_by", "third_at"),
    [
        (0.0, 2 * SPAN),  # on time
        (LATE / 2, 2 * SPAN),  # a little late: counted at its slot, the next slot stays put
        (LATE * 5, SPAN + LATE * 5 + SPAN - LATE),  # very late: counted `late` before it left
    ],
)
async def test_a_late_send_is_counted_at_its_slot_within_the_tolerance(
    late_by: float, third_at: float
) -> None:
    clock = ManualClock()
    pacer = Pacer(PLATFORM_LIMITS, clock)
    await pacer.acquire("telegram", "42")  # one per second to a chat
    clock.advance(SPAN + late_by)  # the second wakes late_by after its slot
    await pacer.acquire("telegram", "42")
    await pacer.acquire("telegram", "42")
    assert clock.monotonic() == pytest.approx(third_at)


def test_late_wake_ups_never_crowd_a_window_and_keep_the_rate() -> None:
    """30 workers against 30/s whose sleeps overrun by up to 1.5x the tolerance: every real
    one-second window holds at most 30 admissions, and the rate stays near the ceiling."""
    limits = {"telegram": PlatformLimits(overall=Window(30, 1.0), per_chat=Window(1, 1.0))}
    rng = random.Random(14)

    class Oversleeping(LoopClock):
        async def sleep(self, seconds: float) -> None:
            await asyncio.sleep(seconds + rng.uniform(0, 1.5 * LATE))

    async def main(loop: VirtualTimeLoop) -> list[float]:
        pacer = Pacer(limits, Oversleeping(loop))
        admitted: list[float] = []
        chats = iter(range(3000))

        async def worker() -> None:
            for chat in chats:
                await pacer.acquire("telegram", str(chat))
                admitted.append(loop.time())
                await asyncio.sleep(0.05)  # the request's round trip

        await asyncio.gather(*(worker() for _ in range(30)))
        return admitted

    admitted = run_virtual(main)
    assert len(admitted) == 3000
    assert all(b >= a for a, b in itertools.pairwise(admitted))
    crowded = [i for i in range(30, len(admitted)) if admitted[i] - admitted[i - 30] < 1.0]
    assert crowded == []
    rate = len(admitted) / (admitted[-1] - admitted[0] + 1 / 30)
    assert rate >= 30 / SPAN * 0.98  # within 2% of the pacer's ceiling despite the overruns


def test_sends_to_one_group_keep_both_its_windows_when_late() -> None:
    """A group's 1/s and 20/min hold against the real admission times, wake-ups late or not."""
    rng = random.Random(7)

    class Oversleeping(LoopClock):
        async def sleep(self, seconds: float) -> None:
            await asyncio.sleep(seconds + rng.uniform(0, 3 * LATE))

    async def main(loop: VirtualTimeLoop) -> list[float]:
        pacer = Pacer(PLATFORM_LIMITS, Oversleeping(loop))
        admitted = []
        for _ in range(45):
            await pacer.acquire("telegram", "-100")
            admitted.append(loop.time())
        return admitted

    admitted = run_virtual(main)
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(admitted))
    assert all(admitted[i] - admitted[i - 20] >= 60.0 for i in range(20, len(admitted)))


async def test_idle_chats_are_forgotten_only_once_their_windows_are_past() -> None:
    clock = ManualClock()
    pacer = Pacer(PLATFORM_LIMITS, clock)
    await pacer.acquire("telegram", "42")
    clock.advance(1.0)  # past the platform's second, not the pacer's longer window
    pacer.forget_idle()
    await pacer.acquire("telegram", "42")
    assert clock.monotonic() == pytest.approx(SPAN)
