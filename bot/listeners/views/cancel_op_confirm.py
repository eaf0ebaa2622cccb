"""Confirm in the modal: check all again (metadata and submitter are untrusted), then cancel,
or, for a protected operation, ask for a second person's approval."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

import redis.asyncio as redis
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.policy.allowlist import Action, ApprovalRule
from bot.policy.names import InvalidName, OperationName
from bot.services import Services, services_of
from bot.slack import messages
from bot.slack.confirmation import ConfirmContext, TamperedMetadata
from bot.slack.messages import View
from bot.slack.posts import slack_error
from bot.watch.store import Submission
from bot.watch.submission import CancelRequest

log = logging.getLogger(__name__)

# Slack waits 3 s for the answer to a submission; the checks and the submission share most
# of it, leaving room for the network both ways.
ACK_WITHIN_SECONDS = 2.0
# However long the checks took, Redis gets at least this long before the modal says "queuing".
MIN_SUBMIT_SECONDS = 0.3


async def cancel_op_confirm(
    ack: AsyncAck,
    body: dict[str, Any],
    view: dict[str, Any],
    client: AsyncWebClient,
    context: dict[str, Any],
) -> None:
    started = asyncio.get_running_loop().time()
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
    approval = services.allowlist.approval_for(name, confirm.channel)
    if approval is not None:  # decided here again: the modal's own word is untrusted
        await _ask_approval(ack, services, view, name, confirm, approval, decision.account)
        return
    request = CancelRequest(
        name, user, confirm.channel, confirm.thread_ts, account=decision.account or ""
    )
    submitted = _refusal_of(services.cancellations.request(view["id"], request), name)
    submitting = asyncio.ensure_future(submitted)
    left = ACK_WITHIN_SECONDS - (asyncio.get_running_loop().time() - started)
    try:
        async with asyncio.timeout(max(left, MIN_SUBMIT_SECONDS)):
            refusal = await asyncio.shield(submitting)
    except TimeoutError:
        # Slack drops an answer later than 3 s and shows an error: say it is on its way,
        # and update the modal once Redis answers (the submission itself goes on).
        await ack(response_action="update", view=messages.queuing_view(name))
        refusal = await submitting
        late = refusal or messages.queued_late_view(name, confirm.channel)
        try:
            await client.views_update(view_id=view["id"], view=late)
        except SlackApiError as exc:
            log.info("late outcome not shown", extra={"slack_error": slack_error(exc)})
    else:
        # Queued: the modal closes and the thread speaks from here (its first message says
        # who asked to cancel what); a modal stays only for what the person must read.
        if refusal is None:
            await ack(response_action="clear")
        else:
            await ack(response_action="update", view=refusal)
    if refusal is None:
        await services.audit.record(
            "confirmed", actor=user, operation=str(name), channel=confirm.channel,
            outcome="confirmed", acting_as=decision.account,
        )  # fmt: skip


async def _refusal_of(submitted: Awaitable[Submission], name: OperationName) -> View | None:
    """What the modal says instead of closing; None when the cancel is queued."""
    try:
        submission = await submitted
    except redis.RedisError:
        return messages.refusal_view(messages.unavailable_text())
    if submission.queued:
        return None
    text = messages.already_cancelling_text(name, submission.requester, submission.link)
    return messages.refusal_view(text)


async def _refuse(
    ack: AsyncAck, services: Services, user: str, name: str, channel: str, outcome: str, text: str
) -> None:
    await ack(response_action="update", view=messages.refusal_view(text))
    await services.audit.record(
        "denied", actor=user, operation=name, channel=channel, outcome=outcome, step="submit"
    )


async def _ask_approval(
    ack: AsyncAck,
    services: Services,
    view: dict[str, Any],
    name: OperationName,
    confirm: ConfirmContext,
    approval: ApprovalRule,
    account: str | None,
) -> None:
    """Nothing goes to Google: the request is recorded once per submission and posted."""
    if not approval.has_approvers_besides(confirm.requester):
        await _refuse(ack, services, confirm.requester, str(name), confirm.channel,
                      "no_other_approver", messages.no_other_approver_text(name))  # fmt: skip
        return
    if not _asks_why(view):  # opened before its operation was protected: no reason input
        await _refuse(ack, services, confirm.requester, str(name), confirm.channel,
                      "now_protected", messages.now_protected_text(name))  # fmt: skip
        return
    reason = _reason(view)
    if not reason:
        await ack(
            response_action="errors", errors={messages.REASON_ID: messages.reason_missing_text()}
        )
        return
    approvals = services.approvals
    try:
        opened = await approvals.open(
            view["id"], name, confirm.requester, confirm.channel, confirm.thread_ts, reason,
            approval, account,
        )  # fmt: skip
        # Only a joined request is shown from its record; a new one is posted after the ack.
        pending = None if opened.opened else await approvals.store.load(opened.request_id)
    except redis.RedisError:
        await ack(response_action="update", view=messages.refusal_view(messages.unavailable_text()))
        return
    if pending is not None:
        text = messages.approval_pending_text(name, pending)
        await ack(response_action="update", view=messages.refusal_view(text))
        return
    await ack(response_action="clear")
    await approvals.post(opened.request_id)


def _asks_why(view: dict[str, Any]) -> bool:
    """Whether the modal has the reason input (Slack shows input errors only on a block it has)."""
    blocks = view.get("blocks")
    return isinstance(blocks, list) and any(
        isinstance(b, dict) and b.get("block_id") == messages.REASON_ID for b in blocks
    )


def _reason(view: dict[str, Any]) -> str:
    """What the person typed as the reason ("" if none: a crafted or stale modal)."""
    values = (view.get("state") or {}).get("values") or {}
    typed = (values.get(messages.REASON_ID) or {}).get(messages.REASON_ID) or {}
    value = typed.get("value")
    return value.strip() if isinstance(value, str) else ""
