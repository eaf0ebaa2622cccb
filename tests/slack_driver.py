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
        return self.post(urlencode({"payload": json.dumps(payload)}))


def wait_for(predicate: Any, timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll until predicate() is truthy; the bot finishes its work after acknowledging."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
