"""Slack's failures read once: what real answers (from the stand-in) classify as."""

from __future__ import annotations

import asyncio
import socket

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.outcomes import SlackFailure, classify
from bot.slack.posts import slack_error
from bot.standins.runner import BackgroundServer
from bot.standins.slack_api import SlackFault, SlackStandIn
from tests.conftest import BOT_TOKEN

PERMANENT = [
    "not_in_channel", "channel_not_found", "is_archived", "restricted_action",
    "restricted_action_read_only_channel", "restricted_action_thread_only_channel",
    "invalid_auth", "token_revoked", "account_inactive", "invalid_blocks", "msg_too_long",
    "message_not_found",
]  # fmt: skip


def failure_of(base_url: str) -> tuple[SlackFailure, str]:
    """Post once with a client that does not retry; how the failure reads."""

    async def post() -> tuple[SlackFailure, str]:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=base_url, retry_handlers=[])
        try:
            await client.chat_postMessage(channel="C0CHANNEL", text="hello")
        except SlackApiError as exc:
            return classify(exc), slack_error(exc)
        except Exception as exc:
            return classify(exc), ""
        raise AssertionError("the post succeeded")

    return asyncio.run(post())


@pytest.mark.parametrize("error", PERMANENT)
def test_each_refusal_is_permanent(
    slack: SlackStandIn, slack_server: tuple[SlackStandIn, BackgroundServer], error: str
) -> None:
    slack.state.fail("chat.postMessage", SlackFault.error(error))
    failure, said = failure_of(f"{slack_server[1].url}/api/")
    assert failure == SlackFailure(error, transient=False)
    assert said == error


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (SlackFault.rate_limited(retry_after=7), "ratelimited"),
        (SlackFault(500, {"ok": False, "error": "internal_error"}), "internal_error"),
        (SlackFault.proxy_page(502), "non_json_http_502"),
        (SlackFault.proxy_page(503), "non_json_http_503"),
        (SlackFault.proxy_page(200), "non_json_http_200"),
        (SlackFault.proxy_page(200, content_type="application/json"), "non_json_http_200"),
    ],
    ids=["429", "500", "html-502", "html-503", "html-200", "broken-json-200"],
)
def test_rate_limits_server_errors_and_answers_that_are_not_json_are_transient(
    slack: SlackStandIn,
    slack_server: tuple[SlackStandIn, BackgroundServer],
    fault: SlackFault,
    reason: str,
) -> None:
    slack.state.fail("chat.postMessage", fault)
    failure, said = failure_of(f"{slack_server[1].url}/api/")
    assert failure.transient and failure.reason == reason
    assert said == reason  # readable, where it used to raise AttributeError
    if fault.status == 429:
        assert failure.retry_after == 7


def test_a_slack_that_cannot_be_reached_is_transient() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connection refused
        failure, _ = failure_of(f"http://127.0.0.1:{port}/api/")
    assert failure.transient and failure.reason.startswith("connection:")
