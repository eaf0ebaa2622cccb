"""`/cancel-op status NAME` and `/cancel-op list PARENT`, each behind its own permission."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from bot.policy.audit import AUDIT_STREAM
from bot.policy.names import EXPECTED_SHAPE
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


def test_list_needs_the_list_permission_on_that_parent(
    readers: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    readers.driver.command("list projects/staging-1/locations/us", user=ONCALL)
    assert "cloudaicompanion.operations.list" in str(reply(slack)["text"])
    assert google.state.requests == []


LIST_USAGE = (
    "Usage: `/cancel-op list projects/PROJECT/locations/LOCATION`: running operations there"
)
STATUS_USAGE = f"Usage: `/cancel-op status NAME`: its current state (NAME is `{EXPECTED_SHAPE}`)"


@pytest.mark.parametrize(
    ("text", "said", "usage"),
    [
        ("list", "`/cancel-op list` needs a location.", LIST_USAGE),
        ("LIST   ", "`/cancel-op list` needs a location.", LIST_USAGE),
        ("list projects/shop-prod", "`projects/shop-prod` is not a location I can use: it does "
         "not have the shape projects/PROJECT/locations/LOCATION.", LIST_USAGE),
        (f"list {OP}", f"`{OP}` is not a location I can use: it names one operation", LIST_USAGE),
        ("status", "`/cancel-op status` needs an operation name.", STATUS_USAGE),
        ("status garbage", "`garbage` is not an operation name I can use: it does not have the "
         f"shape {EXPECTED_SHAPE}.", STATUS_USAGE),
        ("status projects/prod-1/locations/global",
         "`projects/prod-1/locations/global` is not an operation name I can use: it names a "
         "location, not one operation", STATUS_USAGE),
    ],
)  # fmt: skip
def test_each_subcommands_mistake_gets_that_subcommands_usage(
    readers: RunningBot, google: OperationsStandIn, text: str, said: str, usage: str
) -> None:
    message = str(readers.driver.command(text, user=ONCALL).json()["text"])
    assert message.startswith(f":warning: {said}")
    assert usage in message
    assert message.count("Usage:") == 1  # only that subcommand's
    assert google.state.requests == []


def test_status_of_a_running_operation_shows_its_age_in_each_readers_zone(
    readers: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    created = datetime.now(UTC) - timedelta(minutes=47, seconds=10)
    seed(google, create_time=created.isoformat().replace("+00:00", "Z"))
    readers.driver.command(f"status {OP}", user=ONCALL)
    answer = reply(slack)
    shown = str(answer["blocks"])
    token = f"<!date^{int(created.timestamp())}^{{date_short_pretty}} {{time}}|"
    assert token + created.strftime("%Y-%m-%d %H:%M UTC>") + " (47 minutes ago)" in shown
    assert "Running for 47 minutes" in str(answer["text"])


def test_status_of_an_operation_that_failed_advises_on_what_it_left_not_a_retry(
    readers: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google, done=True, error={"code": 13, "message": "backend failure"})
    readers.driver.command(f"status {OP}", user=ONCALL)
    shown = str(reply(slack)["blocks"])
    assert "INTERNAL" in shown and "The operation is over" in shown
    assert "Try again" not in shown and "cancel it again" not in shown


def test_a_failed_lookup_advises_asking_again(
    readers: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    google.state.script("GET", OP, 500, "INTERNAL", "backend failure")
    readers.driver.command(f"status {OP}", user=ONCALL)
    shown = str(reply(slack)["blocks"])
    assert "INTERNAL" in shown and "*Next:* Ask me again in a minute" in shown


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


def test_list_says_how_long_each_operation_has_run(
    readers: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    created = datetime.now(UTC) - timedelta(hours=2, minutes=5, seconds=10)
    seed(google, f"{PARENT}/operations/reindex", verb="reindex",
         create_time=created.isoformat().replace("+00:00", "Z"))  # fmt: skip
    readers.driver.command(f"list {PARENT}", user=ONCALL)
    shown = str(reply(slack)["blocks"])
    assert "reindex · " in shown and " · running for 2 hours 5 minutes" in shown
