"""An httpx transport that does its I/O with aiohttp.

httpx's own pool (httpcore over anyio) spent about 70 % of the poller's CPU scanning its
connections on every request (py-spy, bench/poller.py); aiohttp's pool does the same
work for a fraction. The Operations API client keeps httpx's interface, timeouts and
errors; only the transport underneath changes. Requests go through the proxy that
HTTP_PROXY, HTTPS_PROXY and NO_PROXY choose, which httpx would do with its own transport.
"""

from __future__ import annotations

import functools

import aiohttp
import httpx
import yarl

from bot.proxies import EnvironmentProxies


class AiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(self, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        # Chosen here rather than by aiohttp's trust_env, which asks a thread per request.
        self._proxies = EnvironmentProxies()

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running event loop, as aiohttp requires.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                auto_decompress=False,  # httpx decodes the body itself
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            connect=timeouts.get("connect"),
            sock_read=timeouts.get("read"),
            total=None,
        )
        url = str(request.url)
        proxy, proxy_auth = _proxy_and_credentials(self._proxies.proxy_for(url))
        try:
            async with self._open().request(
                request.method,
                url,
                proxy=proxy,
                proxy_auth=proxy_auth,
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


@functools.lru_cache(maxsize=8)
def _proxy_and_credentials(
    proxy: str | None,
) -> tuple[yarl.URL | None, aiohttp.BasicAuth | None]:
    """aiohttp takes a proxy's credentials apart from its URL (http://user:pass@host:port)."""
    if proxy is None:
        return None, None
    url = yarl.URL(proxy)
    return url.with_user(None), aiohttp.BasicAuth.from_url(url)
