"""A stand-in for Google's Operations API (and an OAuth token endpoint) over real HTTP.

Operations are seeded with a behaviour that decides how they answer a cancel. It fails as
Google does, per method and operation, for a number of calls or until healed: any
google.rpc error (UNAVAILABLE or 429 for ever), and answers that trickle in a byte at a
time. Point OPERATIONS_API_URL at `{url}/v1`; service-account credentials can use
`{url}/token`. Given the IAM Credentials stand-in's `minted`, it knows which service account
each request acts as, refuses an expired token, and can deny an account on some resources.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from aiohttp import web

from bot.standins.google_errors import google_error
from bot.standins.iam_credentials import MintedToken
from bot.standins.trickle import trickle

_PATH = re.compile(r"/v1/(projects/[^/]+/locations/[^/]+/operations/[^/:]+)(:cancel)?")
_LIST_PATH = re.compile(r"/v1/(projects/[^/]+/locations/[^/]+)/operations")
_METADATA_TYPE = "type.googleapis.com/google.cloud.cloudaicompanion.v1.OperationMetadata"
_FIXED_END_TIME = "2026-11-24T03:20:00Z"  # tests' operations keep fixed times


class Behaviour(Enum):
    CANCELS = "cancels"  # cancel accepted; the operation ends CANCELLED
    COMPLETES = "completes"  # cancel accepted; the operation completes anyway
    UNIMPLEMENTED = "unimplemented"  # cancel answered 501 UNIMPLEMENTED
    NOT_CANCELLABLE = "not_cancellable"  # cancel answered 400 FAILED_PRECONDITION
    FAILS = "fails"  # cancel accepted; the operation ends with another error


@dataclass
class FakeOperation:
    name: str
    behaviour: Behaviour = Behaviour.CANCELS
    done: bool = False
    verb: str = "create"
    target: str = ""
    create_time: str = "2026-11-24T03:12:00Z"
    end_time: str = ""
    status_message: str = ""
    cancel_requested: bool = False
    error: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    # GETs that still answer "running" after a cancel before the final state shows
    polls_until_done: int = 0
    # Or: the time.monotonic() at which it ends by itself, cancelled or not
    ends_at: float | None = None
    gets: int = 0
    first_seen_done: float | None = None  # when a GET first answered done
    # Seeded over HTTP (the sandbox): endTime is stamped by the real clock when it ends,
    # and `progress` % grows with it, shown as "{status_message} 41 % done" until the end.
    real_clock: bool = False
    progress: float | None = None
    progress_per_minute: float = 1.0
    seeded_at: float = field(default_factory=time.time)

    def percent_done(self) -> int | None:
        if self.progress is None:
            return None
        minutes = (time.time() - self.seeded_at) / 60
        return min(99, int(self.progress + self.progress_per_minute * minutes))

    def status_now(self) -> str:
        percent = self.percent_done()
        if percent is None:
            return self.status_message
        return f"{self.status_message} {percent} % done".strip()

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "metadata": {
                "@type": _METADATA_TYPE,
                "createTime": self.create_time,
                "target": self.target or self.name.rsplit("/operations/", 1)[0],
                "verb": self.verb,
                "requestedCancellation": self.cancel_requested,
                "apiVersion": "v1",
                **({"endTime": self.end_time} if self.end_time else {}),
                **({"statusMessage": status} if (status := self.status_now()) else {}),
            },
            "done": self.done,
        }
        if self.error is not None:
            body["error"] = self.error
        if self.response is not None:
            body["response"] = self.response
        return body


@dataclass
class Request:
    method: str
    name: str
    action: str
    authorization: str
    started: float  # time.monotonic() when it arrived, before any set latency
    ended: float = 0.0  # when it was answered
    identity: str = ""  # the service account whose token it carried; "" for any other


@dataclass
class OperationsState:
    operations: dict[str, FakeOperation] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    # (method, name) -> queued (HTTP status, google.rpc status name, message) answers
    scripted: dict[tuple[str, str], deque[tuple[int, str, str]]] = field(default_factory=dict)
    # (method, name) -> the error every call answers until healed
    faults: dict[tuple[str, str], tuple[int, str, str]] = field(default_factory=dict)
    # (method, name) -> seconds between the bytes of each answer (a server that trickles)
    trickle: dict[tuple[str, str], float] = field(default_factory=dict)
    latency_seconds: float = 0.0
    tokens_issued: int = 0
    # service account -> resource prefixes on which it lacks every operations permission
    denied: dict[str, list[str]] = field(default_factory=dict)

    def add(self, operation: FakeOperation) -> FakeOperation:
        self.operations[operation.name] = operation
        return operation

    def script(self, method: str, name: str, status: int, rpc_status: str, message: str) -> None:
        self.scripted.setdefault((method, name), deque()).append((status, rpc_status, message))

    def fail(self, method: str, name: str, status: int, rpc_status: str, message: str) -> None:
        """Answer every `method` call for `name` with this error until healed."""
        self.faults[(method, name)] = (status, rpc_status, message)

    def heal(self) -> None:
        self.scripted.clear()
        self.faults.clear()
        self.trickle.clear()

    def requests_for(self, name: str, action: str = "") -> list[Request]:
        return [r for r in self.requests if r.name == name and r.action == action]

    def deny(self, account: str, prefix: str) -> None:
        """`account` holds no cloudaicompanion.operations.* permission under `prefix`."""
        self.denied.setdefault(account, []).append(prefix)


class OperationsStandIn:
    def __init__(self, access_token: str = "stand-in-access-token") -> None:
        self.state = OperationsState()
        self.access_token = access_token
        # The IAM Credentials stand-in's lookup of the tokens it minted, when there is one.
        self.minted: Callable[[str], MintedToken | None] = lambda authorization: None

    def reset(self) -> None:
        self.state = OperationsState()

    async def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_get("/_standin/operations", self._list)
        app.router.add_post("/_standin/operations", self._seed)
        app.router.add_route("*", "/{tail:.*}", self._operation)
        return app

    async def _list(self, request: web.Request) -> web.Response:
        """The emulated operations and what was asked of them (benchmarks, the sandbox),
        with the calls about each by the identity they carried."""
        calls = _calls_as(self.state)
        listed = [{**asdict(op), "behaviour": op.behaviour.value, "status_message": op.status_now(),
                   "calls_as": calls.get(op.name, {})}
                  for op in self.state.operations.values()]  # fmt: skip
        return web.json_response(listed, dumps=_dumps)

    async def _seed(self, request: web.Request) -> web.Response:
        """Add operations: [{name, behaviour?, ends_in_seconds?, polls_until_done?, done?,
        verb?, target?, status_message?, progress?, created_seconds_ago?,
        ended_seconds_ago?}]; `done` ones have already finished. Times are the real clock's."""
        now, wall = time.monotonic(), time.time()
        for item in await request.json():
            ends_in = item.get("ends_in_seconds")
            progress = item.get("progress")
            operation = self.state.add(
                FakeOperation(
                    item["name"],
                    Behaviour(item.get("behaviour", "cancels")),
                    verb=str(item.get("verb", "create")),
                    target=str(item.get("target", "")),
                    create_time=_rfc3339(wall - float(item.get("created_seconds_ago", 0))),
                    status_message=str(item.get("status_message", "")),
                    polls_until_done=int(item.get("polls_until_done", 0)),
                    ends_at=None if ends_in is None else now + float(ends_in),
                    real_clock=True,
                    progress=None if progress is None else float(progress),
                )
            )
            if item.get("done"):
                _finish(operation, ended=wall - float(item.get("ended_seconds_ago", 0)))
        return web.json_response({"operations": len(self.state.operations)})

    async def _token(self, request: web.Request) -> web.Response:
        self.state.tokens_issued += 1
        return web.json_response(
            {"access_token": self.access_token, "expires_in": 3600, "token_type": "Bearer"}
        )

    async def _operation(self, request: web.Request) -> web.StreamResponse:
        # Recorded on arrival, in the state of the test that sent it, before any latency.
        state = self.state
        listing = _LIST_PATH.fullmatch(request.path)
        authorization = request.headers.get("Authorization", "")
        minted = self.minted(authorization)
        identity = minted.account if minted else ""
        if listing is not None and request.method == "GET":
            parent = listing.group(1)
            state.requests.append(Request("GET", parent, "list", authorization,
                                          time.monotonic(), identity=identity))  # fmt: skip
            await self._lag(state)
            refused = _refused(state, minted, parent, "list")
            return refused or self._list_page(state, parent, request.query)
        match = _PATH.fullmatch(request.path)
        if match is None:
            return google_error(404, "NOT_FOUND", f"no such path {request.path}")
        name, action = match.group(1), (match.group(2) or "").lstrip(":")
        record = Request(request.method, name, action, authorization, time.monotonic(),
                         identity=identity)  # fmt: skip
        state.requests.append(record)
        await self._lag(state)
        permission = action or ("get" if request.method == "GET" else "")
        refused = _refused(state, minted, name, permission)
        response = refused or self._answer(state, request.method, name, action)
        interval = state.trickle.get((request.method, name))
        if interval is not None:
            return await trickle(request, response, interval)
        record.ended = time.monotonic()
        return response

    @staticmethod
    async def _lag(state: OperationsState) -> None:
        if state.latency_seconds:
            await asyncio.sleep(state.latency_seconds)

    @staticmethod
    def _list_page(state: OperationsState, parent: str, query: Mapping[str, str]) -> web.Response:
        """ListOperations, paged by pageSize and an offset carried in pageToken."""
        under = [op for name, op in state.operations.items() if name.startswith(parent + "/")]
        size = int(query.get("pageSize", "50"))
        start = int(query.get("pageToken") or 0)
        body: dict[str, Any] = {"operations": [op.to_json() for op in under[start : start + size]]}
        if start + size < len(under):
            body["nextPageToken"] = str(start + size)
        return web.json_response(body)

    @staticmethod
    def _answer(state: OperationsState, method: str, name: str, action: str) -> web.Response:
        queued = state.scripted.get((method, name))
        fault = queued.popleft() if queued else state.faults.get((method, name))
        if fault is not None:
            return google_error(*fault)
        operation = state.operations.get(name)
        if operation is None:
            return google_error(404, "NOT_FOUND", f"Operation {name} not found.")
        if method == "GET" and not action:
            _advance(operation)
            return web.json_response(operation.to_json())
        if method == "POST" and action == "cancel":
            return _cancel(operation)
        return google_error(405, "INVALID_ARGUMENT", "method not allowed")


def _cancel(operation: FakeOperation) -> web.Response:
    if operation.behaviour is Behaviour.UNIMPLEMENTED:
        return google_error(501, "UNIMPLEMENTED", "Operation cancellation is not supported.")
    if operation.behaviour is Behaviour.NOT_CANCELLABLE or operation.done:
        return google_error(400, "FAILED_PRECONDITION", "Operation is not cancellable.")
    operation.cancel_requested = True
    return web.json_response({})


def _advance(operation: FakeOperation) -> None:
    """Settle into the behaviour's final state at `ends_at`, or after a cancel and a count
    of GETs; note when a GET first sees it done."""
    operation.gets += 1
    if not operation.done:
        _settle_if_due(operation)
    if operation.done and operation.first_seen_done is None:
        operation.first_seen_done = time.monotonic()


def _settle_if_due(operation: FakeOperation) -> None:
    if operation.ends_at is not None:
        if time.monotonic() < operation.ends_at:
            return
    elif not operation.cancel_requested:
        return
    elif operation.polls_until_done > 0:
        operation.polls_until_done -= 1
        return
    _finish(operation)


def _finish(operation: FakeOperation, ended: float | None = None) -> None:
    """The final state the behaviour leads to, stamped with when it ended (`ended`, or now);
    its status stops moving and says how it ended."""
    operation.done = True
    if operation.real_clock:
        operation.end_time = _rfc3339(time.time() if ended is None else ended)
    else:
        operation.end_time = _FIXED_END_TIME
    if operation.status_message or operation.progress is not None:
        operation.status_message = _final_status(operation.behaviour, operation.percent_done())
    operation.progress = None
    if operation.behaviour is Behaviour.COMPLETES:
        operation.response = {"@type": "type.googleapis.com/google.protobuf.Empty"}
    elif operation.behaviour is Behaviour.FAILS:
        operation.error = {"code": 13, "message": "Backend failure while stopping."}
    else:
        operation.error = {"code": 1, "message": "Operation was cancelled."}


def _final_status(behaviour: Behaviour, percent: int | None) -> str:
    at = "" if percent is None else f" at {percent} %"
    if behaviour is Behaviour.COMPLETES:
        return "Done"
    if behaviour is Behaviour.FAILS:
        return f"Failed{at}: backend failure while stopping"
    return f"Cancelled{at}"


def _rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def _calls_as(state: OperationsState) -> dict[str, dict[str, dict[str, int]]]:
    """{name: {identity: {GET: n, cancel: n}}} in one pass; identity "" is the bot's own."""
    calls: dict[str, dict[str, dict[str, int]]] = {}
    for request in state.requests:
        by_kind = calls.setdefault(request.name, {}).setdefault(request.identity, {})
        kind = request.action or request.method
        by_kind[kind] = by_kind.get(kind, 0) + 1
    return calls


def _refused(
    state: OperationsState, minted: MintedToken | None, resource: str, permission: str
) -> web.Response | None:
    """Google's IAM for a service account's token: expired, or without the permission."""
    if minted is None:
        return None
    if time.time() >= minted.expires:
        return google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential.",
        )
    if any(resource.startswith(prefix) for prefix in state.denied.get(minted.account, [])):
        return google_error(
            403,
            "PERMISSION_DENIED",
            f"Permission 'cloudaicompanion.operations.{permission}' denied on resource "
            f"'//cloudaicompanion.googleapis.com/{resource}' (or it may not exist).",
        )
    return None
