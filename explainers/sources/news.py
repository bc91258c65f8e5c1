"""Headlines from crypto news RSS feeds and the Federal Reserve's monetary press feed.

Items are tagged to driver keys by the keyword patterns the caller passes, and deduplicated
across feeds. feedparser is lenient where real feeds are sloppy (undeclared namespace prefixes,
CDATA links).
"""

from __future__ import annotations

import asyncio
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
from explainers.safe_text import visible
from explainers.settings import SourceSettings
from explainers.sources import bounds
from explainers.sources.http import USER_AGENT, get, text_body

#: driver key -> the keywords that tag a headline to that driver. The caller passes them in (the
#: drivers own their patterns; a source never imports the drivers, which sit above the sources)
Patterns = Mapping[str, re.Pattern[str]]

# query parameters that only track the click
_TRACKING = re.compile(r"^(utm_\w+|mc_cid|mc_eid|fbclid|gclid)$", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]+>")
_TITLE_JUNK = re.compile(r"[^\w\s]")
_SAME_TITLE = 0.9  # similarity at which two titles are the same story
#: words at each end of a title that key its buckets: a story re-titled by one word keeps
#: either its first or its last words
_EDGE_WORDS = 3
#: kept titles compared per bucket, the latest kept first: copies of a story follow it closely,
#: and a bucket that everyone shares ("bitcoin price today") cannot make the merge quadratic
_BUCKET_DEPTH = 64
#: items read per feed when a Feed does not say (SourceSettings.news_max_items)
DEFAULT_MAX_ITEMS: int = SourceSettings.model_fields["news_max_items"].default


@dataclass(frozen=True)
class Feed:
    key: str
    label: str
    url: str
    max_items: int = DEFAULT_MAX_ITEMS


def feeds(cfg: SourceSettings) -> list[Feed]:
    """The feeds read by default, from the settings."""
    n = cfg.news_max_items
    return [
        Feed("coindesk", "CoinDesk", cfg.coindesk_feed, n),
        Feed("cointelegraph", "Cointelegraph", cfg.cointelegraph_feed, n),
        Feed("decrypt", "Decrypt", cfg.decrypt_feed, n),
        Feed("theblock", "The Block", cfg.theblock_feed, n),
        Feed("fed", "Federal Reserve", cfg.fed_feed, n),
    ]


async def fetch_feed(client: httpx.AsyncClient, feed: Feed, patterns: Patterns) -> Headlines:
    """Read one feed's items as headlines tagged by `patterns`.

    The parse (feedparser is pure Python: a big feed costs seconds of CPU) runs in a worker
    thread, so it never holds the event loop; the body is capped by `http.send`.
    """
    response = await get(client, feed.label, feed.url, headers={"User-Agent": USER_AGENT})
    text_body(response, feed.label)  # an empty body is a bad response, not an empty feed
    return await asyncio.to_thread(
        parse_feed, response.content, feed.label, patterns, feed.max_items
    )


def parse_feed(
    content: bytes, label: str, patterns: Patterns, max_items: int = DEFAULT_MAX_ITEMS
) -> Headlines:
    """An RSS/Atom body to Headlines, at most `max_items`, the newest; as of the newest item (or
    the time it was read). An item dated in the future (beyond a small clock skew) or before
    any crypto news could exist is dropped: its date is wrong, and it would sort first."""
    # a stream, so feedparser never treats the body as a URL or a file name to open
    parsed: Any = feedparser.parse(io.BytesIO(content))
    # an HTML page (a CDN challenge, an error page) parses without a feed version or entries
    if not parsed.entries and not parsed.get("version"):
        raise BadResponse(label, "not an RSS or Atom feed")
    items: list[Headline] = []
    for entry in parsed.entries:
        title = " ".join(visible(str(entry.get("title") or "")).split())
        link = str(entry.get("link") or "").strip()
        if not title or not link:
            continue
        try:
            published = _published(entry, label)
        except BadResponse:
            continue
        summary = _TAGS.sub(" ", str(entry.get("summary") or ""))
        items.append(
            Headline(
                title=title,
                link=clean_link(link),
                feed=label,
                published=published,
                drivers=tag(title, summary, patterns),
            )
        )
    if len(items) > max_items:
        oldest = datetime.min.replace(tzinfo=UTC)
        # newest first; undated items keep their feed order after the dated ones
        items = sorted(items, key=lambda h: h.published or oldest, reverse=True)[:max_items]
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
    if not parts.query:
        return urlunsplit(parts)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def merge(results: Iterable[Headlines], limit: int = 20) -> list[Headline]:
    """Headlines of all feeds, newest first, one per story (same link or near-identical title).

    Of the copies of one story the earliest is kept: that is the original, not a syndication.
    Near-linear: a title is compared only with kept titles that share its bucket (the same
    words in any order, or the same first or last words), at most `_BUCKET_DEPTH` per bucket.
    """
    items = [item for result in results for item in result.items]
    latest = datetime.max.replace(tzinfo=UTC)
    items.sort(key=lambda h: h.published or latest)  # undated copies lose to dated ones
    kept: list[Headline] = []
    links: set[str] = set()
    titles: set[str] = set()
    buckets: dict[object, list[str]] = {}
    # one matcher per kept title that is ever compared, made on first use, with that title as
    # its second sequence: difflib caches what it learns about it for the later comparisons
    matchers: dict[str, SequenceMatcher[str]] = {}

    def same_story(title: str, other: str) -> bool:
        matcher = matchers.get(other)
        if matcher is None:
            matcher = matchers[other] = SequenceMatcher(None, "", other)
        return _matches(matcher, other, title)

    for item in items:
        link = _link_key(item.link)
        title = _title_key(item.title)
        if link in links or title in titles:
            continue
        keys = _bucket_keys(title)
        if any(
            same_story(title, other)
            for key in keys
            for other in reversed(buckets.get(key, [])[-_BUCKET_DEPTH:])
        ):
            continue
        kept.append(item)
        links.add(link)
        titles.add(title)
        for key in keys:
            buckets.setdefault(key, []).append(title)
    oldest = datetime.min.replace(tzinfo=UTC)
    kept.sort(key=lambda h: h.published or oldest, reverse=True)
    return kept[:limit]


def _published(entry: Any, label: str) -> datetime | None:
    """The item's time (None: undated); BadResponse for an implausible one (see `bounds`)."""
    stamp = entry.get("published_parsed") or entry.get("updated_parsed")
    if stamp is None:
        return None
    # feedparser normalises dates to UTC struct_time
    return bounds.from_s(calendar.timegm(stamp), label, "published")


def _link_key(link: str) -> str:
    parts = urlsplit(clean_link(link))
    host = parts.netloc.lower().removeprefix("www.")
    return f"{host}{parts.path.rstrip('/')}?{parts.query}"


def _title_key(title: str) -> str:
    return " ".join(_TITLE_JUNK.sub(" ", title.lower()).split())


def _bucket_keys(title: str) -> tuple[object, ...]:
    words = title.split()
    return (
        frozenset(words),
        ("first", *words[:_EDGE_WORDS]),
        ("last", *words[-_EDGE_WORDS:]),
    )


def _same_title(a: str, b: str) -> bool:
    return a == b or _matches(SequenceMatcher(None, "", b), b, a)


def _matches(kept: SequenceMatcher[str], other: str, title: str) -> bool:
    """Whether `title` is the same story as the kept title `other` (`kept` compares against it)."""
    if 2 * min(len(title), len(other)) < _SAME_TITLE * (len(title) + len(other)):
        return False  # real_quick_ratio's bound, without touching the matcher
    kept.set_seq1(title)
    # the quick upper bounds rule most pairs out before the full comparison
    return (
        kept.real_quick_ratio() >= _SAME_TITLE
        and kept.quick_ratio() >= _SAME_TITLE
        and kept.ratio() >= _SAME_TITLE
    )
