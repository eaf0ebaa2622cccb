"""The alert's Cancel button (action_id `cancel_op`, value = the operation name)."""

from __future__ import annotations

from bot.standins.operations_api import OperationsStandIn
from bot.standins.slack_api import SlackStandIn
from tests.conftest import ONCALL, STRANGER, RunningBot
from tests.listeners.flow import OP, confirm, response_text, seed, shown_modal, view_text
from tests.slack_driver import wait_for

ALERT_TS = "1700000000.000100"


def test_two_clicks_from_alert_to_cancel_with_follow_ups_in_its_thread(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    assert running.driver.click(OP, user=ONCALL, channel="C0ALERTS").status_code == 200
    view = shown_modal(slack)
    assert view["submit"]["text"] == "Cancel operation"
    confirm(running, view, ONCALL)
    thread = wait_for(lambda: len(slack.state.messages) >= 2 and slack.state.messages)
    assert [(m.channel, m.thread_ts) for m in thread] == [("C0ALERTS", ALERT_TS)] * 2
    assert len(google.state.requests_for(OP, "cancel")) == 1


def test_a_button_from_someone_not_allowed_opens_nothing(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    running.driver.click(OP, user=STRANGER)
    assert "cloudaicompanion.operations.cancel" in response_text(slack)
    assert slack.state.calls_to("views.open") == []
    assert google.state.requests == []


def test_a_crafted_button_value_is_refused_with_the_expected_shape(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    crafted = "projects/p/locations/l/operations/../../../x"
    running.driver.click(crafted, user=ONCALL)
    text = response_text(slack)
    assert text.startswith(f":warning: `{crafted}` is not an operation name I can use:")
    assert "projects/PROJECT/locations/LOCATION/operations/OPERATION" in text
    assert slack.state.calls_to("views.open") == []
    assert google.state.requests == []


def test_a_stale_button_on_a_finished_operation_offers_no_cancel(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google, done=True, error={"code": 1, "message": "Operation was cancelled."})
    running.driver.click(OP, user=ONCALL)
    view = shown_modal(slack)
    assert "already finished" in view_text(view) and "CANCELLED" in view_text(view)
    assert "submit" not in view
    assert google.state.requests_for(OP, "cancel") == []


def test_a_button_on_an_ephemeral_list_reply_posts_in_the_channel_itself(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    running.driver.click(OP, user=ONCALL, ephemeral=True)
    confirm(running, shown_modal(slack), ONCALL)
    request = wait_for(lambda: slack.state.messages)[0]
    assert request.channel == "C0CHANNEL" and request.thread_ts == ""
