"""Open the confirmation for one name, or tell the person, and only them, why not.

The slash command, the alert's button and the message shortcut all end here; each
passes its own way of replying to the person.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners.confirm_modal import confirm_if_allowed
from bot.policy.names import OperationName
from bot.services import Services
from bot.slack import messages
from bot.slack.confirmation import ConfirmContext
from bot.slack.posts import slack_error

log = logging.getLogger(__name__)

Reply = Callable[[str], Awaitable[object]]  # an ephemeral text to the person who asked


async def open_confirmation(
    client: AsyncWebClient,
    services: Services,
    name: OperationName,
    confirm: ConfirmContext,
    reply: Reply,
    *,
    trigger_id: str,
    step: str,
) -> None:
    try:
        decision = await confirm_if_allowed(
            client, services, name, confirm, trigger_id=trigger_id, step=step
        )
    except SlackApiError as exc:
        await cannot_open(reply, exc)
        return
    if not decision.allowed:
        await reply(messages.denied_text(decision, name))


async def cannot_open(reply: Reply, exc: SlackApiError) -> None:
    """Slack would not open the modal (an expired trigger, say): the person must know."""
    reason = slack_error(exc)
    log.warning("confirmation modal not opened", extra={"slack_error": reason})
    await reply(messages.cannot_open_text(reason))
