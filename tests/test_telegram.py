"""The Telegram front-end: the real Application polling the emulator, judged by what users see."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from bot.actions import Actions
from bot.alerts import AlertEngine, AlertSettings
from bot.commands import Replies, commands_for
from bot.config import Settings
from bot.delivery import (
    AlertMessage,
    DeliveryError,
    PermanentDeliveryError,
    RetryAfter,
    TransientDeliveryError,
)
from bot.store import Store
from bot.telegram.bot import TelegramFrontend
from bot.telegram.chat import fit
from bot.throttle import Throttle
from explainers.models import Explanation
from explainers.render import TELEGRAM_LIMIT
from explainers.service import Explainer
from tests.replay_helpers import Upstream
from tests.telegram_harness import Chat, TelegramEmulator

# telegram_scenarios is also a fixture plugin: its asserts are rewritten when imported here first
pytest.register_assert_rewrite("tests.telegram_scenarios")
from tests.telegram_scenarios import (  # noqa: E402
    ALICE,
    BOB,
    Failures,
    admin_in,
    command_lines,
    eventually,
    make_frontend,
    notices,
    running,
)

pytest_plugins = ["tests.telegram_harness.fixtures", "tests.telegram_scenarios"]

REPLIES = Replies("telegram", "html")
VERDICT = "<b>Crypto is down: total market cap -13.9% in 24h, BTC -13.1% (-2.4% in 1h).</b>"
SUMMARY_START = "The drop came with US spot-Bitcoin ETF outflows, US selling on Coinbase and"
COMPACT_LIMIT = 1200
# by role (set-off, amplifier, sentiment), then by severity within a role
FIRING = [
    "ETF outflows",
    "Institutional selling",
    "Stock market weakness",
    "Liquidation cascade",
    "Fear spreading",
]


@pytest.fixture
def frontend(
    telegram_emulator: TelegramEmulator,
    explainer: Explainer,
    store: Store,
    upstream: Upstream,
    settings: Settings,
    failures: Failures,
) -> TelegramFrontend:
    return make_frontend(telegram_emulator, explainer, store, upstream, settings, charts=None)


# --- /why --------------------------------------------------------------------------------------


async def test_why_in_a_private_chat_answers_with_the_drivers_and_buttons(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    async with running(frontend):
        await client.send_command(chat, "why", user=ALICE)
        answer = await client.wait_for_reply(chat)

    assert answer.text is not None
    assert VERDICT in answer.text
    # compact by default: the summary, then one line per firing driver with its key figure
    assert SUMMARY_START in answer.text
    for name in FIRING:
        assert f"\n• {name}: " in answer.text
    assert "<b>1. ETF outflows</b>" not in answer.text  # the evidence is a Details press away
    assert "Information only, not financial advice." in answer.text
    assert answer.parse_mode == "HTML"
    assert answer.link_preview_disabled is True
    assert len(answer.text) <= COMPACT_LIMIT
    assert [[b.text for b in row] for row in answer.buttons] == [["Refresh", "Details", "Drivers"]]


async def test_why_in_a_group_quotes_the_command_and_gives_the_same_answer(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator
) -> None:
    client, group = telegram_emulator.client, Chat.group("Traders")
    async with running(frontend):
        asked = await client.send_command(group, "why", user=BOB)
        answer = await client.wait_for_reply(group)
        # Addressed to this bot by name, as Telegram's menu sends it in groups.
        await client.send_command(group, "why", mention=True, user=ALICE)
        again = await client.wait_for_reply(group)

    assert answer.reply_to_message_id == asked
    assert answer.text is not None and VERDICT in answer.text
    assert all(f"\n• {name}: " in answer.text for name in FIRING)
    assert again.text == answer.text
    assert [b.text for b in answer.buttons[0]] == ["Refresh", "Details", "Drivers"]


async def test_why_for_a_coin_keeps_the_coin_on_its_refresh_button(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    async with running(frontend):
        await client.send_command(chat, "why", "sol", user=ALICE)
        answer = await client.wait_for_reply(chat)

    assert answer.text is not None and "SOL" in answer.text
    assert answer.button("Refresh").callback_data == "why:refresh:solana"


async def test_why_for_an_unknown_coin_suggests_close_matches(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    async with running(frontend):
        await client.send_command(chat, "why", "sool", user=ALICE)
        unknown = await client.wait_for_reply(chat)
        await client.send_command(chat, "why", "<b>x</b>", user=ALICE)
        markup = await client.wait_for_reply(chat)

    assert unknown.text == REPLIES.unknown_coin("sool", ["SOL", "solana"])
    assert unknown.text.startswith('I don\'t know the coin "sool"')
    assert unknown.text.endswith("Did you mean SOL, solana?")
    assert "Did you mean SOL, solana?" in unknown.text
    assert unknown.buttons == ()
    # What the user typed comes back escaped, never as markup.
    assert markup.text is not None
    assert "&lt;b&gt;x&lt;/b&gt;" in markup.text and "<b>x" not in markup.text


# --- buttons -----------------------------------------------------------------------------------


async def test_refresh_edits_the_answer_in_place_with_newer_data(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator, upstream: Upstream
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    async with running(frontend):
        await client.send_command(chat, "why", user=ALICE)
        first = await client.wait_for_reply(chat)
        upstream.advance(120)  # past the cache's age: the next answer is a new refresh
        await client.press_button(first, "Refresh", user=ALICE)
        edited = await client.wait_for_edit(first)

    assert first.text is not None and "Data as of 08:00 UTC, 5 Aug 2024" in first.text
    assert edited.message_id == first.message_id
    assert edited.text is not None and "Data as of 08:02 UTC, 5 Aug 2024" in edited.text
    assert VERDICT in edited.text
    assert edited.parse_mode == "HTML"
    assert [[b.text for b in row] for row in edited.buttons] == [["Refresh", "Details", "Drivers"]]
    assert await client.bot_messages(chat) == [edited]  # edited, not sent again
    assert notices(telegram_emulator.layer) == [None]


async def test_details_shows_the_full_answer_in_place_and_summary_goes_back(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator, upstream: Upstream
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    async with running(frontend):
        await client.send_command(chat, "why", user=ALICE)
        compact = await client.wait_for_reply(chat)
        await client.press_button(compact, "Details", user=ALICE)
        full = await client.wait_for_edit(compact)
        await client.press_button(full, "Summary", user=ALICE)
        back = await client.wait_for_edit(full)

    assert compact.text is not None and full.text is not None and back.text is not None
    assert full.message_id == compact.message_id  # edited in place, not sent again
    # the full answer: the same summary, then every figure with its source and time
    assert SUMMARY_START in full.text
    assert "5 of 6 sell-off drivers are firing." in full.text
    for rank, name in enumerate(FIRING, start=1):
        assert f"<b>{rank}. {name}</b>" in full.text
    assert "• US spot-BTC ETF net flow, 2 Aug 2024: -$237.4M" in full.text
    assert "<b>What to watch</b>" in full.text
    assert len(full.text) <= TELEGRAM_LIMIT
    assert [[b.text for b in row] for row in full.buttons] == [["Refresh", "Summary", "Drivers"]]
    assert back.text == compact.text
    assert [[b.text for b in row] for row in back.buttons] == [["Refresh", "Details", "Drivers"]]
    assert await client.bot_messages(chat) == [back]


async def test_a_chat_that_chose_full_answers_gets_them_and_refresh_keeps_the_form(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator, upstream: Upstream
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    async with running(frontend):
        await client.send_command(chat, "settings", "full on", user=ALICE)
        chosen = await client.wait_for_reply(chat)
        await client.send_command(chat, "settings", user=ALICE)
        shown = await client.wait_for_reply(chat)
        await client.send_command(chat, "why", user=ALICE)
        answer = await client.wait_for_reply(chat)
        upstream.advance(120)
        await client.press_button(answer, "Refresh", user=ALICE)
        refreshed = await client.wait_for_edit(answer)
        await client.send_command(chat, "settings", "full off", user=ALICE)
        await client.wait_for_reply(chat)
        await client.send_command(chat, "why", user=ALICE)
        compact = await client.wait_for_reply(chat)

    assert chosen.text == (
        "/why now gives the full answer in this chat: every figure with its source and time. "
        "/settings full off goes back to the compact one."
    )
    assert shown.text is not None and shown.text.endswith(
        "<b>Answers</b>: full, every figure with its source and time. "
        "/settings full off gives the compact one."
    )
    assert answer.text is not None and "<b>1. ETF outflows</b>" in answer.text
    assert refreshed.text is not None and "<b>1. ETF outflows</b>" in refreshed.text
    assert "Data as of 08:02 UTC" in refreshed.text
    assert [b.text for b in refreshed.buttons[0]] == ["Refresh", "Summary", "Drivers"]
    assert compact.text is not None and "<b>1. ETF outflows</b>" not in compact.text


async def test_only_admins_choose_a_groups_answer_and_a_bad_choice_gets_the_usage(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator
) -> None:
    client, group = telegram_emulator.client, Chat.group("Traders")
    admin_in(telegram_emulator, group, ALICE)
    async with running(frontend):
        await client.send_command(group, "settings", "full on", user=BOB)
        refused = await client.wait_for_reply(group)
        await client.send_command(group, "settings", "full maybe", user=ALICE)
        bad = await client.wait_for_reply(group)
        await client.send_command(group, "settings", "full on", user=ALICE)
        chosen = await client.wait_for_reply(group)

    assert refused.text == REPLIES.admins_only()
    assert bad.text == "Say on or off after full. Usage: /settings [full on|off]"
    assert chosen.text is not None and chosen.text.startswith(
        "/why now gives the full answer in this group"
    )


async def test_refresh_is_throttled_per_chat_and_an_unchanged_answer_is_fine(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator
) -> None:
    client, layer = telegram_emulator.client, telegram_emulator.layer
    chat, other = Chat.private(ALICE), Chat.private(BOB)
    async with running(frontend):
        await client.send_command(chat, "why", user=ALICE)
        answer = await client.wait_for_reply(chat)
        await client.send_command(other, "why", user=BOB)
        elsewhere = await client.wait_for_reply(other)
        # Same data: Telegram says "message is not modified", which is success here.
        await client.press_button(answer, "Refresh", user=ALICE)
        await eventually(lambda: len(notices(layer)) == 1, "the first press answered")
        await client.press_button(answer, "Refresh", user=ALICE)
        await eventually(lambda: len(notices(layer)) == 2, "the second press answered")
        await client.press_button(elsewhere, "Refresh", user=BOB)
        await eventually(lambda: len(notices(layer)) == 3, "the other chat's press answered")

    throttled = REPLIES.button_throttled(30, 30)
    assert notices(layer) == [None, throttled, None]
    assert "Try again in 30 s." in throttled
    assert throttled.startswith("Done a moment ago: this button works once per chat every 30 s.")
    assert await client.bot_messages(chat) == [answer]


@pytest.mark.parametrize("button", ["Refresh", "Drivers"])
async def test_a_press_is_answered_before_a_cold_refresh_finishes(
    frontend: TelegramFrontend,
    telegram_emulator: TelegramEmulator,
    explainer: Explainer,
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
    button: str,
) -> None:
    client, layer, chat = telegram_emulator.client, telegram_emulator.layer, Chat.private(ALICE)
    refreshing, finish = asyncio.Event(), asyncio.Event()
    explain = explainer.explain

    async def cold(coin: str | None = None) -> Explanation:
        refreshing.set()
        await finish.wait()
        return await explain(coin)

    async with running(frontend):
        await client.send_command(chat, "why", user=ALICE)
        answer = await client.wait_for_reply(chat)
        monkeypatch.setattr(explainer, "explain", cold)
        upstream.advance(120)  # past the cache's age: the press needs a new refresh
        await client.press_button(answer, button, user=ALICE)
        await eventually(refreshing.is_set, "the refresh to start")
        try:  # the press is answered while the refresh is still under way
            await eventually(lambda: notices(layer) == [None], "the press answered")
        finally:
            finish.set()  # so that stopping never waits on a refresh held forever
        if button == "Refresh":
            done = await client.wait_for_edit(answer)
        else:
            done = await client.wait_for_reply(chat)

    assert done.text is not None and "08:02 UTC, 5 Aug 2024" in done.text
    assert notices(layer) == [None]


async def test_a_failing_button_is_told_in_the_chat(
    frontend: TelegramFrontend,
    telegram_emulator: TelegramEmulator,
    explainer: Explainer,
    failures: Failures,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(coin: str | None = None) -> None:
        raise RuntimeError("boom at https://api.example/?key=s3cret")

    client, layer, chat = telegram_emulator.client, telegram_emulator.layer, Chat.private(ALICE)
    async with running(frontend):
        await client.send_command(chat, "why", user=ALICE)
        answer = await client.wait_for_reply(chat)
        monkeypatch.setattr(explainer, "explain", broken)
        await client.press_button(answer, "Drivers", user=ALICE)
        reply = await client.wait_for_reply(chat)

    assert reply.text == REPLIES.failed()
    assert (reply.text or "").startswith("Something went wrong while answering.")
    assert notices(layer) == [None]  # answered once, before the work
    (logged,) = failures.records
    assert "button 'why:drivers'" in logged.getMessage()
    failures.records.clear()


async def test_drivers_button_posts_every_driver_with_its_state(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator
) -> None:
    client, forum = telegram_emulator.client, Chat.supergroup("Desk", forum=True)
    async with running(frontend):
        await client.send_command(forum, "why", user=ALICE, thread_id=77)
        answer = await client.wait_for_reply(forum, thread_id=77)
        await client.press_button(answer, "Drivers", user=BOB)
        drivers = await client.wait_for_reply(forum, thread_id=77)

    assert drivers.text is not None
    assert drivers.text.startswith("<b>Sell-off drivers</b> (data as of 08:00 UTC, 5 Aug 2024)")
    for name in FIRING:
        assert f"<b>{name}</b>: FIRING" in drivers.text
    assert "<b>Fed uncertainty</b>: quiet" in drivers.text
    assert drivers.reply_to_message_id == answer.message_id


# --- subscriptions -----------------------------------------------------------------------------


async def test_subscribe_is_refused_to_a_group_member(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator, store: Store
) -> None:
    client, group = telegram_emulator.client, Chat.supergroup("Desk")
    admin_in(telegram_emulator, group, ALICE)
    async with running(frontend):
        await client.send_command(group, "subscribe", user=BOB)
        refused = await client.wait_for_reply(group)
        await client.send_command(group, "unsubscribe", user=BOB)
        refused_too = await client.wait_for_reply(group)

    assert refused.text == REPLIES.admins_only()
    assert refused_too.text == REPLIES.admins_only()
    assert refused.text == "Only the chat's administrators can change its alert subscription."
    assert store.subscriptions(active_only=False) == []


async def test_subscribe_by_an_admin_in_a_forum_topic_and_by_an_anonymous_admin(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator, store: Store
) -> None:
    client = telegram_emulator.client
    forum, group = Chat.supergroup("Desk", forum=True), Chat.supergroup("Floor")
    admin_in(telegram_emulator, forum, ALICE)
    admin_in(telegram_emulator, group)
    async with running(frontend):
        await client.send_command(forum, "subscribe", user=ALICE, thread_id=77)
        in_topic = await client.wait_for_reply(forum, thread_id=77)
        await client.send_command(group, "subscribe", "4", anonymous_admin=True)
        anonymous = await client.wait_for_reply(group)
        await client.send_command(group, "settings", user=BOB)
        settings = await client.wait_for_reply(group)

    topic_row = store.get_subscription("telegram", str(forum.id), 77)
    group_row = store.get_subscription("telegram", str(group.id), None)
    assert topic_row is not None and topic_row.active
    assert (topic_row.min_drivers, topic_row.subscribed_by) == (3, "@alice")
    assert group_row is not None and group_row.active
    assert (group_row.min_drivers, group_row.subscribed_by) == (4, "an anonymous administrator")
    assert store.get_subscription("telegram", str(forum.id), None) is None
    assert in_topic.text == REPLIES.subscribed(topic_row, "this topic")
    assert in_topic.text.startswith("Subscribed this topic to crash alerts")
    assert anonymous.text == REPLIES.subscribed(group_row, "this group")
    assert anonymous.text.startswith("Subscribed this group to crash alerts")
    assert settings.text is not None
    assert "<b>Crash alerts</b> for this group: at least 4 drivers" in settings.text


async def test_channel_posts_manage_the_channel_subscription(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator, store: Store
) -> None:
    client, channel = telegram_emulator.client, Chat.channel("Alerts", "crash_alerts")
    async with running(frontend):
        await client.send_command(channel, "subscribe", "2")
        subscribed = await client.wait_for_reply(channel)
        await client.send_command(channel, "unsubscribe")
        unsubscribed = await client.wait_for_reply(channel)

    row = store.get_subscription("telegram", str(channel.id), None)
    assert row is not None and not row.active
    assert (row.min_drivers, row.subscribed_by) == (2, "the channel")
    assert subscribed.text is not None
    assert subscribed.text.startswith("Subscribed this channel to crash alerts")
    assert unsubscribed.text == REPLIES.unsubscribed(True, "this channel")
    assert unsubscribed.text == "Unsubscribed this channel: no more crash alerts here."


async def test_group_upgraded_to_a_supergroup_keeps_its_subscription(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator, store: Store
) -> None:
    client, group = telegram_emulator.client, Chat.group("Old desk")
    supergroup = Chat.supergroup("Old desk")
    admin_in(telegram_emulator, group, ALICE)
    admin_in(telegram_emulator, supergroup, ALICE)
    async with running(frontend):
        await client.send_command(group, "subscribe", "5", user=ALICE)
        await client.wait_for_reply(group)
        # Telegram posts the move in both chats: "moved to" in the old, "moved from" in the new.
        await client.send_message(
            group, None, user=ALICE, extra={"migrate_to_chat_id": supergroup.id}
        )
        await client.send_message(
            supergroup, None, user=ALICE, extra={"migrate_from_chat_id": group.id}
        )
        await eventually(
            lambda: store.get_subscription("telegram", str(supergroup.id), None) is not None,
            "the subscription to move",
        )
        await client.send_command(supergroup, "settings", user=ALICE)
        settings = await client.wait_for_reply(supergroup)

    moved = store.get_subscription("telegram", str(supergroup.id), None)
    assert moved is not None and moved.active and moved.min_drivers == 5
    assert store.get_subscription("telegram", str(group.id), None) is None
    assert settings.text is not None
    assert "<b>Crash alerts</b> for this group: at least 5 drivers" in settings.text


# --- alerts ------------------------------------------------------------------------------------


async def test_alert_reaches_the_subscribed_forum_topic_when_the_rule_is_crossed(
    frontend: TelegramFrontend,
    telegram_emulator: TelegramEmulator,
    store: Store,
    explainer: Explainer,
) -> None:
    client, forum = telegram_emulator.client, Chat.supergroup("Desk", forum=True)
    admin_in(telegram_emulator, forum, ALICE)
    engine = AlertEngine(store, AlertSettings(), {"telegram": frontend.notifier})
    async with running(frontend):
        await client.send_command(forum, "subscribe", user=ALICE, thread_id=77)
        await client.wait_for_reply(forum, thread_id=77)
        explanation = await explainer.explain()
        alert = await engine.evaluate(explanation)
        delivered = await client.wait_for_reply(forum, thread_id=77)

    assert alert is not None and alert.driver_count == 5
    assert delivered.text is not None
    assert delivered.text.startswith("<b>Crash alert</b>: 5 sell-off drivers firing together.\n\n")
    assert VERDICT in delivered.text
    # alerts stay compact: the summary and a line per firing driver (the chart follows)
    assert SUMMARY_START in delivered.text
    assert all(f"\n• {name}: " in delivered.text for name in FIRING)
    assert len(delivered.text) <= TELEGRAM_LIMIT
    assert delivered.parse_mode == "HTML"
    assert delivered.link_preview_disabled is True
    assert delivered.message_thread_id == 77
    assert await client.bot_messages(forum, thread_id=1) == []
    row = store.get_subscription("telegram", str(forum.id), 77)
    assert row is not None and row.last_alert_at is not None


async def test_a_403_on_delivery_deactivates_the_subscription(
    frontend: TelegramFrontend,
    telegram_emulator: TelegramEmulator,
    store: Store,
    explainer: Explainer,
) -> None:
    client, layer = telegram_emulator.client, telegram_emulator.layer
    gone, kept = Chat.supergroup("Removed the bot"), Chat.private(ALICE)
    layer.add_chat(gone.to_api())
    store.subscribe("telegram", str(gone.id), None, 3, "@bob")
    store.subscribe("telegram", str(kept.id), None, 3, "@alice")
    layer.inject_error(gone.id, method="sendMessage", description="Forbidden: bot was kicked")
    engine = AlertEngine(store, AlertSettings(deactivate_after=1), {"telegram": frontend.notifier})
    async with running(frontend):
        await engine.evaluate(await explainer.explain())
        delivered = await client.wait_for_reply(kept)

    dropped = store.get_subscription("telegram", str(gone.id), None)
    assert dropped is not None and not dropped.active
    assert [s.chat_id for s in store.subscriptions()] == [str(kept.id)]
    assert await client.bot_messages(gone) == []
    assert delivered.text is not None and delivered.text.startswith("<b>Crash alert</b>")


async def test_an_alert_to_a_migrated_group_follows_it_to_the_supergroup(
    frontend: TelegramFrontend,
    telegram_emulator: TelegramEmulator,
    store: Store,
    explainer: Explainer,
) -> None:
    client, layer = telegram_emulator.client, telegram_emulator.layer
    group, supergroup = Chat.group("Old desk"), Chat.supergroup("Old desk")
    layer.add_chat(group.to_api())
    layer.add_chat(supergroup.to_api())
    store.subscribe("telegram", str(group.id), None, 3, "@alice")
    layer.inject_error(group.id, method="sendMessage", migrate_to_chat_id=supergroup.id)
    engine = AlertEngine(store, AlertSettings(), {"telegram": frontend.notifier})
    async with running(frontend):
        await engine.evaluate(await explainer.explain())
        delivered = await client.wait_for_reply(supergroup)

    assert delivered.text is not None and delivered.text.startswith("<b>Crash alert</b>")
    assert [s.chat_id for s in store.subscriptions()] == [str(supergroup.id)]
    assert await client.bot_messages(group) == []


# PTB's own RetryAfter constructor warns about its coming timedelta type.
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
@pytest.mark.parametrize(
    ("injected", "expected"),
    [
        ({"error_code": 403}, PermanentDeliveryError),
        ({"error_code": 400, "description": "Bad Request: chat not found"}, PermanentDeliveryError),
        ({"error_code": 429, "retry_after": 7}, RetryAfter),
        ({"error_code": 502, "description": "Bad Gateway"}, TransientDeliveryError),
        ({"error_code": 400, "description": "Bad Request: can't parse entities"}, DeliveryError),
    ],
)
async def test_notifier_translates_bot_api_errors_for_the_dispatcher(
    frontend: TelegramFrontend,
    telegram_emulator: TelegramEmulator,
    store: Store,
    explainer: Explainer,
    injected: dict[str, object],
    expected: type[DeliveryError],
) -> None:
    chat = Chat.private(ALICE)
    subscription = store.subscribe("telegram", str(chat.id), None, 3, "@alice")
    telegram_emulator.layer.inject_error(chat.id, method="sendMessage", **injected)  # type: ignore[arg-type]
    message = AlertMessage(kind="alert", alert_id=1, explanation=await explainer.explain())
    async with running(frontend):
        with pytest.raises(DeliveryError) as raised:
            await frontend.notifier.send(subscription, message)

    assert type(raised.value) is expected
    if isinstance(raised.value, RetryAfter):
        assert raised.value.seconds == 7
        assert raised.value.platform_wide  # flood control holds the whole bot
    assert telegram_emulator.token not in str(raised.value)
    assert "http" not in str(raised.value)


def test_the_button_throttle_counts_whole_seconds_per_key() -> None:
    throttle = Throttle(timedelta(seconds=30))
    start = datetime(2024, 8, 5, 8, 0, tzinfo=UTC)

    assert throttle.take((1, "refresh"), start) == 0
    assert throttle.take((1, "chart"), start) == 0  # another button has its own slot
    assert throttle.take((1, "refresh"), start) == 30
    assert throttle.take((1, "refresh"), start + timedelta(seconds=29.5)) == 1  # rounded up
    assert throttle.take((1, "refresh"), start + timedelta(seconds=30)) == 0
    assert throttle.take((2, "refresh"), start + timedelta(seconds=30)) == 0  # another chat
    assert throttle.period_s == 30


# --- fitting a reply ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ("S&amp;P 500 fell", "S"),  # the cut falls inside "&amp;"
        ('see <a href="https://x.test/?a=1&amp;b=2">the source</a>', "see "),  # inside a tag
        ("<b>Crash</b> alert", "<b>Crash</b> al"),  # between two tags: nothing to back up
    ],
)
def test_fit_never_cuts_an_entity_or_a_tag_in_half(line: str, kept: str) -> None:
    for limit in range(len(kept) + 2, len(line) + 1):
        fitted = fit(line + "!", limit)
        assert len(fitted) <= limit
        body = fitted.removesuffix("\n…")
        assert body.count("<") == body.count(">"), fitted
        assert body.count("&") == body.count(";"), fitted
    assert fit(line + "!", len(kept) + 2) == kept + "\n…"


def test_fit_prefers_a_line_end() -> None:
    assert fit("first line\nsecond &amp; longer", 20) == "first line\n…"


# --- the command list, usage lines and errors --------------------------------------------------


async def test_help_and_start_list_exactly_the_registry_commands(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    async with running(frontend):
        await client.send_command(chat, "help", user=ALICE)
        help_ = await client.wait_for_reply(chat)
        await client.send_command(chat, "start", user=ALICE)
        start = await client.wait_for_reply(chat)

    registry = [c.usage("telegram") for c in commands_for("telegram")]
    assert help_.text is not None
    assert command_lines(help_.text) == registry
    assert "/why [coin] [date]" in registry and "/subscribe [min_drivers]" in registry
    assert "/preview [min_drivers] [days]" in registry
    assert "/chart [coin|etf]" in registry
    assert start.text == help_.text


async def test_command_menu_is_published_from_the_registry_at_start(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator
) -> None:
    async with running(frontend):
        published = telegram_emulator.layer.commands()

    assert published == [
        {"command": c.name, "description": c.summary} for c in commands_for("telegram")
    ]


async def test_unknown_commands_and_bad_arguments_get_the_usage_line(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator, store: Store
) -> None:
    client = telegram_emulator.client
    chat, group = Chat.private(ALICE), Chat.supergroup("Desk")
    admin_in(telegram_emulator, group, ALICE)
    async with running(frontend):
        await client.send_command(chat, "price", user=ALICE)
        unknown = await client.wait_for_reply(chat)
        await client.send_command(chat, "subscribe", "seven", user=ALICE)
        bad = await client.wait_for_reply(chat)
        await client.send_command(chat, "why", "btc eth", user=ALICE)
        too_many = await client.wait_for_reply(chat)
        await client.send_command(group, "subscribe", "9", user=ALICE)
        out_of_range = await client.wait_for_reply(group)
        # In a group, a bare unknown command may be another bot's: only a named one is answered.
        await client.send_command(group, "price", user=BOB)
        await client.send_command(group, "price", mention=True, user=BOB)
        named = await client.wait_for_reply(group)

    assert unknown.text == REPLIES.unknown_command("price")
    assert unknown.text == "I don't know the command /price. Send /help for the list."
    expected = "min_drivers must be a whole number from 2 to 6. Usage: /subscribe [min_drivers]"
    assert bad.text == expected
    assert out_of_range.text == expected
    assert too_many.text == "Usage: /why [coin] [date]"
    assert named.text == REPLIES.unknown_command("price")
    assert named.text == "I don't know the command /price. Send /help for the list."
    assert [m.text for m in await client.bot_messages(group)] == [expected, named.text]
    assert store.subscriptions(active_only=False) == []


async def test_every_other_command_answers(
    frontend: TelegramFrontend, telegram_emulator: TelegramEmulator, store: Store
) -> None:
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    answers: dict[str, str | None] = {}
    async with running(frontend):
        for name in ("status", "drivers", "settings", "history", "subscribe", "unsubscribe"):
            await client.send_command(chat, name, user=ALICE)
            answers[name] = (await client.wait_for_reply(chat)).text

    assert answers["status"] == REPLIES.status(None, {}, Upstream().now)  # before any refresh
    assert "No data read yet." in (answers["status"] or "")
    assert (answers["drivers"] or "").startswith("<b>Sell-off drivers</b>")
    assert answers["settings"] == REPLIES.settings(None, "this chat")
    assert answers["settings"] == (
        "This chat is not subscribed to crash alerts. /subscribe starts them.\n"
        "<b>Answers</b>: compact, the summary and a line per firing driver; Details shows the "
        "evidence. /settings full on gives the full one."
    )
    assert answers["history"] == REPLIES.history([])
    assert (answers["history"] or "").startswith(
        "No alerts yet: one goes out when the market is down"
    )
    assert (answers["subscribe"] or "").startswith("Subscribed this chat to crash alerts")
    assert answers["unsubscribe"] == REPLIES.unsubscribed(True, "this chat")
    assert answers["unsubscribe"] == "Unsubscribed this chat: no more crash alerts here."
    row = store.get_subscription("telegram", str(chat.id), None)
    assert row is not None and not row.active


async def test_a_failing_handler_gives_a_brief_reply_without_the_error(
    frontend: TelegramFrontend,
    telegram_emulator: TelegramEmulator,
    explainer: Explainer,
    failures: Failures,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(coin: str | None = None) -> None:
        raise RuntimeError("boom at https://api.example/?key=s3cret")

    monkeypatch.setattr(explainer, "explain", broken)
    client, group = telegram_emulator.client, Chat.supergroup("Desk", forum=True)
    async with running(frontend):
        await client.send_command(group, "why", user=ALICE, thread_id=77)
        reply = await client.wait_for_reply(group, thread_id=77)

    assert reply.text == REPLIES.failed()
    assert (reply.text or "").startswith("Something went wrong while answering.")
    assert "boom" not in reply.text and "s3cret" not in reply.text
    (logged,) = failures.records
    assert logged.exc_info is not None and isinstance(logged.exc_info[1], RuntimeError)
    assert "/why" in logged.getMessage()
    failures.records.clear()


async def test_the_bot_api_url_setting_is_enough_to_reach_the_server(
    telegram_emulator: TelegramEmulator, explainer: Explainer, store: Store, settings: Settings
) -> None:
    actions = Actions(
        explainer, store, thresholds=settings.thresholds, alert_settings=AlertSettings()
    )
    frontend = TelegramFrontend(
        token=SecretStr(telegram_emulator.token),
        actions=actions,
        api_url=telegram_emulator.base_url,
        file_url=telegram_emulator.base_file_url,
    )
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    async with running(frontend):
        await client.send_command(chat, "help", user=ALICE)
        reply = await client.wait_for_reply(chat)

    assert reply.text == REPLIES.help()
    assert (reply.text or "").startswith(
        "<b>whydown: why is crypto down?</b>\nI read live market data"
    )
