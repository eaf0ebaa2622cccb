"""Sends requests to the bot exactly as Slack does: form-encoded, signed, timestamped."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier

TEAM = "T0000TEST"


class SlackDriver:
    def __init__(self, bot_url: str, signing_secret: str, slack_url: str) -> None:
        self.bot_url = bot_url
        self.slack_url = slack_url
        self._verifier = SignatureVerifier(signing_secret)
        self._http = httpx.Client(timeout=10.0)
        self._triggers = 0

    def close(self) -> None:
        self._http.close()

    def post(
        self, body: str, *, timestamp: int | None = None, signature: str | None = None
    ) -> httpx.Response:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature
            or str(self._verifier.generate_signature(timestamp=ts, body=body)),
        }
        return self._http.post(f"{self.bot_url}/slack/events", content=body, headers=headers)

    def trigger_id(self) -> str:
        self._triggers += 1
        return f"{self._triggers}.trigger"

    def command(self, text: str, *, user: str, channel: str = "C0CHANNEL") -> httpx.Response:
        return self.post(
            urlencode(
                {
                    "token": "legacy",
                    "team_id": TEAM,
                    "team_domain": "test",
                    "channel_id": channel,
                    "channel_name": "ops",
                    "user_id": user,
                    "user_name": user.lower(),
                    "command": "/cancel-op",
                    "text": text,
                    "api_app_id": "A0APP",
                    "response_url": f"{self.slack_url}/response/{self._triggers}",
                    "trigger_id": self.trigger_id(),
                }
            )
        )

    def submit(self, view: dict[str, Any], *, user: str) -> httpx.Response:
        payload = {
            "type": "view_submission",
            "team": {"id": TEAM, "domain": "test"},
            "user": {"id": user, "name": user.lower(), "team_id": TEAM},
            "api_app_id": "A0APP",
            "token": "legacy",
            "trigger_id": self.trigger_id(),
            "view": {
                "id": view["id"],
                "team_id": TEAM,
                "type": "modal",
                "callback_id": view.get("callback_id", ""),
                "private_metadata": view.get("private_metadata", ""),
                "hash": view.get("hash", ""),
                "state": {"values": {}},
                "blocks": view.get("blocks", []),
            },
        }
        return self.post(_interaction(payload))

    def shortcut(
        self, message: dict[str, Any], *, user: str, channel: str = "C0CHANNEL"
    ) -> httpx.Response:
        """ "Cancel operation" chosen on a message (a message_action, as Slack sends it)."""
        return self.post(
            _interaction(
                {
                    "type": "message_action",
                    "callback_id": "cancel_op_from_message",
                    "trigger_id": self.trigger_id(),
                    "team": {"id": TEAM, "domain": "test"},
                    "user": {"id": user, "name": user.lower()},
                    "channel": {"id": channel, "name": "alerts"},
                    "message": {"type": "message", "ts": "1700000000.000100", **message},
                    "response_url": f"{self.slack_url}/response/{self._triggers}",
                    "action_ts": "1700000001.000000",
                    "token": "legacy",
                }
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
        action = {"type": "button", "action_id": action_id, "block_id": "b1", "value": value,
                  "action_ts": "1700000002.000000"}  # fmt: skip
        payload: dict[str, Any] = {
            "type": "block_actions",
            "trigger_id": self.trigger_id(),
            "team": {"id": TEAM, "domain": "test"},
            "user": {"id": user, "name": user.lower()},
            "api_app_id": "A0APP",
            "token": "legacy",
            "actions": [action],
            "response_url": f"{self.slack_url}/response/{self._triggers}",
        }
        if view is not None:
            payload["container"] = {"type": "view", "view_id": view["id"]}
            payload["view"] = {"id": view["id"], "type": "modal", "team_id": TEAM,
                               "private_metadata": view.get("private_metadata", ""),
                               "callback_id": view.get("callback_id", ""),
                               "hash": view.get("hash", ""), "state": {"values": {}}}  # fmt: skip
        else:
            payload["container"] = {"type": "message", "message_ts": message_ts,
                                    "channel_id": channel, "is_ephemeral": ephemeral}  # fmt: skip
            payload["channel"] = {"id": channel, "name": "alerts"}
            payload["message"] = {"type": "message", "ts": message_ts, "text": "alert"}
        return self.post(_interaction(payload))


def wait_for(predicate: Any, timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll until predicate() is truthy; the bot finishes its work after acknowledging."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _interaction(payload: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload)})
