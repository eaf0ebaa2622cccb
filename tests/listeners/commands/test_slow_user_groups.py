"""User groups Slack is slow to list: looked up at once, within a budget that keeps the
trigger_id alive, and never counted as membership when the answer comes too late."""

from __future__ import annotations

from collections.abc import Callable

from bot.standins.operations_api import OperationsStandIn
from bot.standins.slack_api import SlackStandIn
from tests.conftest import RunningBot
from tests.listeners.flow import OP, open_modal, response_text, seed
from tests.slack_driver import wait_for

LISTS = "usergroups.users.list"
OTHER_MEMBER = "U0DBA"
TWO_ROTATIONS = """
bindings:
  - permission: cloudaicompanion.operations.cancel
    members: [usergroup:S0SRE, usergroup:S0DBA]
"""


def test_two_slow_groups_are_asked_at_once_and_the_modal_opens(
    start_bot: Callable[..., RunningBot], slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    slack.state.usergroups.update({"S0SRE": ["U0SRE"], "S0DBA": [OTHER_MEMBER]})
    slack.state.delays[LISTS] = 0.8  # one after the other, two would spend the whole budget
    running = start_bot(TWO_ROTATIONS)
    view = open_modal(running, slack, OTHER_MEMBER)
    assert view["submit"]["text"] == "Cancel operation"
    assert slack.state.most_in_flight[LISTS] == 2


def test_a_group_too_slow_for_the_budget_refuses_with_the_reason_then_is_cached(
    start_bot: Callable[..., RunningBot], slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    slack.state.usergroups.update({"S0SRE": ["U0SRE"], "S0DBA": [OTHER_MEMBER]})
    slack.state.delays[LISTS] = 2.5
    running = start_bot(TWO_ROTATIONS)
    running.driver.command(OP, user=OTHER_MEMBER)
    refusal = response_text(slack)
    assert "cloudaicompanion.operations.cancel" in refusal and "in time" in refusal
    assert slack.state.calls_to("views.open") == []
    assert google.state.requests == []
    # The lookups were left to finish: the next try finds the answer in the cache.
    wait_for(lambda: len(slack.state.calls_to(LISTS)) == 2, what="both lookups answered")
    view = open_modal(running, slack, OTHER_MEMBER)
    assert view["submit"]["text"] == "Cancel operation"
