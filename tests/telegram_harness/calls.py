"""A Bot API request as the compatibility layer reads it, and the envelopes it answers with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.web_request import FileField

from .objects import JSON, error_body


@dataclass(frozen=True)
class Upload:
    """A file sent in a multipart body."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Call:
    """One Bot API request as the layer received it."""

    token: str
    method: str
    params: dict[str, Any]
    body: bytes
    content_type: str
    query_string: str = ""

    @property
    def chat_key(self) -> str | None:
        """The chat_id parameter as a string (python-telegram-bot sends it as one)."""
        value = self.params.get("chat_id")
        return None if value is None else str(value)

    def json(self, key: str) -> Any:
        """A parameter decoded from JSON when it is a JSON-encoded string."""
        value = self.params.get(key)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def fields(self) -> JSON:
        """The parameters without uploads."""
        return {k: v for k, v in self.params.items() if not isinstance(v, Upload)}


def ok(result: Any) -> web.Response:
    """A successful Bot API answer."""
    return web.json_response({"ok": True, "result": result})


def fail(error_code: int, description: str, parameters: JSON | None = None) -> web.Response:
    """A Bot API error answer with the matching HTTP status."""
    return web.json_response(error_body(error_code, description, parameters), status=error_code)


async def read_call(request: web.Request) -> Call:
    """Parse a form, JSON or multipart Bot API request."""
    token, method = request.match_info["token"], request.match_info["method"]
    params: dict[str, Any] = dict(request.query)
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, FileField):
                params[key] = Upload(value.filename, value.content_type, value.file.read())
            else:
                params[key] = value
        # Emulator: has no multipart parser, so such bodies reach its handlers empty.
        # Text fields go on as JSON; uploads stay here.
        text_fields = {k: v for k, v in params.items() if not isinstance(v, Upload)}
        body = json.dumps(text_fields).encode()
        return Call(token, method, params, body, "application/json", request.query_string)
    body = await request.read()
    if body and request.content_type == "application/json":
        params.update(json.loads(body))
    elif body:
        params.update(parse_qsl(body.decode(), keep_blank_values=True))
    content_type = request.content_type or "application/x-www-form-urlencoded"
    return Call(token, method, params, body, content_type, request.query_string)
