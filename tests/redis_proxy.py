"""A TCP proxy between the bot and redis-server that delays or drops Redis's replies.

It runs on 127.0.0.1 in a thread of its own, so tests can change its behaviour while
the bot (in another thread or loop) talks through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class ReplyFaults:
    delay_seconds: float = 0.0  # before each reply is passed on
    drop: bool = False  # replies vanish: the client waits until its socket timeout
    # a request containing this marker gets its reply `marker_delay_seconds` late, once
    marker: bytes = b""
    marker_delay_seconds: float = 0.0
    marked: int = field(default=0)  # how many replies the marker delayed


class RedisProxy:
    def __init__(self, upstream_url: str) -> None:
        self._upstream = urlsplit(upstream_url)  # redis://host:port or unix:///path
        self.faults = ReplyFaults()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def heal(self) -> None:
        self.faults = ReplyFaults()

    def delay_reply_to(self, marker: bytes, seconds: float) -> None:
        """The next request that contains `marker` is answered `seconds` late."""
        self.faults.marker, self.faults.marker_delay_seconds = marker, seconds

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _connect(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        try:
            server_in, server_out = await self._open_upstream()
        except OSError:
            client_out.close()
            return
        late: list[float] = []  # delays owed to the replies of marked requests
        await asyncio.gather(
            self._requests(client_in, server_out, late),
            self._replies(server_in, client_out, late),
            return_exceptions=True,
        )
        for writer in (client_out, server_out):
            writer.close()

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._upstream.scheme == "unix":
            return await asyncio.open_unix_connection(self._upstream.path)
        return await asyncio.open_connection(self._upstream.hostname, self._upstream.port)

    async def _requests(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, late: list[float]
    ) -> None:
        with contextlib.suppress(ConnectionError):
            await self._pass_requests(source, sink, late)
        sink.close()

    async def _pass_requests(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, late: list[float]
    ) -> None:
        while chunk := await source.read(65536):
            faults = self.faults
            if faults.marker and faults.marker in chunk:
                late.append(faults.marker_delay_seconds)
                faults.marker, faults.marked = b"", faults.marked + 1
            sink.write(chunk)
            await sink.drain()

    async def _replies(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, late: list[float]
    ) -> None:
        with contextlib.suppress(ConnectionError):
            await self._pass_replies(source, sink, late)
        sink.close()

    async def _pass_replies(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, late: list[float]
    ) -> None:
        while chunk := await source.read(65536):
            faults = self.faults
            if faults.drop:
                continue
            delay = faults.delay_seconds + (late.pop(0) if late else 0.0)
            if delay:
                await asyncio.sleep(delay)
            if sink.is_closing():
                return
            sink.write(chunk)
            await sink.drain()
