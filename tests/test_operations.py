"""The Operations API client over its real transport: errors, retries, and what they map to."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web

from bot.google.credentials import AnonymousTokens
from bot.google.operations import OperationsClient, OperationsError, Outcome
from bot.google.retry import RetryPolicy
from bot.google.rpc import RpcCode
from bot.policy.names import OperationName
from bot.standins.operations_api import FakeOperation, OperationsStandIn
from bot.standins.runner import BackgroundServer

T = TypeVar("T")
NAME = OperationName("p", "l", "o")


def call(base_url: str, make: Callable[[OperationsClient], Coroutine[Any, Any, T]],
         attempts: int = 1, read_timeout: float = 5.0) -> T:  # fmt: skip
    async def run() -> T:
        timeout = aiohttp.ClientTimeout(total=None, connect=1.0, sock_read=read_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            client = OperationsClient(
                http,
                base_url,
                AnonymousTokens(),
                RetryPolicy(attempts=attempts, initial_seconds=0.01),
            )
            return await make(client)

    return asyncio.run(run())


def test_an_unreachable_api_is_unavailable() -> None:
    with pytest.raises(OperationsError) as failed:
        call("http://127.0.0.1:1/v1", lambda c: c.get(NAME), attempts=2)
    assert failed.value.code is RpcCode.UNAVAILABLE
    assert "could not reach" in failed.value.message


def test_a_slow_answer_times_out_as_unavailable(
    google: OperationsStandIn, google_server: tuple[OperationsStandIn, BackgroundServer]
) -> None:
    google.state.add(FakeOperation(str(NAME)))
    google.state.latency_seconds = 1.0
    with pytest.raises(OperationsError) as failed:
        call(f"{google_server[1].url}/v1", lambda c: c.get(NAME), read_timeout=0.2)
    assert failed.value.code is RpcCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("status", "rpc_status", "code"),
    [
        (400, "FAILED_PRECONDITION", RpcCode.FAILED_PRECONDITION),
        (400, "INVALID_ARGUMENT", RpcCode.INVALID_ARGUMENT),
        (409, "ABORTED", RpcCode.ABORTED),
        (501, "UNIMPLEMENTED", RpcCode.UNIMPLEMENTED),
        (403, "", RpcCode.PERMISSION_DENIED),  # no status name: by HTTP status
    ],
)
def test_errors_map_by_their_status_name_before_their_http_status(
    google: OperationsStandIn,
    google_server: tuple[OperationsStandIn, BackgroundServer],
    status: int,
    rpc_status: str,
    code: RpcCode,
) -> None:
    google.state.script("POST", str(NAME), status, rpc_status, "said Google")
    with pytest.raises(OperationsError) as failed:
        call(f"{google_server[1].url}/v1", lambda c: c.cancel(NAME))
    assert failed.value.code is code
    assert failed.value.message == "said Google"


def test_a_cancel_is_a_post_to_the_cancel_url(
    google: OperationsStandIn, google_server: tuple[OperationsStandIn, BackgroundServer]
) -> None:
    google.state.add(FakeOperation(str(NAME)))
    assert call(f"{google_server[1].url}/v1", lambda c: c.cancel(NAME)) is None
    assert [(r.method, r.action) for r in google.state.requests] == [("POST", "cancel")]
    assert google.state.operations[str(NAME)].cancel_requested


class RawAnswers:
    """An HTTP server on 127.0.0.1 that answers each request with the next scripted bytes,
    as a proxy or a misbehaving backend would: any status, any body, any content type."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, bytes, str]] = []

    async def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        return app

    async def _answer(self, request: web.Request) -> web.Response:
        status, body, content_type = self.answers.pop(0)
        return web.Response(status=status, body=body, content_type=content_type)


@pytest.fixture(scope="module")
def raw_server() -> Iterator[tuple[RawAnswers, BackgroundServer]]:
    answers = RawAnswers()
    server = BackgroundServer(answers.make_app).start()
    yield answers, server
    server.stop()


def answered(raw: tuple[RawAnswers, BackgroundServer], status: int, body: Any,
             make: Callable[[OperationsClient], Coroutine[Any, Any, T]],
             content_type: str = "application/json") -> T:  # fmt: skip
    """What the client makes of one raw answer (a JSON value, or bytes sent as they are)."""
    raw[0].answers = [(status, body if isinstance(body, bytes) else json.dumps(body).encode(),
                       content_type)]  # fmt: skip
    return call(f"{raw[1].url}/v1", make)


def failure(raw: tuple[RawAnswers, BackgroundServer], status: int, body: Any,
            make: Callable[[OperationsClient], Coroutine[Any, Any, Any]],
            content_type: str = "application/json") -> OperationsError:  # fmt: skip
    with pytest.raises(OperationsError) as failed:
        answered(raw, status, body, make, content_type)
    return failed.value


PROXY_PAGE = b"<html><body><h1>502 Bad Gateway</h1>nginx at 10.0.0.7:8443</body></html>"


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (500, {"error": {"code": 0, "message": "fine", "status": "OK"}}, RpcCode.INTERNAL),
        (503, {"error": {"code": 0, "status": "OK"}}, RpcCode.UNAVAILABLE),
        (400, {"error": {"code": 14, "status": "UNAVAILABLE"}}, RpcCode.INVALID_ARGUMENT),
        (500, {"error": {"code": 5, "status": "NOT_FOUND"}}, RpcCode.INTERNAL),
        (409, {"error": {"status": True}}, RpcCode.ABORTED),
        (404, ["not", "an", "object"], RpcCode.NOT_FOUND),
    ],
)
def test_the_http_status_class_wins_where_the_body_disagrees(
    raw_server: tuple[RawAnswers, BackgroundServer], status: int, body: Any, code: RpcCode
) -> None:
    error = failure(raw_server, status, body, lambda c: c.cancel(NAME))
    assert error.code is code
    assert error.http_status == status


def test_a_proxys_html_error_page_maps_to_its_status_without_its_text(
    raw_server: tuple[RawAnswers, BackgroundServer],
) -> None:
    error = failure(raw_server, 502, PROXY_PAGE, lambda c: c.get(NAME), "text/html")
    assert error.code is RpcCode.UNAVAILABLE
    assert error.message == "HTTP 502"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"", "application/json"), (b"[]", "application/json"), (b'"OK"', "application/json"),
     (PROXY_PAGE, "text/html")],
)  # fmt: skip
def test_a_cancels_2xx_must_be_a_json_object_or_it_is_unknown(
    raw_server: tuple[RawAnswers, BackgroundServer], body: bytes, content_type: str
) -> None:
    error = failure(raw_server, 200, body, lambda c: c.cancel(NAME), content_type)
    assert error.code is RpcCode.UNKNOWN
    assert "could not be read" in error.message
    assert b"nginx" not in error.message.encode()


def test_a_200_is_an_accepted_cancel_whatever_its_object_says(
    raw_server: tuple[RawAnswers, BackgroundServer],
) -> None:
    body = {"error": {"code": 13, "status": "INTERNAL"}}
    assert answered(raw_server, 200, body, lambda c: c.cancel(NAME)) is None


def operation_json(**fields: Any) -> dict[str, Any]:
    return {"name": str(NAME), "metadata": {"verb": "create"}, **fields}


@pytest.mark.parametrize(
    ("fields", "outcome", "code"),
    [
        ({"done": True, "error": {"code": 1, "message": "cancelled"}}, Outcome.CANCELLED,
         RpcCode.CANCELLED),
        ({"done": True, "error": {"code": True, "message": "odd"}}, Outcome.FAILED,
         RpcCode.UNKNOWN),
        ({"done": True, "error": {"code": "1"}}, Outcome.FAILED, RpcCode.UNKNOWN),
        ({"done": True, "error": {"code": 1.0}}, Outcome.FAILED, RpcCode.UNKNOWN),
        ({"done": True, "error": {"message": "no code"}}, Outcome.FAILED, RpcCode.UNKNOWN),
        ({"done": True, "error": {"code": 99}}, Outcome.FAILED, RpcCode.UNKNOWN),
        ({"done": True, "response": {"@type": "x"}}, Outcome.COMPLETED, None),
        ({"done": True}, Outcome.NO_RESULT, None),
        ({}, Outcome.RUNNING, None),
        ({"done": False}, Outcome.RUNNING, None),
    ],
)  # fmt: skip
def test_operations_are_read_with_their_fields_type_checked(
    raw_server: tuple[RawAnswers, BackgroundServer],
    fields: dict[str, Any],
    outcome: Outcome,
    code: RpcCode | None,
) -> None:
    operation = answered(raw_server, 200, operation_json(**fields), lambda c: c.get(NAME))
    assert operation.outcome is outcome
    assert (operation.error.code if operation.error else None) is code


@pytest.mark.parametrize(
    "fields",
    [
        {"done": "true"},
        {"done": 1},
        {"done": None},
        {"done": True, "error": "failed"},
        {"done": True, "response": "yes"},
        {"done": True, "error": {"code": 1}, "response": {}},
    ],
)
def test_an_operation_with_fields_of_the_wrong_type_is_unreadable(
    raw_server: tuple[RawAnswers, BackgroundServer], fields: dict[str, Any]
) -> None:
    error = failure(raw_server, 200, operation_json(**fields), lambda c: c.get(NAME))
    assert error.code is RpcCode.UNKNOWN
    assert "could not be read" in error.message


def test_transport_errors_keep_addresses_and_exceptions_out_of_the_message(
    google_server: tuple[OperationsStandIn, BackgroundServer], caplog: pytest.LogCaptureFixture
) -> None:
    port = google_server[1].port
    # Refused, and TLS spoken to a plain-HTTP server: both fail before any answer.
    for base_url in ("http://127.0.0.1:1/v1", f"https://127.0.0.1:{port}/v1"):
        with (
            caplog.at_level(logging.WARNING, logger="bot.google.operations"),
            pytest.raises(OperationsError) as failed,
        ):
            call(base_url, lambda c: c.get(NAME))
        assert failed.value.code is RpcCode.UNAVAILABLE
        assert failed.value.message == "could not reach the Operations API"
        logged = " ".join(str(getattr(r, "error", "")) for r in caplog.records)
        assert "127.0.0.1" in logged
        caplog.clear()


def test_a_timeout_says_so_in_plain_words(
    google: OperationsStandIn, google_server: tuple[OperationsStandIn, BackgroundServer]
) -> None:
    google.state.add(FakeOperation(str(NAME)))
    google.state.latency_seconds = 1.0
    with pytest.raises(OperationsError) as failed:
        call(f"{google_server[1].url}/v1", lambda c: c.get(NAME), read_timeout=0.1)
    assert failed.value.message == "the Operations API did not answer in time"


def test_a_redirected_cancel_is_not_followed_nor_taken_as_accepted() -> None:
    followed: list[str] = []

    async def make_app() -> web.Application:
        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPFound("/elsewhere")

        async def elsewhere(request: web.Request) -> web.Response:
            followed.append(request.method)
            return web.json_response({})

        app = web.Application()
        app.router.add_route("*", "/elsewhere", elsewhere)
        app.router.add_route("*", "/v1/{tail:.*}", redirect)
        return app

    server = BackgroundServer(make_app).start()
    try:
        with pytest.raises(OperationsError) as failed:
            call(f"{server.url}/v1", lambda c: c.cancel(NAME))
    finally:
        server.stop()
    assert failed.value.http_status == 302
    assert followed == []
