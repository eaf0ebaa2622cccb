"""Google Operations API client: read an operation, ask for its cancellation, map errors.

Requests go to `{base}/{name}` and `{base}/{name}:cancel`, with URLs built by
`OperationName` from checked segments only.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from bot import metrics
from bot.google_auth import CredentialsError, TokenSource
from bot.names import OperationName, OperationParent
from bot.retry import RetryPolicy, parse_retry_after
from bot.rpc import RpcCode

log = logging.getLogger(__name__)

# Google answers these when it is briefly overloaded; anything else is final.
_RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
# Calls in flight at once. Waiting here is cheap (a FIFO of futures); waiting inside
# httpx's own pool costs CPU for every waiter on every release, which starved Slack
# acknowledgements when Google was slow (bench/ack_latency.py).
MAX_IN_FLIGHT = 64
LIST_PAGE_SIZE = 100
LIST_MAX_PAGES = 20


class OperationsError(Exception):
    """A Google call that did not succeed, as a google.rpc code and Google's own message."""

    def __init__(self, code: RpcCode, message: str, http_status: int | None = None) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status


@dataclass(frozen=True)
class OperationError:
    code: RpcCode
    message: str


@dataclass(frozen=True)
class Operation:
    """A google.longrunning Operation as read over REST."""

    name: str
    done: bool
    error: OperationError | None
    verb: str
    target: str
    create_time: str
    end_time: str
    status_message: str
    requested_cancellation: bool

    @classmethod
    def from_json(cls, data: Any) -> Operation:
        if not isinstance(data, dict):
            raise OperationsError(RpcCode.UNKNOWN, "the Operations API answered something else")
        metadata = data.get("metadata")
        meta: dict[str, Any] = metadata if isinstance(metadata, dict) else {}
        raw_error = data.get("error")
        error = None
        if isinstance(raw_error, dict):
            number = raw_error.get("code")
            error = OperationError(
                RpcCode.from_number(number if isinstance(number, int) else 2),
                _text(raw_error.get("message")),
            )
        return cls(
            name=_text(data.get("name")),
            done=data.get("done") is True,
            error=error,
            verb=_text(meta.get("verb")),
            target=_text(meta.get("target")),
            create_time=_text(meta.get("createTime")),
            end_time=_text(meta.get("endTime")),
            status_message=_text(meta.get("statusMessage")),
            requested_cancellation=meta.get("requestedCancellation") is True,
        )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class OperationsClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        tokens: TokenSource,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._http = http
        self._base_url = base_url
        self._tokens = tokens
        self._retry = retry or RetryPolicy()
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

    def without_retries(self) -> OperationsClient:
        """The same client answering at the first reply; the poller retries on its own schedule."""
        client = OperationsClient(self._http, self._base_url, self._tokens, RetryPolicy(attempts=1))
        client._in_flight = self._in_flight
        return client

    async def get(self, name: OperationName) -> Operation:
        return Operation.from_json(await self._call("GET", name.url(self._base_url)))

    async def list_running(self, parent: OperationParent, show: int) -> tuple[list[Operation], int]:
        """Up to `show` running operations under `parent`, and how many are running in all.

        Follows nextPageToken for at most LIST_MAX_PAGES pages, so a huge backlog cannot
        hold a Slack reply for long.
        """
        running: list[Operation] = []
        total = 0
        token = ""
        for _ in range(LIST_MAX_PAGES):
            query = f"?pageSize={LIST_PAGE_SIZE}" + (f"&pageToken={quote(token)}" if token else "")
            page = await self._call("GET", parent.operations_url(self._base_url) + query)
            items = page.get("operations") if isinstance(page, dict) else None
            for item in items if isinstance(items, list) else []:
                operation = Operation.from_json(item)
                if not operation.done:
                    total += 1
                    if len(running) < show:
                        running.append(operation)
            token = _text(page.get("nextPageToken")) if isinstance(page, dict) else ""
            if not token:
                break
        return running, total

    async def cancel(self, name: OperationName) -> None:
        """Ask Google to cancel. Success means the request was accepted, not that it stopped."""
        await self._call("POST", name.url(self._base_url, "cancel"), body={})

    async def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        for attempt in range(self._retry.attempts):
            final = attempt == self._retry.attempts - 1
            try:
                headers = await self._tokens.headers()
            except CredentialsError as exc:
                raise OperationsError(RpcCode.UNAUTHENTICATED, str(exc)) from exc
            try:
                async with self._in_flight:
                    response = await self._http.request(method, url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                metrics.count_google_call(method, url, RpcCode.UNAVAILABLE.name)
                if final:
                    raise OperationsError(
                        RpcCode.UNAVAILABLE, f"could not reach the Operations API ({exc!s})"
                    ) from exc
                await asyncio.sleep(self._retry.delay(attempt))
                continue
            metrics.count_google_call(method, url, _code_name(response))
            if response.is_success:
                return _json_or_empty(response)
            if response.status_code in _RETRYABLE_HTTP and not final:
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                log.info("operations api busy", extra={"http_status": response.status_code})
                await asyncio.sleep(self._retry.delay(attempt, retry_after))
                continue
            raise _error_from(response)
        raise AssertionError("unreachable: the last attempt returns or raises")


def _json_or_empty(response: httpx.Response) -> Any:
    if not response.content:
        return {}
    try:
        return response.json()
    except ValueError as exc:
        raise OperationsError(RpcCode.UNKNOWN, "the Operations API answered with non-JSON") from exc


def _code_name(response: httpx.Response) -> str:
    return "OK" if response.is_success else _error_from(response).code.name


def _error_from(response: httpx.Response) -> OperationsError:
    status: str | None = None
    message = f"HTTP {response.status_code}"
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        error = payload["error"]
        status = error.get("status") if isinstance(error.get("status"), str) else None
        message = _text(error.get("message")) or message
    code = RpcCode.from_status(status, response.status_code)
    return OperationsError(code, message[:500], response.status_code)
