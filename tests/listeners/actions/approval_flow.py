"""Steps of the two-person flow that several tests take: ask for approval, click a button."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import redis

from bot.approval.store import DUE_KEY
from bot.policy.allowlist import Allowlist, parse_allowlist
from bot.standins import slack_payloads
from bot.standins.slack_api import Message, SlackStandIn
from tests.conftest import ONCALL, ROTATION, RunningBot
from tests.listeners.flow import open_modal
from tests.slack_driver import wait_for

LEAD = "U0LEAD"
LEADS = "S0LEADS"
LEAD_MEMBER = "U0LEADMEMBER"
PROTECTED = f"""
bindings:
  - permission: cloudaicompanion.operations.cancel
    members: [user:{ONCALL}, usergroup:{ROTATION}]
    resources: [projects/prod-*/locations/*/operations/*]
    approval:
      approvers: [user:{LEAD}, usergroup:{LEADS}, user:{ONCALL}]
  - permission: cloudaicompanion.operations.get
    members: [user:{ONCALL}]
"""
APPROVE = "cancel_op_approve"
DENY = "cancel_op_deny"


def protected(expires_after_seconds: int) -> Allowlist:
    """PROTECTED with a shorter wait than a file may set, so expiry comes within a test."""
    policy = parse_allowlist(PROTECTED, "cloudaicompanion")
    bindings = tuple(
        replace(b, approval=replace(b.approval, expires_after_seconds=expires_after_seconds))
        if b.approval
        else b
        for b in policy.bindings
    )
    return replace(policy, bindings=bindings)


def reason_values(reason: str) -> dict[str, Any]:
    return {"reason": {"reason": {"type": "plain_text_input", "value": reason}}}


def ask(
    running: RunningBot, slack: SlackStandIn, user: str = ONCALL, reason: str = "stuck rollout"
) -> dict[str, Any]:
    """Open the confirmation and submit it with a reason; returns the bot's ack."""
    view = open_modal(running, slack, user)
    response = running.driver.submit(view, user=user, values=reason_values(reason))
    assert response.status_code == 200
    return response.json() if response.text else {}


# The id on each request's buttons, by message ts: a stale client still shows the buttons
# after the bot has edited them away, and clicks them.
_BUTTON_VALUES: dict[str, str] = {}


def approval_message(slack: SlackStandIn) -> Message:
    """The approval request, once posted."""
    message: Message = wait_for(
        lambda: next((m for m in slack.state.messages if "needs a second person" in m.text), None),
        what="the approval request",
    )
    buttons = next(b for b in message.blocks if b["type"] == "actions")["elements"]
    _BUTTON_VALUES[message.ts] = str(buttons[0]["value"])
    return message


def request_id(message: Message) -> str:
    return _BUTTON_VALUES[message.ts]


def click_body(
    running: RunningBot, message: Message, user: str, action_id: str, value: str = ""
) -> str:
    """A click on one of the request's buttons, as Slack sends it (signed by the driver)."""
    action = {"type": "button", "action_id": action_id, "block_id": "approval",
              "value": value or request_id(message)}  # fmt: skip
    return slack_payloads.block_actions(
        action, user=user, trigger_id="1.t", response_url=f"{running.driver.slack_url}/response/1",
        message={"type": "message", "ts": message.ts, "text": message.text},
        channel=message.channel, channel_name="ops",
    )  # fmt: skip


def click(running: RunningBot, message: Message, user: str, action_id: str) -> httpx.Response:
    response = running.driver.click(
        request_id(message), user=user, action_id=action_id,
        channel=message.channel, message_ts=message.ts,
    )  # fmt: skip
    assert response.status_code == 200
    return response


def decided(message: Message, words: str) -> None:
    """Wait until the request message is edited to say `words`, its buttons gone."""
    wait_for(
        lambda: words in message.text and not any(b["type"] == "actions" for b in message.blocks),
        what=f"the request edited to say {words!r}",
    )


def ephemeral_reply(slack: SlackStandIn, count: int = 1) -> str:
    posted = wait_for(lambda: len(slack.state.responses) >= count and slack.state.responses,
                      what="an ephemeral reply")  # fmt: skip
    reply = posted[count - 1]
    assert reply["response_type"] == "ephemeral" and reply["replace_original"] is False
    return str(reply["text"])


def nothing_due(redis_url: str) -> bool:
    """No request left to expire or carry out."""
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.zcard(DUE_KEY)) == 0
    finally:
        client.close()
