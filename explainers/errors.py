"""The core's error tree.

    SourceError             an upstream could not give usable data; str() is safe to show a user
    ├── SourceTimeout       no answer within the timeout
    ├── RateLimited         429; carries the server's Retry-After in seconds when it sent one
    ├── SourceBlocked       451/403 from a geo or CDN block: not worth retrying every cycle
    ├── SourceUnavailable   5xx, connection refused, DNS failure
    └── BadResponse         a body we cannot use: not JSON, an HTML error page, fields missing,
                            renamed or null where numbers were expected

Messages never contain URLs or query strings: those can carry API keys.
"""

from __future__ import annotations


class SourceError(Exception):
    """An upstream source could not give usable data."""

    #: short machine-readable kind, used in statuses and logs
    kind = "error"
    #: whether one more attempt in the same refresh may help
    transient = False

    def __init__(self, source: str, detail: str) -> None:
        super().__init__(f"{source}: {detail}")
        self.source = source
        self.detail = detail


class SourceTimeout(SourceError):
    kind = "timeout"
    transient = True


class RateLimited(SourceError):
    kind = "rate-limited"
    transient = True

    def __init__(self, source: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(source, detail)
        self.retry_after = retry_after


class SourceBlocked(SourceError):
    kind = "blocked"


class SourceUnavailable(SourceError):
    kind = "unavailable"
    transient = True


class BadResponse(SourceError):
    kind = "bad-response"


class UnknownCoin(Exception):
    """A coin the market data does not know; carries close matches for the answer."""

    def __init__(self, query: str, suggestions: list[str]) -> None:
        super().__init__(query)
        self.query = query
        self.suggestions = suggestions


class CoinDataUnavailable(Exception):
    """Coins cannot be looked up because the market-data source failed this refresh."""


class ChartUnavailable(Exception):
    """A chart could not be made; str() is safe to show a user, and the text answer still goes out."""
