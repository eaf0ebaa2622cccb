"""The Cancel button an alert pipeline (or `/cancel-op list`) puts on a message.

Its value is the operation name, and it is untrusted: the same name rules and access
checks as the slash command apply.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners.open_confirmation import open_confirmation
from bot.policy.names import InvalidName
from bot.services import services_of
from bot.slack import messages
from bot.slack.confirmation import ConfirmContext


async def cancel_op(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    context: dict[str, Any],
) -> None:
    await ack()
    services = services_of(context)

    async def reply(text: str) -> None:  # a new ephemeral message; the alert stays
        await respond(response_type="ephemeral", replace_original=False, text=text)

    value = str(action.get("value", ""))
    try:
        name = services.parse_name(value)
    except InvalidName as exc:
        await reply(messages.invalid_name_text(value, exc.reason))
        return
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
    # An ephemeral message (a list reply) has no thread; an alert's thread gets the follow-ups.
    thread_ts = (
        ""
        if container.get("is_ephemeral")
        else str(message.get("thread_ts") or container.get("message_ts") or "")
    )
    confirm = ConfirmContext(str(name), body["user"]["id"], channel, thread_ts)
    await open_confirmation(
        client, services, name, confirm, reply, trigger_id=body["trigger_id"], step="button"
    )
