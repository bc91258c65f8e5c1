"""Shape checks: does an upstream body still have the fields a parser reads? (for a doctor command)

A shape is a tuple of paths. A path is dot-separated keys; `[]` after a key means "every item
of that list", `[n]` "item n", and `a|b` accepts either name (a field that has two spellings).
Only presence is checked: a null value is present (parsers decide what null means).

    check_shape(body, ("result.list[].symbol", "time"))  ->  []  or  ["time is missing", ...]

A missing key is reported with the close names the object does have, so a rename reads as
"result.list[0].openInterestValue is missing (has: openInterestVal)". CSV bodies are checked by
header with `check_csv_header`.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from collections.abc import Iterable
from typing import Any

from explainers.errors import BadResponse

Shape = tuple[str, ...]

_SEGMENT = re.compile(r"^(?P<key>[^\[\]]*)(?P<index>\[\d*\])?$")


def _near(wanted: list[str], present: Iterable[Any]) -> str:
    keys = [str(k) for k in present]
    close = sorted({m for w in wanted for m in difflib.get_close_matches(w, keys, n=1, cutoff=0.6)})
    return f" (has: {', '.join(close)})" if close else ""


def _walk(value: Any, segments: list[str], where: str, problems: list[str]) -> None:
    if not segments:
        return
    match = _SEGMENT.match(segments[0])
    if match is None:
        raise ValueError(f"bad shape path segment {segments[0]!r}")
    key, index = match.group("key"), match.group("index")
    rest = segments[1:]
    if key:
        names = key.split("|")
        path = f"{where}.{key}" if where else key
        if not isinstance(value, dict):
            problems.append(f"{where or 'the body'} is not an object")
            return
        name = next((n for n in names if n in value), None)
        if name is None:
            problems.append(f"{path} is missing{_near(names, value)}")
            return
        value, where = value[name], (f"{where}.{name}" if where else name)
    if index is None:
        _walk(value, rest, where, problems)
        return
    if not isinstance(value, list):
        problems.append(f"{where or 'the body'} is not a list")
        return
    if index == "[]":
        if not value:
            problems.append(f"{where or 'the body'} is empty")
        for i, item in enumerate(value):
            before = len(problems)
            _walk(item, rest, f"{where}[{i}]", problems)
            if len(problems) > before:
                return  # one item names the drift; the others would repeat it
        return
    position = int(index[1:-1])
    if position >= len(value):
        problems.append(f"{where or 'the body'}[{position}] is missing")
        return
    _walk(value[position], rest, f"{where}[{position}]", problems)


def check_shape(body: Any, shape: Shape) -> list[str]:
    """The drift between a body and the shape a parser expects: [] when it still fits."""
    problems: list[str] = []
    for path in shape:
        segments = path.split(".") if path else []
        # a path may start with an index of the body itself: "[1][]"
        if segments and segments[0].startswith("["):
            head = segments[0]
            parts = re.findall(r"\[\d*\]", head)
            segments = parts + segments[1:]
        _walk(body, segments, "", problems)
    return list(dict.fromkeys(problems))


def check_csv_header(text: str, columns: Iterable[str]) -> list[str]:
    """Header columns (each may be `a|b`) missing from a CSV text, with near names."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in next(reader, [])]
    problems: list[str] = []
    for column in columns:
        names = column.split("|")
        if not any(n in header for n in names):
            problems.append(f"column {column} is missing{_near(names, header)}")
    return problems


def require_shape(body: Any, shape: Shape, source: str) -> None:
    """Raise `BadResponse` naming the first drift, for parsers that need the whole shape."""
    problems = check_shape(body, shape)
    if problems:
        raise BadResponse(source, problems[0])
