"""Google credentials: ADC tokens are fetched over httpx and sent; anonymous sends none."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from bot.google_auth import GoogleTokens
from bot.standins.operations_api import OperationsStandIn
from bot.standins.slack_api import SlackStandIn
from tests.conftest import ONCALL, RunningBot
from tests.listeners.flow import confirm, open_modal, seed
from tests.slack_driver import wait_for


def test_adc_tokens_are_fetched_once_and_sent_as_bearer(
    service_account: Path,
    start_bot: Callable[..., RunningBot],
    slack: SlackStandIn,
    google: OperationsStandIn,
) -> None:
    seed(google)
    running = start_bot(tokens=GoogleTokens.from_adc())
    confirm(running, open_modal(running, slack, ONCALL), ONCALL)
    wait_for(lambda: len(slack.state.messages) >= 2)
    assert [r.authorization for r in google.state.requests] == [f"Bearer {google.access_token}"] * 2
    assert google.state.tokens_issued == 1


def test_anonymous_sends_no_credentials(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    open_modal(running, slack, ONCALL)
    assert [r.authorization for r in google.state.requests] == [""]


def test_concurrent_callers_share_one_refresh(
    service_account: Path, google: OperationsStandIn
) -> None:
    tokens = GoogleTokens.from_adc()

    async def many() -> list[dict[str, str]]:
        return await asyncio.gather(*(tokens.headers() for _ in range(20)))

    headers = asyncio.run(many())
    assert {h["Authorization"] for h in headers} == {f"Bearer {google.access_token}"}
    assert google.state.tokens_issued == 1
