"""Approve on an approval request: checked (an approver, not the requester, still pending,
the requester's own grant still held), decided once, and the cancel sent; anyone else is
told, only them, why not."""

from __future__ import annotations

from typing import Any, Literal

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.services import services_of
from bot.slack import messages


async def cancel_op_approve(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    context: dict[str, Any],
) -> None:
    await ack()
    await decide_request("approve", body, action, respond, context)


async def decide_request(
    verdict: Literal["approve", "deny"],
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    context: dict[str, Any],
) -> None:
    """One click on Approve or Deny; the button's value (the request's id) is untrusted."""
    services = services_of(context)
    decide = services.approvals.approve if verdict == "approve" else services.approvals.deny
    click = await decide(
        str(action.get("value", "")), body["user"]["id"], services.allowlist, services.groups
    )
    if click.refusal is not None:
        text = messages.approval_refusal_text(click)
        await respond(response_type="ephemeral", replace_original=False, text=text)
