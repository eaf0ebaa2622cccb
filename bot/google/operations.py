"""Google Operations API client: read an operation, ask for its cancellation, map errors.

Requests go to `{base}/{name}` and `{base}/{name}:cancel`, with URLs built by
`OperationName` from checked segments only. They go straight through an aiohttp session:
httpx's client layer cost about 220 µs of CPU per request in bench/poller.py, two thirds
of each poll's HTTP cost.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.google.credentials import CredentialsError, TokenSource
from bot.google.impersonation import AccountTokens, TokenUnavailable
from bot.google.retry import RetryPolicy, parse_retry_after
from bot.google.rpc import RpcCode
from bot.policy.names import InvalidName, OperationName, OperationParent, parse_operation_name
from bot.runtime import metrics

log = logging.getLogger(__name__)

# Google answers these when it is briefly overloaded; anything else is final.
_RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
# Calls in flight at once, as many as the session's connections. Waiting here is cheap (a
# FIFO of futures); waiting inside an HTTP pool costs CPU for every waiter on every
# release, which starved Slack acknowledgements when Google was slow (bench/ack_latency.py).
MAX_IN_FLIGHT = 64
# Google's messages are a sentence or two; this bounds what Redis and the audit keep of one
# (Slack shows less still: messages.py cuts to its limits).
MESSAGE_MAX_CHARS = 2000
LIST_PAGE_SIZE = 100
LIST_MAX_PAGES = 20


class OperationsError(Exception):
    """A Google call that did not succeed, as a google.rpc code and Google's own message.

    `account` is the service account the call was made as ("" for the bot's own
    credentials); `token_refused` says the IAM Credentials API gave no token for it, so
    nothing reached the Operations API.
    """

    def __init__(
        self,
        code: RpcCode,
        message: str,
        http_status: int | None = None,
        *,
        account: str = "",
        token_refused: bool = False,
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.account = account
        self.token_refused = token_refused

    def to_record(self) -> str:
        """ "CODE|message" ("CODE:token|message" for a refused token), as watches keep it."""
        return f"{self.code.name}{_TOKEN_MARK if self.token_refused else ''}|{self.message}"

    @classmethod
    def from_record(cls, record: str, account: str = "") -> OperationsError | None:
        """The error kept by to_record (None for "OK|" or ""), made as `account`."""
        code, _, message = record.partition("|")
        refused = code.endswith(_TOKEN_MARK)
        code = code.removesuffix(_TOKEN_MARK)
        if code in ("OK", ""):
            return None
        return cls(RpcCode[code], message, account=account, token_refused=refused)


_TOKEN_MARK = ":token"


@dataclass(frozen=True)
class OperationError:
    code: RpcCode
    message: str


class Outcome(Enum):
    """Where an operation stands, read from `done`, `error` and `response`."""

    RUNNING = "running"
    CANCELLED = "cancelled"  # done, error.code 1
    COMPLETED = "completed"  # done with a response
    FAILED = "failed"  # done with any other error
    NO_RESULT = "no result"  # done with neither: Google says it ended but not how


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
    has_response: bool = False

    @property
    def outcome(self) -> Outcome:
        if not self.done:
            return Outcome.RUNNING
        if self.error is not None:
            cancelled = self.error.code is RpcCode.CANCELLED
            return Outcome.CANCELLED if cancelled else Outcome.FAILED
        return Outcome.COMPLETED if self.has_response else Outcome.NO_RESULT

    @classmethod
    def from_json(cls, data: Any) -> Operation:
        """Read strictly: a field of the wrong type is an unreadable answer, never a guess."""
        if not isinstance(data, dict):
            raise _unreadable("an operation is not a JSON object")
        done = data.get("done", False)  # proto3 JSON leaves out a false `done`
        if not isinstance(done, bool):
            raise _unreadable("`done` is not true or false")
        raw_error, response = data.get("error"), data.get("response")
        if raw_error is not None and not isinstance(raw_error, dict):
            raise _unreadable("`error` is not an object")
        if response is not None and not isinstance(response, dict):
            raise _unreadable("`response` is not an object")
        if raw_error is not None and response is not None:
            raise _unreadable("it has both `error` and `response`")
        metadata = data.get("metadata")
        meta: dict[str, Any] = metadata if isinstance(metadata, dict) else {}
        error = None
        if raw_error is not None:
            error = OperationError(
                RpcCode.from_error_code(raw_error.get("code")),
                _text(raw_error.get("message"))[:MESSAGE_MAX_CHARS],
            )
        return cls(
            name=_text(data.get("name")),
            done=done,
            error=error,
            verb=_text(meta.get("verb")),
            target=_text(meta.get("target")),
            create_time=_text(meta.get("createTime")),
            end_time=_text(meta.get("endTime")),
            status_message=_text(meta.get("statusMessage")),
            requested_cancellation=meta.get("requestedCancellation") is True,
            has_response=response is not None,
        )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _unreadable(why: str) -> OperationsError:
    return OperationsError(RpcCode.UNKNOWN, f"Google's answer could not be read: {why}.")


class OperationsClient:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        base_url: str,
        tokens: TokenSource,
        retry: RetryPolicy | None = None,
        accounts: AccountTokens | None = None,
    ) -> None:
        self._http = http
        self._base_url = base_url
        self._tokens = tokens
        self._retry = retry or RetryPolicy()
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._accounts = accounts

    def without_retries(self) -> OperationsClient:
        """The same client answering at the first reply; the poller retries on its own schedule."""
        client = OperationsClient(
            self._http, self._base_url, self._tokens, RetryPolicy(attempts=1), self._accounts
        )
        client._in_flight = self._in_flight
        return client

    async def get(self, name: OperationName, account: str | None = None) -> Operation:
        """`account`: the service account to act as; None for the bot's own credentials."""
        return Operation.from_json(await self._call("GET", name.url(self._base_url), account))

    async def list_running(
        self,
        parent: OperationParent,
        show: int,
        visible: Callable[[OperationName], bool],
        account: str | None = None,
    ) -> tuple[list[Operation], int]:
        """Up to `show` running operations under `parent` that are `visible`, and how many in all.

        Operations whose names are not checked operation names under `parent` are left out:
        they could not be cancelled anyway. Follows nextPageToken for at most LIST_MAX_PAGES
        pages, so a huge backlog cannot hold a Slack reply for long.
        """
        running: list[Operation] = []
        total = 0
        token = ""
        for _ in range(LIST_MAX_PAGES):
            query = f"?pageSize={LIST_PAGE_SIZE}" + (f"&pageToken={quote(token)}" if token else "")
            page = await self._call("GET", parent.operations_url(self._base_url) + query, account)
            items = page.get("operations")
            for item in items if isinstance(items, list) else []:
                operation = Operation.from_json(item)
                if not operation.done and _listed_name(operation, parent, visible):
                    total += 1
                    if len(running) < show:
                        running.append(operation)
            token = _text(page.get("nextPageToken"))
            if not token:
                break
        return running, total

    async def cancel(self, name: OperationName, account: str | None = None) -> None:
        """Ask Google to cancel. Success means the request was accepted, not that it stopped."""
        await self._call("POST", name.url(self._base_url, "cancel"), account, body={})

    async def _call(
        self, method: str, url: str, account: str | None, body: dict[str, Any] | None = None
    ) -> Any:
        try:
            return await self._call_as(method, url, account, body)
        except OperationsError as exc:
            exc.account = account or ""
            raise

    async def _headers(self, account: str | None) -> dict[str, str]:
        """The bot's own Authorization, or a token for `account`; nothing is sent without it."""
        if account is None:
            try:
                return await self._tokens.headers()
            except CredentialsError as exc:
                raise OperationsError(RpcCode.UNAUTHENTICATED, str(exc)) from exc
        if self._accounts is None:
            raise AssertionError("a client without impersonation was asked to act as an account")
        try:
            return await self._accounts.headers(account)
        except TokenUnavailable as exc:
            raise OperationsError(exc.code, exc.message, token_refused=True) from exc

    async def _call_as(
        self, method: str, url: str, account: str | None, body: dict[str, Any] | None
    ) -> Any:
        for attempt in range(self._retry.attempts):
            final = attempt == self._retry.attempts - 1
            headers = await self._headers(account)
            try:
                # No redirects, as before: Google sends none, and a POST followed to another
                # place could read as a cancel accepted.
                async with (
                    self._in_flight,
                    self._http.request(
                        method, url, json=body, headers=headers, allow_redirects=False
                    ) as response,
                ):
                    content = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                metrics.count_google_call(method, url, RpcCode.UNAVAILABLE.name)
                if final:
                    raise _unreachable(exc) from exc
                await asyncio.sleep(self._retry.delay(attempt))
                continue
            status = response.status
            metrics.count_google_call(method, url, _code_name(status, content))
            if 200 <= status < 300:
                return _json_object(status, content)
            if status in _RETRYABLE_HTTP and not final:
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                log.info("operations api busy", extra={"http_status": status})
                await asyncio.sleep(self._retry.delay(attempt, retry_after))
                continue
            raise _error_from(status, content)
        raise AssertionError("unreachable: the last attempt returns or raises")


def _listed_name(
    operation: Operation, parent: OperationParent, visible: Callable[[OperationName], bool]
) -> bool:
    try:
        name = parse_operation_name(operation.name)
    except InvalidName:
        return False
    return name.path.startswith(parent.path + "/") and visible(name)


def _unreachable(exc: aiohttp.ClientError | TimeoutError) -> OperationsError:
    """Plain words for Slack; the address and the exception only in the log."""
    log.warning("operations api unreachable", extra={"error": f"{type(exc).__name__}: {exc}"})
    if isinstance(exc, TimeoutError):  # aiohttp's connect and read timeouts are TimeoutErrors
        return OperationsError(RpcCode.UNAVAILABLE, "the Operations API did not answer in time")
    return OperationsError(RpcCode.UNAVAILABLE, "could not reach the Operations API")


def _json_object(status: int, content: bytes) -> dict[str, Any]:
    """A 2xx body, which Google always sends as a JSON object (`{}` for an accepted cancel).

    Anything else (an empty body, a proxy's HTML page) leaves it unknown whether Google
    did what was asked, so it is an UNKNOWN error rather than a success.
    """
    body = _json(content)
    if not isinstance(body, dict):
        text = content[:200].decode(errors="replace")
        log.warning("operations api answered 2xx without a JSON object",
                    extra={"http_status": status, "body": text})  # fmt: skip
        raise _unreadable(f"HTTP {status} without a JSON object")
    return body


def _json(content: bytes) -> Any:
    """The body as JSON (UTF-8, -16 or -32, as json.loads detects), or None."""
    try:
        return json.loads(content)
    except ValueError:  # not JSON, or not text: UnicodeDecodeError is a ValueError
        return None


def _code_name(status: int, content: bytes) -> str:
    return "OK" if 200 <= status < 300 else _error_from(status, content).code.name


def _error_from(status: int, content: bytes) -> OperationsError:
    """The HTTP status decides that it failed; Google's `status` name only says how."""
    payload = _json(content)  # None for a proxy's HTML page, say: the HTTP status is all there is
    error = payload.get("error") if isinstance(payload, dict) else None
    error = error if isinstance(error, dict) else {}
    code = RpcCode.from_error_answer(error.get("status"), status)
    message = _text(error.get("message"))[:MESSAGE_MAX_CHARS] or f"HTTP {status}"
    return OperationsError(code, message, status)
