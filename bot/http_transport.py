"""An httpx transport that does its I/O with aiohttp.

httpx's own pool (httpcore over anyio) spent about 70 % of the poller's CPU scanning its
connections on every request (py-spy, bench/poller.py); aiohttp's pool does the same
work for a fraction. The Operations API client keeps httpx's interface, timeouts and
errors; only the transport underneath changes. Requests go through the proxy that
HTTP_PROXY, HTTPS_PROXY and NO_PROXY choose, as httpx's own transport would send them.
"""

from __future__ import annotations

import aiohttp
import httpx

from bot.proxies import EnvironmentProxies


class AiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(self, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running event loop, as aiohttp requires.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                auto_decompress=False,  # httpx decodes the body itself
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
                middlewares=(EnvironmentProxies().route,),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            connect=timeouts.get("connect"),
            sock_read=timeouts.get("read"),
            total=None,
        )
        try:
            async with self._open().request(
                request.method,
                str(request.url),
                headers=[(k, v) for k, v in request.headers.multi_items() if k != "host"],
                data=await request.aread(),
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                content = await response.read()
                headers = [(k.decode(), v.decode()) for k, v in response.raw_headers]
        except TimeoutError as exc:
            raise httpx.TimeoutException(str(exc) or "timed out", request=request) from exc
        except aiohttp.ClientConnectionError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.TransportError(str(exc), request=request) from exc
        return httpx.Response(response.status, headers=headers, content=content, request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
