"""A name chosen in the pick modal (several names in one alert): confirm that one.

The button's value and the modal's metadata are untrusted: checked again here, and
again when the confirmation is submitted.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners.confirm_modal import confirm_if_allowed
from bot.policy.names import InvalidName
from bot.services import services_of
from bot.slack import messages
from bot.slack.confirmation import TamperedMetadata


async def cancel_op_pick(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    context: dict[str, Any],
) -> None:
    await ack()
    services = services_of(context)
    view_id = body["view"]["id"]
    user = body["user"]["id"]
    try:
        picked = services.signer.load(str(body["view"].get("private_metadata", "")))
        name = services.parse_name(str(action.get("value", "")))
    except (TamperedMetadata, InvalidName):
        view = messages.refusal_view(messages.forged_text("choice"))
        await client.views_update(view_id=view_id, view=view)
        return
    if picked.requester != user:
        view = messages.refusal_view(messages.not_yours_text("choice"))
        await client.views_update(view_id=view_id, view=view)
        return
    confirm = replace(picked, operation=str(name))
    decision = await confirm_if_allowed(
        client, services, name, confirm, view_id=view_id, step="pick"
    )
    if not decision.allowed:
        view = messages.refusal_view(messages.denied_text(decision, name))
        await client.views_update(view_id=view_id, view=view)
