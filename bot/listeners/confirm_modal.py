"""The way to a confirmed cancel, shared by every surface: check, then open the modal.

The modal opens at once with a loading view (a trigger_id lives 3 seconds), then shows
the operation as Google has it now, so a stale button or an old alert never offers to
cancel what has already ended.
"""

from __future__ import annotations

import asyncio
import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.google.operations import OperationsError
from bot.google.rpc import RpcCode
from bot.policy.allowlist import Action, Decision
from bot.policy.names import OperationName
from bot.services import Services
from bot.slack import messages
from bot.slack.confirmation import ConfirmContext
from bot.slack.posts import slack_error

log = logging.getLogger(__name__)

# Someone is looking at the modal: past this, tell them Google is slow rather than keep
# them on "Looking up…" through retries and the queue of calls to Google.
LOOKUP_DEADLINE_SECONDS = 8.0


async def confirm_if_allowed(
    client: AsyncWebClient,
    services: Services,
    name: OperationName,
    context: ConfirmContext,
    *,
    trigger_id: str = "",
    view_id: str = "",
    step: str,
) -> Decision:
    """Check the caller; if allowed, show the confirmation (a new modal, or in `view_id`).

    Raises SlackApiError when Slack will not open the modal (e.g. an expired trigger).
    """
    decision = await services.allowlist.check(
        Action.CANCEL, context.requester, name, context.channel, services.groups
    )
    if not decision.allowed:
        await services.audit.record(
            "denied", actor=context.requester, operation=str(name), channel=context.channel,
            outcome="denied", permission=decision.permission, step=step,
        )  # fmt: skip
        return decision
    loading = messages.loading_view(name)
    if view_id:
        shown = await client.views_update(view_id=view_id, view=loading)
    else:
        shown = await client.views_open(trigger_id=trigger_id, view=loading)
    view = shown["view"]
    try:
        async with asyncio.timeout(LOOKUP_DEADLINE_SECONDS):
            operation = await services.operations.get(name, decision.account)
    except TimeoutError:
        slow = OperationsError(RpcCode.DEADLINE_EXCEEDED, "")  # ours, not Google's: no text
        content = messages.lookup_failed_view(name, slow)
    except OperationsError as exc:
        content = messages.lookup_failed_view(name, exc)
    else:
        approval = services.allowlist.approval_for(name, context.channel)
        metadata = services.signer.dump(context)
        content = messages.confirmation_view(name, operation, metadata, decision.account, approval)
    try:
        await client.views_update(view_id=view["id"], hash=view["hash"], view=content)
    except SlackApiError as exc:
        # The user closed the modal, or it changed meanwhile: nothing left to show it in.
        log.info("confirmation modal not updated", extra={"slack_error": slack_error(exc)})
    return decision
