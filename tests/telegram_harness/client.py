"""The user's side of a test: send messages and button presses, await what the bot shows."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from typing import Any, TypeVar

from aiohttp import ClientSession

from .layer import CompatLayer
from .objects import JSON

DEFAULT_TIMEOUT = 5.0
POLL_INTERVAL = 0.02

T = TypeVar("T")


@dataclass(frozen=True)
class User:
    """A Telegram user (or bot) as it appears in `from`."""

    id: int
    first_name: str
    username: str | None = None
    is_bot: bool = False

    def to_api(self) -> JSON:
        """The Bot API User object."""
        user: JSON = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.username:
            user["username"] = self.username
        return user


# The sender Telegram shows for a message an anonymous group admin sends.
GROUP_ANONYMOUS_BOT = User(1087968824, "Group", "GroupAnonymousBot", is_bot=True)

_chat_ids = count(1)


@dataclass(frozen=True)
class Chat:
    """A chat the test talks in: private, group, supergroup (maybe a forum) or channel."""

    id: int
    type: str
    title: str | None = None
    username: str | None = None
    first_name: str | None = None
    is_forum: bool = False

    @classmethod
    def private(cls, user: User) -> Chat:
        """The private chat between `user` and the bot."""
        return cls(user.id, "private", username=user.username, first_name=user.first_name)

    @classmethod
    def group(cls, title: str = "Test group") -> Chat:
        """A basic group with a fresh id."""
        return cls(-(100_000 + next(_chat_ids)), "group", title=title)

    @classmethod
    def supergroup(cls, title: str = "Test supergroup", *, forum: bool = False) -> Chat:
        """A supergroup (optionally with forum topics) with a fresh id."""
        return cls(-(1_000_000_000_000 + next(_chat_ids)), "supergroup", title, is_forum=forum)

    @classmethod
    def channel(cls, title: str = "Test channel", username: str | None = None) -> Chat:
        """A channel with a fresh id."""
        return cls(-(1_000_000_000_000 + next(_chat_ids)), "channel", title, username)

    def to_api(self) -> JSON:
        """The Bot API Chat object."""
        chat: JSON = {"id": self.id, "type": self.type}
        for key in ("title", "username", "first_name"):
            if getattr(self, key):
                chat[key] = getattr(self, key)
        if self.is_forum:
            chat["is_forum"] = True
        return chat


@dataclass(frozen=True)
class Button:
    """One inline keyboard button."""

    text: str
    callback_data: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class BotMessage:
    """A message as the bot last left it (after any edits)."""

    message_id: int
    chat_id: int
    text: str | None
    caption: str | None
    parse_mode: str | None
    entities: tuple[JSON, ...]
    buttons: tuple[tuple[Button, ...], ...]
    message_thread_id: int | None
    reply_to_message_id: int | None
    link_preview_disabled: bool | None
    photo: bytes | None
    raw: JSON = field(repr=False, compare=False)

    @property
    def content(self) -> str | None:
        """The text, or the caption of a photo."""
        return self.text if self.text is not None else self.caption

    def button(self, text: str) -> Button:
        """The inline button labelled `text`."""
        for row in self.buttons:
            for button in row:
                if button.text == text:
                    return button
        labels = [b.text for row in self.buttons for b in row]
        raise AssertionError(f"no button {text!r} on message {self.message_id}; has {labels}")


def _decoded(value: Any) -> Any:
    """A field the emulator stored as the bot's JSON-encoded form string, decoded."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _optional_int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


class TelegramTestClient:
    """Acts as users in chats; reads the bot's messages through the emulator's client API."""

    def __init__(
        self,
        emulator_url: str,
        token: str,
        layer: CompatLayer,
        session: ClientSession,
        *,
        user: User | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.emulator_url = emulator_url.rstrip("/")
        self.token = token
        self.layer = layer
        self.user = user or User(424242, "Tess", "tess_tester")
        self.timeout = timeout
        self._session = session
        self._seen: set[tuple[int, int]] = set()

    # --- what users do -----------------------------------------------------------------------

    async def send_message(
        self,
        chat: Chat,
        text: str | None,
        *,
        user: User | None = None,
        thread_id: int | None = None,
        reply_to: int | None = None,
        anonymous_admin: bool = False,
        entities: list[JSON] | None = None,
        extra: JSON | None = None,
    ) -> int:
        """Post `text` into `chat` as `user` (or as an anonymous admin); return its message_id.

        In a channel the post has no `from` and is delivered as a channel_post. `text=None`
        with `extra` sends a service message (e.g. {"migrate_to_chat_id": ...}).
        """
        message: JSON = {"chat": chat.to_api(), "date": int(time.time())}
        if text is not None:
            message["text"] = text
        if chat.type == "channel":
            message["sender_chat"] = chat.to_api()
        elif anonymous_admin:
            message["from"] = GROUP_ANONYMOUS_BOT.to_api()
            message["sender_chat"] = chat.to_api()
        else:
            message["from"] = (user or self.user).to_api()
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        if reply_to is not None:
            message["reply_to_message"] = {
                "message_id": reply_to,
                "date": int(time.time()),
                "chat": chat.to_api(),
            }
        if entities:
            message["entities"] = entities
        message.update(extra or {})
        self.layer.add_chat(chat.to_api())
        await self._client_call("sendMessage", {"botToken": self.token, **message})
        return await self._last_user_message_id(chat)

    async def send_command(
        self, chat: Chat, command: str, args: str = "", *, mention: bool = False, **kwargs: Any
    ) -> int:
        """Send `/command [args]` (with a bot_command entity); `mention` adds @botusername."""
        name = command.lstrip("/")
        if mention:
            bot = self.layer.bot_user(self.token)
            if bot is None:
                raise AssertionError("the bot has not called getMe yet; cannot mention it")
            name = f"{name}@{bot['username']}"
        text = f"/{name} {args}".rstrip()
        entity = {"type": "bot_command", "offset": 0, "length": len(name) + 1}
        return await self.send_message(chat, text, entities=[entity], **kwargs)

    async def press_button(
        self, message: BotMessage, text: str, *, chat: Chat | None = None, user: User | None = None
    ) -> None:
        """Press the inline button labelled `text` on a bot message (a callback query)."""
        button = message.button(text)
        if button.callback_data is None:
            raise AssertionError(f"button {text!r} has no callback_data")
        chat_json = chat.to_api() if chat else self.layer.chats.get(str(message.chat_id))
        if chat_json is None:
            raise AssertionError(f"unknown chat {message.chat_id}; pass chat=")
        origin: JSON = {
            "message_id": message.message_id,
            "date": int(time.time()),
            "chat": chat_json,
        }
        bot = self.layer.bot_user(self.token)
        if bot is not None:
            origin["from"] = bot
        for key in ("text", "caption", "photo"):
            if message.raw.get(key) is not None:
                origin[key] = _decoded(message.raw[key])
        if message.entities:
            origin["entities"] = list(message.entities)
        origin["reply_markup"] = _decoded(message.raw.get("reply_markup"))
        if message.message_thread_id is not None:
            origin["message_thread_id"] = message.message_thread_id
            origin["is_topic_message"] = True
        query = {
            "botToken": self.token,
            "from": (user or self.user).to_api(),
            "message": origin,
            "data": button.callback_data,
        }
        await self._client_call("sendCallback", query)

    # --- what users see ----------------------------------------------------------------------

    async def bot_messages(self, chat: Chat, *, thread_id: int | None = None) -> list[BotMessage]:
        """Every message the bot has sent to `chat` (or one of its topics), oldest first."""
        return await self._bot_messages(chat.id, thread_id)

    async def _bot_messages(self, chat_id: int, thread_id: int | None) -> list[BotMessage]:
        history = await self._client_call("getUpdatesHistory", {"token": self.token})
        messages = []
        for item in history or []:
            raw = item.get("message")
            # Bot messages are stored as the bot's request: they have chat_id, not chat.
            if not isinstance(raw, dict) or "chat_id" not in raw:
                continue
            if str(raw["chat_id"]) != str(chat_id):
                continue
            message = self._parse(int(item["messageId"]), chat_id, raw)
            if thread_id is None or message.message_thread_id == thread_id:
                messages.append(message)
        return sorted(messages, key=lambda m: m.message_id)

    async def wait_for_messages(
        self,
        chat: Chat,
        count: int = 1,
        *,
        thread_id: int | None = None,
        timeout: float | None = None,
    ) -> list[BotMessage]:
        """Wait until at least `count` bot messages not returned before are in `chat`.

        Returns all the new ones, oldest first; raises AssertionError at the deadline.
        """

        def new(messages: list[BotMessage]) -> list[BotMessage] | None:
            fresh = [m for m in messages if (chat.id, m.message_id) not in self._seen]
            return fresh if len(fresh) >= count else None

        fresh = await self._poll(chat.id, thread_id, new, timeout, f"{count} new message(s)")
        self._seen.update((chat.id, m.message_id) for m in fresh)
        return fresh

    async def wait_for_reply(
        self, chat: Chat, *, thread_id: int | None = None, timeout: float | None = None
    ) -> BotMessage:
        """Wait for the next bot message in `chat` (or topic) and return it."""
        return (await self.wait_for_messages(chat, 1, thread_id=thread_id, timeout=timeout))[0]

    async def wait_for_edit(
        self, message: BotMessage, *, timeout: float | None = None
    ) -> BotMessage:
        """Wait until the bot changes `message` (text, caption or buttons); return it as is now."""
        before = (message.text, message.caption, message.parse_mode, message.buttons)

        def edited(messages: list[BotMessage]) -> BotMessage | None:
            for candidate in messages:
                if candidate.message_id == message.message_id:
                    now = (candidate.text, candidate.caption, candidate.parse_mode)
                    if (*now, candidate.buttons) != before:
                        return candidate
            return None

        what = f"an edit of message {message.message_id}"
        return await self._poll(message.chat_id, None, edited, timeout, what)

    # --- plumbing ----------------------------------------------------------------------------

    async def _poll(
        self,
        chat_id: int,
        thread_id: int | None,
        ready: Callable[[list[BotMessage]], T | None],
        timeout: float | None,
        what: str,
    ) -> T:
        """Re-read the chat until `ready` returns something, within a deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        while True:
            messages = await self._bot_messages(chat_id, thread_id)
            result = ready(messages)
            if result is not None:
                return result
            if loop.time() >= deadline:
                texts = [(m.message_id, m.content) for m in messages]
                raise AssertionError(f"timed out waiting for {what} in chat {chat_id}: {texts}")
            await asyncio.sleep(POLL_INTERVAL)  # poll interval, bounded by the deadline

    async def _client_call(self, route: str, body: JSON) -> Any:
        """Call the emulator's client API; wake the bot's long poll after a user update."""
        url = f"{self.emulator_url}/{route}"
        async with self._session.post(url, json=body) as response:
            payload = await response.json(content_type=None)
        if response.status != 200 or not payload.get("ok"):
            raise AssertionError(f"emulator refused {route}: {payload}")
        if route.startswith("send"):
            self.layer.notify(self.token)
        return payload.get("result")

    async def _last_user_message_id(self, chat: Chat) -> int:
        """The id the emulator gave the latest user message in `chat`."""
        history = await self._client_call("getUpdatesHistory", {"token": self.token})
        ids = [
            int(item["messageId"])
            for item in history or []
            if isinstance(item.get("message"), dict)
            and (item["message"].get("chat") or {}).get("id") == chat.id
        ]
        if not ids:
            raise AssertionError(f"the emulator did not store the message for chat {chat.id}")
        return max(ids)

    def _parse(self, message_id: int, chat_id: int, raw: JSON) -> BotMessage:
        markup = _decoded(raw.get("reply_markup")) or {}
        rows = (markup.get("inline_keyboard") or []) if isinstance(markup, dict) else []
        buttons = tuple(
            tuple(Button(b["text"], b.get("callback_data"), b.get("url")) for b in row)
            for row in rows
        )
        reply = _decoded(raw.get("reply_parameters")) or {}
        reply_to = reply.get("message_id") if isinstance(reply, dict) else None
        preview = _decoded(raw.get("link_preview_options"))
        photo_sizes = _decoded(raw.get("photo")) or []
        photo = self.layer.files.get(photo_sizes[-1]["file_id"]) if photo_sizes else None
        entities = _decoded(raw.get("entities") or raw.get("caption_entities")) or []
        return BotMessage(
            message_id=message_id,
            chat_id=chat_id,
            text=raw.get("text"),
            caption=raw.get("caption"),
            parse_mode=raw.get("parse_mode"),
            entities=tuple(entities),
            buttons=buttons,
            message_thread_id=_optional_int(raw.get("message_thread_id")),
            reply_to_message_id=_optional_int(reply_to or raw.get("reply_to_message_id")),
            link_preview_disabled=preview.get("is_disabled") if isinstance(preview, dict) else None,
            photo=photo,
            raw=raw,
        )
