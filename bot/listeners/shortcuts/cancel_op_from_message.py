""" "Cancel operation" on any message: find the names in it, then confirm one."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners.message_text import message_texts
from bot.listeners.open_confirmation import Reply, cannot_open, open_confirmation
from bot.policy.allowlist import Action
from bot.policy.names import OperationName, find_operation_names
from bot.services import Services, services_of
from bot.slack import messages
from bot.slack.confirmation import ConfirmContext


async def cancel_op_from_message(
    ack: AsyncAck,
    shortcut: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    context: dict[str, Any],
) -> None:
    await ack()
    services = services_of(context)

    async def reply(text: str) -> None:
        await respond(response_type="ephemeral", text=text)

    message = shortcut.get("message") or {}
    names = find_operation_names(message_texts(message))
    if not names:
        await reply(messages.no_name_found_text())
        return
    # Follow-ups go into the alert's thread (or the thread it already sits in).
    thread_ts = str(message.get("thread_ts") or message.get("ts") or "")
    confirm = ConfirmContext("", shortcut["user"]["id"], shortcut["channel"]["id"], thread_ts)
    trigger_id = shortcut["trigger_id"]
    if len(names) > 1:
        names = await _cancellable(services, names, confirm, reply)
    if len(names) > 1:
        view = messages.pick_view(names, services.signer.dump(confirm))
        try:
            await client.views_open(trigger_id=trigger_id, view=view)
        except SlackApiError as exc:
            await cannot_open(reply, exc)
    elif names:
        name = names[0]
        await open_confirmation(
            client, services, name, replace(confirm, operation=str(name)), reply,
            trigger_id=trigger_id, step="shortcut",
        )  # fmt: skip


async def _cancellable(
    services: Services, names: list[OperationName], confirm: ConfirmContext, reply: Reply
) -> list[OperationName]:
    """The names the caller may cancel here; if none, they are told why and it is audited."""
    grant = await services.allowlist.grant(
        Action.CANCEL, confirm.requester, confirm.channel, services.groups
    )
    allowed = [name for name in names if grant.covers(name)]
    if allowed:
        return allowed
    decision = grant.decide(names[0])
    for name in names[: messages.PICK_LIMIT]:
        await services.audit.record(
            "denied", actor=confirm.requester, operation=str(name), channel=confirm.channel,
            outcome="denied", permission=decision.permission, step="shortcut",
        )  # fmt: skip
    await reply(messages.denied_any_text(decision, len(names)))
    return []
