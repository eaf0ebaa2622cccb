from __future__ import annotations

from bot.standins.operations_api import OperationsStandIn
from bot.standins.slack_api import SlackStandIn
from tests.conftest import ONCALL, RunningBot
from tests.listeners.flow import OP, confirm, open_modal, seed, view_text
from tests.slack_driver import wait_for


def test_confirm_sends_one_cancel_and_reports_it_in_the_thread(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    view = open_modal(running, slack, ONCALL)
    ack = confirm(running, view, ONCALL)
    assert ack["response_action"] == "update"
    assert "requested" in view_text(ack["view"])
    replies = wait_for(lambda: len(slack.state.messages) >= 2 and slack.state.messages)
    request, answer = replies[0], replies[1]
    assert request.channel == "C0CHANNEL" and request.thread_ts == ""
    assert f"<@{ONCALL}> asked to cancel `{OP}`" in request.text
    assert answer.thread_ts == request.ts
    assert "OK" in answer.text
    assert len(google.state.requests_for(OP, "cancel")) == 1
