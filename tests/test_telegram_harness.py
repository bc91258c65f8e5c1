"""The Telegram harness drives the real python-telegram-bot Application through the emulator."""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from telegram import (
    BotCommand,
    ChatMemberAdministrator,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.telegram_harness import GROUP_ANONYMOUS_BOT, Chat, TelegramEmulator, User, polling

pytest_plugins = ["tests.telegram_harness.fixtures"]

App = Application[Any, Any, Any, Any, Any, Any]
ALICE = User(5001, "Alice", "alice")
BOB = User(5002, "Bob", "bob")


def png(width: int, height: int) -> bytes:
    """A valid, all-black PNG image of the given size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + b"\x00" * width for _ in range(height)))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.fixture
def errors() -> list[BaseException]:
    """Exceptions raised by the bot's handlers during the test."""
    return []


@pytest.fixture
async def app(
    telegram_emulator: TelegramEmulator, errors: list[BaseException]
) -> AsyncIterator[App]:
    """A real Application built against the emulator; handlers are added by each test."""
    application = telegram_emulator.application_builder().build()

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert context.error is not None
        errors.append(context.error)

    application.add_error_handler(on_error)
    yield application
    assert errors == []


async def test_ping_command_answered_in_private_chat(
    app: App, telegram_emulator: TelegramEmulator
) -> None:
    async def ping(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(
            "<b>pong</b>",
            parse_mode=ParseMode.HTML,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )

    app.add_handler(CommandHandler("ping", ping))
    client = telegram_emulator.client
    chat = Chat.private(ALICE)
    async with polling(app):
        await client.send_command(chat, "ping", user=ALICE)
        reply = await client.wait_for_reply(chat)

    assert reply.text == "<b>pong</b>"
    assert reply.parse_mode == "HTML"
    assert reply.link_preview_disabled is True
    assert reply.message_thread_id is None


async def test_reply_in_forum_topic_lands_in_the_topic(
    app: App, telegram_emulator: TelegramEmulator
) -> None:
    async def ping(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        sent = await update.effective_message.reply_text("pong from the topic")
        assert sent.message_thread_id == 77
        assert sent.chat.type == "supergroup"

    app.add_handler(CommandHandler("ping", ping))
    client = telegram_emulator.client
    forum = Chat.supergroup("Traders", forum=True)
    async with polling(app):
        asked = await client.send_command(forum, "ping", mention=True, user=ALICE, thread_id=77)
        reply = await client.wait_for_reply(forum, thread_id=77)

    assert reply.text == "pong from the topic"
    assert reply.message_thread_id == 77
    assert reply.reply_to_message_id == asked  # PTB quotes the command in groups
    assert await client.bot_messages(forum, thread_id=1) == []


async def test_inline_button_edits_the_message(
    app: App, telegram_emulator: TelegramEmulator
) -> None:
    edited: asyncio.Future[Message | bool] = asyncio.get_running_loop().create_future()
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Refresh", callback_data="refresh")]])

    async def show(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text("price: 1", reply_markup=keyboard)

    async def refresh(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer()
        edited.set_result(await query.edit_message_text("price: 2", reply_markup=keyboard))
        with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
            await query.edit_message_text("price: 2", reply_markup=keyboard)

    app.add_handler(CommandHandler("show", show))
    app.add_handler(CallbackQueryHandler(refresh, pattern="^refresh$"))
    client = telegram_emulator.client
    chat = Chat.private(ALICE)
    async with polling(app):
        await client.send_command(chat, "show", user=ALICE)
        shown = await client.wait_for_reply(chat)
        await client.press_button(shown, "Refresh", user=ALICE)
        after = await client.wait_for_edit(shown)
        returned = await asyncio.wait_for(edited, timeout=5)

    assert shown.text == "price: 1"
    assert after.message_id == shown.message_id
    assert after.text == "price: 2"
    assert [[b.text for b in row] for row in after.buttons] == [["Refresh"]]
    assert isinstance(returned, Message)
    assert returned.text == "price: 2"
    assert returned.message_id == shown.message_id
    assert returned.edit_date is not None


async def test_edit_without_keyboard_removes_it(
    app: App, telegram_emulator: TelegramEmulator
) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Drivers", callback_data="d")]])
    chat = Chat.private(ALICE)
    telegram_emulator.layer.add_chat(chat.to_api())
    async with polling(app):
        sent = await app.bot.send_message(chat.id, "first", reply_markup=keyboard)
        await app.bot.edit_message_text("second", chat_id=chat.id, message_id=sent.message_id)
        (message,) = await telegram_emulator.client.wait_for_messages(chat)

    assert message.text == "second"
    assert message.buttons == ()


async def test_commands_round_trip(app: App, telegram_emulator: TelegramEmulator) -> None:
    commands = [BotCommand("why", "Why is crypto down?"), BotCommand("help", "Every command")]
    async with polling(app):
        assert await app.bot.set_my_commands(commands) is True
        answered = await app.bot.get_my_commands()
        with pytest.raises(BadRequest, match=r"(?i)bot_command_invalid"):
            await app.bot.set_my_commands([BotCommand("Why", "capital letters are refused")])

    assert [(c.command, c.description) for c in answered] == [
        ("why", "Why is crypto down?"),
        ("help", "Every command"),
    ]
    assert [c["command"] for c in telegram_emulator.layer.commands()] == ["why", "help"]


async def test_chat_member_roles_including_anonymous_admin(
    app: App, telegram_emulator: TelegramEmulator
) -> None:
    async def role(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None and update.effective_chat is not None
        if message.sender_chat is not None and message.sender_chat.id == message.chat.id:
            await message.reply_text("anonymous admin")
            return
        assert message.from_user is not None
        member = await context.bot.get_chat_member(message.chat.id, message.from_user.id)
        await message.reply_text(member.status)

    app.add_handler(CommandHandler("role", role))
    client, layer = telegram_emulator.client, telegram_emulator.layer
    group = Chat.supergroup("Desk")
    layer.add_chat(group.to_api())
    layer.set_member(group.id, ALICE.to_api(), "administrator")
    layer.set_member(group.id, BOB.to_api(), "member")
    async with polling(app):
        await client.send_command(group, "role", user=ALICE)
        await client.send_command(group, "role", user=BOB)
        await client.send_command(group, "role", anonymous_admin=True)
        replies = await client.wait_for_messages(group, 3)
        admin = await app.bot.get_chat_member(group.id, ALICE.id)
        chat = await app.bot.get_chat(group.id)
        assert await app.bot.send_chat_action(group.id, "typing") is True

    assert [r.text for r in replies] == ["administrator", "member", "anonymous admin"]
    assert isinstance(admin, ChatMemberAdministrator)
    assert admin.user.username == "alice"
    assert chat.title == "Desk" and chat.type == "supergroup"
    assert GROUP_ANONYMOUS_BOT.id == 1087968824


async def test_send_photo_upload_is_recorded(app: App, telegram_emulator: TelegramEmulator) -> None:
    image = png(3, 2)

    async def chart(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        sent = await update.effective_message.reply_photo(image, caption="BTC, 24h")
        assert (sent.photo[-1].width, sent.photo[-1].height) == (3, 2)

    app.add_handler(CommandHandler("chart", chart))
    client = telegram_emulator.client
    chat = Chat.private(ALICE)
    async with polling(app):
        await client.send_command(chat, "chart", user=ALICE)
        reply = await client.wait_for_reply(chat)

    assert reply.photo == image
    assert reply.caption == "BTC, 24h"
    assert reply.text is None


async def test_injected_403_surfaces_as_forbidden(
    app: App, telegram_emulator: TelegramEmulator
) -> None:
    blocked, open_chat = Chat.private(ALICE), Chat.private(BOB)
    layer = telegram_emulator.layer
    layer.inject_error(blocked.id, method="sendMessage")
    async with polling(app):
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await app.bot.send_message(blocked.id, "alert")
        await app.bot.send_message(open_chat.id, "alert")
        delivered = await telegram_emulator.client.wait_for_reply(open_chat)

    assert delivered.text == "alert"
    assert await telegram_emulator.client.bot_messages(blocked) == []
    assert [c.chat_key for c in layer.calls if c.method == "sendMessage"] == [
        str(blocked.id),
        str(open_chat.id),
    ]


async def test_channel_post_reaches_channel_handler(
    app: App, telegram_emulator: TelegramEmulator
) -> None:
    async def post(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.channel_post is not None
        await update.channel_post.reply_text("posted", do_quote=False)

    app.add_handler(MessageHandler(filters.UpdateType.CHANNEL_POST, post))
    client = telegram_emulator.client
    channel = Chat.channel("Alerts", "alerts")
    async with polling(app):
        await client.send_message(channel, "status")
        reply = await client.wait_for_reply(channel)

    assert reply.text == "posted"


async def test_get_updates_honours_offset_and_waits(telegram_emulator: TelegramEmulator) -> None:
    app = telegram_emulator.application_builder().build()
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    async with app:
        waiting = asyncio.create_task(app.bot.get_updates(timeout=5))
        await client.send_message(chat, "hello", user=ALICE)
        (first,) = await asyncio.wait_for(waiting, timeout=10)
        # Not confirmed yet: the same update is served again.
        (again,) = await app.bot.get_updates(timeout=0)
        confirmed = await app.bot.get_updates(offset=first.update_id + 1, timeout=0)

    assert first.message is not None and first.message.text == "hello"
    assert again.update_id == first.update_id
    assert confirmed == ()


async def test_abandoned_poll_does_not_swallow_an_update(
    telegram_emulator: TelegramEmulator,
) -> None:
    app = telegram_emulator.application_builder().build()
    client, chat = telegram_emulator.client, Chat.private(ALICE)
    async with app:
        abandoned = asyncio.create_task(app.bot.get_updates(timeout=5))
        # Let the request reach the layer and start waiting, then walk away from it.
        async with asyncio.timeout(5):
            while not any(c.method == "getUpdates" for c in telegram_emulator.layer.calls):
                await asyncio.sleep(0.01)  # poll interval, bounded by the timeout
        abandoned.cancel()
        await client.send_message(chat, "still delivered", user=ALICE)
        (update,) = await app.bot.get_updates(timeout=5)

    assert update.message is not None and update.message.text == "still delivered"
