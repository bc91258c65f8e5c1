"""A scripted websocket venue on 127.0.0.1 for the stream tests, plus a recording sink, a fake
clock and a fake sleep.

Each accepted connection runs the script given for its number (the last script repeats); a
venue can instead refuse every handshake with an HTTP status and body (Binance's 451).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from explainers.streams import LiquidationEvent, StreamGap

FIXTURES = Path(__file__).parent / "fixtures" / "api"


def fixture(name: str) -> str:
    """A recorded frame, as it came."""
    return (FIXTURES / name).read_text()


@dataclass
class Connection:
    """One accepted socket, as a script sees it."""

    number: int
    ws: ServerConnection
    received: list[str] = field(default_factory=list)

    async def recv(self) -> str:
        message = await self.ws.recv()
        text = message if isinstance(message, str) else message.decode()
        self.received.append(text)
        return text

    async def send(self, *frames: str | bytes) -> None:
        for frame in frames:
            await self.ws.send(frame)

    async def answer_pings(self, is_ping: Callable[[str], bool], pong: str | None) -> None:
        """Read until the client leaves, answering its pings with `pong` (None: stay silent)."""
        try:
            while True:
                text = await self.recv()
                if pong is not None and is_ping(text):
                    await self.send(pong)
        except ConnectionClosed:
            pass

    def pings(self, is_ping: Callable[[str], bool]) -> int:
        return sum(1 for text in self.received if is_ping(text))


Script = Callable[[Connection], Awaitable[None]]


class FakeVenue:
    """`async with FakeVenue(scripts) as venue:` then point a client at `venue.url`."""

    def __init__(
        self,
        scripts: Sequence[Script] = (),
        *,
        refuse: tuple[int, str] | None = None,
        path: str = "/",
    ) -> None:
        self.scripts = list(scripts)
        self.refuse = refuse
        self.path = path
        self.handshakes = 0
        self.connections: list[Connection] = []
        self.connected = asyncio.Condition()
        self._server: Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}{self.path}"

    async def __aenter__(self) -> FakeVenue:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            ping_interval=None,
            close_timeout=0.5,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes += 1
        if self.refuse is None:
            return None
        status, body = self.refuse
        headers = Headers([("Content-Type", "application/json")])
        return Response(status, HTTPStatus(status).phrase, headers, body.encode())

    async def _handle(self, ws: ServerConnection) -> None:
        connection = Connection(len(self.connections) + 1, ws)
        self.connections.append(connection)
        async with self.connected:
            self.connected.notify_all()
        script = self.scripts[min(connection.number, len(self.scripts)) - 1]
        with contextlib.suppress(ConnectionClosed):
            await script(connection)

    async def connection(self, number: int) -> Connection:
        """Wait until connection `number` (1-based) is accepted."""
        async with self.connected:
            await self.connected.wait_for(lambda: len(self.connections) >= number)
        return self.connections[number - 1]


class RecordingSink:
    """Keeps what a client delivers."""

    def __init__(self) -> None:
        self.batches: list[list[LiquidationEvent]] = []
        self.gaps: list[StreamGap] = []

    async def on_events(self, events: list[LiquidationEvent]) -> None:
        self.batches.append(list(events))

    async def on_gap(self, gap: StreamGap) -> None:
        self.gaps.append(gap)

    @property
    def events(self) -> list[LiquidationEvent]:
        return [event for batch in self.batches for event in batch]


class FakeClock:
    def __init__(self, start: datetime = datetime(2026, 10, 9, 12, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Sleeps:
    """Records each back-off delay and returns at once; from call `block_from` on, never returns
    (the client stays parked, as it would be for the hours of a real delay)."""

    def __init__(self, block_from: int | None = None) -> None:
        self.delays: list[float] = []
        self.block_from = block_from

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.block_from is not None and len(self.delays) >= self.block_from:
            await asyncio.Event().wait()
        await asyncio.sleep(0)


# --- frames ---------------------------------------------------------------------------------


def is_bybit_ping(text: str) -> bool:
    try:
        message: Any = json.loads(text)
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("op") == "ping"


def is_okx_ping(text: str) -> bool:
    return text == "ping"


def bybit_frame(items: list[dict[str, Any]], symbol: str = "BTCUSDT") -> str:
    """A push shaped like the recorded bybit_all_liquidation_ws_live.json."""
    return json.dumps(
        {"topic": f"allLiquidation.{symbol}", "type": "snapshot", "ts": 0, "data": items}
    )


def bybit_item(ms: int, side: str, v: str, p: str, symbol: str = "BTCUSDT") -> dict[str, Any]:
    return {"T": ms, "s": symbol, "S": side, "v": v, "p": p}


def okx_frame(details: list[dict[str, Any]], inst_id: str = "BTC-USDT-SWAP") -> str:
    """A push shaped like the recorded okx_liquidation_orders_ws_live.json."""
    family = inst_id.removesuffix("-SWAP")
    return json.dumps(
        {
            "arg": {"channel": "liquidation-orders", "instType": "SWAP"},
            "data": [
                {
                    "details": details,
                    "instFamily": family,
                    "instId": inst_id,
                    "instType": "SWAP",
                    "uly": family,
                }
            ],
        }
    )


def okx_detail(ms: int, pos_side: str, side: str, sz: str, px: str) -> dict[str, Any]:
    return {
        "bkLoss": "0",
        "bkPx": px,
        "ccy": "",
        "posSide": pos_side,
        "side": side,
        "sz": sz,
        "ts": str(ms),
    }


def binance_frame(ms: int, side: str, z: str, ap: str, symbol: str = "BTCUSDT") -> str:
    """A raw `/ws` event shaped like the recorded binance_force_order_ws_raw_live.json."""
    return json.dumps(
        {
            "e": "forceOrder",
            "E": ms + 500,
            "o": {
                "s": symbol,
                "S": side,
                "o": "LIMIT",
                "f": "IOC",
                "q": z,
                "p": ap,
                "ap": ap,
                "X": "FILLED",
                "l": z,
                "z": z,
                "T": ms,
                "ps": symbol,
                "st": 1,
            },
        }
    )


class BybitRequests:
    """A Bybit linear socket that answers every subscribe and unsubscribe request as Bybit does:
    an ack echoing the `req_id`, or, for a topic in `unlisted`, a refusal. After acknowledging a
    topic it pushes that topic's frames from `frames` (topic -> frames). Every request read is
    kept, in order, and handed to `requests` as it arrives."""

    def __init__(
        self, frames: dict[str, list[str]] | None = None, unlisted: Sequence[str] = ()
    ) -> None:
        self.frames = frames or {}
        self.unlisted = set(unlisted)
        self.requests: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.log: list[dict[str, Any]] = []

    async def __call__(self, conn: Connection) -> None:
        try:
            while True:
                message = json.loads(await conn.recv())
                if message.get("op") == "ping":
                    await conn.send(fixture("bybit_ws_pong_linear.json"))
                    continue
                self.log.append(message)
                self.requests.put_nowait(message)
                refused = [t for t in message.get("args", []) if t in self.unlisted]
                answer = {
                    "success": not refused,
                    "ret_msg": f"error:handler not found,topic:{refused[0]}" if refused else "",
                    "conn_id": "db2937jvnhjo7n76nht0-ce4a",
                    "req_id": message.get("req_id", ""),
                    "op": message.get("op"),
                }
                await conn.send(json.dumps(answer))
                if message.get("op") == "subscribe" and not refused:
                    for topic in message.get("args", []):
                        await conn.send(*self.frames.get(topic, []))
        except ConnectionClosed:
            pass

    async def next_request(self, timeout: float = 5.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.requests.get(), timeout)
