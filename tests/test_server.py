"""The HTTP surface: only requests signed by Slack get in; /healthz reports Redis."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlencode

import httpx

from bot.standins.operations_api import OperationsStandIn
from bot.standins.slack_api import SlackStandIn
from bot.standins.slack_payloads import signed_headers
from tests.conftest import ONCALL, SIGNING_SECRET, RunningBot
from tests.listeners.flow import OP, seed
from tests.slack_driver import wait_for

BODY = urlencode(
    {
        "command": "/cancel-op",
        "text": OP,
        "user_id": ONCALL,
        "channel_id": "C1",
        "team_id": "T0000TEST",
        "trigger_id": "1.t",
        "response_url": "http://127.0.0.1:1/",
    }
)


def test_forged_stale_and_unsigned_requests_are_rejected(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    driver = running.driver
    assert driver.post(BODY, signature="v0=" + "0" * 64).status_code == 401
    assert driver.post(BODY, timestamp=int(time.time()) - 600).status_code == 401
    unsigned = httpx.post(
        f"{driver.bot_url}/slack/events",
        content=BODY,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert unsigned.status_code == 401
    signed_for_other_body = signed_headers(SIGNING_SECRET, BODY.replace("op-123", "op-999"))[
        "X-Slack-Signature"
    ]
    assert driver.post(BODY, signature=signed_for_other_body).status_code == 401
    assert slack.state.calls_to("views.open") == []
    assert google.state.requests == []
    # The same body, correctly signed, gets in.
    assert driver.post(BODY).status_code == 200


def test_healthz_reports_redis(running: RunningBot, start_bot: Callable[..., RunningBot]) -> None:
    ok = wait_for(lambda: healthz(running).status_code == 200 and healthz(running))
    assert ok.json()["redis"] == "ok" and ok.json()["reason"] is None
    assert ok.json()["poller"]["redis"] == "ok"
    assert 0 <= ok.json()["poller"]["last_loop_age_seconds"] < 30
    broken = start_bot(redis="redis://127.0.0.1:1/0")
    down = wait_for(
        lambda: healthz(broken).json()["poller"]["redis"] == "unavailable" and healthz(broken)
    )
    assert down.status_code == 503 and down.json()["redis"] == "unavailable"
    # The poller never reached Redis: no loop yet, which is null, not seconds since 1970.
    assert down.json()["poller"]["last_loop_age_seconds"] is None
    assert "redis unavailable" in down.json()["reason"]
    assert "the poller has not run its loop yet" in down.json()["reason"]


def healthz(running: RunningBot) -> httpx.Response:
    return httpx.get(f"{running.server.url}/healthz")
