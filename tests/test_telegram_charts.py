"""Charts on Telegram: /chart, the Chart button and alerts with their picture, against the
emulator, judged by what users see."""

from __future__ import annotations

import asyncio
import html
import logging

import pytest

from bot.alerts import AlertEngine, AlertSettings
from bot.commands import Replies
from bot.config import Settings
from bot.delivery import AlertMessage
from bot.store import Store
from bot.telegram.bot import TelegramFrontend
from explainers import charts as drawing
from explainers.chart_service import Chart, ChartMaker
from explainers.errors import ChartUnavailable
from explainers.models import Explanation
from explainers.service import Explainer
from tests.replay_helpers import Upstream
from tests.telegram_harness import BotMessage, Chat, TelegramEmulator, Upload
from tests.telegram_harness.objects import image_size

# telegram_scenarios is also a fixture plugin: its asserts are rewritten when imported here first
pytest.register_assert_rewrite("tests.telegram_scenarios")
from tests.telegram_scenarios import (  # noqa: E402
    ALICE,
    BOB,
    Failures,
    admin_in,
    eventually,
    make_frontend,
    notices,
    running,
)

pytest_plugins = ["tests.telegram_harness.fixtures", "tests.telegram_scenarios"]

REPLIES = Replies("telegram", "html")
REPLAY = "Replay: Yen carry-trade unwind (5 Aug 2024). "
MARKET_CAPTION = (
    f"{REPLAY}BTC -13.1% in 24h; 5 of 6 sell-off drivers firing. Data as of 08:00 UTC, 5 Aug 2024."
)
VERDICT = "<b>Crypto is down: total market cap -13.9% in 24h, BTC -13.1% (-2.4% in 1h).</b>"
ALERT_START = "<b>Crash alert</b>: 5 sell-off drivers firing together.\n\n"


@pytest.fixture
def charts(explainer: Explainer, upstream: Upstream, settings: Settings) -> ChartMaker:
    return ChartMaker(explainer, settings.sources, clock=upstream.clock)


@pytest.fixture
def frontend(
    telegram_emulator: TelegramEmulator,
    explainer: Explainer,
    store: Store,
    upstream: Upstream,
    settings: Settings,
    charts: ChartMaker,
    failures: Failures,
) -> TelegramFrontend:
    return make_frontend(telegram_emulator, explainer, store, upstream, settings, charts)


def assert_chart(message: BotMessage, caption: str) -> None:
    """A photo of the chart's size, with the chart's caption in HTML and no text."""
    assert message.photo is not None
    assert message.photo.startswith(b"\x89PNG\r\n\x1a\n")
    assert image_size(message.photo) == (drawing.WIDTH_PX, drawing.HEIGHT_PX)
    assert message.text is None
    assert message.caption == html.escape(caption, quote=False)
    assert len(message.caption) <= 1024
    assert message.parse_mode == "HTML"


def photo_uploads(emulator: TelegramEmulator) -> list[bool]:
    """For each sendPhoto call: whether it uploaded bytes (True) or named a file id (False)."""
    calls = [c for c in emulator.layer.calls if c.method == "sendPhoto"]
    return [isinstance(c.params.get("photo"), Upload) for c in calls]


def sent_to(emulator: TelegramEmulator, method: str, chat: Chat) -> int:
    return sum(1 for c in emulator.layer.calls if c.method == method and c.chat_key == str(chat.id))


# --- /chart ------------------------------------------------------------------------------------


async def test_chart_sends_the_sell_off_picture_into_the_topic(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator
) -> None:
    client, forum = telegram_emulator.client, Chat.supergroup("Desk", forum=True)
    async with running(frontend):
        asked = await client.send_command(forum, "chart", user=ALICE, thread_id=77)
        picture = await client.wait_for_reply(forum, thread_id=77)

    assert_chart(picture, MARKET_CAPTION)
    assert picture.message_thread_id == 77
    assert picture.reply_to_message_id == asked


async def test_chart_for_a_coin_and_for_etf_flows(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    async with running(frontend):
        await client.send_command(chat, "chart", "SOL", user=ALICE)
        coin = await client.wait_for_reply(chat)
        await client.send_command(chat, "chart", "etf", user=ALICE)
        etf = await client.wait_for_reply(chat)

    assert coin.caption is not None
    assert coin.caption.startswith(f"{REPLAY}Solana (SOL) -18.2% in 24h, BTC -13.1% in 24h;")
    assert_chart(coin, coin.caption)
    assert etf.caption is not None
    assert etf.caption == (
        f"{REPLAY}US spot-Bitcoin-ETF net flows, last 15 trading days; "
        "latest -$237.4M on 2 Aug 2024 (Farside)."
    )
    assert_chart(etf, etf.caption)
    assert coin.photo != etf.photo


async def test_chart_for_an_unknown_coin_answers_as_why_does(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    async with running(frontend):
        await client.send_command(chat, "chart", "sool", user=ALICE)
        chart = await client.wait_for_reply(chat)
        await client.send_command(chat, "why", "sool", user=ALICE)
        why = await client.wait_for_reply(chat)
        await client.send_command(chat, "chart", "btc eth", user=ALICE)
        too_many = await client.wait_for_reply(chat)

    assert chart.text == REPLIES.unknown_coin("sool", ["SOL", "solana"])
    assert (chart.text or "").startswith('I don\'t know the coin "sool"')
    assert chart.text == why.text
    assert chart.photo is None
    assert too_many.text == "Usage: /chart [coin|etf]"


async def test_a_chart_that_cannot_be_drawn_gets_a_text_reply(
    frontend: TelegramFrontend,
    telegram_emulator: TelegramEmulator,
    charts: ChartMaker,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(coin: str | None = None) -> Chart:
        raise ChartUnavailable("the chart could not be drawn")

    monkeypatch.setattr(charts, "sell_off", broken)
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    with caplog.at_level(logging.WARNING, logger="whydown.telegram"):
        async with running(frontend):
            await client.send_command(chat, "chart", user=ALICE)
            reply = await client.wait_for_reply(chat)
            await client.send_command(chat, "why", user=ALICE)
            why = await client.wait_for_reply(chat)

    assert reply.text == REPLIES.chart_unavailable("the chart could not be drawn")
    assert reply.text == (
        "I couldn't draw the chart this time (the chart could not be drawn). "
        "/why has the answer in words."
    )
    assert reply.photo is None
    assert why.text is not None and VERDICT in why.text
    assert "no sell-off chart: the chart could not be drawn" in caplog.text


async def test_without_charts_the_bot_says_so_and_why_has_no_chart_button(
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
        await client.send_command(chat, "chart", "etf", user=ALICE)
        reply = await client.wait_for_reply(chat)
        await client.send_command(chat, "why", user=ALICE)
        why = await client.wait_for_reply(chat)

    assert reply.text == REPLIES.chart_unavailable()
    assert reply.text == "I couldn't draw the chart this time. /why has the answer in words."
    assert [[b.text for b in row] for row in why.buttons] == [["Refresh", "Details", "Drivers"]]


async def test_why_is_answered_while_a_chart_is_still_being_drawn(
    frontend: TelegramFrontend,
    telegram_emulator: TelegramEmulator,
    charts: ChartMaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawing_started, finish = asyncio.Event(), asyncio.Event()
    draw = charts.sell_off

    async def slow(coin: str | None = None) -> Chart:
        drawing_started.set()
        await finish.wait()
        return await draw(coin)

    monkeypatch.setattr(charts, "sell_off", slow)
    client, chat, other = telegram_emulator.client, Chat.private(ALICE), Chat.private(BOB)
    async with running(frontend):
        await client.send_command(chat, "chart", user=ALICE)
        await eventually(drawing_started.is_set, "the chart to start drawing")
        await client.send_command(other, "why", user=BOB)
        why = await client.wait_for_reply(other)
        assert await client.bot_messages(chat) == []  # the chart is still being drawn
        finish.set()
        picture = await client.wait_for_reply(chat)

    assert why.text is not None and VERDICT in why.text
    assert_chart(picture, MARKET_CAPTION)


# --- the Chart button --------------------------------------------------------------------------


async def test_chart_button_under_why_sends_the_coin_chart_and_is_throttled(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator
) -> None:
    client, layer = telegram_emulator.client, telegram_emulator.layer
    group = Chat.supergroup("Desk", forum=True)
    async with running(frontend):
        await client.send_command(group, "why", "sol", user=ALICE, thread_id=77)
        answer = await client.wait_for_reply(group, thread_id=77)
        await client.press_button(answer, "Chart", user=BOB)
        picture = await client.wait_for_reply(group, thread_id=77)
        await client.press_button(answer, "Chart", user=ALICE)
        await eventually(lambda: len(notices(layer)) == 2, "the second press answered")

    assert [[b.text for b in row] for row in answer.buttons] == [
        ["Refresh", "Details", "Drivers", "Chart"]
    ]
    assert answer.button("Chart").callback_data == "why:chart:solana"
    assert picture.caption is not None and "Solana (SOL) -18.2% in 24h" in picture.caption
    assert_chart(picture, picture.caption)
    assert picture.reply_to_message_id == answer.message_id
    assert notices(layer) == [None, REPLIES.button_throttled(30, 30)]
    assert (notices(layer)[1] or "").startswith(
        "Done a moment ago: this button works once per chat"
    )
    assert len(await client.bot_messages(group)) == 2  # the answer and one picture


# --- alerts ------------------------------------------------------------------------------------


async def test_an_alert_carries_the_chart_after_its_text_uploaded_once(
    frontend: TelegramFrontend,
    telegram_emulator: TelegramEmulator,
    store: Store,
    explainer: Explainer,
    charts: ChartMaker,
) -> None:
    client, forum, group = (
        telegram_emulator.client,
        Chat.supergroup("Desk", forum=True),
        Chat.supergroup("Floor"),
    )
    admin_in(telegram_emulator, forum, ALICE)
    admin_in(telegram_emulator, group, ALICE)
    store.subscribe("telegram", str(forum.id), 77, 3, "@alice")
    store.subscribe("telegram", str(group.id), None, 3, "@alice")
    engine = AlertEngine(store, AlertSettings(), {"telegram": frontend.notifier})
    async with running(frontend):
        alert = await engine.evaluate(await explainer.explain())
        text, picture = await client.wait_for_messages(forum, 2, thread_id=77)
        text_too, picture_too = await client.wait_for_messages(group, 2)

    assert alert is not None
    assert text.text is not None and text.text.startswith(ALERT_START)
    assert text.message_thread_id == picture.message_thread_id == 77
    assert_chart(picture, MARKET_CAPTION)
    assert text_too.text == text.text
    assert picture_too.photo == picture.photo and picture_too.caption == picture.caption
    # one upload; the other chat got the picture by Telegram's file id; one drawing
    assert photo_uploads(telegram_emulator) == [True, False]
    assert charts.renders == 1


async def test_an_alert_is_marked_sent_while_its_chart_is_still_being_drawn(
    frontend: TelegramFrontend,
    telegram_emulator: TelegramEmulator,
    store: Store,
    explainer: Explainer,
    charts: ChartMaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    store.subscribe("telegram", str(chat.id), None, 3, "@alice")
    drawing, finish = asyncio.Event(), asyncio.Event()
    for_alert = charts.for_alert

    async def slow(explanation: Explanation, timeout_s: float = 20.0) -> Chart | None:
        drawing.set()
        await finish.wait()
        return await for_alert(explanation, timeout_s)

    monkeypatch.setattr(charts, "for_alert", slow)
    engine = AlertEngine(store, AlertSettings(), {"telegram": frontend.notifier})
    async with running(frontend):
        try:
            alert = await engine.evaluate(await explainer.explain())
            assert alert is not None
            [delivery] = store.deliveries(alert.id)
            assert (delivery.status, delivery.attempts) == ("sent", 1)
            await eventually(drawing.is_set, "the chart to start drawing")
            (text,) = await client.bot_messages(chat)  # the text, and no picture yet
        finally:
            finish.set()
        text_then, picture = await client.wait_for_messages(chat, 2)

    assert text.text is not None and text.text.startswith(ALERT_START)
    assert text_then == text
    assert_chart(picture, MARKET_CAPTION)


async def test_stopping_cancels_a_chart_that_is_still_being_drawn(
    frontend: TelegramFrontend,
    telegram_emulator: TelegramEmulator,
    store: Store,
    explainer: Explainer,
    charts: ChartMaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    store.subscribe("telegram", str(chat.id), None, 3, "@alice")
    drawing, cancelled = asyncio.Event(), asyncio.Event()

    async def endless(explanation: Explanation, timeout_s: float = 20.0) -> Chart | None:
        drawing.set()
        try:
            await asyncio.Event().wait()  # a drawing that never ends
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return None

    monkeypatch.setattr(charts, "for_alert", endless)
    engine = AlertEngine(store, AlertSettings(), {"telegram": frontend.notifier})
    async with running(frontend):
        await engine.evaluate(await explainer.explain())
        await eventually(drawing.is_set, "the chart to start drawing")
        await frontend.notifier.aclose(timeout_s=0)

    assert cancelled.is_set()
    (text,) = await client.bot_messages(chat)
    assert text.text is not None and text.text.startswith(ALERT_START)
    assert sent_to(telegram_emulator, "sendPhoto", chat) == 0


async def test_a_failing_chart_photo_neither_fails_nor_repeats_the_alert(
    frontend: TelegramFrontend,
    telegram_emulator: TelegramEmulator,
    store: Store,
    explainer: Explainer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, layer = telegram_emulator.client, telegram_emulator.layer
    group = Chat.supergroup("Floor")
    layer.add_chat(group.to_api())
    subscription = store.subscribe("telegram", str(group.id), None, 3, "@alice")
    # A permanent error, on the photo only: the text before it went through.
    layer.inject_error(group.id, method="sendPhoto", description="Forbidden: bot was kicked")
    settings = AlertSettings(deactivate_after=1)
    engine = AlertEngine(store, settings, {"telegram": frontend.notifier})
    with caplog.at_level(logging.WARNING, logger="whydown.telegram"):
        async with running(frontend):
            alert = await engine.evaluate(await explainer.explain())
            (text,) = await client.wait_for_messages(group)

    assert alert is not None
    assert text.text is not None and text.text.startswith(ALERT_START)
    assert await client.bot_messages(group) == [text]
    assert (
        sent_to(telegram_emulator, "sendMessage", group),
        sent_to(telegram_emulator, "sendPhoto", group),
    ) == (1, 1)
    (delivery,) = store.deliveries(alert.id)
    assert (delivery.status, delivery.attempts) == ("sent", 1)
    row = store.get_subscription("telegram", str(group.id), None)
    assert row is not None and row.active and row.id == subscription.id
    assert f"alert chart not sent to chat {group.id}: Forbidden: bot was kicked" in caplog.text


async def test_an_alert_of_data_no_longer_current_goes_without_a_chart(
    frontend: TelegramFrontend,
    telegram_emulator: TelegramEmulator,
    store: Store,
    explainer: Explainer,
    upstream: Upstream,
    charts: ChartMaker,
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    subscription = store.subscribe("telegram", str(chat.id), None, 3, "@alice")
    message = AlertMessage(kind="alert", alert_id=1, explanation=await explainer.explain())
    upstream.advance(120)  # a newer refresh lands before this (retried) delivery
    await explainer.refresh()
    async with running(frontend):
        await frontend.notifier.send(subscription, message)
        (text,) = await client.wait_for_messages(chat)

    assert text.text is not None and text.text.startswith(ALERT_START)
    assert await client.bot_messages(chat) == [text]
    assert charts.renders == 0
