"""Sends requests to the bot exactly as Slack does: form-encoded, signed, timestamped."""

from __future__ import annotations

import time
from typing import Any

import httpx

from bot.standins import slack_payloads


class SlackDriver:
    def __init__(self, bot_url: str, signing_secret: str, slack_url: str) -> None:
        self.bot_url = bot_url
        self.slack_url = slack_url
        self._secret = signing_secret
        self._http = httpx.Client(timeout=10.0)
        self._triggers = 0

    def close(self) -> None:
        self._http.close()

    def post(
        self, body: str, *, timestamp: int | None = None, signature: str | None = None
    ) -> httpx.Response:
        headers = slack_payloads.signed_headers(self._secret, body, timestamp)
        if signature is not None:
            headers["X-Slack-Signature"] = signature
        return self._http.post(f"{self.bot_url}/slack/events", content=body, headers=headers)

    def trigger_id(self) -> str:
        self._triggers += 1
        return f"{self._triggers}.trigger"

    def _response_url(self) -> str:
        return f"{self.slack_url}/response/{self._triggers}"

    def command(self, text: str, *, user: str, channel: str = "C0CHANNEL") -> httpx.Response:
        trigger_id = self.trigger_id()
        return self.post(
            slack_payloads.command(
                text,
                user=user,
                channel=channel,
                channel_name="ops",
                trigger_id=trigger_id,
                response_url=self._response_url(),
            )
        )

    def submit(
        self, view: dict[str, Any], *, user: str, values: dict[str, Any] | None = None
    ) -> httpx.Response:
        return self.post(
            slack_payloads.view_submission(
                view, user=user, trigger_id=self.trigger_id(), values=values
            )
        )

    def shortcut(
        self, message: dict[str, Any], *, user: str, channel: str = "C0CHANNEL"
    ) -> httpx.Response:
        """ "Cancel operation" chosen on a message (a message_action, as Slack sends it)."""
        trigger_id = self.trigger_id()
        return self.post(
            slack_payloads.message_action(
                {"type": "message", "ts": "1700000000.000100", **message},
                callback_id="cancel_op_from_message",
                user=user,
                channel=channel,
                channel_name="alerts",
                trigger_id=trigger_id,
                response_url=self._response_url(),
            )
        )

    def click(
        self,
        value: str,
        *,
        user: str,
        action_id: str = "cancel_op",
        channel: str = "C0CHANNEL",
        message_ts: str = "1700000000.000100",
        view: dict[str, Any] | None = None,
        ephemeral: bool = False,
    ) -> httpx.Response:
        """A button click (block_actions) on a message, or inside a modal when `view` is set."""
        action = {"type": "button", "action_id": action_id, "block_id": "b1", "value": value}
        trigger_id = self.trigger_id()
        return self.post(
            slack_payloads.block_actions(
                action,
                user=user,
                trigger_id=trigger_id,
                response_url=self._response_url(),
                message={"type": "message", "ts": message_ts, "text": "alert"},
                channel=channel,
                channel_name="alerts",
                ephemeral=ephemeral,
                view=view,
            )
        )


def wait_for(predicate: Any, timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll until predicate() is truthy; the bot finishes its work after acknowledging."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
