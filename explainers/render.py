"""Explanation -> plain text, Telegram HTML or a Discord embed, within each platform's limits.

The words live in `templates/`; this module only sets up escaping, fills the templates and trims
to size: a long answer first drops headlines and evidence, then whole lines, never a tag.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined, Undefined, select_autoescape
from markupsafe import Markup

from explainers import formatting as fmt
from explainers import story
from explainers.drivers import figures_of, subject
from explainers.models import Explanation
from explainers.settings import Thresholds

TELEGRAM_LIMIT = 4096
DISCORD_TITLE = 256
DISCORD_DESCRIPTION = 4096
DISCORD_FIELD_NAME = 256
DISCORD_FIELD_VALUE = 1024
DISCORD_FIELDS = 25
DISCORD_FOOTER = 2048
DISCORD_TOTAL = 6000

# embed colours by how many drivers fire
COLOURS = {
    "calm": 0x2ECC71,
    "watch": 0xF1C40F,
    "selloff": 0xE67E22,
    "severe": 0xE74C3C,
    "unknown": 0x95A5A6,
}

# link brackets, emphasis, code, spoilers, quotes and headings; "-" and "()" only matter next to them
_MARKDOWN_SPECIAL = re.compile(r"([\\*_~`|>\[\]#])")


def escape_markdown(text: str) -> str:
    """Escape Discord markdown in untrusted text so it shows literally."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def safe_url(url: str | None) -> str:
    """Only http(s) links go out; anything else (javascript:, data:) is dropped."""
    return url if url and url.startswith(("https://", "http://")) else ""


def _is_none(value: object) -> bool:
    """Jinja's `is none`, except that a misspelt name (say a figure a driver does not have) fails
    loudly instead of reading as "not none"."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value is None


#: "; " between a driver's phrases, not the end of an HTML entity ("Fear &amp; Greed")
_PHRASE_BREAK = re.compile(r"(?<!&amp)(?<!&lt)(?<!&gt)(?<!&#34)(?<!&#39); ")


def first_phrase(parts: str) -> str:
    """The first of a driver's phrases (its key figure), in the markup it came in."""
    first = _PHRASE_BREAK.split(str(parts), maxsplit=1)[0]
    return Markup(first) if isinstance(parts, Markup) else type(parts)(first)


def and_join(items: list[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    items = [str(i) for i in items]
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


def _environment(**options: Any) -> Environment:
    env = Environment(
        loader=PackageLoader("explainers", "templates"),
        trim_blocks=False,
        lstrip_blocks=False,
        keep_trailing_newline=False,
        undefined=StrictUndefined,
        **options,
    )
    env.filters |= {
        "usd": fmt.usd,
        "musd": fmt.musd,
        "pct": fmt.pct,
        "pts": fmt.pts,
        "pts_plain": lambda v: f"{v:.1f} pts",
        "bp": fmt.bp,
        "when": fmt.when,
        "when_full": fmt.when_full,
        "coverage": fmt.liquidation_coverage,
        "day": fmt.day,
        "until": fmt.until,
        "since": fmt.since,
        "day_time": fmt.day_time,
        "share": lambda v: f"{v:.0%}",
        "signed": lambda v: f"{v:+d}",
        "safe_url": safe_url,
        # "done" marks markdown already escaped; outside the markdown environment it changes nothing
        "done": lambda v: v,
        "url": safe_url,
        "subject": subject,
        "and_join": and_join,
        "first_phrase": first_phrase,
        "first_upper": lambda v: v[:1].upper() + v[1:],
    }
    env.tests["none"] = _is_none
    env.globals["t"] = Thresholds()
    # a driver's figures typed as its own (templates/drivers/<key>.j2 read them as attributes)
    env.globals["figures"] = figures_of
    # the summary's grouping: drivers in the order their starts were seen, or by role
    env.globals["sequence"] = story.sequence
    env.globals["fired_as"] = story.fired_as
    return env


class _Escaped(str):
    """Markdown that is already escaped (a phrase macro's output, a vetted URL)."""


def _markdown_finalize(value: Any) -> Any:
    if isinstance(value, _Escaped) or not isinstance(value, str):
        return value
    return escape_markdown(value)


def _markdown_url(url: str | None) -> _Escaped:
    return _Escaped(safe_url(url).replace("(", "%28").replace(")", "%29"))


_TEXT = _environment(autoescape=False)
_HTML = _environment(autoescape=select_autoescape(default=True))
_MARKDOWN = _environment(autoescape=False, finalize=_markdown_finalize)
_MARKDOWN.filters |= {"done": _Escaped, "url": _markdown_url}
# `strong(x)`: bold in each flavour, its argument escaped like any other value
_TEXT.globals["strong"] = str
_HTML.globals["strong"] = lambda value: Markup("<b>%s</b>") % value
_MARKDOWN.globals["strong"] = lambda value: _Escaped(f"**{escape_markdown(str(value))}**")
# how the compact answer names the replay and points to the full answer, in each flavour
_TEXT.globals |= {"replay_word": "REPLAY", "full_answer": "The full answer (--full)"}
_HTML.globals |= {"replay_word": "Replay", "full_answer": "Details"}
_MARKDOWN.globals |= {"replay_word": "Replay", "full_answer": "Details"}
# `emph(x)`: italic in each flavour (plain in text)
_TEXT.globals["emph"] = str
_HTML.globals["emph"] = lambda value: Markup("<i>%s</i>") % value
_MARKDOWN.globals["emph"] = lambda value: _Escaped(
    value if isinstance(value, _Escaped) else f"*{escape_markdown(str(value))}*"
)


def _clean(text: str) -> str:
    """Collapse the blank lines that optional sections leave behind."""
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def _sanitised(e: Explanation) -> Explanation:
    """Drop non-http links an upstream might smuggle in (RSS items, evidence URLs)."""
    headlines = [h.model_copy(update={"link": safe_url(h.link)}) for h in e.headlines]
    drivers = [
        d.model_copy(
            update={
                "headlines": [h.model_copy(update={"link": safe_url(h.link)}) for h in d.headlines],
                "evidence": [
                    ev.model_copy(update={"url": safe_url(ev.url) or None}) for ev in d.evidence
                ],
            }
        )
        for d in e.drivers
    ]
    return e.model_copy(update={"headlines": headlines, "drivers": drivers})


def _render(
    env: Environment,
    name: str,
    e: Explanation,
    t: Thresholds,
    detail: int,
    *,
    headlines: int = 5,
    **values: Any,
) -> str:
    return _clean(
        env.get_template(name).render(
            e=_sanitised(e), t=t, detail=detail, headlines=headlines, **values
        )
    )


def _compact(env: Environment, e: Explanation, t: Thresholds, *, title: bool = True) -> str:
    """The summary, a line per firing driver, the unknowns: the evidence is one press away."""
    return _render(env, "compact.j2", e, t, detail=0, title=title, footer=title)


def text(e: Explanation, t: Thresholds | None = None, *, full: bool = True) -> str:
    """The answer for a terminal: full (every figure with its source and time), or compact."""
    t = t or Thresholds()
    return _render(_TEXT, "answer.txt.j2", e, t, detail=2) if full else _compact(_TEXT, e, t)


def _fit_lines(body: str, footer: str, limit: int) -> str:
    """Drop whole lines from the end of the body until body + footer fit."""
    lines = body.rstrip("\n").split("\n")
    tail = ["…", "", footer]
    # what is joined is lines + tail: the body's length, one newline per remaining line, the tail
    while lines and len("\n".join(lines)) + sum(len(part) + 1 for part in tail) > limit:
        lines.pop()
    return "\n".join([*lines, *tail])


def telegram_html(
    e: Explanation,
    t: Thresholds | None = None,
    limit: int = TELEGRAM_LIMIT,
    *,
    full: bool = True,
) -> str:
    """Telegram HTML (parse_mode=HTML), every dynamic string escaped, at most `limit` characters:
    the full answer (evidence trimmed to fit: driver headlines, then headlines beyond the top 3,
    then evidence), or the compact one."""
    t = t or Thresholds()
    if not full:
        html = _compact(_HTML, e, t)
        if len(html) <= limit:
            return html
        body, sep, footer = html.rpartition("\n<i>Data as of")
        return _fit_lines(body, (sep + footer).lstrip("\n"), limit) if sep else html[:limit]
    for detail, headlines in ((2, 5), (1, 5), (1, 3), (0, 5)):
        html = _render(_HTML, "answer.html.j2", e, t, detail, headlines=headlines)
        if len(html) <= limit:
            return html
    body, sep, footer = html.rpartition("\n<i>Data as of")
    return _fit_lines(body, (sep + footer).lstrip("\n"), limit) if sep else html[:limit]


def _trim(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    cut = value[: limit - 1]
    # cut at a line end when one is near, so a markdown link is not split
    newline = cut.rfind("\n")
    return (cut[:newline] if newline > limit // 2 else cut.rstrip("\\")) + "…"


def colour(e: Explanation) -> int:
    if e.verdict == "unknown":
        return COLOURS["unknown"]
    fired = len(e.fired)
    if e.verdict == "not_down":
        return COLOURS["watch"] if fired else COLOURS["calm"]
    return (
        COLOURS["severe"] if fired >= 4 else COLOURS["selloff"] if fired >= 2 else COLOURS["watch"]
    )


def _macros(env: Environment, template: str, t: Thresholds) -> Callable[..., str]:
    """Call a template's macros by name: `macro("title", e)` is the macro's output, stripped.

    Jinja exposes a template's macros as attributes it adds at run time, so they are looked up
    by name here rather than as attributes the type checker cannot know."""
    module = env.get_template(template).make_module({"t": t})

    def macro(name: str, *args: object) -> str:
        return str(getattr(module, name)(*args)).strip()

    return macro


def discord_embed(
    e: Explanation, t: Thresholds | None = None, *, full: bool = True
) -> dict[str, Any]:
    """A Discord embed as a dict (discord.Embed.from_dict), within every embed limit: the full
    answer (a field per firing driver with its evidence, then context), or the compact one (the
    summary and a line per firing driver, in the description)."""
    t = t or Thresholds()
    safe = _sanitised(e)
    md = _macros(_MARKDOWN, "discord.md.j2", t)
    plain = _macros(_TEXT, "discord.md.j2", t)
    if not full:
        return {
            "title": _trim(plain("title", safe), DISCORD_TITLE),
            "description": _trim(
                _compact(_MARKDOWN, e, t, title=False).strip(), DISCORD_DESCRIPTION
            ),
            "color": colour(safe),
            "fields": [],
            "footer": {"text": _trim(plain("footer", safe), DISCORD_FOOTER)},
            "timestamp": safe.data_time.isoformat(),
        }
    for detail in (2, 1, 0):
        fields: list[dict[str, Any]] = [
            {
                "name": _trim(plain("driver_name", d, i), DISCORD_FIELD_NAME),
                "value": _trim(md("driver_value", d, detail), DISCORD_FIELD_VALUE),
                "inline": False,
            }
            for i, d in enumerate(safe.fired, start=1)
        ]
        extras: list[tuple[str, str, bool]] = [
            ("Altcoins vs BTC", "altcoins", safe.altcoins is not None),
            ("Sentiment", "sentiment", safe.sentiment is not None),
            ("Context", "context", bool(md("context", safe))),
            ("What to watch", "watch", bool(safe.watch)),
            (
                "Headlines",
                "headlines",
                bool(safe.headlines) and detail > 0 and not safe.unexplained,
            ),
        ]
        for name, macro, present in extras:
            if present:
                fields.append(
                    {
                        "name": name,
                        "value": _trim(md(macro, safe), DISCORD_FIELD_VALUE),
                        "inline": False,
                    }
                )
        embed: dict[str, Any] = {
            "title": _trim(plain("title", safe), DISCORD_TITLE),
            "description": _trim(md("description", safe), DISCORD_DESCRIPTION),
            "color": colour(safe),
            "fields": [f for f in fields if f["value"]][:DISCORD_FIELDS],
            "footer": {"text": _trim(plain("footer", safe), DISCORD_FOOTER)},
            "timestamp": safe.data_time.isoformat(),
        }
        if embed_length(embed) <= DISCORD_TOTAL:
            return embed
    # still too long: drop fields from the end (least important first) until it fits
    while embed["fields"] and embed_length(embed) > DISCORD_TOTAL:
        embed["fields"].pop()
    return embed


def embed_length(embed: dict[str, Any]) -> int:
    """Characters Discord counts toward the 6,000 total."""
    return (
        len(embed.get("title", ""))
        + len(embed.get("description", ""))
        + sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
        + len(embed.get("footer", {}).get("text", ""))
    )


Flavour = Literal["text", "html", "markdown"]
_ENVIRONMENTS: dict[str, Environment] = {"text": _TEXT, "html": _HTML, "markdown": _MARKDOWN}


def message(name: str, flavour: Flavour = "text", **values: Any) -> str:
    """One of the short replies in templates/messages.j2, escaped for the flavour's platform."""
    env = _ENVIRONMENTS[flavour]
    module = env.get_template("messages.j2").make_module({"t": values.pop("t", Thresholds())})
    return _clean(str(getattr(module, name)(**values))).strip()
