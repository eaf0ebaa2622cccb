"""Bearer tokens for Google from google-auth, refreshed over httpx off the event loop.

google-auth has no httpx transport, so `HttpxAuthRequest` implements its
`transport.Request` over a synchronous httpx client; refreshes run in a thread. Finding
the credentials (key file, gcloud's, workload identity federation, the metadata server of
Cloud Run, GKE and GCE) goes over the same client, so it honours the proxy settings too.
httpx serves only these refreshes, a few an hour: Operations API calls go over aiohttp, as
httpx's client layer cost about 220 µs of CPU per request in bench/poller.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import google.auth
import google.auth.exceptions
import google.auth.transport
import httpx

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# Where google-auth looks for the metadata server instead of its default addresses.
_METADATA_SETTINGS = ("GCE_METADATA_HOST", "GCE_METADATA_ROOT", "GCE_METADATA_IP")


class CredentialsError(Exception):
    """Application Default Credentials could not be found or used."""


class TokenSource(Protocol):
    async def headers(self) -> dict[str, str]: ...


class AnonymousTokens:
    """No credentials: for local emulators only."""

    async def headers(self) -> dict[str, str]:
        return {}


class _HttpxResponse(google.auth.transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


class HttpxAuthRequest(google.auth.transport.Request):
    """google-auth's transport interface over a synchronous httpx client."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _HttpxResponse:
        seconds = timeout or 30.0
        # httpx's timeouts bound each read: an answer trickling in must not hold a refresh
        # (and every caller waiting for it) for as long as the server cares to send it.
        deadline = time.monotonic() + seconds
        try:
            with self._client.stream(
                method, url, content=body, headers=headers, timeout=seconds
            ) as streamed:
                chunks = []
                for chunk in streamed.iter_raw():  # decoded once, by the Response below
                    if time.monotonic() > deadline:
                        raise google.auth.exceptions.TransportError(  # type: ignore[no-untyped-call]
                            f"{url}: answer not complete within {seconds:g} s"
                        ) from TimeoutError()
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise google.auth.exceptions.TransportError(str(exc)) from exc  # type: ignore[no-untyped-call]
        response = httpx.Response(
            streamed.status_code, headers=streamed.headers, content=b"".join(chunks)
        )
        return _HttpxResponse(response)


class GoogleTokens:
    """Tokens from google-auth credentials; one refresh at a time, in a worker thread."""

    def __init__(self, credentials: Any, client: httpx.Client | None = None) -> None:
        self._credentials = credentials
        self._request = HttpxAuthRequest(client or httpx.Client(timeout=30.0))
        self._lock = asyncio.Lock()

    @classmethod
    def from_adc(cls) -> GoogleTokens:
        """Application Default Credentials; no token is fetched until the first call."""
        # httpx reads HTTP(S)_PROXY and NO_PROXY itself for every URL not mounted here.
        client = httpx.Client(timeout=30.0, mounts=_direct_to_the_metadata_server())
        try:
            with _discovery_logs_held():
                credentials, _project = google.auth.default(
                    scopes=[CLOUD_PLATFORM_SCOPE], request=HttpxAuthRequest(client)
                )
        # ValueError: the project lookup of workload identity federation reads its answer as JSON.
        except (google.auth.exceptions.GoogleAuthError, ValueError) as exc:
            client.close()
            raise CredentialsError(str(exc).splitlines()[0]) from exc
        return cls(credentials, client)

    @property
    def credentials(self) -> Any:
        """The google-auth credentials, as the source of impersonated ones."""
        return self._credentials

    @property
    def request(self) -> google.auth.transport.Request:
        """The transport their refreshes use."""
        return self._request

    async def headers(self) -> dict[str, str]:
        if not self._credentials.valid:
            async with self._lock:
                if not self._credentials.valid:
                    await asyncio.to_thread(self._refresh)
        return {"Authorization": f"Bearer {self._credentials.token}"}

    def _refresh(self) -> None:
        try:
            self._credentials.refresh(self._request)
        except google.auth.exceptions.GoogleAuthError as exc:
            # The message of a refresh error can echo the token endpoint's answer; keep it short.
            raise CredentialsError(
                f"could not refresh Google credentials: {type(exc).__name__}"
            ) from exc


def _direct_to_the_metadata_server() -> dict[str, httpx.BaseTransport]:
    """The metadata server of Cloud Run, GKE and GCE is on the machine's own link and
    refuses proxied requests, so it is always reached directly, as Google's Go client does."""
    direct = httpx.HTTPTransport()
    hosts = {"metadata.google.internal", "169.254.169.254"}
    hosts |= {os.environ[name] for name in _METADATA_SETTINGS if os.environ.get(name)}
    return {f"http://{host}": direct for host in hosts}


class _HeldRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _discovery_logs_held() -> Iterator[None]:
    """Hold google-auth's log records while it looks for credentials: logged if it finds
    some; if not, the start-up error says in one line what was missing instead."""
    held = _HeldRecords()
    google_logs = logging.getLogger("google")
    propagates = google_logs.propagate
    google_logs.addHandler(held)
    google_logs.propagate = False
    try:
        yield
    finally:
        google_logs.removeHandler(held)
        google_logs.propagate = propagates
    for record in held.records:
        logging.getLogger().handle(record)
