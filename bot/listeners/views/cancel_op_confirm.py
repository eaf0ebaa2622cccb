"""Confirm in the modal: check all again (metadata and submitter are untrusted), then cancel."""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.policy.allowlist import Action
from bot.policy.names import InvalidName
from bot.services import Services, services_of
from bot.slack import messages
from bot.slack.confirmation import TamperedMetadata
from bot.watch.submission import CancelRequest


async def cancel_op_confirm(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: dict[str, Any]
) -> None:
    services = services_of(context)
    user = body["user"]["id"]
    try:
        confirm = services.signer.load(str(view.get("private_metadata", "")))
        name = services.parse_name(confirm.operation)
    except (TamperedMetadata, InvalidName):
        await _refuse(ack, services, user, "", "", "tampered_metadata",
                      messages.forged_text("confirmation"))  # fmt: skip
        return
    if confirm.requester != user:
        await _refuse(ack, services, user, str(name), confirm.channel, "wrong_user",
                      messages.not_yours_text("confirmation"))  # fmt: skip
        return
    decision = await services.allowlist.check(
        Action.CANCEL, user, name, confirm.channel, services.groups
    )
    if not decision.allowed:
        await _refuse(ack, services, user, str(name), confirm.channel, "denied",
                      messages.denied_text(decision, name))  # fmt: skip
        return
    request = CancelRequest(
        name, user, confirm.channel, confirm.thread_ts, account=decision.account or ""
    )
    try:
        submission = await services.cancellations.request(view["id"], request)
    except redis.RedisError:
        await ack(response_action="update", view=messages.refusal_view(messages.unavailable_text()))
        return
    if not submission.queued:
        text = messages.already_cancelling_text(name, submission.requester, submission.link)
        await ack(response_action="update", view=messages.refusal_view(text))
        return
    # Queued: the modal closes and the thread speaks from here (its first message says
    # who asked to cancel what); a modal stays only for what the person must read.
    await ack(response_action="clear")
    await services.audit.record(
        "confirmed", actor=user, operation=str(name), channel=confirm.channel,
        outcome="confirmed", acting_as=decision.account,
    )  # fmt: skip


async def _refuse(
    ack: AsyncAck, services: Services, user: str, name: str, channel: str, outcome: str, text: str
) -> None:
    await ack(response_action="update", view=messages.refusal_view(text))
    await services.audit.record(
        "denied", actor=user, operation=name, channel=channel, outcome=outcome, step="submit"
    )
