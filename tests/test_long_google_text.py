"""Long and hostile text from Google reaches Slack cut to its limits and escaped, in the
modal, in replies and in the thread; the Slack stand-in refuses what real Slack refuses."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.standins.operations_api import OperationsStandIn
from bot.standins.runner import BackgroundServer
from bot.standins.slack_api import SlackStandIn
from tests.conftest import ONCALL, RunningBot
from tests.listeners.flow import OP, confirm, open_modal, seed, view_text
from tests.slack_driver import wait_for

LONG = "Quota check failed for <!channel> & friends: " + "x" * 5000
READER = f"""
bindings:
  - permission: cloudaicompanion.operations.cancel
    members: [user:{ONCALL}]
  - permission: cloudaicompanion.operations.get
    members: [user:{ONCALL}]
"""


def test_a_long_status_message_still_fills_the_confirmation(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google, status_message=LONG)
    view = open_modal(running, slack, ONCALL)
    assert view["submit"]["text"] == "Cancel operation"
    assert "&lt;!channel&gt; &amp; friends" in view_text(view)
    assert "<!channel>" not in view_text(view)
    assert slack.state.refused == []


def test_a_long_google_error_is_cut_in_the_status_reply(
    start_bot: Callable[..., RunningBot], slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google, done=True, error={"code": 13, "message": LONG})
    start_bot(READER).driver.command(f"status {OP}", user=ONCALL)
    reply = wait_for(lambda: slack.state.responses or slack.state.refused, what="a reply")
    assert slack.state.refused == []
    assert "Quota check failed" in str(reply[-1]["blocks"])


def test_a_long_google_error_is_cut_in_the_modal_when_the_lookup_fails(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    google.state.script("GET", OP, 403, "PERMISSION_DENIED", LONG)
    view = open_modal(running, slack, ONCALL)
    assert "PERMISSION_DENIED" in view_text(view) and "Quota check failed" in view_text(view)
    assert slack.state.refused == []


def test_a_long_google_error_in_the_final_state_reaches_the_thread(
    start_bot: Callable[..., RunningBot], slack: SlackStandIn, google: OperationsStandIn
) -> None:
    operation = seed(google, polls_until_done=10**6)
    running = start_bot(POLL_INITIAL_SECONDS="0.05", POLL_MAX_SECONDS="0.2")
    confirm(running, open_modal(running, slack, ONCALL), ONCALL)
    wait_for(lambda: google.state.requests_for(OP, "cancel"), what="the cancel")
    operation.error = {"code": 13, "message": LONG}
    operation.done = True
    final = wait_for(lambda: len(slack.state.messages) >= 3 and slack.state.messages[2])
    assert "failed" in final.text and "Quota check failed" in str(final.blocks)
    assert slack.state.refused == []


def post(slack_url: str, method: str, **args: Any) -> str:
    """Slack's error for one Web API call made with the real SDK client ("" if accepted)."""

    async def run() -> str:
        client = AsyncWebClient(token="xoxb-test", base_url=f"{slack_url}/api/")
        try:
            await client.api_call(method, json=args)
        except SlackApiError as exc:
            return str(exc.response["error"])
        return ""

    return asyncio.run(run())


SECTION_3001 = [{"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3001}}]


@pytest.mark.parametrize("method", ["chat.postMessage", "chat.update", "chat.postEphemeral"])
def test_the_stand_in_answers_invalid_blocks_as_slack_does(
    slack: SlackStandIn, slack_server: tuple[SlackStandIn, BackgroundServer], method: str
) -> None:
    error = post(slack_server[1].url, method, channel="C1", ts="1.1", user="U1", text="t",
                 blocks=SECTION_3001)  # fmt: skip
    assert error == "invalid_blocks"
    assert slack.state.refused[0][2] == [
        "[ERROR] must be less than 3001 characters [json-pointer:/blocks/0/text/text]"
    ]
    too_long = post(slack_server[1].url, method, channel="C1", ts="1.1", text="z" * 40_001)
    assert too_long == "msg_too_long"
    assert slack.state.messages == [] and slack.state.ephemerals == []


def test_the_stand_in_refuses_views_over_the_limits(
    slack: SlackStandIn, slack_server: tuple[SlackStandIn, BackgroundServer]
) -> None:
    title = {"type": "plain_text", "text": "A title far longer than 24 characters"}
    view = {"type": "modal", "title": title, "blocks": SECTION_3001}
    assert post(slack_server[1].url, "views.open", trigger_id="t", view=view) == "invalid_arguments"
    assert len(slack.state.refused[0][2]) == 2
    assert slack.state.views == {}


def test_the_stand_in_refuses_replies_over_the_limits(
    slack: SlackStandIn, slack_server: tuple[SlackStandIn, BackgroundServer]
) -> None:
    answer = httpx.post(f"{slack_server[1].url}/response/r1", json={"blocks": SECTION_3001})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_blocks"
    assert slack.state.responses == []
