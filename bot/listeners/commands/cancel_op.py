"""`/cancel-op NAME`: check the name and the caller, then open the confirmation modal."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import messages
from bot.allowlist import Action
from bot.confirm_modal import open_confirmation
from bot.confirmation import ConfirmContext
from bot.names import InvalidName
from bot.services import services_of

log = logging.getLogger(__name__)


async def cancel_op(
    ack: AsyncAck,
    command: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    context: dict[str, Any],
) -> None:
    services = services_of(context)
    text = str(command.get("text", "")).strip()
    if text.lower() in ("", "help"):
        await ack(response_type="ephemeral", text=messages.usage_text())
        return
    try:
        name = services.parse_name(text)
    except InvalidName as exc:
        await ack(response_type="ephemeral", text=messages.invalid_name_text(exc.reason))
        return
    user, channel = command["user_id"], command["channel_id"]
    decision = await services.allowlist.check(Action.CANCEL, user, name, channel, services.groups)
    if not decision.allowed:
        await ack(response_type="ephemeral", text=messages.denied_text(decision, name))
        await services.audit.record(
            "denied", actor=user, operation=str(name), channel=channel, outcome="denied",
            permission=decision.permission, step="command",
        )  # fmt: skip
        return
    await ack()
    try:
        await open_confirmation(
            client, services, command["trigger_id"], name, ConfirmContext(str(name), user, channel)
        )
    except SlackApiError as exc:
        reason = exc.response.get("error", "unknown")
        log.warning("confirmation modal not opened", extra={"slack_error": reason})
        await respond(
            response_type="ephemeral",
            text=f":warning: Slack would not open the confirmation ({reason}). Please try again.",
        )
