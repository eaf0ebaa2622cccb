"""The stand-in Slack's client routes when the app fails Slack: what the person is told."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import httpx
import pytest
from aiohttp import web

from bot.standins.runner import BackgroundServer
from bot.standins.slack_api import SlackStandIn
from bot.standins.slack_client import SlackClientApi
from bot.standins.slack_payloads import signed_headers

USER, CHANNEL = "U0ADA", "C0ALERTS"


def slack_for(request_url: str) -> tuple[SlackStandIn, BackgroundServer]:
    standin = SlackStandIn()
    client = SlackClientApi(standin, request_url, "secret", {CHANNEL: "alerts"}, {USER: "Ada"})

    async def make_app() -> web.Application:
        app = await standin.make_app()
        client.add_routes(app)
        return app

    return standin, BackgroundServer(make_app).start()


@pytest.fixture
def slow_app() -> Iterator[tuple[BackgroundServer, list[dict[str, str]]]]:
    """An app that checks the signature, then takes longer than Slack's 3 seconds."""
    received: list[dict[str, str]] = []

    async def make_app() -> web.Application:
        async def events(request: web.Request) -> web.Response:
            body = await request.text()
            stamp = request.headers["X-Slack-Request-Timestamp"]
            expected = signed_headers("secret", body, int(stamp))["X-Slack-Signature"]
            received.append({"signed": str(request.headers["X-Slack-Signature"] == expected)})
            await asyncio.sleep(4)
            return web.Response()

        app = web.Application()
        app.router.add_post("/slack/events", events)
        return app

    server = BackgroundServer(make_app).start()
    yield server, received
    server.stop()


def command(server: BackgroundServer) -> httpx.Response:
    fields = {"user": USER, "channel": CHANNEL, "text": "help"}
    return httpx.post(f"{server.url}/client/command", json=fields, timeout=10)


def test_an_app_that_does_not_answer_in_time_gets_slacks_timeout_error(
    slow_app: tuple[BackgroundServer, list[dict[str, str]]],
) -> None:
    app, received = slow_app
    standin, slack = slack_for(f"{app.url}/slack/events")
    try:
        assert command(slack).status_code == 200
    finally:
        slack.stop()
    assert received == [{"signed": "True"}]
    [told] = standin.state.ephemerals
    assert (told.user, told.author) == (USER, "USLACKBOT")
    assert "/cancel-op failed with the error operation_timeout" in told.text


def test_an_app_that_is_down_gets_slacks_dispatch_error() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    standin, slack = slack_for(f"http://127.0.0.1:{port}/slack/events")
    try:
        assert command(slack).status_code == 200
    finally:
        slack.stop()
    [told] = standin.state.ephemerals
    assert "failed with the error dispatch_failed" in told.text
    assert standin.state.messages == []
