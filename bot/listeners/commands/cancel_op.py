"""`/cancel-op NAME | status NAME | list PARENT | help`."""

from __future__ import annotations

import re
from typing import Any

import redis.asyncio as redis
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.google.operations import OperationsError
from bot.listeners.open_confirmation import open_confirmation
from bot.policy.allowlist import Action
from bot.policy.names import InvalidName, OperationName, OperationParent, parse_parent
from bot.services import Services, services_of
from bot.slack import messages
from bot.slack.confirmation import ConfirmContext

_WORD = re.compile(r"[\w-]+")


async def cancel_op(
    ack: AsyncAck,
    command: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    context: dict[str, Any],
) -> None:
    services = services_of(context)
    text = str(command.get("text", "")).strip()
    verb, rest = _first_word(text)
    if verb.lower() in ("", "help"):
        await ack(response_type="ephemeral", text=messages.usage_text())
        return
    subcommand: messages.Subcommand = "cancel"
    if verb.lower() in ("status", "list"):
        subcommand = "status" if verb.lower() == "status" else "list"
    elif _WORD.fullmatch(verb):  # a name has slashes; a code fence or link starts with a mark
        await ack(response_type="ephemeral", text=messages.unknown_word_text(verb))
        return
    typed = text if subcommand == "cancel" else rest
    try:
        target: OperationName | OperationParent = (
            parse_parent(typed, (services.settings.operations_api_url,))
            if subcommand == "list"
            else services.parse_name(typed)
        )
    except InvalidName as exc:
        refusal = messages.invalid_name_text(typed, exc.reason, subcommand)
        await ack(response_type="ephemeral", text=refusal)
        return
    await ack()
    user, channel = command["user_id"], command["channel_id"]
    if subcommand != "cancel":
        action = Action.LIST if subcommand == "list" else Action.GET
        await _read(services, respond, action, target, user, channel)
    elif isinstance(target, OperationName):
        await _confirm(client, services, respond, command, target)


def _first_word(text: str) -> tuple[str, str]:
    """The first word and the rest, split at any whitespace (a pasted tab or line break)."""
    words = text.split(maxsplit=1)
    return (words[0], words[1] if len(words) > 1 else "") if words else ("", "")


async def _confirm(
    client: AsyncWebClient,
    services: Services,
    respond: AsyncRespond,
    command: dict[str, Any],
    name: OperationName,
) -> None:
    async def reply(text: str) -> None:
        await respond(response_type="ephemeral", text=text)

    confirm = ConfirmContext(str(name), command["user_id"], command["channel_id"])
    await open_confirmation(
        client, services, name, confirm, reply, trigger_id=command["trigger_id"], step="command"
    )


async def _read(
    services: Services,
    respond: AsyncRespond,
    action: Action,
    resource: OperationName | OperationParent,
    user: str,
    channel: str,
) -> None:
    """`status` and `list`: check the permission, read from Google, reply to the caller."""
    allowlist, groups = services.allowlist, services.groups
    if isinstance(resource, OperationParent):
        grant = await allowlist.grant(action, user, channel, groups, within=resource)
        decision = grant.decide(resource)
    else:
        decision = await allowlist.check(action, user, resource, channel, groups)
    if not decision.allowed:
        await services.audit.record(
            "denied", actor=user, operation=str(resource), channel=channel, outcome="denied",
            permission=decision.permission, step=action.value,
        )  # fmt: skip
        await respond(response_type="ephemeral", text=messages.denied_text(decision, resource))
        return
    try:
        if isinstance(resource, OperationParent):
            # Each operation is shown only if the caller's list bindings cover it.
            running, total = await services.operations.list_running(
                resource, messages.LIST_LIMIT, grant.covers, decision.account
            )
            text, blocks = messages.list_reply(resource, running, total)
        else:
            operation = await services.operations.get(resource, decision.account)
            text, blocks = messages.status_reply(resource, operation)
            blocks += await _pending_approval(services, resource)
    except OperationsError as exc:
        subject = f"the operations in `{resource}`" if action is Action.LIST else f"`{resource}`"
        text, blocks = messages.lookup_failed(subject, exc)
    await respond(response_type="ephemeral", text=text, blocks=blocks)


async def _pending_approval(services: Services, name: OperationName) -> messages.Blocks:
    """The operation's approval request still waiting, if any; status works without Redis."""
    try:
        pending = await services.approvals.store.pending_for(str(name))
    except redis.RedisError:
        return []
    return messages.approval_status_blocks(pending) if pending is not None else []
