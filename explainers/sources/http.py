"""The one place that turns httpx outcomes into typed results or the project's `SourceError`s."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from explainers.errors import (
    BadResponse,
    RateLimited,
    SourceBlocked,
    SourceTimeout,
    SourceUnavailable,
)

#: sent to every API that accepts a descriptive agent
USER_AGENT = "whydown/0.1 (self-hosted crypto sell-off explainer; python-httpx)"
#: for hosts that refuse non-browser agents (Yahoo, Farside behind its CDN)
BROWSER_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Parse a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


async def get(
    client: httpx.AsyncClient,
    source: str,
    url: str,
    *,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    follow_redirects: bool | None = None,
) -> httpx.Response:
    """GET `url`, returning a 2xx response or raising the matching `SourceError`.

    `follow_redirects` None keeps the client's setting. Pass False with an API key header:
    httpx sends custom headers on to wherever a redirect points, another host included.
    """
    try:
        response = await client.get(
            url,
            params=params,
            headers=headers,
            follow_redirects=httpx.USE_CLIENT_DEFAULT
            if follow_redirects is None
            else follow_redirects,
        )
    except httpx.TimeoutException as err:
        raise SourceTimeout(source, "no answer in time") from err
    except httpx.TransportError as err:
        # the class name says what happened (ConnectError, ReadError...); str(err) may hold the URL
        raise SourceUnavailable(source, f"connection failed ({type(err).__name__})") from err
    status = response.status_code
    if status == 429:
        raise RateLimited(
            source,
            "rate limited (HTTP 429)",
            retry_after_seconds(response.headers.get("Retry-After")),
        )
    if status in (451, 403):
        raise SourceBlocked(source, f"refused from this location (HTTP {status})")
    if status >= 500:
        raise SourceUnavailable(source, f"server error (HTTP {status})")
    if status >= 400:
        raise BadResponse(source, f"request refused (HTTP {status})")
    if status >= 300:
        # not followed (the Location is not named: it is a URL)
        raise BadResponse(source, f"redirected (HTTP {status})")
    return response


def json_body(response: httpx.Response, source: str) -> Any:
    """Decode a JSON body, naming HTML error pages and empty bodies for what they are."""
    text = response.text
    if not text.strip():
        raise BadResponse(source, "empty response")
    if text.lstrip()[:1] == "<":
        raise BadResponse(source, "an HTML page instead of JSON")
    try:
        return json.loads(text)
    except ValueError as err:
        raise BadResponse(source, "malformed JSON") from err


def text_body(response: httpx.Response, source: str) -> str:
    """A non-empty text body (CSV, RSS, HTML)."""
    text = response.text
    if not text.strip():
        raise BadResponse(source, "empty response")
    return text


async def get_json(
    client: httpx.AsyncClient,
    source: str,
    url: str,
    *,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    follow_redirects: bool | None = None,
) -> Any:
    response = await get(
        client, source, url, params=params, headers=headers, follow_redirects=follow_redirects
    )
    return json_body(response, source)


def number(value: Any, source: str, field: str) -> float:
    """A required number (JSON number or numeric string); BadResponse when missing or null."""
    if value is None or value == "":
        raise BadResponse(source, f"{field} is missing")
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise BadResponse(source, f"{field} is not a number") from err


def optional_number(value: Any) -> float | None:
    """A number that may be absent: None (unknown) rather than 0."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def from_ms(value: Any, source: str, field: str) -> datetime:
    return datetime.fromtimestamp(number(value, source, field) / 1000, UTC)


def from_s(value: Any, source: str, field: str) -> datetime:
    return datetime.fromtimestamp(number(value, source, field), UTC)
