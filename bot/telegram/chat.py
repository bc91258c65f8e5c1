"""Facts about a Telegram chat and update the front-end needs: where to answer, who may manage
alerts, which command a message is, how to describe an update for the log, how to make text fit a
message or a caption, and how to reply with text or a chart."""

from __future__ import annotations

import html
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import (
    Bot,
    CallbackQuery,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    MessageEntity,
    Update,
)
from telegram.constants import ChatMemberStatus, ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter
from telegram.ext import ContextTypes

from bot.actions import Actions, BadArgument, Drawn, Target
from bot.commands import Replies
from explainers.render import TELEGRAM_LIMIT

Context = ContextTypes.DEFAULT_TYPE
Handler = Callable[[Update, Context], Coroutine[Any, Any, None]]

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)

# A photo's caption; Telegram counts it after parsing entities, we count the escaped text (stricter).
CAPTION_LIMIT = 1024
MANAGERS = frozenset({ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR})
_TRIMMED = "\n…"
_CUT = "…"


class Handlers:
    """A group of command or button handlers: the use cases, and their replies in HTML."""

    def __init__(self, actions: Actions, replies: Replies) -> None:
        self.actions = actions
        self.replies = replies


def target(message: Message) -> Target:
    """The chat (and forum topic) a message was posted in."""
    # In a non-forum group message_thread_id names a reply chain, not a topic: ignore it there.
    topic = message.message_thread_id if message.is_topic_message else None
    return Target("telegram", str(message.chat.id), topic)


def where(message: Message) -> str:
    """How replies name the place: "this chat", "this group", "this topic", "this channel"."""
    if message.is_topic_message:
        return "this topic"
    places: dict[str, str] = {ChatType.PRIVATE: "this chat", ChatType.CHANNEL: "this channel"}
    return places.get(message.chat.type, "this group")


def sender(message: Message) -> str:
    """Who sent a message, as /settings shows it."""
    if message.chat.type == ChatType.CHANNEL:
        return "the channel"
    if message.sender_chat is not None and message.sender_chat.id == message.chat.id:
        return "an anonymous administrator"
    user = message.from_user
    if user is None:
        return "unknown"
    return f"@{user.username}" if user.username else user.full_name


async def may_manage(bot: Bot, message: Message) -> bool:
    """Whether the sender may change this chat's alert subscription.

    Private chats belong to their user; channel posts come from the channel's admins; in groups,
    administrators and anonymous administrators (who post as the group itself) may.
    """
    chat = message.chat
    if chat.type in (ChatType.PRIVATE, ChatType.CHANNEL):
        return True
    if message.sender_chat is not None:
        # Anonymous admins post as the group; anyone else posting as a chat is a channel.
        return message.sender_chat.id == chat.id
    if message.from_user is None:
        return False
    member = await bot.get_chat_member(chat.id, message.from_user.id)
    return member.status in MANAGERS


def fit(html: str, limit: int = TELEGRAM_LIMIT) -> str:
    """Cut an HTML reply at a line end so it fits; tags in our templates never span lines."""
    if len(html) <= limit:
        return html
    cut = html[: limit - len(_TRIMMED)]
    newline = cut.rfind("\n")
    return (cut[:newline] if newline > 0 else _whole_markup(cut)) + _TRIMMED


def _whole_markup(cut: str) -> str:
    """`cut` less a half entity or tag at its end ("&am", "<a hre"): Telegram refuses them."""
    # entities first: one may sit inside a tag's attribute, never the other way round
    for opener, closer in (("&", ";"), ("<", ">")):
        start = cut.rfind(opener)
        if start > cut.rfind(closer):
            cut = cut[:start]
    return cut


def caption(text: str, limit: int = CAPTION_LIMIT) -> str:
    """Plain text as an HTML caption that fits: cut between characters, so no entity is split."""
    escaped = html.escape(text, quote=False)
    if len(escaped) <= limit:
        return escaped
    pieces, size = [], len(_CUT)
    for char in text:
        piece = html.escape(char, quote=False)
        if size + len(piece) > limit:
            break
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces).rstrip() + _CUT


def command_word(message: Message) -> str:
    """The command a message starts with, without the slash: "why" or "why@somebot"."""
    text = message.text or ""
    for entity in message.entities:
        if entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
            return text[1 : entity.length]
    return text[1:].split(maxsplit=1)[0] if text.startswith("/") else text


def unanswerable(error: BaseException | None) -> bool:
    """The chat cannot be answered now: it blocked us, flood control, or the network is down."""
    if isinstance(error, BadRequest):
        return False
    return isinstance(error, (Forbidden, RetryAfter, NetworkError))


def describe(update: Update) -> str:
    """What an update was, for the log: its id, chat and the start of its text."""
    chat = update.effective_chat
    where_ = f"chat {chat.id} ({chat.type})" if chat is not None else "no chat"
    if update.callback_query is not None:
        what = f"button {update.callback_query.data!r}"
    else:
        message = update.effective_message
        what = repr((message.text or "")[:80]) if message is not None else "an update"
    return f"update {update.update_id} in {where_}: {what}"


def message_of(update: Update) -> Message:
    message = update.effective_message
    if message is None:  # the handlers' filters only let messages and channel posts through
        raise RuntimeError(f"update {update.update_id} has no message")
    return message


def query_of(update: Update) -> CallbackQuery:
    if update.callback_query is None:
        raise RuntimeError(f"update {update.update_id} has no callback query")
    return update.callback_query


def argument(args: list[str] | None, name: str) -> str | None:
    """A command's one optional argument; more than one is a BadArgument (its usage line)."""
    return arguments(args, name, 1)[0]


def arguments(args: list[str] | None, name: str, most: int) -> list[str | None]:
    """A command's `most` optional arguments, None for each one not given; more is a
    BadArgument (its usage line)."""
    given: list[str | None] = list(args or [])
    if len(given) > most:
        raise BadArgument(name)
    return given + [None] * (most - len(given))


async def reply(message: Message, html: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Answer in the message's chat and forum topic, in HTML, without link previews."""
    await message.reply_text(
        fit(html), parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW, reply_markup=markup
    )


async def send_chart(message: Message, drawn: Drawn) -> None:
    """Reply with a chart, its caption under it."""
    await message.reply_photo(
        drawn.chart.png,
        caption=caption(drawn.chart.caption),
        parse_mode=ParseMode.HTML,
        filename=drawn.chart.filename,
    )
