"""Run an aiohttp application on 127.0.0.1 in a thread of its own, with its own event loop.

Tests and the sandbox use it to stand real HTTP servers in for Slack and Google.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")


class BackgroundServer:
    def __init__(
        self,
        make_app: Callable[[], Awaitable[web.Application]],
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._make_app = make_app
        self._ssl_context = ssl_context
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = port

    @property
    def url(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        self.call(self._start())
        return self

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def stop(self) -> None:
        if self._runner is not None:
            self.call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():  # closed now, not by the collector at exit
            self._loop.close()

    async def _start(self) -> None:
        self._runner = web.AppRunner(await self._make_app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(
            self._runner, "127.0.0.1", self.port, ssl_context=self._ssl_context
        ).start()
        self.port = int(self._runner.addresses[0][1])
