"""Steps of the cancel flow that several tests take: open the modal, confirm it."""

from __future__ import annotations

from typing import Any

from bot.standins.operations_api import FakeOperation, OperationsStandIn
from bot.standins.slack_api import SlackStandIn
from tests.conftest import RunningBot
from tests.slack_driver import wait_for

OP = "projects/prod-1/locations/global/operations/op-123"


def seed(google: OperationsStandIn, name: str = OP, **kwargs: Any) -> FakeOperation:
    return google.state.add(FakeOperation(name, **kwargs))


def open_modal(
    running: RunningBot, slack: SlackStandIn, user: str, text: str = OP, channel: str = "C0CHANNEL"
) -> dict[str, Any]:
    """Run the slash command and return the modal once the live operation is in it."""
    # Earlier modals' updates are already there: wait for this one's.
    updates = len(slack.state.calls_to("views.update")) + 1
    response = running.driver.command(text, user=user, channel=channel)
    assert response.status_code == 200
    assert response.text == ""  # acknowledged with no ephemeral text: a modal follows
    return shown_modal(slack, updates)


def shown_modal(slack: SlackStandIn, updates: int = 1) -> dict[str, Any]:
    """The modal once `updates` views.update calls have filled it."""
    update = wait_for(lambda: len(slack.state.calls_to("views.update")) >= updates
                      and slack.state.calls_to("views.update"), what="views.update")  # fmt: skip
    view: dict[str, Any] = slack.state.views[update[-1].args["view_id"]]
    return view


def response_text(slack: SlackStandIn) -> str:
    """The last ephemeral reply posted to a response_url."""
    posted = wait_for(lambda: slack.state.responses, what="a response_url post")
    assert posted[-1]["response_type"] == "ephemeral"
    return str(posted[-1]["text"])


def confirm(running: RunningBot, view: dict[str, Any], user: str) -> dict[str, Any]:
    """Submit the modal and return the bot's ack (response_action and view)."""
    response = running.driver.submit(view, user=user)
    assert response.status_code == 200
    return response.json() if response.text else {}


def closed(ack: dict[str, Any]) -> bool:
    """The confirmation closed: the cancel is queued and the thread speaks from here."""
    return ack == {"response_action": "clear"}


def view_text(view: dict[str, Any]) -> str:
    return str(view.get("blocks"))
