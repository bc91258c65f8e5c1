"""The alert rule, cooldown and escalation, delivery failures, pacing, and resuming the outbox."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.alerts import AlertEngine, AlertSettings, decide
from bot.delivery import (
    AlertMessage,
    DeliveryError,
    PermanentDeliveryError,
    RetryAfter,
    TransientDeliveryError,
)
from bot.pacing import PLATFORM_LIMITS, SAFETY_MARGIN, Pacer
from bot.store import Store, Subscription
from explainers.models import Verdict
from tests.alert_fakes import (
    DISCORD_RULES,
    START,
    TELEGRAM_RULES,
    EnforcingNotifier,
    LoopClock,
    ManualClock,
    RecordingNotifier,
    VirtualTimeLoop,
    explanation,
    run_virtual,
)

HOUR = 3600


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "whydown.db") as opened:
        yield opened


def subscription(min_drivers: int = 3, **state: object) -> Subscription:
    values: dict[str, object] = {
        "id": 1,
        "platform": "telegram",
        "chat_id": "1",
        "min_drivers": min_drivers,
        "subscribed_by": "a",
        "subscribed_at": START,
        "active": True,
        "consecutive_failures": 0,
    }
    values.update(state)
    return Subscription.model_validate(values)


def engine_for(
    store: Store, clock: ManualClock, settings: AlertSettings | None = None, **notifiers: object
) -> tuple[AlertEngine, RecordingNotifier]:
    notifier = RecordingNotifier("telegram", clock=clock.monotonic)
    engine = AlertEngine(store, settings or AlertSettings(), {"telegram": notifier}, clock)
    return engine, notifier


# --- the rule at its boundaries ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("verdict", "fired", "min_drivers", "expected"),
    [
        ("down", 3, 3, "alert"),
        ("down", 2, 3, None),
        ("not_down", 6, 3, None),
        ("unknown", 6, 3, None),
        ("down", 2, 2, "alert"),
        ("down", 1, 2, None),
        ("down", 6, 6, "alert"),
        ("down", 5, 6, None),
    ],
)
def test_rule_needs_a_down_market_and_the_minimum_of_fired_drivers(
    verdict: Verdict, fired: int, min_drivers: int, expected: str | None
) -> None:
    result = decide(
        explanation(fired, verdict=verdict), subscription(min_drivers), AlertSettings(), START
    )
    assert result == expected


def test_cooldown_ends_at_exactly_its_length() -> None:
    alerted = subscription(
        last_alert_at=START, last_alert_drivers=3, last_alert_drop=-6.0, alerting=True
    )
    settings = AlertSettings()
    just_before = START + timedelta(seconds=settings.cooldown_s - 1)
    at_end = START + timedelta(seconds=settings.cooldown_s)
    assert decide(explanation(3), alerted, settings, just_before) is None
    assert decide(explanation(3), alerted, settings, at_end) == "alert"
    # a subscription's own cooldown wins over the default
    short = alerted.model_copy(update={"cooldown_s": 600})
    assert decide(explanation(3), short, settings, START + timedelta(seconds=600)) == "alert"


@pytest.mark.parametrize(
    ("fired", "change_24h", "expected"),
    [
        (4, -6.0, "alert"),  # one more driver than at the last alert
        (3, -9.0, "alert"),  # exactly 3 points deeper
        (3, -8.99, None),  # not quite
        (2 + 1, None, None),  # drop unknown: no escalation by depth
        (3, -2.0, None),  # better than before
    ],
)
def test_escalation_breaks_the_cooldown(
    fired: int, change_24h: float | None, expected: str | None
) -> None:
    alerted = subscription(
        last_alert_at=START, last_alert_drivers=3, last_alert_drop=-6.0, alerting=True
    )
    now = START + timedelta(minutes=10)
    assert decide(explanation(fired, change_24h=change_24h), alerted, AlertSettings(), now) == (
        expected
    )


@pytest.mark.parametrize(
    ("verdict", "fired", "unknown", "eased"),
    [
        ("not_down", 3, 0, True),
        ("down", 2, 0, True),
        ("down", 1, 1, True),
        ("down", 2, 1, False),  # the unreadable driver might be firing: not evidence of easing
        ("unknown", 0, 0, False),
    ],
)
def test_eased_only_when_the_condition_clearly_fails(
    verdict: Verdict, fired: int, unknown: int, eased: bool
) -> None:
    alerted = subscription(last_alert_at=START, last_alert_drivers=3, alerting=True)
    on = AlertSettings(eased_followup=True)
    now = START + timedelta(minutes=5)
    result = decide(explanation(fired, verdict=verdict, unknown=unknown), alerted, on, now)
    assert result == ("eased" if eased else None)
    off = decide(
        explanation(fired, verdict=verdict, unknown=unknown), alerted, AlertSettings(), now
    )
    assert off == ("clear" if eased else None)


# --- the engine over time ---------------------------------------------------------------------


async def test_cooldown_and_escalation_over_time(store: Store) -> None:
    clock = ManualClock()
    engine, notifier = engine_for(store, clock)
    store.subscribe("telegram", "100", None, 3, "a")
    store.subscribe("telegram", "200", None, 4, "b")

    first = await engine.evaluate(explanation(3, change_24h=-5.0, at=clock.now()))
    assert first is not None
    assert [t[0][1] for t in notifier.received] == ["100"]

    clock.advance(HOUR)
    # same drivers, slightly worse: quiet for the first, not enough drivers for the second
    assert await engine.evaluate(explanation(3, change_24h=-6.0, at=clock.now())) is None

    clock.advance(HOUR)
    # a fourth driver: escalation for the first, first alert for the second
    second = await engine.evaluate(explanation(4, change_24h=-6.0, at=clock.now()))
    assert second is not None and second.driver_count == 4
    assert [(t[0][1], t[2]) for t in notifier.received[1:]] == [
        ("100", second.id),
        ("200", second.id),
    ]

    clock.advance(HOUR)
    # 3 points deeper than at their last alert (-6.0): both escalate
    third = await engine.evaluate(explanation(4, change_24h=-9.0, at=clock.now()))
    assert third is not None and len(notifier.received) == 5

    clock.advance(6 * HOUR - 1)
    assert await engine.evaluate(explanation(4, change_24h=-9.0, at=clock.now())) is None
    clock.advance(1)
    fourth = await engine.evaluate(explanation(4, change_24h=-9.0, at=clock.now()))
    assert fourth is not None and len(notifier.received) == 7

    assert [a.id for a in store.recent_alerts(10)] == [fourth.id, third.id, second.id, first.id]


async def test_the_same_data_evaluated_twice_alerts_once(store: Store) -> None:
    clock = ManualClock()
    engine, notifier = engine_for(store, clock)
    store.subscribe("telegram", "100", None, 3, "a")
    data = explanation(3, at=clock.now())
    first = await engine.evaluate(data)
    assert await engine.evaluate(data) is None
    # a chat that subscribes in between gets the same alert, not a second one
    store.subscribe("telegram", "300", None, 3, "c")
    again = await engine.evaluate(data)
    assert first is not None and again is not None and again.id == first.id
    assert sorted(t[0][1] for t in notifier.received) == ["100", "300"]
    assert len(store.recent_alerts(10)) == 1


@pytest.mark.parametrize("eased_followup", [True, False])
async def test_eased_follow_up_is_sent_once_and_only_when_enabled(
    store: Store, eased_followup: bool
) -> None:
    clock = ManualClock()
    settings = AlertSettings(eased_followup=eased_followup)
    engine, notifier = engine_for(store, clock, settings)
    store.subscribe("telegram", "100", None, 3, "a")
    store.subscribe("telegram", "200", None, 3, "b")
    await engine.evaluate(explanation(3, at=clock.now()))
    store.subscribe("telegram", "300", None, 3, "never alerted")

    clock.advance(600)
    await engine.evaluate(explanation(1, verdict="not_down", change_24h=-0.5, at=clock.now()))
    clock.advance(600)
    await engine.evaluate(explanation(0, verdict="not_down", change_24h=0.4, at=clock.now()))

    eased = [(t[0][1], t[1]) for t in notifier.received if t[1] == "eased"]
    assert eased == ([("100", "eased"), ("200", "eased")] if eased_followup else [])
    assert not any(s.alerting for s in store.subscriptions())
    # /history lists alerts only
    assert [a.kind for a in store.recent_alerts(10)] == ["alert"]


# --- delivery failures --------------------------------------------------------------------------


def test_one_dead_target_never_stops_the_others(tmp_path: Path) -> None:
    async def main(loop: VirtualTimeLoop) -> None:
        notifier = RecordingNotifier(
            "telegram",
            script={
                "2": [PermanentDeliveryError("Forbidden: bot was blocked by the user")],
                "3": [TransientDeliveryError("timed out"), TransientDeliveryError("timed out")],
                "4": [ValueError("a bug in a front-end")],
            },
            clock=loop.time,
        )
        with Store(tmp_path / "whydown.db") as store:
            engine = AlertEngine(store, AlertSettings(), {"telegram": notifier}, LoopClock(loop))
            for chat in "12345":
                store.subscribe("telegram", chat, None, 3, "x")

            alert = await engine.evaluate(explanation(3))

            assert alert is not None
            assert sorted(t[0][1] for t in notifier.received) == ["1", "3", "4", "5"]
            statuses = {
                d.subscription_id: (d.status, d.attempts) for d in store.deliveries(alert.id)
            }
            assert statuses == {
                1: ("sent", 1),
                2: ("failed", 1),
                3: ("sent", 3),
                4: ("sent", 2),
                5: ("sent", 1),
            }
            [failed] = [d for d in store.deliveries(alert.id) if d.status == "failed"]
            assert failed.last_error == "Forbidden: bot was blocked by the user"
        # transient retries waited 2 s, then 4 s (exponential back-off from 2 s)
        chat_3 = [t for chat, t in notifier.attempts if chat == "3"]
        assert [b - a for a, b in itertools.pairwise(chat_3)] == [2.0, 4.0]

    run_virtual(main)


async def test_retries_stop_at_max_attempts_without_deactivating(store: Store) -> None:
    clock = ManualClock()
    notifier = RecordingNotifier(
        "telegram", script={"1": [TransientDeliveryError("HTTP 502")] * 10}, clock=clock.monotonic
    )
    engine = AlertEngine(store, AlertSettings(max_attempts=4), {"telegram": notifier}, clock)
    store.subscribe("telegram", "1", None, 3, "x")
    alert = await engine.evaluate(explanation(3))
    assert alert is not None
    [delivery] = store.deliveries(alert.id)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("failed", 4, "HTTP 502")
    assert store.subscriptions()[0].active


async def test_dead_chat_is_deactivated_after_consecutive_failures_and_can_come_back(
    store: Store,
) -> None:
    clock = ManualClock()
    gone = PermanentDeliveryError("Forbidden: bot was kicked")
    notifier = RecordingNotifier("telegram", script={"9": [gone] * 3}, clock=clock.monotonic)
    engine = AlertEngine(store, AlertSettings(), {"telegram": notifier}, clock)
    store.subscribe("telegram", "9", None, 3, "x")
    for fired in (3, 4, 5):  # each one escalates
        await engine.evaluate(explanation(fired, at=clock.now()))
        clock.advance(60)
    assert store.subscriptions() == []
    assert store.get_subscription("telegram", "9", None).consecutive_failures == 3  # type: ignore[union-attr]

    store.subscribe("telegram", "9", None, 3, "x")  # added back to the group, subscribed again
    clock.advance(7 * HOUR)
    await engine.evaluate(explanation(3, at=clock.now()))
    assert [t[0][1] for t in notifier.received] == ["9"]


async def test_a_refused_message_is_given_up_at_once_without_deactivating(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    refused = DeliveryError("Telegram refused the message: Bad Request: can't parse entities")
    notifier = RecordingNotifier("telegram", script={"1": [refused] * 3}, clock=clock.monotonic)
    engine = AlertEngine(store, AlertSettings(deactivate_after=1), {"telegram": notifier}, clock)
    store.subscribe("telegram", "1", None, 3, "x")

    with caplog.at_level(logging.WARNING, logger="whydown.delivery"):
        alert = await engine.evaluate(explanation(3))

    assert alert is not None
    [delivery] = store.deliveries(alert.id)
    assert (delivery.status, delivery.attempts, delivery.last_error) == (
        "failed",
        1,
        "Telegram refused the message: Bad Request: can't parse entities",
    )
    assert len(notifier.attempts) == 1
    [subscription] = store.subscriptions()
    assert subscription.active and subscription.consecutive_failures == 0
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            f"gave up on delivery {delivery.id}: "
            "Telegram refused the message: Bad Request: can't parse entities",
        )
    ]


def test_retry_after_does_not_count_as_a_failed_attempt(tmp_path: Path) -> None:
    async def main(loop: VirtualTimeLoop) -> None:
        notifier = RecordingNotifier(
            "telegram",
            script={"1": [RetryAfter(3.0), RetryAfter(3.0), TransientDeliveryError("HTTP 502")]},
            clock=loop.time,
        )
        with Store(tmp_path / "whydown.db") as store:
            settings = AlertSettings(max_attempts=2)
            engine = AlertEngine(store, settings, {"telegram": notifier}, LoopClock(loop))
            store.subscribe("telegram", "1", None, 3, "x")

            alert = await engine.evaluate(explanation(3))

            assert alert is not None
            [delivery] = store.deliveries(alert.id)
            # four requests: two waits asked for, one failure, then the message went through
            assert (delivery.status, delivery.attempts) == ("sent", 2)
            assert len(notifier.attempts) == 4

    run_virtual(main)


async def test_the_fan_out_log_line_counts_retries(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    script = {"1": [TransientDeliveryError("HTTP 502"), RetryAfter(3.0)]}
    notifier = RecordingNotifier("telegram", script=script, clock=clock.monotonic)
    engine = AlertEngine(store, AlertSettings(), {"telegram": notifier}, clock)
    store.subscribe("telegram", "1", None, 3, "x")
    store.subscribe("telegram", "2", None, 3, "x")

    with caplog.at_level(logging.INFO, logger="whydown.alerts"):
        await engine.evaluate(explanation(3))

    fan_outs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("fan-out")]
    assert fan_outs == ["fan-out: 2 sent, 0 failed, 2 retried, 0 deactivated, 0 left pending"]


def test_retry_after_is_honoured_exactly_for_that_chat_only(tmp_path: Path) -> None:
    async def main(loop: VirtualTimeLoop) -> tuple[list[tuple[str, float]], list[str]]:
        clock = LoopClock(loop)
        notifier = RecordingNotifier("telegram", script={"1": [RetryAfter(7.0)]}, clock=loop.time)
        with Store(tmp_path / "whydown.db") as store:
            engine = AlertEngine(store, AlertSettings(), {"telegram": notifier}, clock)
            store.subscribe("telegram", "1", None, 3, "x")
            store.subscribe("telegram", "2", None, 3, "x")
            await engine.evaluate(explanation(3))
        return notifier.attempts, [t[0][1] for t in notifier.received]

    attempts, received = run_virtual(main)
    assert attempts == [("1", 0.0), ("2", 0.0), ("1", 7.0)]
    assert received == ["2", "1"]


# --- crash recovery without a crash: resume_pending's choices -----------------------------------


async def test_resume_sends_young_pending_deliveries_and_expires_old_ones(store: Store) -> None:
    clock = ManualClock()
    live = store.subscribe("telegram", "1", None, 3, "x")
    left = store.subscribe("telegram", "2", None, 3, "x")
    old = store.add_alert("alert", explanation(3), "old", clock.now())
    store.add_deliveries(old.id, [live.id], clock.now())
    clock.advance(2 * HOUR)
    young = store.add_alert("alert", explanation(4, at=clock.now()), "young", clock.now())
    store.add_deliveries(young.id, [live.id, left.id], clock.now())
    store.unsubscribe("telegram", "2", None)
    clock.advance(59 * 60)

    engine, notifier = engine_for(store, clock)
    report = await engine.resume_pending()

    assert (report.sent, report.expired, report.failed) == (1, 1, 1)
    assert notifier.received == [(("telegram", "1", None), "alert", young.id)]
    assert [d.last_error for d in store.deliveries(old.id)] == ["expired"]
    assert store.pending_deliveries() == []


async def test_aclose_leaves_unsent_deliveries_pending(store: Store) -> None:
    clock = ManualClock()

    class StopsAfterFirst(RecordingNotifier):
        closing: asyncio.Task[None] | None = None

        async def send(self, subscription: Subscription, message: AlertMessage) -> None:
            await super().send(subscription, message)
            if self.closing is None:  # as on SIGTERM: a shutdown begins mid fan-out
                self.closing = asyncio.create_task(engine.aclose())

    notifier = StopsAfterFirst("telegram", clock=clock.monotonic)
    engine = AlertEngine(store, AlertSettings(), {"telegram": notifier}, clock)
    for chat in range(40):
        store.subscribe("telegram", str(chat), None, 3, "x")
    await engine.evaluate(explanation(3))
    assert notifier.closing is not None
    await notifier.closing
    pending = len(store.pending_deliveries())
    assert 0 < pending < 40
    assert len(notifier.received) + pending == 40
    assert await engine.evaluate(explanation(5)) is None  # stopping: nothing new is recorded


# --- 1,000 subscriptions through notifiers that enforce the platform limits --------------------


def test_thousand_subscriptions_within_limits_with_429s_and_dead_chats(tmp_path: Path) -> None:
    telegram_chats = (
        [str(1000 + i) for i in range(400)]  # private chats
        + [str(-1000 - i) for i in range(270)]  # groups: 20 per minute each
    )
    forum = "-100777"  # one forum group with 30 subscribed topics: needs the 20/min spacing
    discord_channels = [str(900_000 + i) for i in range(300)]
    dead = {c for c in telegram_chats[::40]} | {c for c in discord_channels[::40]}
    retry = {c: 2.5 for c in telegram_chats[5::30]} | {c: 4.0 for c in discord_channels[7::50]}
    flaky = set(telegram_chats[11::35]) | set(discord_channels[3::35])

    async def main(loop: VirtualTimeLoop) -> None:
        clock = LoopClock(loop)
        telegram = EnforcingNotifier(
            "telegram", TELEGRAM_RULES, loop, dead=dead, retry_after=retry, flaky=flaky
        )
        discord = EnforcingNotifier(
            "discord",
            DISCORD_RULES,
            loop,
            dead=dead,
            retry_after=retry,
            flaky=flaky,
            platform_retry_after_at=120,
        )
        with Store(tmp_path / "whydown.db") as store:
            for chat in telegram_chats:
                store.subscribe("telegram", chat, None, 3, "x")
            for topic in range(1, 31):
                store.subscribe("telegram", forum, topic, 3, "x")
            for channel in discord_channels:
                store.subscribe("discord", channel, None, 3, "x")
            subs = store.subscriptions()
            assert len(subs) == 1000

            engine = AlertEngine(
                store, AlertSettings(), {"telegram": telegram, "discord": discord}, clock
            )
            alerts = []
            for fired in (3, 4, 5):  # escalating: every live subscription is due each time
                alert = await engine.evaluate(explanation(fired, at=clock.now()))
                assert alert is not None
                alerts.append(alert.id)

            assert telegram.violations == [] and discord.violations == []
            received = telegram.received | discord.received
            for sub in subs:
                key = (sub.platform, sub.chat_id, sub.topic_id)
                if sub.chat_id in dead:
                    assert key not in received
                else:
                    assert received[key] == alerts, key
            live = store.subscriptions()
            assert {s.chat_id for s in live} == {s.chat_id for s in subs} - dead
            assert len(live) == 1000 - len(dead)
            assert store.pending_deliveries() == []
            # the forum's 30 topics took more than a minute: the group limit held them back
            assert loop.time() > 60

    run_virtual(main)


def test_platform_limits_are_the_documented_ones() -> None:
    telegram, discord = PLATFORM_LIMITS["telegram"], PLATFORM_LIMITS["discord"]
    assert (telegram.overall.count, telegram.overall.seconds) == (30, 1.0)
    assert (telegram.per_chat.count, telegram.per_chat.seconds) == (1, 1.0)
    assert telegram.chat_windows("-100")[-1] == telegram.per_group
    assert (telegram.per_group.count, telegram.per_group.seconds) == (20, 60.0)  # type: ignore[union-attr]
    assert telegram.chat_windows("100") == (telegram.per_chat,)
    assert (discord.overall.count, discord.per_chat.count, discord.per_chat.seconds) == (50, 5, 5.0)


M = 1 + SAFETY_MARGIN  # every window is kept this much longer than the platform's


@pytest.mark.parametrize(
    ("platform", "chat", "sends", "expected"),
    [
        ("discord", "555", 12, [0.0] * 5 + [5.0 * M] * 5 + [10.0 * M] * 2),
        ("telegram", "42", 3, [0.0, 1.0 * M, 2.0 * M]),
        ("telegram", "-42", 22, [s * M for s in range(20)] + [60.0 * M, 61.0 * M]),
    ],
)
def test_pacer_spaces_sends_to_one_chat(
    platform: str, chat: str, sends: int, expected: list[float]
) -> None:
    async def main(loop: VirtualTimeLoop) -> list[float]:
        pacer = Pacer(PLATFORM_LIMITS, LoopClock(loop))
        times = []
        for _ in range(sends):
            await pacer.acquire(platform, chat)
            times.append(loop.time())
        return times

    assert run_virtual(main) == pytest.approx(expected)


def test_pacer_platform_pause_holds_every_chat() -> None:
    async def main(loop: VirtualTimeLoop) -> list[float]:
        pacer = Pacer(PLATFORM_LIMITS, LoopClock(loop))
        await pacer.acquire("discord", "1")
        pacer.pause("discord", 3.0)
        await pacer.acquire("discord", "2")
        after_pause = loop.time()
        await pacer.acquire("telegram", "3")  # other platforms are not held
        return [after_pause, loop.time()]

    assert run_virtual(main) == pytest.approx([3.0, 3.0])


# --- large audiences: recorded and sent a batch at a time ----------------------------------------


async def test_recording_and_sending_in_batches_reaches_everyone_once(store: Store) -> None:
    clock = ManualClock()
    notifier = RecordingNotifier("telegram", clock=clock.monotonic)
    engine = AlertEngine(store, AlertSettings(), {"telegram": notifier}, clock, batch=7)
    with store.transaction():
        for chat in range(50):
            store.subscribe("telegram", str(chat), None, 3, "x")
    store.subscribe("telegram", "quiet", None, 6, "x")  # needs 6 drivers: not due
    alert = await engine.evaluate(explanation(3))
    assert alert is not None
    assert sorted(t[0][1] for t in notifier.received) == sorted(str(c) for c in range(50))
    assert {(kind, alert_id) for _, kind, alert_id in notifier.received} == {("alert", alert.id)}
    assert store.pending_deliveries() == []
    assert all(s.alerting for s in store.subscriptions() if s.chat_id != "quiet")


async def test_resume_in_batches_carries_the_chart_kept_with_the_alert(store: Store) -> None:
    from bot.store import AlertChart

    clock = ManualClock()
    chats = [store.subscribe("telegram", str(chat), None, 3, "x") for chat in range(20)]
    alert = store.add_alert("alert", explanation(3), "k", clock.now())
    store.set_alert_chart(alert.id, AlertChart(png=b"PNG", caption="c", filename="f.png"))
    store.add_deliveries(alert.id, [s.id for s in chats], clock.now())

    received: list[bytes | None] = []

    class Charted(RecordingNotifier):
        async def send(self, subscription: Subscription, message: AlertMessage) -> None:
            await super().send(subscription, message)
            received.append(message.chart.png if message.chart else None)

    engine = AlertEngine(store, AlertSettings(), {"telegram": Charted("telegram")}, clock, batch=6)
    report = await engine.resume_pending()
    assert report.sent == 20
    assert received == [b"PNG"] * 20


async def test_pacer_forgets_chats_during_a_long_fan_out() -> None:
    clock = ManualClock()
    pacer = Pacer(PLATFORM_LIMITS, clock)
    for chat in range(5000):
        await pacer.acquire("telegram", str(chat))
    # a chat's 1 s window is long past for all but the last second's worth of sends
    assert len(pacer._chats) <= 1000 + 40
