from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
import redis

from bot.policy.audit import AUDIT_STREAM
from bot.standins.operations_api import OperationsStandIn
from bot.standins.slack_api import SlackStandIn
from tests.conftest import ONCALL, ROTATION, ROTATION_MEMBER, STRANGER, RunningBot
from tests.listeners.flow import OP, closed, confirm, open_modal, seed, view_text
from tests.slack_driver import wait_for


def test_confirm_sends_one_cancel_and_reports_it_in_the_thread(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    view = open_modal(running, slack, ONCALL)
    ack = confirm(running, view, ONCALL)
    assert closed(ack)  # the thread speaks from here
    replies = wait_for(lambda: len(slack.state.messages) >= 2 and slack.state.messages)
    request, answer = replies[0], replies[1]
    assert request.channel == "C0CHANNEL" and request.thread_ts == ""
    assert f"<@{ONCALL}> asked to cancel `{OP}`" in request.text
    assert answer.thread_ts == request.ts
    assert "OK" in answer.text
    assert len(google.state.requests_for(OP, "cancel")) == 1


@pytest.mark.parametrize(
    ("status", "rpc_status", "times", "plain_words"),
    [
        (501, "UNIMPLEMENTED", 1, "does not support cancelling"),
        (404, "NOT_FOUND", 1, "no operation by that name"),
        (403, "PERMISSION_DENIED", 1, "IAM permission"),
        (400, "FAILED_PRECONDITION", 1, "cannot be cancelled in its current state"),
        (429, "RESOURCE_EXHAUSTED", 4, "quota"),
        (503, "UNAVAILABLE", 4, "could not be reached or is overloaded"),
    ],
)
def test_each_error_answer_is_named_and_explained_in_the_thread(
    running: RunningBot,
    slack: SlackStandIn,
    google: OperationsStandIn,
    status: int,
    rpc_status: str,
    times: int,
    plain_words: str,
) -> None:
    seed(google)
    for _ in range(times):
        google.state.script("POST", OP, status, rpc_status, "from the stand-in")
    view = open_modal(running, slack, ONCALL)
    confirm(running, view, ONCALL)
    answer = wait_for(lambda: len(slack.state.messages) >= 2 and slack.state.messages[1])
    rendered = answer.text + str(answer.blocks)
    assert rpc_status in rendered
    assert plain_words in rendered
    assert "Next:" in rendered
    assert "from the stand-in" in rendered
    assert len(google.state.requests_for(OP, "cancel")) == times


def test_busy_answers_are_retried_and_then_succeed(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    google.state.script("POST", OP, 503, "UNAVAILABLE", "busy")
    google.state.script("POST", OP, 429, "RESOURCE_EXHAUSTED", "slow down")
    confirm(running, open_modal(running, slack, ONCALL), ONCALL)
    answer = wait_for(lambda: len(slack.state.messages) >= 2 and slack.state.messages[1])
    assert "OK" in answer.text
    assert len(google.state.requests_for(OP, "cancel")) == 3


def test_metadata_naming_another_operation_is_refused(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    view = open_modal(running, slack, ONCALL)
    body, signature = view["private_metadata"].split(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=="))
    data["operation"] = "projects/other/locations/global/operations/victim"
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    for metadata in (f"{forged}.{signature}", json.dumps(data), ""):
        ack = confirm(running, {**view, "private_metadata": metadata}, ONCALL)
        assert "not issued by me" in view_text(ack["view"])
    assert google.state.requests_for(OP, "cancel") == []
    assert all(r.action != "cancel" for r in google.state.requests)
    assert slack.state.messages == []


def test_a_submission_by_another_user_is_refused(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    view = open_modal(running, slack, ONCALL)
    for someone_else in (STRANGER, ROTATION_MEMBER):
        ack = confirm(running, view, someone_else)
        assert "belongs to someone else" in view_text(ack["view"])
    assert google.state.requests_for(OP, "cancel") == []


def test_access_is_checked_again_at_submit(
    start_bot: Callable[..., RunningBot], slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    running = start_bot()
    view = open_modal(running, slack, ROTATION_MEMBER)
    # Off the rotation between opening the modal and confirming it, on another replica.
    slack.state.usergroups[ROTATION] = []
    replica = start_bot()
    ack = confirm(replica, view, ROTATION_MEMBER)
    assert "cloudaicompanion.operations.cancel" in view_text(ack["view"])
    assert google.state.requests_for(OP, "cancel") == []


def test_double_submit_sends_one_cancel(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    view = open_modal(running, slack, ONCALL)
    acks = [confirm(running, view, ONCALL) for _ in range(3)]
    assert all(closed(a) for a in acks)  # the first answer, thrice
    # The request, Google's answer and the final state, each once; then the watch ends.
    wait_for(lambda: len(slack.state.messages) >= 3)
    wait_for(lambda: running.bot.services.watcher.snapshot()["in_flight"] == 0)
    assert len(google.state.requests_for(OP, "cancel")) == 1
    assert len(slack.state.messages) == 3


def test_a_second_engineer_is_pointed_to_the_first_cancel(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google, polls_until_done=5)  # still running when the second engineer looks
    confirm(running, open_modal(running, slack, ONCALL), ONCALL)
    wait_for(lambda: len(slack.state.messages) >= 2)
    slack.state.calls.clear()
    second = open_modal(running, slack, ROTATION_MEMBER)
    ack = confirm(running, second, ROTATION_MEMBER)
    text = view_text(ack["view"])
    assert "already being cancelled" in text
    assert f"<@{ONCALL}>" in text
    assert "https://example.slack.com/archives/C0CHANNEL/p" in text
    assert len(google.state.requests_for(OP, "cancel")) == 1


def test_a_refused_cancel_can_be_tried_again(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    google.state.script("POST", OP, 400, "FAILED_PRECONDITION", "not now")
    confirm(running, open_modal(running, slack, ONCALL), ONCALL)
    wait_for(lambda: len(slack.state.messages) >= 2)
    confirm(running, open_modal(running, slack, ONCALL), ONCALL)
    wait_for(lambda: len(slack.state.messages) >= 4)
    assert "OK" in slack.state.messages[3].text
    assert len(google.state.requests_for(OP, "cancel")) == 2


def test_when_the_bot_cannot_post_in_the_channel_the_user_is_told_in_a_dm(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    slack.state.closed_channels["C0PRIVATE"] = "not_in_channel"
    view = open_modal(running, slack, ONCALL, channel="C0PRIVATE")
    confirm(running, view, ONCALL)
    messages = wait_for(lambda: len(slack.state.messages) >= 3 and slack.state.messages)
    notice, request, answer = messages
    dm = "D" + ONCALL[1:]
    assert notice.channel == request.channel == answer.channel == dm
    assert "/invite @cancel-op" in notice.text and "not_in_channel" in notice.text
    assert request.thread_ts == answer.thread_ts == notice.ts
    assert "OK" in answer.text
    assert len(google.state.requests_for(OP, "cancel")) == 1


def test_with_redis_down_nothing_is_sent_and_the_user_is_told(
    start_bot: Callable[..., RunningBot], slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    running = start_bot(redis="redis://127.0.0.1:1/0")
    view = open_modal(running, slack, ONCALL)
    ack = confirm(running, view, ONCALL)
    assert "Redis" in view_text(ack["view"])
    assert google.state.requests_for(OP, "cancel") == []
    assert slack.state.messages == []


def test_decisions_are_appended_to_the_audit_stream(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn, redis_url: str
) -> None:
    seed(google)
    running.driver.command(OP, user=STRANGER)
    wait_for(lambda: slack.state.responses, what="the refusal, sent after its audit entry")
    confirm(running, open_modal(running, slack, ONCALL), ONCALL)
    wait_for(lambda: len(slack.state.messages) >= 2)
    store = redis.Redis.from_url(redis_url, decode_responses=True)

    def audit_entries() -> list[Any]:
        return list(store.xrange(AUDIT_STREAM) or [])

    entries = wait_for(lambda: len(audit_entries()) >= 3 and audit_entries())
    store.close()
    events = [(e["event"], e["actor"], e["outcome"]) for _, e in entries]
    assert events == [
        ("denied", STRANGER, "denied"),
        ("confirmed", ONCALL, "confirmed"),
        ("cancel_sent", ONCALL, "OK"),
    ]
    assert all(e["operation"] == OP and e["channel"] == "C0CHANNEL" for _, e in entries)
