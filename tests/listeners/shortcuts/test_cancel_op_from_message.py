""" "Cancel operation" on an alert: names found wherever the alert tool put them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from bot.policy.audit import AUDIT_STREAM
from bot.standins.operations_api import OperationsStandIn
from bot.standins.slack_api import SlackStandIn
from tests.conftest import ONCALL, STRANGER, RunningBot
from tests.listeners.flow import OP, confirm, response_text, seed, shown_modal, view_text
from tests.slack_driver import wait_for

ALERT_TS = "1700000000.000100"
OTHER = "projects/prod-2/locations/europe-west1/operations/op-456"


@pytest.mark.parametrize(
    "message",
    [
        {"text": f"Runaway indexing job: {OP} has run for 3 h"},
        {"text": f"see <https://cloudaicompanion.googleapis.com/v1/{OP}|the operation>"},
        {"text": f"operation: `{OP}`"},
        {"text": f"```{OP}```"},
        {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"*Op*\n`{OP}`"}}]},
        {"attachments": [{"color": "danger", "fields": [
            {"title": "Operation", "value": f"<https://console.cloud.google.com/x|{OP}>"}]}]},
        {"attachments": [{"blocks": [{"type": "rich_text", "elements": [
            {"type": "rich_text_section", "elements": [{"type": "text", "text": OP}]}]}]}]},
    ],
)  # fmt: skip
def test_the_name_is_found_in_text_blocks_attachments_links_and_code(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn, message: dict[str, Any]
) -> None:
    seed(google)
    assert running.driver.shortcut(message, user=ONCALL).status_code == 200
    view = shown_modal(slack)
    assert f"`{OP}`" in view_text(view)
    assert view["submit"]["text"] == "Cancel operation"


def test_follow_ups_go_into_the_alerts_thread(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    running.driver.shortcut({"text": f"alert: {OP}"}, user=ONCALL, channel="C0ALERTS")
    confirm(running, shown_modal(slack), ONCALL)
    thread = wait_for(lambda: len(slack.state.messages) >= 2 and slack.state.messages)
    assert all(m.channel == "C0ALERTS" and m.thread_ts == ALERT_TS for m in thread)
    assert "asked to cancel" in thread[0].text and "OK" in thread[1].text


def test_several_names_let_the_engineer_pick_one(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    seed(google, OTHER)
    running.driver.shortcut({"text": f"two jobs: {OP} and {OTHER} (again {OP})"}, user=ONCALL)
    opened = wait_for(lambda: slack.state.calls_to("views.open"))
    pick = slack.state.views[next(iter(slack.state.views))]
    buttons = [b["accessory"]["value"] for b in pick["blocks"] if "accessory" in b]
    assert buttons == [OP, OTHER]
    assert opened[0].args["trigger_id"]
    running.driver.click(OTHER, user=ONCALL, action_id="cancel_op_pick", view=pick)
    view = shown_modal(slack, updates=2)
    assert f"`{OTHER}`" in view_text(view) and view["id"] == pick["id"]
    confirm(running, view, ONCALL)
    wait_for(lambda: google.state.requests_for(OTHER, "cancel"))
    assert google.state.requests_for(OP, "cancel") == []


def test_a_pick_with_forged_metadata_or_by_someone_else_is_refused(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    seed(google, OTHER)
    running.driver.shortcut({"text": f"{OP} {OTHER}"}, user=ONCALL)
    wait_for(lambda: slack.state.views)
    pick = dict(slack.state.views[next(iter(slack.state.views))])
    running.driver.click(OTHER, user=STRANGER, action_id="cancel_op_pick", view=pick)
    assert "belongs to someone else" in view_text(shown_modal(slack))
    forged = {**pick, "private_metadata": "e30.AAAA"}
    running.driver.click(OTHER, user=ONCALL, action_id="cancel_op_pick", view=forged)
    assert "not issued by me" in view_text(shown_modal(slack, updates=2))
    assert all(r.action != "cancel" for r in google.state.requests)


def test_no_name_in_the_message_is_said_plainly(running: RunningBot, slack: SlackStandIn) -> None:
    running.driver.shortcut({"text": "disk full on db-3"}, user=ONCALL)
    text = response_text(slack)
    assert "found no operation name" in text
    assert "projects/PROJECT/locations/LOCATION/operations/OPERATION" in text
    assert slack.state.calls_to("views.open") == []


def test_someone_not_allowed_is_refused_before_any_modal(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    running.driver.shortcut({"text": OP}, user=STRANGER)
    assert "cloudaicompanion.operations.cancel" in response_text(slack)
    assert slack.state.calls_to("views.open") == []
    assert google.state.requests == []


THIRD = "projects/prod-1/locations/us-central1/operations/op-789"
PROD_1_ONLY = f"""
bindings:
  - permission: cloudaicompanion.operations.cancel
    members: [user:{ONCALL}]
    resources: [projects/prod-1/locations/*/operations/*]
"""


def test_the_pick_offers_only_the_names_the_caller_may_cancel(
    start_bot: Callable[..., RunningBot], slack: SlackStandIn, google: OperationsStandIn
) -> None:
    running = start_bot(PROD_1_ONLY)
    running.driver.shortcut({"text": f"{OP} {OTHER} {THIRD}"}, user=ONCALL)
    wait_for(lambda: slack.state.views)
    pick = slack.state.views[next(iter(slack.state.views))]
    assert [b["accessory"]["value"] for b in pick["blocks"] if "accessory" in b] == [OP, THIRD]
    assert OTHER not in view_text(pick)


def test_one_name_the_caller_may_cancel_among_several_opens_its_confirmation(
    start_bot: Callable[..., RunningBot], slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    running = start_bot(PROD_1_ONLY)
    running.driver.shortcut({"text": f"{OTHER} then {OP}"}, user=ONCALL)
    view = shown_modal(slack)
    assert f"`{OP}`" in view_text(view) and OTHER not in view_text(view)
    assert view["submit"]["text"] == "Cancel operation"


def test_several_names_none_of_them_allowed_are_refused_before_any_modal_and_audited(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn, redis_url: str
) -> None:
    running.driver.shortcut({"text": f"{OP} {OTHER}"}, user=STRANGER)
    text = response_text(slack)
    assert "cloudaicompanion.operations.cancel" in text and "2 operations" in text
    assert slack.state.calls_to("views.open") == []
    assert google.state.requests == []
    store = redis.Redis.from_url(redis_url, decode_responses=True)
    entries: list[Any] = [entry for _, entry in store.xrange(AUDIT_STREAM) or []]
    store.close()
    assert [(e["event"], e["actor"], e["operation"], e["step"]) for e in entries] == [
        ("denied", STRANGER, OP, "shortcut"),
        ("denied", STRANGER, OTHER, "shortcut"),
    ]
