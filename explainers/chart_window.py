"""The time span of a sell-off chart, shared by the chart service (which fetches the data) and
the drawing code (which lays out the axes), so that neither imports the other for it."""

from __future__ import annotations

from datetime import timedelta

#: the span a sell-off chart shows
WINDOW = timedelta(hours=24)
