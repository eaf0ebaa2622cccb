"""Which proxy a request goes through, from HTTP_PROXY, HTTPS_PROXY and NO_PROXY as curl
and requests read them: by the target's scheme, none for hosts that NO_PROXY names."""

from __future__ import annotations

from urllib.parse import urlsplit
from urllib.request import (  # type: ignore[attr-defined]  # public, missing from typeshed
    getproxies_environment,
    proxy_bypass_environment,
)


class EnvironmentProxies:
    """The settings are read once, at start-up; each origin's choice is kept, since the
    poller asks for the same few origins thousands of times."""

    def __init__(self) -> None:
        self._settings = getproxies_environment()  # {"http": …, "https": …, "no": …}
        self._chosen: dict[tuple[str, str], str | None] = {}

    def proxy_for(self, url: str) -> str | None:
        parts = urlsplit(url)
        origin = (parts.scheme, parts.netloc)
        if origin not in self._chosen:
            proxy = self._settings.get(parts.scheme)
            bypass = proxy is not None and proxy_bypass_environment(parts.netloc, self._settings)
            self._chosen[origin] = None if bypass else proxy
        return self._chosen[origin]
