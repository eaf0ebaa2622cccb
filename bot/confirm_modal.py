"""Open the confirmation modal: a loading view at once, then the live operation."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import messages
from bot.confirmation import ConfirmContext
from bot.names import OperationName
from bot.operations import OperationsError
from bot.services import Services

log = logging.getLogger(__name__)


async def open_confirmation(
    client: AsyncWebClient,
    services: Services,
    trigger_id: str,
    name: OperationName,
    context: ConfirmContext,
) -> None:
    """Raises SlackApiError when Slack will not open the modal (e.g. an expired trigger)."""
    # trigger_id lives 3 seconds: open first, then read Google, which may be slow.
    opened = await client.views_open(trigger_id=trigger_id, view=messages.loading_view(name))
    view = opened["view"]
    try:
        operation = await services.operations.get(name)
    except OperationsError as exc:
        content = messages.lookup_failed_view(name, exc)
    else:
        content = messages.confirmation_view(name, operation, services.signer.dump(context))
    try:
        await client.views_update(view_id=view["id"], hash=view["hash"], view=content)
    except SlackApiError as exc:
        # The user closed the modal, or it changed meanwhile: nothing left to show it in.
        log.info("confirmation modal not updated", extra={"slack_error": exc.response.get("error")})
