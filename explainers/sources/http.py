"""The one place that turns httpx outcomes into typed results or the project's `SourceError`s."""

from __future__ import annotations

import json
import math
import time
import weakref
from collections.abc import Callable
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
from explainers.settings import SourceSettings
from explainers.sources import bounds

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


#: markers of a CDN bot challenge (Cloudflare's "Just a moment..." interstitial) in a page
_CHALLENGE_MARKERS = (
    "just a moment",
    "cf-challenge",
    "challenge-platform",
    "cf_chl_",
    "attention required! | cloudflare",
)


def bot_challenge(response: httpx.Response) -> bool:
    """Whether a response is a CDN bot challenge rather than the resource (any status).

    Cloudflare marks its challenges with `cf-mitigated: challenge`; older or proxied pages are
    recognised by their markup. JSON and CSV bodies never contain these markers.
    """
    if response.headers.get("cf-mitigated", "").lower() == "challenge":
        return True
    head = response.text[:4000].lstrip()
    if head[:1] != "<":
        return False
    lowered = head.lower()
    return any(marker in lowered for marker in _CHALLENGE_MARKERS)


def challenge_error(source: str) -> SourceBlocked:
    return SourceBlocked(source, "bot challenge (Cloudflare) instead of data")


#: the body cap of each client (set from `SourceSettings.max_body_bytes` where the client is
#: made); a client without one gets the settings' default
_BODY_LIMITS: weakref.WeakKeyDictionary[httpx.AsyncClient, int] = weakref.WeakKeyDictionary()
DEFAULT_MAX_BODY_BYTES: int = SourceSettings.model_fields["max_body_bytes"].default


def limit_body(client: httpx.AsyncClient, max_bytes: int) -> httpx.AsyncClient:
    """Cap the body of every response `client` reads through this module at `max_bytes`."""
    _BODY_LIMITS[client] = max_bytes
    return client


def body_limit(client: httpx.AsyncClient) -> int:
    return _BODY_LIMITS.get(client, DEFAULT_MAX_BODY_BYTES)


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:g} MB" if n >= 1024 * 1024 else f"{n / 1024:g} KB"


async def _read_capped(response: httpx.Response, source: str, max_bytes: int) -> bytes:
    """The (decoded) body, read chunk by chunk and given up as soon as it passes `max_bytes`:
    a declared Content-Length over the cap is refused before any of the body is read."""
    too_big = BadResponse(source, f"body larger than {_size(max_bytes)}")
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_big
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.aiter_bytes():
        total += len(chunk)
        if total > max_bytes:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _with_body(response: httpx.Response, content: bytes) -> httpx.Response:
    """A read response holding `content` (already decoded, so without the encoding headers)."""
    dropped = {"content-encoding", "content-length", "transfer-encoding"}
    return httpx.Response(
        response.status_code,
        headers=[(k, v) for k, v in response.headers.multi_items() if k.lower() not in dropped],
        content=content,
        request=response.request,
        history=response.history,
        extensions=response.extensions,
    )


async def send(
    client: httpx.AsyncClient,
    source: str,
    method: str,
    url: str,
    *,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    json_payload: Any = None,
    follow_redirects: bool | None = None,
) -> httpx.Response:
    """Send one request and return the response whatever its status; transport failures become
    `SourceTimeout`/`SourceUnavailable`. For callers that treat some statuses themselves.

    The body is streamed and refused ("body larger than 5 MB": a bad response) once it passes
    the client's cap (`limit_body`), so an oversized answer is never held in memory.
    """
    try:
        request = client.build_request(
            method, url, params=params, headers=headers, json=json_payload
        )
        response = await client.send(
            request,
            stream=True,
            follow_redirects=httpx.USE_CLIENT_DEFAULT
            if follow_redirects is None
            else follow_redirects,
        )
        try:
            content = await _read_capped(response, source, body_limit(client))
        finally:
            await response.aclose()
    except httpx.TimeoutException as err:
        raise SourceTimeout(source, "no answer in time") from err
    except httpx.TransportError as err:
        # the class name says what happened (ConnectError, ReadError...); str(err) may hold the URL
        raise SourceUnavailable(source, f"connection failed ({type(err).__name__})") from err
    except httpx.DecodingError as err:
        raise BadResponse(source, "the body could not be decompressed") from err
    return _with_body(response, content)


def check_status(
    response: httpx.Response, source: str, *, challenge_blocks: bool = False
) -> httpx.Response:
    """A 2xx response, or the `SourceError` its status means.

    With `challenge_blocks`, a CDN bot challenge (200, 403 or 503 with Cloudflare's
    interstitial) is `SourceBlocked` ("bot challenge"), for hosts known to put one up: a
    challenge does not clear by retrying. Elsewhere an HTML page stays a bad response.
    """
    status = response.status_code
    if challenge_blocks and status in (200, 403, 503) and bot_challenge(response):
        raise challenge_error(source)
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


async def get(
    client: httpx.AsyncClient,
    source: str,
    url: str,
    *,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    follow_redirects: bool | None = None,
    challenge_blocks: bool = False,
) -> httpx.Response:
    """GET `url`, returning a 2xx response or raising the matching `SourceError`.

    `follow_redirects` None keeps the client's setting. Pass False with an API key header:
    httpx sends custom headers on to wherever a redirect points, another host included.
    `challenge_blocks`: see `check_status`.
    """
    response = await send(
        client,
        source,
        "GET",
        url,
        params=params,
        headers=headers,
        follow_redirects=follow_redirects,
    )
    return check_status(response, source, challenge_blocks=challenge_blocks)


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


def csv_body(response: httpx.Response, source: str) -> str:
    """A non-empty CSV body; an HTML page (a login, limit or error page served with HTTP 200) is
    a bad response, never parsed as CSV."""
    text = text_body(response, source)
    if text.lstrip("\ufeff \t\r\n")[:1] == "<":
        raise BadResponse(source, "an HTML page instead of CSV")
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


async def post_json(
    client: httpx.AsyncClient,
    source: str,
    url: str,
    payload: Any,
    *,
    headers: dict[str, str] | None = None,
) -> Any:
    """POST a JSON payload and decode the JSON answer (errors as for `get_json`)."""
    response = await send(client, source, "POST", url, headers=headers, json_payload=payload)
    return json_body(check_status(response, source), source)


def number(value: Any, source: str, field: str) -> float:
    """A required finite number (JSON number or numeric string); BadResponse when missing, null,
    not a number, NaN or infinite. Parsers read figures through `bounds`, which also checks
    what the number measures."""
    return bounds.number(value, source, field)


def optional_number(value: Any) -> float | None:
    """A number that may be absent: None (unknown) rather than 0; NaN and infinities are not
    numbers either. Only for values that are not figures (offsets, trading-period edges)."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return result if math.isfinite(result) else None


def from_ms(value: Any, source: str, field: str) -> datetime:
    """A UTC time from epoch milliseconds, plausible (see `bounds.moment`)."""
    return bounds.from_ms(value, source, field)


def from_s(value: Any, source: str, field: str) -> datetime:
    """A UTC time from epoch seconds, plausible (see `bounds.moment`)."""
    return bounds.from_s(value, source, field)


class CircuitBreaker:
    """Stops asking a host that rate limited us: after `trip()`, `check()` raises `RateLimited`
    at once, without a request, until `open_for_s` (or a longer Retry-After) has passed.

    One instance per host and process; `clock` is monotonic seconds (injectable for tests).
    """

    def __init__(self, open_for_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.open_for_s = open_for_s
        self._clock = clock
        self._open_until: float | None = None

    def remaining(self) -> float:
        """Seconds the breaker stays open (0 when closed)."""
        if self._open_until is None:
            return 0.0
        left = self._open_until - self._clock()
        if left <= 0:
            self._open_until = None
            return 0.0
        return left

    def is_open(self) -> bool:
        return self.remaining() > 0

    def trip(self, retry_after: float | None = None) -> None:
        self._open_until = self._clock() + max(self.open_for_s, retry_after or 0.0)

    def reset(self) -> None:
        self._open_until = None

    def check(self, source: str) -> None:
        left = self.remaining()
        if left > 0:
            raise RateLimited(
                source, f"paused after a rate limit ({left:.0f} s left)", retry_after=left
            )
