"""Bot API JSON shapes that the compatibility layer answers with where the emulator has none."""

from __future__ import annotations

import re
from typing import Any

JSON = dict[str, Any]

# Status names as the Bot API spells them in ChatMember.status.
MEMBER_STATUSES = ("creator", "administrator", "member", "left", "kicked")

# Rights of an administrator unless a test overrides them (all ChatMemberAdministrator fields
# that python-telegram-bot 22 requires, plus the optional ones a group admin usually has).
ADMIN_RIGHTS: JSON = {
    "can_be_edited": False,
    "can_manage_chat": True,
    "can_delete_messages": True,
    "can_manage_video_chats": True,
    "can_restrict_members": True,
    "can_promote_members": False,
    "can_change_info": True,
    "can_invite_users": True,
    "can_post_stories": False,
    "can_edit_stories": False,
    "can_delete_stories": False,
    "can_pin_messages": True,
    "can_manage_topics": True,
}

_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")


def error_body(error_code: int, description: str, parameters: JSON | None = None) -> JSON:
    """The Bot API's error envelope."""
    body: JSON = {"ok": False, "error_code": error_code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


def chat_member(
    user: JSON,
    status: str,
    *,
    is_anonymous: bool = False,
    custom_title: str | None = None,
    rights: JSON | None = None,
) -> JSON:
    """A ChatMember object for `status` (creator, administrator, member, left, kicked)."""
    if status not in MEMBER_STATUSES:
        raise ValueError(f"unsupported chat member status {status!r}; use one of {MEMBER_STATUSES}")
    member: JSON = {"status": status, "user": user}
    if status in ("creator", "administrator"):
        member["is_anonymous"] = is_anonymous
        if custom_title is not None:
            member["custom_title"] = custom_title
    if status == "administrator":
        member.update(ADMIN_RIGHTS)
        member.update(rights or {})
    if status == "kicked":
        member["until_date"] = 0  # 0 = banned for ever
    return member


def chat_full_info(chat: JSON) -> JSON:
    """A ChatFullInfo for a known chat (getChat)."""
    return {
        **chat,
        # Required by the Bot API; the values of a fresh chat with default settings.
        "accent_color_id": 0,
        "max_reaction_count": 11,
        "accepted_gift_types": {
            "unlimited_gifts": False,
            "limited_gifts": False,
            "unique_gifts": False,
            "premium_subscription": False,
            "gifts_from_channels": False,
        },
    }


def command_error(commands: list[JSON]) -> str | None:
    """The Bot API's refusal for an invalid command list, or None when it is valid."""
    for command in commands:
        if not _COMMAND.fullmatch(str(command.get("command", ""))):
            return "Bad Request: BOT_COMMAND_INVALID"
        if not str(command.get("description", "")).strip():
            return "Bad Request: command description must be non-empty"
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, GIF or JPEG image, or None when it is none of them."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk JPEG segments to the start-of-frame marker, which holds the size."""
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            return width, height
        pos += 2 + length
    return None
