"""Deny on an approval request: checked like Approve, decided once; nothing goes to Google."""

from __future__ import annotations

from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.listeners.actions.cancel_op_approve import decide_request


async def cancel_op_deny(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    context: dict[str, Any],
) -> None:
    await ack()
    await decide_request("deny", body, action, respond, context)
