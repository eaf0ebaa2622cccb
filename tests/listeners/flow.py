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
    response = running.driver.command(text, user=user, channel=channel)
    assert response.status_code == 200
    assert response.text == ""  # acknowledged with no ephemeral text: a modal follows
    update = wait_for(lambda: slack.state.calls_to("views.update"), what="views.update")
    view_id = update[-1].args["view_id"]
    view: dict[str, Any] = wait_for(lambda: slack.state.views.get(view_id), what="the view")
    return view


def confirm(running: RunningBot, view: dict[str, Any], user: str) -> dict[str, Any]:
    """Submit the modal and return the bot's ack (response_action and view)."""
    response = running.driver.submit(view, user=user)
    assert response.status_code == 200
    return response.json() if response.text else {}


def view_text(view: dict[str, Any]) -> str:
    return str(view.get("blocks"))
