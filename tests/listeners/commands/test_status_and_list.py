"""`/cancel-op status NAME` and `/cancel-op list PARENT`, each behind its own permission."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from bot.audit import AUDIT_STREAM
from bot.standins.operations_api import OperationsStandIn
from bot.standins.slack_api import SlackStandIn
from tests.conftest import ONCALL, STRANGER, RunningBot
from tests.listeners.flow import OP, seed
from tests.slack_driver import wait_for

READERS = f"""
bindings:
  - permission: cloudaicompanion.operations.get
    members: [user:{ONCALL}]
  - permission: cloudaicompanion.operations.list
    members: [user:{ONCALL}]
    resources: [projects/prod-*/locations/*/operations/*]
"""


@pytest.fixture
def readers(start_bot: Callable[..., RunningBot]) -> RunningBot:
    return start_bot(READERS)


def reply(slack: SlackStandIn) -> dict[str, object]:
    posted = wait_for(lambda: slack.state.responses, what="a response_url post")
    answer: dict[str, object] = posted[-1]
    assert answer["response_type"] == "ephemeral"
    return answer


def test_status_shows_the_current_state(
    readers: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google, verb="delete", done=True, error={"code": 9, "message": "not cancellable"})
    readers.driver.command(f"status {OP}", user=ONCALL)
    answer = reply(slack)
    text = str(answer["text"]) + str(answer["blocks"])
    assert OP in text and "delete" in text and "FAILED_PRECONDITION" in text
    assert google.state.requests_for(OP, "cancel") == []


def test_status_needs_the_get_permission(
    readers: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    readers.driver.command(f"status {OP}", user=STRANGER)
    assert "cloudaicompanion.operations.get" in str(reply(slack)["text"])
    assert google.state.requests == []


def test_cancel_is_not_granted_by_get_or_list(
    readers: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    readers.driver.command(OP, user=ONCALL)
    assert "cloudaicompanion.operations.cancel" in str(reply(slack)["text"])


def test_list_pages_through_and_shows_a_screenful_with_cancel_buttons(
    readers: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    parent = "projects/prod-1/locations/us-central1"
    for i in range(250):
        seed(google, f"{parent}/operations/op-{i:03d}", done=i % 5 == 0)
    seed(google, "projects/prod-1/locations/europe-west1/operations/elsewhere")
    readers.driver.command(f"list {parent}", user=ONCALL)
    answer = reply(slack)
    assert "200 running operations" in str(answer["text"])
    blocks = answer["blocks"]
    assert isinstance(blocks, list)
    buttons = [b["accessory"] for b in blocks if "accessory" in b]
    assert [b["action_id"] for b in buttons] == ["cancel_op"] * 10
    assert buttons[0]["value"] == f"{parent}/operations/op-001"
    assert "190 more not shown" in str(blocks)
    assert len(google.state.requests_for(parent, "list")) == 3  # 100 + 100 + 50


@pytest.mark.parametrize("parent", ["projects/staging-1/locations/us", "projects/prod-1"])
def test_list_needs_the_list_permission_on_that_parent_and_a_parent_shape(
    readers: RunningBot, slack: SlackStandIn, google: OperationsStandIn, parent: str
) -> None:
    response = readers.driver.command(f"list {parent}", user=ONCALL)
    if response.text:
        assert "projects/PROJECT/locations/LOCATION" in response.json()["text"]
    else:
        assert "cloudaicompanion.operations.list" in str(reply(slack)["text"])
    assert google.state.requests == []


def test_status_of_an_operation_done_without_a_result_says_so(
    readers: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google, done=True)  # done, with neither `error` nor `response`
    readers.driver.command(f"status {OP}", user=ONCALL)
    shown = str(reply(slack)["blocks"])
    assert "no result reported" in shown
    assert "completed" not in shown


BATCH_ONLY = """
bindings:
  - permission: cloudaicompanion.operations.list
    members: [user:{user}]
    resources: [projects/prod-1/locations/us-central1/operations/batch-*]
  - permission: cloudaicompanion.operations.list
    members: [user:{user}]
    resources: [projects/prod-1/locations/*/operations/*]
    channels: [C0OPS]
"""
PARENT = "projects/prod-1/locations/us-central1"


def listed(answer: dict[str, object]) -> list[str]:
    """The operation names a list reply offers a Cancel button for."""
    blocks = answer["blocks"]
    assert isinstance(blocks, list)
    return [b["accessory"]["value"] for b in blocks if "accessory" in b]


def test_list_shows_only_the_operations_the_callers_list_bindings_cover(
    start_bot: Callable[..., RunningBot], slack: SlackStandIn, google: OperationsStandIn
) -> None:
    running = start_bot(BATCH_ONLY.format(user=ONCALL))
    for operation in ("batch-1", "secret-migration-7", "batch-2", "payroll-export"):
        seed(google, f"{PARENT}/operations/{operation}")
    running.driver.command(f"list {PARENT}", user=ONCALL, channel="C0RANDOM")
    answer = reply(slack)
    assert listed(answer) == [f"{PARENT}/operations/batch-1", f"{PARENT}/operations/batch-2"]
    assert "2 running operations" in str(answer["text"])
    shown = str(answer["blocks"])
    assert "secret-migration-7" not in shown and "payroll-export" not in shown
    # A binding limited to another channel applies there only.
    running.driver.command(f"list {PARENT}", user=ONCALL, channel="C0OPS")
    wait_for(lambda: len(slack.state.responses) == 2, what="the second reply")
    assert len(listed(slack.state.responses[-1])) == 4


def test_list_leaves_out_operations_whose_names_could_not_be_cancelled(
    readers: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    parent = "projects/prod-1/locations/us-central1"
    seed(google, f"{parent}/operations/fine")
    seed(google, f"{parent}/operations/{'x' * 200}")  # longer than a segment may be
    readers.driver.command(f"list {parent}", user=ONCALL)
    assert listed(reply(slack)) == [f"{parent}/operations/fine"]


def test_status_and_list_refusals_are_audited(
    readers: RunningBot, slack: SlackStandIn, redis_url: str
) -> None:
    readers.driver.command(f"status {OP}", user=STRANGER)
    readers.driver.command("list projects/staging-1/locations/us", user=ONCALL)
    wait_for(lambda: len(slack.state.responses) == 2, what="both refusals")
    store = redis.Redis.from_url(redis_url, decode_responses=True)
    entries: list[Any] = [entry for _, entry in store.xrange(AUDIT_STREAM) or []]
    store.close()
    assert sorted((e["event"], e["actor"], e["step"], e["permission"]) for e in entries) == [
        ("denied", ONCALL, "list", "cloudaicompanion.operations.list"),
        ("denied", STRANGER, "get", "cloudaicompanion.operations.get"),
    ]
