"""A compatibility layer between python-telegram-bot 22.8 and the telegram-test-api 4.2.1 emulator.

It forwards Bot API calls to the emulator and changes only what the emulator gets wrong or
lacks; every change names the emulator behaviour it addresses. It also holds the per-test
state a test sets up (chats, members, injected errors) and reads back (commands, photos).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientSession, web

from .calls import Call, Upload, fail, ok, read_call
from .objects import JSON, chat_full_info, chat_member, command_error, image_size

HOST = "127.0.0.1"

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are"
    " exactly the same as a current content and reply markup of the message"
)
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request: chat not found",
    403: "Forbidden: bot was blocked by the user",
}
# Message fields a send* result may carry. The emulator echoes every request field
# (chat_id, parse_mode, reply_parameters, ...) back as if it were part of the message.
_MESSAGE_FIELDS = (
    "message_id",
    "text",
    "entities",
    "caption",
    "caption_entities",
    "photo",
    "reply_markup",
    "link_preview_options",
    "message_thread_id",
)
# Fields that python-telegram-bot sends JSON-encoded inside a form body.
_OBJECT_FIELDS = frozenset(
    {"entities", "caption_entities", "reply_markup", "link_preview_options", "photo"}
)


@dataclass
class InjectedError:
    """An error the layer answers instead of the emulator."""

    error_code: int
    description: str
    parameters: JSON | None = None
    times: int | None = None  # None: every matching call


@dataclass
class _Sent:
    """A message the bot sent, as the Bot API returned it, and the parse mode it used."""

    message: JSON
    parse_mode: str | None


class CompatLayer:
    """An aiohttp server on loopback that fronts the emulator's Bot API."""

    def __init__(self, emulator_url: str, *, host: str = HOST) -> None:
        self.emulator_url = emulator_url.rstrip("/")
        self.host = host
        self.port = 0
        self.calls: list[Call] = []
        self.chats: dict[str, JSON] = {}
        self.files: dict[str, bytes] = {}
        self._users: dict[int, JSON] = {}
        self._bot_users: dict[str, JSON] = {}
        self._members: dict[tuple[str, int], JSON] = {}
        self._commands: dict[str, list[JSON]] = {}
        self._errors: dict[tuple[str, str], InjectedError] = {}
        self._sent: dict[tuple[str, int], _Sent] = {}
        self._updates: defaultdict[str, list[JSON]] = defaultdict(list)
        self._arrived: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._closing = asyncio.Event()
        self._session: ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._handlers = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "answercallbackquery": self._answer_true,
            "deletemessage": self._answer_true,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "getchatmember": self._get_chat_member,
            "getchat": self._get_chat,
            "sendchataction": self._send_chat_action,
            "sendphoto": self._send_photo,
        }

    @property
    def url(self) -> str:
        """Root URL of the layer; the Bot API is under /bot<token>/<method>."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._session = ClientSession()
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._bot_api)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, 0).start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Release waiting long polls, stop serving and close the emulator session."""
        self._closing.set()
        for event in self._arrived.values():
            event.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- state a test sets up or reads -------------------------------------------------------

    def add_chat(self, chat: JSON) -> None:
        """Declare a chat (getChat answers it; sent messages carry it)."""
        self.chats[str(chat["id"])] = chat

    def set_member(
        self,
        chat_id: int,
        user: JSON,
        status: str,
        *,
        is_anonymous: bool = False,
        custom_title: str | None = None,
        **rights: bool,
    ) -> None:
        """Give `user` a role in a chat, as getChatMember will report it."""
        self._users[int(user["id"])] = user
        self._members[(str(chat_id), int(user["id"]))] = chat_member(
            user, status, is_anonymous=is_anonymous, custom_title=custom_title, rights=rights
        )

    def inject_error(
        self,
        chat_id: int | str,
        *,
        method: str | None = None,
        error_code: int = 403,
        description: str | None = None,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
        times: int | None = None,
    ) -> None:
        """Answer calls for `chat_id` (of `method`, or any method) with a Bot API error."""
        parameters: JSON = {}
        if retry_after is not None:
            parameters["retry_after"] = retry_after
            description = description or f"Too Many Requests: retry after {retry_after}"
        if migrate_to_chat_id is not None:
            parameters["migrate_to_chat_id"] = migrate_to_chat_id
            description = description or "Bad Request: group chat was upgraded to a supergroup chat"
        description = description or _DEFAULT_DESCRIPTIONS.get(error_code)
        if description is None:
            raise ValueError(f"give a description for error code {error_code}")
        key = ((method or "*").lower(), str(chat_id))
        self._errors[key] = InjectedError(error_code, description, parameters or None, times)

    def clear_errors(self) -> None:
        """Remove every injected error."""
        self._errors.clear()

    def commands(self, *, scope: JSON | None = None, language_code: str = "") -> list[JSON]:
        """The commands the bot set for a scope and language (as getMyCommands answers)."""
        return list(self._commands.get(_commands_key(scope, language_code), []))

    def bot_user(self, token: str) -> JSON | None:
        """The bot's User as getMe answered it, once the bot has called getMe."""
        return self._bot_users.get(token)

    def notify(self, token: str) -> None:
        """Wake long polls of `token`: the emulator has new updates for it."""
        self._arrived[token].set()

    # --- request handling --------------------------------------------------------------------

    async def _bot_api(self, request: web.Request) -> web.StreamResponse:
        call = await read_call(request)
        self.calls.append(call)
        injected = self._take_injected(call)
        if injected is not None:
            return fail(injected.error_code, injected.description, injected.parameters)
        handler = self._handlers.get(call.method.lower())
        if handler is None:
            response, _ = await self._forward(call)
            return response
        return await handler(call)

    def _take_injected(self, call: Call) -> InjectedError | None:
        chat_key = call.chat_key
        if chat_key is None:
            return None
        for key in ((call.method.lower(), chat_key), ("*", chat_key)):
            injected = self._errors.get(key)
            if injected is None:
                continue
            if injected.times is not None:
                injected.times -= 1
                if injected.times <= 0:
                    del self._errors[key]
            return injected
        return None

    async def _forward(
        self, call: Call, payload: JSON | None = None, *, method: str | None = None
    ) -> tuple[web.Response, Any]:
        """Send the call (or `payload` as JSON) to the emulator.

        Returns the emulator's answer untouched, and its `result` when it answered ok.
        """
        assert self._session is not None
        url = f"{self.emulator_url}/bot{call.token}/{method or call.method}"
        if call.query_string:
            url = f"{url}?{call.query_string}"
        if payload is None:
            data, content_type = call.body, call.content_type
        else:
            data, content_type = json.dumps(payload).encode(), "application/json"
        async with self._session.post(url, data=data, headers={"Content-Type": content_type}) as r:
            raw = await r.read()
            response = web.Response(body=raw, status=r.status, content_type=r.content_type)
        try:
            body = json.loads(raw)
        except ValueError:
            return response, None
        if r.status != 200 or not isinstance(body, dict) or not body.get("ok"):
            return response, None
        return response, body.get("result")

    async def _get_me(self, call: Call) -> web.Response:
        response, result = await self._forward(call)
        if not isinstance(result, dict):
            return response
        # Emulator: getMe lacks is_bot, which python-telegram-bot's User requires.
        result["is_bot"] = True
        self._bot_users[call.token] = result
        self._users[int(result["id"])] = result
        return ok(result)

    async def _get_updates(self, call: Call) -> web.Response:
        # Emulator: getUpdates ignores offset and timeout, answers at once, and marks what it
        # hands out as read (so a poll left over from a previous run can swallow an update).
        # The layer keeps every update it pulled until a later offset confirms it, and waits
        # up to `timeout` for new ones, woken by notify().
        offset = int(call.json("offset") or 0)
        limit = int(call.json("limit") or 100)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, float(call.json("timeout") or 0))
        arrived = self._arrived[call.token]
        while True:
            arrived.clear()
            await self._pull_updates(call.token)
            pending = self._confirm(call.token, offset)
            remaining = deadline - loop.time()
            if pending or remaining <= 0 or self._closing.is_set():
                return ok(pending[:limit])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), remaining)

    async def _pull_updates(self, token: str) -> None:
        assert self._session is not None
        url = f"{self.emulator_url}/bot{token}/getUpdates"
        async with self._session.post(url, json={}) as response:
            body = await response.json()
        buffer = self._updates[token]
        buffer.extend(self._fix_update(update) for update in body.get("result") or [])
        buffer.sort(key=lambda update: int(update["update_id"]))

    def _confirm(self, token: str, offset: int) -> list[JSON]:
        """Forget updates confirmed by `offset` (Bot API semantics) and return the rest."""
        buffer = self._updates[token]
        if offset < 0:
            del buffer[: max(0, len(buffer) + offset)]
        elif offset > 0:
            buffer[:] = [update for update in buffer if int(update["update_id"]) >= offset]
        return list(buffer)

    def _fix_update(self, update: JSON) -> JSON:
        message = update.get("message")
        if isinstance(message, dict):
            # Emulator: copies the client's routing field `botToken` into the message.
            message.pop("botToken", None)
            self._learn(message)
            # Emulator: every user update is a `message`; the Bot API delivers a channel's
            # messages as `channel_post`.
            if (message.get("chat") or {}).get("type") == "channel":
                update["channel_post"] = update.pop("message")
        query = update.get("callback_query")
        if isinstance(query, dict):
            origin = query.get("message") or {}
            self._learn({"from": query.get("from"), "chat": origin.get("chat")})
            # Emulator: callback queries lack chat_instance, which CallbackQuery requires.
            chat_id = (origin.get("chat") or {}).get("id", (query.get("from") or {}).get("id"))
            query.setdefault("chat_instance", f"chat-instance-{chat_id}")
        return update

    def _learn(self, message: JSON) -> None:
        """Remember chats and users seen in updates (getChat and getChatMember answer them)."""
        for chat in (message.get("chat"), message.get("sender_chat")):
            if isinstance(chat, dict) and "id" in chat:
                self.chats.setdefault(str(chat["id"]), chat)
        user = message.get("from")
        if isinstance(user, dict) and "id" in user:
            self._users.setdefault(int(user["id"]), user)

    async def _send_message(self, call: Call) -> web.Response:
        response, result = await self._forward(call)
        if not isinstance(result, dict):
            return response
        return ok(self._as_message(call, result))

    def _as_message(self, call: Call, echoed: JSON) -> JSON:
        """Turn the emulator's echo of a send request into the Message the Bot API returns."""
        message: JSON = {}
        for key in _MESSAGE_FIELDS:
            value = echoed.get(key)
            if isinstance(value, str) and key in _OBJECT_FIELDS:
                # Emulator: echoes JSON-encoded form fields (link_preview_options, ...) as
                # strings, which python-telegram-bot cannot parse.
                value = json.loads(value)
            if value is not None:
                message[key] = value
        # Emulator: `date` is in milliseconds; the Bot API uses Unix seconds.
        message["date"] = int(echoed["date"]) // 1000
        # Emulator: `chat` is always {"type": "private", "first_name": "Bot"}; use the real one.
        chat = self.chats.get(call.chat_key or "") or echoed["chat"]
        message["chat"] = chat
        if chat.get("type") == "channel":
            message["sender_chat"] = chat
        elif (bot := self._bot_users.get(call.token)) is not None:
            message["from"] = bot  # Emulator: names no sender.
        if "message_thread_id" in message:
            # Emulator: echoes message_thread_id as the form's string.
            message["message_thread_id"] = int(message["message_thread_id"])
            if chat.get("is_forum"):
                message["is_topic_message"] = True
        parse_mode = call.params.get("parse_mode")
        self._sent[(str(chat["id"]), int(message["message_id"]))] = _Sent(message, parse_mode)
        return message

    async def _edit_message_text(self, call: Call) -> web.Response:
        if call.chat_key is None:  # an inline message: not tracked here
            response, _ = await self._forward(call)
            return response
        key = (call.chat_key, int(call.json("message_id") or 0))
        sent = self._sent.get(key)
        if sent is None:
            return fail(400, "Bad Request: message to edit not found")
        if "text" not in sent.message:
            return fail(400, "Bad Request: there is no text in the message to edit")
        old = sent.message
        text, parse_mode = str(call.params.get("text", "")), call.params.get("parse_mode")
        entities, markup = call.json("entities"), call.json("reply_markup")
        before = (old["text"], sent.parse_mode, old.get("entities"), old.get("reply_markup"))
        # Emulator: accepts an edit that changes nothing; the Bot API refuses it.
        if (text, parse_mode, entities, markup) == before:
            return fail(400, NOT_MODIFIED)
        edited = {k: v for k, v in old.items() if k not in ("entities", "link_preview_options")}
        edited.update(text=text, edit_date=int(time.time()))
        _set_or_drop(edited, "entities", entities)
        _set_or_drop(edited, "reply_markup", markup)
        _set_or_drop(edited, "link_preview_options", call.json("link_preview_options"))
        # Emulator: merges the edit into the stored message, so fields the edit leaves out
        # (an inline keyboard, a parse mode) survive it; the Bot API drops them.
        payload = {
            **call.fields(),
            "parse_mode": parse_mode,
            "entities": entities,
            "link_preview_options": call.json("link_preview_options"),
            "reply_markup": markup or {"inline_keyboard": []},
        }
        response, _ = await self._forward(call, payload)
        if response.status != 200:
            return response
        self._sent[key] = _Sent(edited, parse_mode)
        # Emulator: editMessageText answers null; the Bot API returns the edited message.
        return ok(edited)

    async def _edit_message_reply_markup(self, call: Call) -> web.Response:
        if call.chat_key is None:
            response, _ = await self._forward(call)
            return response
        key = (call.chat_key, int(call.json("message_id") or 0))
        sent = self._sent.get(key)
        if sent is None:
            return fail(400, "Bad Request: message to edit not found")
        markup = call.json("reply_markup")
        # Emulator: accepts an edit that changes nothing; the Bot API refuses it.
        if markup == sent.message.get("reply_markup"):
            return fail(400, NOT_MODIFIED)
        edited = {**sent.message, "edit_date": int(time.time())}
        _set_or_drop(edited, "reply_markup", markup)
        # Emulator: ignores an edit without an inline keyboard; the Bot API removes the old one.
        payload = {**call.fields(), "reply_markup": markup or {"inline_keyboard": []}}
        response, _ = await self._forward(call, payload)
        if response.status != 200:
            return response
        self._sent[key] = _Sent(edited, sent.parse_mode)
        # Emulator: editMessageReplyMarkup answers null; the Bot API returns the message.
        return ok(edited)

    async def _answer_true(self, call: Call) -> web.Response:
        response, _ = await self._forward(call)
        if response.status != 200:
            return response
        # Emulator: answers null where the Bot API answers true.
        return ok(True)

    async def _set_my_commands(self, call: Call) -> web.Response:
        # Emulator: has no setMyCommands.
        commands = call.json("commands") or []
        if not isinstance(commands, list):
            return fail(400, "Bad Request: can't parse commands JSON object")
        error = command_error(commands)
        if error is not None:
            return fail(400, error)
        key = _commands_key(call.json("scope"), str(call.params.get("language_code") or ""))
        self._commands[key] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return ok(True)

    async def _get_my_commands(self, call: Call) -> web.Response:
        # Emulator: has no getMyCommands.
        key = _commands_key(call.json("scope"), str(call.params.get("language_code") or ""))
        return ok(self._commands.get(key, []))

    async def _delete_my_commands(self, call: Call) -> web.Response:
        # Emulator: has no deleteMyCommands.
        key = _commands_key(call.json("scope"), str(call.params.get("language_code") or ""))
        self._commands.pop(key, None)
        return ok(True)

    async def _get_chat_member(self, call: Call) -> web.Response:
        # Emulator: has no getChatMember; answer from the roles the test set.
        chat = self.chats.get(call.chat_key or "")
        if chat is None:
            return fail(400, "Bad Request: chat not found")
        user_id = int(call.json("user_id") or 0)
        member = self._members.get((str(chat["id"]), user_id))
        if member is not None:
            return ok(member)
        user = self._users.get(user_id)
        if user is None:
            return fail(400, "Bad Request: user not found")
        # Without a declared role: the bot and a private chat's own user are members.
        is_bot = user_id in {int(bot["id"]) for bot in self._bot_users.values()}
        own_chat = chat.get("type") == "private" and int(chat["id"]) == user_id
        return ok(chat_member(user, "member" if is_bot or own_chat else "left"))

    async def _get_chat(self, call: Call) -> web.Response:
        # Emulator: has no getChat; answer from the chats the test declared or updates named.
        chat = self.chats.get(call.chat_key or "")
        if chat is None:
            return fail(400, "Bad Request: chat not found")
        return ok(chat_full_info(chat))

    async def _send_chat_action(self, call: Call) -> web.Response:
        # Emulator: has no sendChatAction; a typing indicator has nothing to record.
        return ok(True)

    async def _send_photo(self, call: Call) -> web.Response:
        # Emulator: has no sendPhoto. The layer keeps the bytes and stores the message through
        # the emulator's sendMessage, so the client API lists it with the other replies.
        photo = call.params.get("photo")
        if isinstance(photo, Upload):
            data, file_id = photo.data, f"photo-{uuid.uuid4().hex}"
        elif isinstance(photo, str) and photo in self.files:
            data, file_id = self.files[photo], photo
        else:  # a URL or an unknown file_id: nothing on loopback can fetch it
            return fail(400, "Bad Request: wrong file identifier/HTTP URL specified")
        size = image_size(data)
        if size is None:
            return fail(400, "Bad Request: IMAGE_PROCESS_FAILED")
        self.files[file_id] = data
        payload = {k: v for k, v in call.fields().items() if k != "photo"}
        payload["photo"] = [
            {
                "file_id": file_id,
                "file_unique_id": hashlib.sha256(data).hexdigest()[:16],
                "width": size[0],
                "height": size[1],
                "file_size": len(data),
            }
        ]
        response, result = await self._forward(call, payload, method="sendMessage")
        if not isinstance(result, dict):
            return response
        return ok(self._as_message(call, result))


def _commands_key(scope: Any, language_code: str) -> str:
    """The key of a command list: its scope (default when absent) and language."""
    scope = scope if isinstance(scope, dict) else {"type": "default"}
    return f"{json.dumps(scope, sort_keys=True)}|{language_code}"


def _set_or_drop(message: JSON, key: str, value: Any) -> None:
    if value:
        message[key] = value
    else:
        message.pop(key, None)
