"""Secrets never reach logs or Slack: Slack tokens, the signing secret, Google access tokens."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable

import google.auth.exceptions
import pytest

from bot.google.credentials import GoogleTokens
from bot.runtime.logs import JsonFormatter
from bot.standins.operations_api import OperationsStandIn
from bot.standins.slack_api import SlackStandIn
from tests.conftest import BOT_TOKEN, ONCALL, SIGNING_SECRET, RunningBot
from tests.listeners.flow import confirm, open_modal, seed
from tests.slack_driver import wait_for


def test_the_formatter_scrubs_token_shapes() -> None:
    record = logging.LogRecord("x", logging.INFO, "", 0, "calling with %s", (BOT_TOKEN,), None)
    record.headers = {"Authorization": "Bearer ya29.secret-access-token"}
    line = JsonFormatter().format(record)
    assert BOT_TOKEN not in line and "ya29.secret-access-token" not in line
    assert json.loads(line)["message"] == "calling with [redacted]"


def test_an_access_token_in_an_exceptions_text_is_scrubbed() -> None:
    """google-auth's RefreshError keeps generateAccessToken's answer, token and all, when it
    cannot read its expireTime; a traceback of it must not carry the token."""
    answer = '{"accessToken": "ya29.c.b0Aaekm1K-secret_Token.x", "expireTime": "soon"}'
    try:
        raise google.auth.exceptions.RefreshError(  # type: ignore[no-untyped-call]
            "Unable to acquire impersonated credentials", answer
        )
    except google.auth.exceptions.RefreshError:
        record = logging.LogRecord("x", logging.ERROR, "", 0, "mint failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "ya29" not in line and "secret_Token" not in line
    assert "Unable to acquire impersonated credentials" in json.loads(line)["exception"]


@pytest.mark.usefixtures("service_account")
def test_a_whole_cancel_leaks_no_secret(
    start_bot: Callable[..., RunningBot],
    slack: SlackStandIn,
    google: OperationsStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    seed(google)
    google.state.script("POST", "projects/prod-1/locations/global/operations/op-123", 403,
                        "PERMISSION_DENIED", "denied")  # fmt: skip
    running = start_bot(tokens=GoogleTokens.from_adc())
    confirm(running, open_modal(running, slack, ONCALL), ONCALL)
    wait_for(lambda: len(slack.state.messages) >= 2)
    formatter = JsonFormatter()
    logged = "\n".join(formatter.format(r) for r in caplog.records)
    posted = json.dumps([c.args for c in slack.state.calls], default=str)
    for secret in (BOT_TOKEN, SIGNING_SECRET, google.access_token):
        assert secret not in logged
        assert secret not in posted
    assert "audit" in logged  # the flow did log its decisions
