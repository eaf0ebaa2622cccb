"""`/cancel-op`: name checks, allowlist checks, and the confirmation modal."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

import bot.listeners.confirm_modal
from bot.policy.names import EXPECTED_SHAPE
from bot.standins.operations_api import OperationsStandIn
from bot.standins.slack_api import SlackStandIn
from tests.conftest import ONCALL, ROTATION, ROTATION_MEMBER, STRANGER, RunningBot
from tests.listeners.flow import OP, open_modal, seed, view_text
from tests.slack_driver import wait_for


def reply(slack: SlackStandIn, response: httpx.Response) -> str:
    """The ephemeral reply sent to the response_url after an empty acknowledgement."""
    assert response.status_code == 200 and response.text == ""
    posted = wait_for(lambda: slack.state.responses, what="a response_url post")
    assert posted[-1]["response_type"] == "ephemeral"
    return str(posted[-1]["text"])


def ephemeral(response_json: dict[str, object]) -> str:
    assert response_json["response_type"] == "ephemeral"
    return str(response_json["text"])


def test_modal_opens_loading_then_shows_the_live_operation(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google, verb="delete", target="projects/prod-1/locations/global/codeRepositoryIndexes/x")
    view = open_modal(running, slack, ONCALL)
    opened = slack.state.calls_to("views.open")
    assert len(opened) == 1
    assert "Looking up" in str(opened[0].args["view"])
    text = view_text(view)
    for shown in (OP, "delete", "codeRepositoryIndexes/x", "Running"):
        assert shown in text
    # Each reader sees the time in their own zone; UTC where Slack cannot show the token.
    assert "<!date^1795489920^{date_short_pretty} {time}|2026-11-24 03:12 UTC>" in text
    assert view["submit"]["text"] == "Cancel operation"
    assert view["private_metadata"]
    # The update carries the hash views.open returned; the stand-in refuses any other.
    assert slack.state.calls_to("views.update")[0].args["hash"]
    assert google.state.requests_for(OP, "cancel") == []


@pytest.mark.parametrize(
    "text",
    [
        f"`{OP}`",
        f"```{OP}```",
        f"```\n{OP}\n```",
        f"https://cloudaicompanion.googleapis.com/v1/{OP}",
        f"<https://cloudaicompanion.googleapis.com/v1/{OP}>",
        f"<https://cloudaicompanion.googleapis.com/v1/{OP}|{OP}>",
        f"  {OP}  ",
    ],
)
def test_names_in_slack_formatting_are_accepted(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn, text: str
) -> None:
    seed(google)
    view = open_modal(running, slack, ONCALL, text=text)
    assert f"`{OP}`" in view_text(view)


@pytest.mark.parametrize(
    "text",
    [
        "projects/p/locations/l/operations",
        "projects/p/locations/l/operations/../../x",
        "projects/p/locations/l/operations/o%2F..",
        "projects/p/locations/l/operations/o?alt=json",
        "projects/p/locations/l/operations/o#x",
        "projects/p q/locations/l/operations/o",
        "projects/p/locations/l/operations/o\x00",
        "https://evil.example.com/v1/projects/p/locations/l/operations/o",
        "projects/" + "p" * 129 + "/locations/l/operations/o",
        "x" * 5000,
    ],
)
def test_bad_names_are_refused_with_the_expected_shape_and_nothing_is_sent(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn, text: str
) -> None:
    response = running.driver.command(text, user=ONCALL)
    message = ephemeral(response.json())
    assert "projects/PROJECT/locations/LOCATION/operations/OPERATION" in message
    assert slack.state.calls_to("views.open") == []
    assert google.state.requests == []


@pytest.mark.parametrize(
    ("text", "echoed", "reason"),
    [
        ("projects/shöp/locations/l/operations/o", "`projects/shöp/locations/l/operations/o`",
         "it contains “ö” (U+00F6) at position 12; a name holds only ASCII letters"),
        (f"{OP}\u200b", f"`{OP}\u200b`",
         "it contains an invisible character (U+200B, zero width space) at position "
         f"{len(OP) + 1}"),
        ("projects/a&amp;b/locations/l/operations/o", "`projects/a&amp;b/locations/l/operations/o`",
         "it contains “&amp;” (U+0026) at position 11"),
        ("projects/" + "p" * 300 + "/locations/l/operations/o", "`projects/" + "p" * 110 + "…`",
         "the project is longer than 128 characters"),
        ("projects/p/locations/l", "`projects/p/locations/l`",
         "it names a location, not one operation"),
    ],
)  # fmt: skip
def test_a_refusal_repeats_what_was_typed_and_names_what_is_wrong(
    running: RunningBot, google: OperationsStandIn, text: str, echoed: str, reason: str
) -> None:
    """Slack does not echo slash commands: several refusals must be told apart."""
    message = ephemeral(running.driver.command(text, user=ONCALL).json())
    assert message.startswith(f":warning: {echoed} is not an operation name I can use: {reason}")
    assert f"Usage: `/cancel-op {EXPECTED_SHAPE}`" in message
    assert google.state.requests == []


@pytest.mark.parametrize("text", ["stauts " + OP, "op-123", "cancel it please"])
def test_an_unknown_first_word_is_named_and_answered_with_the_whole_usage(
    running: RunningBot, google: OperationsStandIn, text: str
) -> None:
    message = ephemeral(running.driver.command(text, user=ONCALL).json())
    assert message.startswith(f":warning: I don't know `{text.split()[0]}`")
    for usage in ("`/cancel-op status ", "`/cancel-op list ", f"`/cancel-op {EXPECTED_SHAPE}`"):
        assert usage in message
    assert google.state.requests == []


def test_help_and_no_argument_show_usage(running: RunningBot) -> None:
    for text in ("", "help"):
        message = ephemeral(running.driver.command(text, user=STRANGER).json())
        assert "/cancel-op projects/PROJECT/locations/LOCATION/operations/OPERATION" in message


def test_someone_not_on_the_allowlist_is_refused_and_told_the_permission(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    message = reply(slack, running.driver.command(OP, user=STRANGER))
    assert "cloudaicompanion.operations.cancel" in message
    assert slack.state.calls_to("views.open") == []
    assert google.state.requests == []


def test_a_member_of_an_allowed_user_group_may_cancel(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    view = open_modal(running, slack, ROTATION_MEMBER)
    assert view["submit"]["text"] == "Cancel operation"
    lookups = slack.state.calls_to("usergroups.users.list")
    assert [c.args["usergroup"] for c in lookups] == [ROTATION]


def test_group_membership_is_cached_briefly(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    open_modal(running, slack, ROTATION_MEMBER)
    reply(slack, running.driver.command(OP, user=STRANGER))
    assert len(slack.state.calls_to("usergroups.users.list")) == 1


def test_an_unreadable_user_group_fails_closed_and_says_so(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    del slack.state.usergroups[ROTATION]
    message = reply(slack, running.driver.command(OP, user=ROTATION_MEMBER))
    assert "user group" in message
    assert google.state.requests == []


RESTRICTED = f"""
bindings:
  - permission: cloudaicompanion.operations.cancel
    members: [user:{ONCALL}]
    resources: [projects/prod-*/locations/*/operations/*]
    channels: [C0INCIDENT]
"""


@pytest.mark.parametrize(
    ("name", "channel", "allowed"),
    [
        ("projects/prod-1/locations/us/operations/o", "C0INCIDENT", True),
        ("projects/staging-1/locations/us/operations/o", "C0INCIDENT", False),
        ("projects/prod-1/locations/us/operations/o", "C0RANDOM", False),
        # `*` never crosses a segment: "prod-*" does not match a project named "prod-1/x".
        ("projects/xprod-1/locations/us/operations/o", "C0INCIDENT", False),
    ],
)
def test_resource_patterns_and_channels_limit_a_binding(
    start_bot: Callable[..., RunningBot],
    slack: SlackStandIn,
    google: OperationsStandIn,
    name: str,
    channel: str,
    allowed: bool,
) -> None:
    running = start_bot(RESTRICTED)
    seed(google, name)
    if allowed:
        view = open_modal(running, slack, ONCALL, text=name, channel=channel)
        assert view["submit"]["text"] == "Cancel operation"
    else:
        response = running.driver.command(name, user=ONCALL, channel=channel)
        assert "cloudaicompanion.operations.cancel" in reply(slack, response)
        assert google.state.requests == []


@pytest.mark.parametrize(
    ("status", "rpc_status"),
    [(404, "NOT_FOUND"), (403, "PERMISSION_DENIED"), (401, "UNAUTHENTICATED")],
)
def test_a_failed_lookup_shows_the_code_and_offers_no_cancel(
    running: RunningBot,
    slack: SlackStandIn,
    google: OperationsStandIn,
    status: int,
    rpc_status: str,
) -> None:
    google.state.script("GET", OP, status, rpc_status, "nope")
    view = open_modal(running, slack, ONCALL)
    assert rpc_status in view_text(view)
    assert "submit" not in view
    assert google.state.requests_for(OP, "cancel") == []


def test_an_operation_already_done_is_shown_without_a_cancel_button(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google, done=True, response={})
    view = open_modal(running, slack, ONCALL)
    assert "already finished" in view_text(view)
    assert "submit" not in view


def test_an_expired_trigger_is_reported_to_the_user(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    slack.state.script("views.open", 200, {"ok": False, "error": "expired_trigger_id"})
    running.driver.command(OP, user=ONCALL)
    reply = wait_for(lambda: slack.state.responses, what="a response_url post")
    assert "expired_trigger_id" in reply[0]["text"]


def test_a_lookup_google_is_slow_to_answer_ends_in_the_modal_and_offers_no_cancel(
    running: RunningBot,
    slack: SlackStandIn,
    google: OperationsStandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        bot.listeners.confirm_modal, "LOOKUP_DEADLINE_SECONDS", 0.3
    )  # instead of 8 s
    seed(google)
    google.state.latency_seconds = 5.0
    view = open_modal(running, slack, ONCALL)
    assert "DEADLINE_EXCEEDED" in view_text(view)
    assert "timed out" in view_text(view)
    assert "submit" not in view
    assert google.state.requests_for(OP, "cancel") == []
