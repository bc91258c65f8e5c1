"""Past days on Telegram: /why <date>, /preview and the preview after /subscribe, against the
emulator, over each source's recorded history around 5 August 2024 (the time machine's clock is
the recording's: 12 August 2024, 12:00 UTC)."""

from __future__ import annotations

import asyncio
import html
import sqlite3
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot import cli
from bot.actions import Actions
from bot.alerts import AlertSettings
from bot.config import Settings
from bot.store import Store
from bot.telegram.bot import TelegramFrontend
from explainers.backtest import TimeMachine
from explainers.models import Explanation
from explainers.replay import Scenario
from explainers.service import Explainer
from tests.replay_helpers import Upstream
from tests.telegram_harness import Chat, TelegramEmulator
from tests.telegram_harness.objects import image_size

# telegram_scenarios is also a fixture plugin: its asserts are rewritten when imported here first
pytest.register_assert_rewrite("tests.telegram_scenarios")
from tests.telegram_scenarios import (  # noqa: E402
    ALICE,
    BOB,
    Failures,
    admin_in,
    make_frontend,
    running,
)

pytest_plugins = ["tests.telegram_harness.fixtures", "tests.telegram_scenarios"]

GOLDEN = Path(__file__).parent / "golden"
WEEKS_2 = (
    "With 3 drivers, this chat would have been alerted on 3 days in the last 14: "
    "2 Aug, 4 Aug, 5 Aug; with 2, on 3.\n"
    "It could judge 5 of the 6 drivers on most of those days (liquidations only from "
    "whydown's archive: 0 of 14 days)."
)
# 90 days reach back before the recording (15 July): most days have no history to judge
DAYS_90_MIN_2 = (
    "With 2 drivers, this chat would have been alerted on 3 days in the last 90: "
    "2 Aug, 4 Aug, 5 Aug; with 1, on 4.\n"
    "It could judge 0 of the 6 drivers on most of those days (liquidations only from "
    "whydown's archive: 0 of 90 days)."
)
PREVIEW_USAGE = "Usage: /preview [min_drivers] [days]"
UNAVAILABLE = (
    "The preview of past alerts is unavailable right now; the subscription stands. "
    "Try /preview later."
)


@pytest.fixture
async def history(settings: Settings) -> AsyncIterator[tuple[Upstream, TimeMachine]]:
    """The recorded history behind a counting MockTransport, and a time machine over it whose
    rebuilt days are cached in the store."""
    recorded = Upstream(Scenario.load(cli.HISTORY_DEMO))
    async with recorded.client(settings) as client:
        yield (
            recorded,
            TimeMachine(client, settings.sources, settings.thresholds, clock=recorded.clock),
        )


@pytest.fixture
def machine(history: tuple[Upstream, TimeMachine], store: Store) -> TimeMachine:
    tm = history[1]
    tm.archive = store.archive
    return tm


@pytest.fixture
def frontend(
    telegram_emulator: TelegramEmulator,
    explainer: Explainer,
    store: Store,
    upstream: Upstream,
    settings: Settings,
    machine: TimeMachine,
    failures: Failures,
) -> TelegramFrontend:
    actions = Actions(
        explainer,
        store,
        thresholds=settings.thresholds,
        alert_settings=AlertSettings(),
        clock=upstream.clock,
        timemachine=machine,
    )
    return TelegramFrontend(
        token=SecretStr(telegram_emulator.token),
        actions=actions,
        api_url=telegram_emulator.base_url,
        file_url=telegram_emulator.base_file_url,
        application_builder=telegram_emulator.application_builder(),
    )


def requests(history: tuple[Upstream, TimeMachine]) -> int:
    return sum(history[0].calls.values())


# --- /why <date> -----------------------------------------------------------------------------


async def test_why_for_a_past_day_answers_as_of_its_end_without_buttons(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    async with running(frontend):
        await client.send_command(chat, "why", "2024-08-05", user=ALICE)
        answer = await client.wait_for_reply(chat)

    assert answer.text == (GOLDEN / "why_2024-08-05.telegram.html").read_text()
    assert answer.text.startswith(
        "<i>As of the end of 5 Aug 2024 (UTC), rebuilt from each source's history.</i>"
    )
    assert answer.parse_mode == "HTML"
    # Refresh, Drivers and Chart would answer about now, not about that day
    assert answer.buttons == ()


async def test_why_with_a_coin_and_a_date_in_either_order(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    async with running(frontend):
        await client.send_command(chat, "why", "sol 2024-08-05", user=ALICE)
        coin_first = await client.wait_for_reply(chat)
        await client.send_command(chat, "why", "2024-08-05 sol", user=ALICE)
        date_first = await client.wait_for_reply(chat)

    assert coin_first.text is not None and coin_first.text == date_first.text
    assert "Solana (SOL): -8.9% in 24h" in coin_first.text
    assert "As of the end of 5 Aug 2024 (UTC)" in coin_first.text


async def test_why_yesterday_and_3d_count_back_from_the_time_machine_clock(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    async with running(frontend):
        await client.send_command(chat, "why", "yesterday", user=ALICE)
        yesterday = await client.wait_for_reply(chat)
        await client.send_command(chat, "why", "7d", user=ALICE)
        week = await client.wait_for_reply(chat)

    assert yesterday.text is not None and week.text is not None
    assert "As of the end of 11 Aug 2024 (UTC)" in yesterday.text
    assert week.text == (GOLDEN / "why_2024-08-05.telegram.html").read_text()


async def test_dates_that_cannot_be_answered_say_why(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    replies: list[str | None] = []
    async with running(frontend):
        for args in ("2099-01-01", "2014-12-31", "2024-13-45", "3d yesterday", "sol eth 3d"):
            await client.send_command(chat, "why", args, user=ALICE)
            replies.append((await client.wait_for_reply(chat)).text)

    assert replies == [
        "No answer for that date: 2099-01-01 is in the future: ask about a day that has begun. "
        "Usage: /why [coin] [date]",
        "No answer for that date: 2014-12-31 is before any source&#39;s history (the earliest is "
        "2015-07-20). Usage: /why [coin] [date]",
        "No answer for that date: &#34;2024-13-45&#34; is not a date: use YYYY-MM-DD "
        "(2024-08-05), &#34;yesterday&#34; or &#34;3d&#34; for three days ago. "
        "Usage: /why [coin] [date]",
        "Usage: /why [coin] [date]",
        "Usage: /why [coin] [date]",
    ]
    # what the user reads once Telegram has parsed the HTML
    assert html.unescape(replies[2] or "").startswith(
        'No answer for that date: "2024-13-45" is not a date: use YYYY-MM-DD (2024-08-05), '
        '"yesterday" or "3d" for three days ago.'
    )


async def test_a_coin_without_a_price_that_day_is_an_unknown_coin(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    async with running(frontend):
        await client.send_command(chat, "why", "foocoin 2024-08-05", user=ALICE)
        unknown = await client.wait_for_reply(chat)

    assert unknown.text == (
        'I don\'t know the coin "foocoin" (I look among the top 100 by market cap, by symbol or '
        "CoinGecko id)."
    )


async def test_without_a_time_machine_past_days_are_said_to_be_off(
    telegram_emulator: TelegramEmulator,
    explainer: Explainer,
    store: Store,
    upstream: Upstream,
    settings: Settings,
    failures: Failures,
) -> None:
    frontend = make_frontend(telegram_emulator, explainer, store, upstream, settings, None)
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    async with running(frontend):
        await client.send_command(chat, "why", "2024-08-05", user=ALICE)
        why = await client.wait_for_reply(chat)
        await client.send_command(chat, "preview", user=ALICE)
        preview = await client.wait_for_reply(chat)
        await client.send_command(chat, "subscribe", user=ALICE)
        subscribed = await client.wait_for_reply(chat)

    off = "Past days are not set up on this bot: /why without a date has the answer now."
    assert why.text == preview.text == off
    assert subscribed.text is not None and subscribed.text.startswith("Subscribed this chat")
    assert len(await client.bot_messages(chat)) == 3  # no preview follows the subscription


# --- /preview ---------------------------------------------------------------------------------


async def test_preview_sends_the_picture_with_the_sentence(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    async with running(frontend):
        await client.send_command(chat, "preview", "3 14", user=ALICE)
        preview = await client.wait_for_reply(chat)

    assert preview.photo is not None and image_size(preview.photo) == (1000, 560)
    assert preview.caption is not None
    assert html.unescape(preview.caption) == WEEKS_2
    assert preview.caption == WEEKS_2.replace("'", "&#39;")
    assert preview.parse_mode == "HTML"


async def test_a_second_chat_asking_adds_no_upstream_request(
    frontend: TelegramFrontend,
    telegram_emulator: TelegramEmulator,
    history: tuple[Upstream, TimeMachine],
) -> None:
    client = telegram_emulator.client
    chat, other = Chat.private(ALICE), Chat.private(BOB)
    async with running(frontend):
        await client.send_command(chat, "preview", "3 14", user=ALICE)
        first = await client.wait_for_reply(chat)
        cold = requests(history)
        await client.send_command(other, "preview", "3 14", user=BOB)
        second = await client.wait_for_reply(other)

    # one read per source over the whole range (hourly candles paged by the upstream's cap; the
    # cut odds: Gamma's open and resolved events, then each cut market's price history)
    assert cold == 19
    assert requests(history) == cold
    assert first.caption == second.caption
    assert html.unescape(second.caption or "") == WEEKS_2


async def test_two_chats_asking_together_share_one_reconstruction(
    frontend: TelegramFrontend,
    telegram_emulator: TelegramEmulator,
    history: tuple[Upstream, TimeMachine],
) -> None:
    client = telegram_emulator.client
    chat, other = Chat.private(ALICE), Chat.private(BOB)
    async with running(frontend):
        await client.send_command(chat, "preview", "3 14", user=ALICE)
        await client.send_command(other, "preview", "3 14", user=BOB)
        first = await client.wait_for_reply(chat)
        second = await client.wait_for_reply(other)

    assert requests(history) == 19
    assert html.unescape(first.caption or "") == html.unescape(second.caption or "") == WEEKS_2


async def test_preview_arguments_are_bounded(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    replies: list[str | None] = []
    async with running(frontend):
        for args in ("1", "7", "three", "3 0", "3 366", "3 ninety", "3 14 2"):
            await client.send_command(chat, "preview", args, user=ALICE)
            replies.append((await client.wait_for_reply(chat)).text)

    drivers = f"min_drivers must be a whole number from 2 to 6. {PREVIEW_USAGE}"
    days = f"days must be a whole number from 1 to 365. {PREVIEW_USAGE}"
    assert replies == [drivers, drivers, drivers, days, days, days, PREVIEW_USAGE]


# --- after /subscribe --------------------------------------------------------------------------


async def test_subscribe_is_followed_by_the_preview_for_its_min_drivers(
    frontend: TelegramFrontend,
    telegram_emulator: TelegramEmulator,
    store: Store,
    history: tuple[Upstream, TimeMachine],
) -> None:
    client, group = telegram_emulator.client, Chat.supergroup("Desk")
    admin_in(telegram_emulator, group, ALICE)
    async with running(frontend):
        await client.send_command(group, "subscribe", "2", user=ALICE)
        subscribed, preview = await client.wait_for_messages(group, 2)
        cold = requests(history)
        # the chat's own min_drivers is /preview's default; the days come from the cache
        await client.send_command(group, "preview", user=BOB)
        again = await client.wait_for_reply(group)

    [row] = store.subscriptions()
    assert row.min_drivers == 2
    assert subscribed.text is not None
    assert subscribed.text.startswith("Subscribed this group to crash alerts")
    assert preview.photo is not None
    assert html.unescape(preview.caption or "") == DAYS_90_MIN_2
    assert html.unescape(again.caption or "") == DAYS_90_MIN_2
    assert requests(history) == cold


async def test_a_slow_preview_never_delays_the_confirmation(
    frontend: TelegramFrontend,
    telegram_emulator: TelegramEmulator,
    machine: TimeMachine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    release = asyncio.Event()
    rebuild = machine.days

    async def slow(first: date, last: date) -> dict[date, Explanation]:
        await release.wait()
        return await rebuild(first, last)

    monkeypatch.setattr(machine, "days", slow)
    async with running(frontend):
        await client.send_command(chat, "subscribe", "2", user=ALICE)
        subscribed = await client.wait_for_reply(chat)  # while the reconstruction waits
        release.set()
        preview = await client.wait_for_reply(chat)

    assert subscribed.text is not None and subscribed.text.startswith("Subscribed this chat")
    assert html.unescape(preview.caption or "") == DAYS_90_MIN_2


async def test_a_failed_preview_leaves_the_subscription_standing(
    frontend: TelegramFrontend,
    telegram_emulator: TelegramEmulator,
    machine: TimeMachine,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)

    async def full(first: date, last: date) -> dict[date, Explanation]:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(machine, "days", full)
    async with running(frontend):
        await client.send_command(chat, "subscribe", "4", user=ALICE)
        subscribed, unavailable = await client.wait_for_messages(chat, 2)

    assert subscribed.text is not None and subscribed.text.startswith("Subscribed this chat")
    assert unavailable.text == UNAVAILABLE
    [row] = store.subscriptions()
    assert row.active and row.min_drivers == 4
