"""The Operations API client over its real transport: errors, retries, and what they map to."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx
import pytest

from bot.google_auth import AnonymousTokens
from bot.http_transport import AiohttpTransport
from bot.names import OperationName
from bot.operations import OperationsClient, OperationsError
from bot.retry import RetryPolicy
from bot.rpc import RpcCode
from bot.standins.operations_api import FakeOperation, OperationsStandIn
from bot.standins.runner import BackgroundServer

T = TypeVar("T")
NAME = OperationName("p", "l", "o")


def call(base_url: str, make: Callable[[OperationsClient], Coroutine[Any, Any, T]],
         attempts: int = 1, read_timeout: float = 5.0) -> T:  # fmt: skip
    async def run() -> T:
        transport = AiohttpTransport(max_connections=4)
        timeout = httpx.Timeout(read_timeout, connect=1.0)
        async with httpx.AsyncClient(transport=transport, timeout=timeout) as http:
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
