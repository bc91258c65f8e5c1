"""Text from outside (a user's query, a feed's headline) made safe to echo in an answer.

Control characters (C0 and C1, except newline and tab) and the bidirectional marks, embeddings,
overrides and isolates (U+061C, U+200E/F, U+202A-U+202E, U+2066-U+2069) are removed: an echoed
U+202E would reverse the rest of our reply on screen, and a control character can break a chat
client's rendering or a terminal.
"""

from __future__ import annotations

import re

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")


def visible(text: str) -> str:
    """`text` without control and bidirectional-override characters (newline and tab kept)."""
    return _UNSAFE.sub("", text)
