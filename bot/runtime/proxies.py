"""Which proxy a request goes through, from HTTP_PROXY, HTTPS_PROXY and NO_PROXY as curl
and requests read them: by the target's scheme, none for hosts that NO_PROXY names.

`EnvironmentProxies.route` is an aiohttp client middleware, so the choice holds for every
request on a session whatever proxy its caller passed: Slack's SDK passes HTTPS_PROXY (else
HTTP_PROXY) for every URL and skips NO_PROXY; aiohttp's own trust_env asks a thread per
request, which the poller cannot afford.
"""

from __future__ import annotations

from urllib.request import (  # type: ignore[attr-defined]  # public, missing from typeshed
    getproxies_environment,
    proxy_bypass_environment,
)

import aiohttp
import yarl

_Proxy = tuple[yarl.URL | None, aiohttp.BasicAuth | None]


class EnvironmentProxies:
    """The settings are read once, at start-up; each origin's choice is kept, since the
    poller asks for the same few origins thousands of times."""

    def __init__(self) -> None:
        self._settings = getproxies_environment()  # {"http": …, "https": …, "no": …}
        self._chosen: dict[tuple[str, str], _Proxy] = {}

    async def route(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        proxy, credentials = self.proxy_for(request.url)
        request.update_proxy(proxy, credentials, request.proxy_headers)
        return await handler(request)

    def proxy_for(self, url: yarl.URL) -> _Proxy:
        origin = (url.scheme, url.raw_authority)
        if origin not in self._chosen:
            self._chosen[origin] = self._choose(url.scheme, url.raw_authority)
        return self._chosen[origin]

    def _choose(self, scheme: str, authority: str) -> _Proxy:
        proxy = self._settings.get(scheme)
        if not proxy or proxy_bypass_environment(authority, self._settings):
            return None, None
        url = yarl.URL(proxy)
        # aiohttp takes a proxy's credentials (http://user:pass@host:port) apart from its URL.
        return url.with_user(None), aiohttp.BasicAuth.from_url(url)
