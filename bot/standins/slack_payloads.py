"""The requests Slack sends to an app's Request URL: form-encoded bodies and signed headers.

One place for their shape, used by the tests' driver and by the sandbox's stand-in Slack,
which delivers what a person does on the sandbox page to the bot exactly as Slack would.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

TEAM = "T0000TEST"
APP_ID = "A0APP"
COMMAND = "/cancel-op"


def signed_headers(signing_secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's v0 signature over `v0:{timestamp}:{body}`, and the headers that carry it."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(signing_secret).generate_signature(timestamp=ts, body=body)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": str(signature),
    }


def command(
    text: str, *, user: str, channel: str, channel_name: str, trigger_id: str, response_url: str
) -> str:
    return urlencode(
        {
            "token": "legacy",
            "team_id": TEAM,
            "team_domain": "sandbox",
            "channel_id": channel,
            "channel_name": channel_name,
            "user_id": user,
            "user_name": user.lower(),
            "command": COMMAND,
            "text": text,
            "api_app_id": APP_ID,
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    )


def view_submission(
    view: dict[str, Any], *, user: str, trigger_id: str, values: dict[str, Any] | None = None
) -> str:
    return _interaction(
        {
            "type": "view_submission",
            "team": {"id": TEAM, "domain": "sandbox"},
            "user": {"id": user, "name": user.lower(), "team_id": TEAM},
            "api_app_id": APP_ID,
            "token": "legacy",
            "trigger_id": trigger_id,
            "view": {**_view_body(view), "state": {"values": values or {}}},
        }
    )


def view_closed(view: dict[str, Any], *, user: str) -> str:
    """Sent when a person closes a modal, only if its view set notify_on_close."""
    return _interaction(
        {
            "type": "view_closed",
            "team": {"id": TEAM, "domain": "sandbox"},
            "user": {"id": user, "name": user.lower(), "team_id": TEAM},
            "api_app_id": APP_ID,
            "token": "legacy",
            "view": _view_body(view),
            "is_cleared": False,
        }
    )


def message_action(
    message: dict[str, Any],
    *,
    callback_id: str,
    user: str,
    channel: str,
    channel_name: str,
    trigger_id: str,
    response_url: str,
) -> str:
    """A message shortcut ("More actions" on a message)."""
    return _interaction(
        {
            "type": "message_action",
            "callback_id": callback_id,
            "trigger_id": trigger_id,
            "team": {"id": TEAM, "domain": "sandbox"},
            "user": {"id": user, "name": user.lower()},
            "channel": {"id": channel, "name": channel_name},
            "message": message,
            "response_url": response_url,
            "action_ts": f"{time.time():.6f}",
            "token": "legacy",
        }
    )


def block_actions(
    action: dict[str, Any],
    *,
    user: str,
    trigger_id: str,
    response_url: str = "",
    message: dict[str, Any] | None = None,
    channel: str = "",
    channel_name: str = "",
    ephemeral: bool = False,
    view: dict[str, Any] | None = None,
) -> str:
    """A button pressed on a message (`message` and `channel`), or in a modal (`view`)."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "trigger_id": trigger_id,
        "team": {"id": TEAM, "domain": "sandbox"},
        "user": {"id": user, "name": user.lower()},
        "api_app_id": APP_ID,
        "token": "legacy",
        "actions": [{"action_ts": f"{time.time():.6f}", **action}],
    }
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view["id"]}
        payload["view"] = {**_view_body(view), "state": {"values": {}}}
    else:
        assert message is not None
        payload["container"] = {"type": "message", "message_ts": message["ts"],
                                "channel_id": channel, "is_ephemeral": ephemeral}  # fmt: skip
        payload["channel"] = {"id": channel, "name": channel_name}
        payload["response_url"] = response_url
        if not ephemeral:  # Slack does not include an ephemeral message
            payload["message"] = message
    return _interaction(payload)


def _view_body(view: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": view["id"],
        "team_id": TEAM,
        "type": "modal",
        "callback_id": view.get("callback_id", ""),
        "private_metadata": view.get("private_metadata", ""),
        "hash": view.get("hash", ""),
        "blocks": view.get("blocks", []),
    }


def _interaction(payload: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload)})
