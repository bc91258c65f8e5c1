"""How values cross the SQLite boundary: timestamps as text, rows as validated pydantic models.

Times are stored as fixed-format UTC ISO 8601 text (``2024-08-05T08:00:00.000000+00:00``): exact,
readable, and ordered correctly by plain string comparison, so a range query is a text range.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


def stamp(moment: datetime) -> str:
    """The stored text of a timezone-aware time (naive times are refused, not guessed)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: the store keeps timezone-aware UTC times only")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_stamp(text: str | None) -> datetime | None:
    """A stored time back as an aware datetime, or None."""
    return None if text is None else datetime.fromisoformat(text)


def _from_stamp(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _from_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


#: a time column: stored text in, an aware datetime out (also accepts a datetime)
StoredTime = Annotated[datetime, BeforeValidator(_from_stamp)]
#: a list kept as JSON text in one column
StoredList = Annotated[list[str], BeforeValidator(_from_json)]


class Row(BaseModel):
    """A stored row as a model: built with ``Model.model_validate(row)``; columns a model does not
    name are ignored, 0/1 integers validate as booleans."""

    model_config = ConfigDict(frozen=True)
