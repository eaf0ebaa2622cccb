"""Every google.rpc code in each place it is shown gets the advice written for that place:
the cancel's answer, the final state of an operation, and a failed lookup."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from bot.google.operations import Operation, OperationError, OperationsError
from bot.google.rpc import Place, RpcCode
from bot.policy.names import OperationName
from bot.slack import messages

NAME = OperationName("prod-1", "global", "op-123")


def ended_with(code: RpcCode) -> Operation:
    return Operation(
        name=str(NAME), done=True, error=OperationError(code, "from Google"), verb="delete",
        target="x", create_time="2026-11-24T03:12:00Z", end_time="2026-11-24T03:20:00Z",
        status_message="", requested_cancellation=True,
    )  # fmt: skip


# Every builder that shows a code, by the place it shows it in.
BUILDERS: dict[Place, list[Callable[[RpcCode], Any]]] = {
    Place.CANCEL_ANSWER: [lambda code: messages.cancel_answer(OperationsError(code, "m"))],
    Place.FINAL_STATE: [
        lambda code: messages.final_message(NAME, ended_with(code)),
        lambda code: messages.status_reply(NAME, ended_with(code)),
    ],
    Place.LOOKUP: [
        lambda code: messages.lookup_failed(f"`{NAME}`", OperationsError(code, "m")),
        lambda code: messages.lookup_failed_view(NAME, OperationsError(code, "m")),
        lambda code: messages.lost_track_message(NAME, OperationsError(code, "m")),
    ],
    # A token refused wherever it was asked for: nothing reached the Operations API.
    Place.TOKEN: [
        lambda code: messages.cancel_answer(refused(code)),
        lambda code: messages.lookup_failed(f"`{NAME}`", refused(code)),
        lambda code: messages.lookup_failed_view(NAME, refused(code)),
        lambda code: messages.lost_track_message(NAME, refused(code)),
    ],
}


def refused(code: RpcCode) -> OperationsError:
    return OperationsError(code, "m", token_refused=True)


@pytest.mark.parametrize("place", list(Place))
@pytest.mark.parametrize("code", list(RpcCode))
def test_each_place_shows_the_advice_written_for_it(code: RpcCode, place: Place) -> None:
    for build in BUILDERS[place]:
        shown = json.dumps(build(code), ensure_ascii=False)
        assert f"*Next:* {code.next_step_at(place)}" in shown
        assert code.meaning_at(place) in shown
        for elsewhere in set(Place) - {place}:
            if code.next_step_at(elsewhere) != code.next_step_at(place):
                assert code.next_step_at(elsewhere) not in shown


@pytest.mark.parametrize("code", [code for code in RpcCode if code is not RpcCode.OK])
def test_a_final_state_is_advised_on_as_over_never_as_a_cancel_to_retry(code: RpcCode) -> None:
    """The operation has ended: its next step is about what it left, not about the cancel."""
    advice = code.next_step_at(Place.FINAL_STATE).lower()
    for retry in ("cancel", "try again", "in a minute", "in a few seconds", "ask me again"):
        assert retry not in advice
    assert advice != code.next_step_at(Place.CANCEL_ANSWER).lower()
    assert advice != code.next_step_at(Place.LOOKUP).lower()


def test_internal_after_the_cancel_says_the_operation_is_over() -> None:
    _, text, blocks = messages.final_message(NAME, ended_with(RpcCode.INTERNAL))
    shown = text + json.dumps(blocks)
    assert "failed" in text and "INTERNAL" in text
    assert "The operation is over" in shown and "half done" in shown
    assert "Try again" not in shown


def test_every_code_has_words_for_every_place() -> None:
    for code in RpcCode:
        for place in Place:
            assert code.meaning_at(place).endswith(".")
            assert code.next_step_at(place).endswith(".")


def test_a_refused_token_names_the_account_and_the_role_to_grant() -> None:
    account = "oncall-cancel@prod-ops.iam.gserviceaccount.com"
    error = OperationsError(RpcCode.PERMISSION_DENIED, "denied", account=account,
                            token_refused=True)  # fmt: skip
    text, blocks = messages.cancel_answer(error)
    shown = text + json.dumps(blocks)
    assert "did not send the cancel" in text and "PERMISSION_DENIED" in text
    assert f"The bot may not act as `{account}`." in shown
    assert f"roles/iam.serviceAccountTokenCreator on `{account}`" in shown


def test_permission_denied_as_an_account_names_that_account_not_the_bot() -> None:
    account = "oncall-cancel@prod-ops.iam.gserviceaccount.com"
    error = OperationsError(RpcCode.PERMISSION_DENIED, "denied", account=account)
    for place, (_, blocks) in [(Place.CANCEL_ANSWER, messages.cancel_answer(error)),
                               (Place.LOOKUP, messages.lookup_failed("it", error))]:  # fmt: skip
        shown = json.dumps(blocks)
        assert f"The service account `{account}`, which the bot acts as here," in shown
        assert f"Ask the platform team to grant `{account}` the IAM permission" in shown
        assert "bot's Google credentials" not in shown and "bot's service account" not in shown
        assert code_words(place) not in shown


def code_words(place: Place) -> str:
    """The words PERMISSION_DENIED has for the bot's own credentials."""
    return RpcCode.PERMISSION_DENIED.meaning_at(place)
