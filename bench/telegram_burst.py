"""200 `/why` commands from 200 chats within one second, against the Telegram Bot API emulator
on loopback: all answered, with exactly one upstream refresh.

    npm ci  # once, for the emulator
    .venv/bin/python bench/telegram_burst.py [--chats 200]

The real python-telegram-bot Application polls the emulator through the tests' compatibility
layer (tests/telegram_harness). The demo recording is the upstream, through httpx.MockTransport.
A reply's latency runs from the moment its command is handed to the emulator to the moment the
bot's sendMessage for that chat reaches the layer. One single command is measured first on a
warm cache, then the burst on a cold one.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from aiohttp import ClientSession
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).parent.parent))

from bot.actions import Actions
from bot.alerts import AlertSettings
from bot.config import Settings
from bot.store import Store
from bot.telegram.bot import TelegramFrontend
from tests.replay_helpers import Upstream
from tests.telegram_harness.client import Chat, TelegramTestClient, User
from tests.telegram_harness.layer import CompatLayer
from tests.telegram_harness.process import EmulatorProcess
from tests.telegram_harness.session import TelegramEmulator, polling


class TimedCalls(list):  # type: ignore[type-arg]
    """The layer's call log, stamping when each sendMessage arrived, by chat."""

    def __init__(self) -> None:
        super().__init__()
        self.replied: dict[str, float] = {}

    def append(self, call: object) -> None:
        if getattr(call, "method", None) == "sendMessage":
            self.replied.setdefault(call.chat_key, time.perf_counter())  # type: ignore[attr-defined]
        super().append(call)


async def burst(chats: int) -> None:
    with EmulatorProcess() as process, TemporaryDirectory() as tmp:
        token = f"666:bench-{secrets.token_hex(8)}"
        layer = CompatLayer(process.url)
        await layer.start()
        timed = TimedCalls()
        layer.calls = timed
        async with ClientSession() as session:
            client = TelegramTestClient(process.url, token, layer, session)
            emulator = TelegramEmulator(token=token, layer=layer, client=client)
            settings = Settings(_env_file=None)
            upstream = Upstream()
            with Store(Path(tmp) / "whydown.db") as store:
                async with upstream.client(settings) as http:
                    explainer = upstream.explainer(http, settings, history=store)
                    actions = Actions(
                        explainer,
                        store,
                        thresholds=settings.thresholds,
                        alert_settings=AlertSettings(),
                    )
                    frontend = TelegramFrontend(
                        token=SecretStr(token),
                        actions=actions,
                        api_url=emulator.base_url,
                        file_url=emulator.base_file_url,
                        application_builder=emulator.application_builder(),
                    )
                    async with polling(frontend.application):
                        users = [User(7000 + i, f"User{i}", f"user{i}") for i in range(chats + 1)]
                        # one command on a warm cache first
                        await explainer.refresh()
                        single_chat = Chat.private(users[-1])
                        sent = time.perf_counter()
                        await client.send_command(single_chat, "why", user=users[-1])
                        await client.wait_for_reply(single_chat, timeout=30)
                        single = timed.replied[str(single_chat.id)] - sent

                        # then the burst on a cold cache
                        upstream.advance(settings.refresh_interval_s + 1)
                        before = len(upstream.scenario.requests)
                        chat_list = [Chat.private(u) for u in users[:chats]]
                        sent_at: dict[str, float] = {}

                        async def ask(chat: Chat, user: User) -> None:
                            await client.send_command(chat, "why", user=user)
                            sent_at[str(chat.id)] = time.perf_counter()

                        start = time.perf_counter()
                        await asyncio.gather(
                            *(ask(c, u) for c, u in zip(chat_list, users, strict=False))
                        )
                        injected = time.perf_counter() - start
                        deadline = time.perf_counter() + 120
                        while time.perf_counter() < deadline and not all(
                            str(c.id) in timed.replied for c in chat_list
                        ):
                            await asyncio.sleep(0.05)  # the bench's wait for the last reply
                        answered = [str(c.id) for c in chat_list if str(c.id) in timed.replied]
                        latencies = sorted(timed.replied[k] - sent_at[k] for k in answered)
                        refresh_requests = len(upstream.scenario.requests) - before
                        one_refresh = len({str(r.url) for r in upstream.scenario.requests[before:]})
        await layer.close()
    print(f"single /why on a warm cache: {single * 1000:.0f} ms")
    print(f"burst: {chats} /why commands from {chats} chats injected in {injected * 1000:.0f} ms")
    print(
        f"answered: {len(answered)}/{chats}; reply latency median {statistics.median(latencies) * 1000:.0f} ms, worst {latencies[-1] * 1000:.0f} ms"
    )
    print(
        f"upstream requests during the burst: {refresh_requests} ({one_refresh} distinct: one refresh)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chats", type=int, default=200)
    asyncio.run(burst(parser.parse_args().chats))
