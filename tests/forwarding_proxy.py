"""A forwarding HTTP proxy on 127.0.0.1, as squid or a corporate egress proxy behaves.

It carries absolute-form requests (`GET http://host:port/path`) and tunnels `CONNECT
host:port` for https. Host names are resolved only here, from `names` (each to a local
port), so a client that goes around the proxy cannot reach them. It records every
request it carried and adds X-Forwarded-For, as squid does by default.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from dataclasses import dataclass, field
from urllib.parse import quote

# Headers meant for this hop only; not passed on.
_FOR_THE_PROXY = frozenset({"connection", "proxy-connection", "keep-alive", "proxy-authorization"})


@dataclass(frozen=True)
class Carried:
    method: str
    target: str  # host:port as the client asked for it


@dataclass
class ForwardingProxy:
    names: dict[str, int] = field(default_factory=dict)  # host name -> port on 127.0.0.1
    credentials: str = ""  # "user:password" that requests must carry, as Basic auth
    carried: list[Carried] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()  # both ends of every relay

    @property
    def url(self) -> str:
        user = f"{quote(self.credentials, safe=':')}@" if self.credentials else ""
        return f"http://{user}127.0.0.1:{self.port}"

    def hosts(self) -> set[str]:
        return {c.target.rsplit(":", 1)[0] for c in self.carried}

    def start(self) -> ForwardingProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop
        ).result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            # Kept-alive tunnels end when both of their sockets close.
            for writer in self._open:
                writer.close()
            relays = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if relays:
                await asyncio.wait(relays, timeout=5)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *header_lines = head.split("\r\n")[:-2]
            method, target, version = request_line.split(" ")
            if not self._authorised(header_lines):
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                             b'Proxy-Authenticate: Basic realm="proxy"\r\n'
                             b"Connection: close\r\nContent-Length: 0\r\n\r\n")  # fmt: skip
            elif method == "CONNECT":
                await self._tunnel(target, reader, writer)
            elif target.startswith("http://"):
                await self._forward(method, target, version, header_lines, reader, writer)
            else:
                writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            self._open.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _authorised(self, header_lines: list[str]) -> bool:
        if not self.credentials:
            return True
        expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
        return f"proxy-authorization: {expected}".lower() in (h.lower() for h in header_lines)

    async def _connect(
        self, method: str, target: str, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        host, _, port = target.rpartition(":")
        local_port = self.names.get(host, int(port) if host == "127.0.0.1" else None)
        if local_port is None:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\nunknown host")
            return None
        try:
            upstream = await asyncio.open_connection("127.0.0.1", local_port)
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\nrefused")
            return None
        self.carried.append(Carried(method, target))
        self._open.add(upstream[1])
        return upstream

    async def _tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        upstream = await self._connect("CONNECT", target, writer)
        if upstream is None:
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await _pipe_both_ways(reader, writer, *upstream)
        self._open.discard(upstream[1])

    async def _forward(
        self,
        method: str,
        url: str,
        version: str,
        header_lines: list[str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        authority, _, path = url.removeprefix("http://").partition("/")
        target = authority if ":" in authority else f"{authority}:80"
        upstream = await self._connect(method, target, writer)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        kept = [h for h in header_lines if h.split(":", 1)[0].lower() not in _FOR_THE_PROXY]
        # One request per connection keeps the relay simple; the client sees the close.
        head = [f"{method} /{path} {version}", *kept, "Connection: close",
                "X-Forwarded-For: 127.0.0.1", "Via: 1.1 forwarding-proxy"]  # fmt: skip
        up_writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        up_writer.write(await _body(header_lines, reader))
        await up_writer.drain()
        while chunk := await up_reader.read(65536):
            writer.write(chunk)
            await writer.drain()
        up_writer.close()
        self._open.discard(up_writer)


async def _body(header_lines: list[str], reader: asyncio.StreamReader) -> bytes:
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size_line = await reader.readuntil(b"\r\n")
            chunk = await reader.readexactly(int(size_line.split(b";")[0], 16) + 2)
            body += size_line + chunk
            if size_line.strip() == b"0":
                return body
    return await reader.readexactly(int(headers.get("content-length", "0")))


async def _pipe_both_ways(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        with contextlib.suppress(OSError):
            sink.write_eof()

    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
    up_writer.close()
