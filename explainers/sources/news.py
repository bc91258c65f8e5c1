"""Headlines from crypto news RSS feeds and the Federal Reserve's monetary press feed.

Items are tagged to driver keys by the keyword patterns the caller passes, and deduplicated
across feeds. feedparser is lenient where real feeds are sloppy (undeclared namespace prefixes,
CDATA links).
"""

from __future__ import annotations

import calendar
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from difflib import SequenceMatcher
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import feedparser
import httpx

from explainers.errors import BadResponse
from explainers.models import Headline, Headlines
from explainers.settings import SourceSettings
from explainers.sources.http import USER_AGENT, get, text_body

#: driver key -> the keywords that tag a headline to that driver. The caller passes them in (the
#: drivers own their patterns; a source never imports the drivers, which sit above the sources)
Patterns = Mapping[str, re.Pattern[str]]

# query parameters that only track the click
_TRACKING = re.compile(r"^(utm_\w+|mc_cid|mc_eid|fbclid|gclid)$", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]+>")
_TITLE_JUNK = re.compile(r"[^\w\s]")
_SAME_TITLE = 0.9  # similarity at which two titles are the same story


@dataclass(frozen=True)
class Feed:
    key: str
    label: str
    url: str


def feeds(cfg: SourceSettings) -> list[Feed]:
    """The feeds read by default, from the settings."""
    return [
        Feed("coindesk", "CoinDesk", cfg.coindesk_feed),
        Feed("cointelegraph", "Cointelegraph", cfg.cointelegraph_feed),
        Feed("decrypt", "Decrypt", cfg.decrypt_feed),
        Feed("theblock", "The Block", cfg.theblock_feed),
        Feed("fed", "Federal Reserve", cfg.fed_feed),
    ]


async def fetch_feed(client: httpx.AsyncClient, feed: Feed, patterns: Patterns) -> Headlines:
    """Read one feed's items as headlines tagged by `patterns`."""
    response = await get(client, feed.label, feed.url, headers={"User-Agent": USER_AGENT})
    text_body(response, feed.label)  # an empty body is a bad response, not an empty feed
    return parse_feed(response.content, feed.label, patterns)


def parse_feed(content: bytes, label: str, patterns: Patterns) -> Headlines:
    """An RSS/Atom body to Headlines; as of the newest item (or the time it was read)."""
    # a stream, so feedparser never treats the body as a URL or a file name to open
    parsed: Any = feedparser.parse(io.BytesIO(content))
    # an HTML page (a CDN challenge, an error page) parses without a feed version or entries
    if not parsed.entries and not parsed.get("version"):
        raise BadResponse(label, "not an RSS or Atom feed")
    items: list[Headline] = []
    for entry in parsed.entries:
        title = " ".join(str(entry.get("title") or "").split())
        link = str(entry.get("link") or "").strip()
        if not title or not link:
            continue
        summary = _TAGS.sub(" ", str(entry.get("summary") or ""))
        items.append(
            Headline(
                title=title,
                link=clean_link(link),
                feed=label,
                published=_published(entry),
                drivers=tag(title, summary, patterns),
            )
        )
    dated = [h.published for h in items if h.published is not None]
    as_of = max(dated) if dated else datetime.now(UTC)
    return Headlines(source=label, as_of=as_of, items=items)


def tag(title: str, summary: str, patterns: Patterns) -> list[str]:
    """Driver keys whose keywords appear in the title or summary, in the order of `patterns`."""
    text = f"{title}\n{summary}"
    return [key for key, pattern in patterns.items() if pattern.search(text)]


def clean_link(link: str) -> str:
    """The link without click-tracking query parameters (utm_*, ...)."""
    parts = urlsplit(link)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def merge(results: Iterable[Headlines], limit: int = 20) -> list[Headline]:
    """Headlines of all feeds, newest first, one per story (same link or near-identical title).

    Of the copies of one story the earliest is kept: that is the original, not a syndication.
    """
    items = [item for result in results for item in result.items]
    latest = datetime.max.replace(tzinfo=UTC)
    items.sort(key=lambda h: h.published or latest)  # undated copies lose to dated ones
    kept: list[Headline] = []
    links: set[str] = set()
    titles: list[str] = []
    for item in items:
        link = _link_key(item.link)
        title = _title_key(item.title)
        if link in links or any(_same_title(title, t) for t in titles):
            continue
        kept.append(item)
        links.add(link)
        titles.append(title)
    oldest = datetime.min.replace(tzinfo=UTC)
    kept.sort(key=lambda h: h.published or oldest, reverse=True)
    return kept[:limit]


def _published(entry: Any) -> datetime | None:
    stamp = entry.get("published_parsed") or entry.get("updated_parsed")
    if stamp is None:
        return None
    # feedparser normalises dates to UTC struct_time
    return datetime.fromtimestamp(calendar.timegm(stamp), UTC)


def _link_key(link: str) -> str:
    parts = urlsplit(clean_link(link))
    host = parts.netloc.lower().removeprefix("www.")
    return f"{host}{parts.path.rstrip('/')}?{parts.query}"


def _title_key(title: str) -> str:
    return " ".join(_TITLE_JUNK.sub(" ", title.lower()).split())


def _same_title(a: str, b: str) -> bool:
    return a == b or SequenceMatcher(None, a, b).ratio() >= _SAME_TITLE
