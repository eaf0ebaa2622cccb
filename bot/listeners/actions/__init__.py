from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.listeners.actions.cancel_op import cancel_op
from bot.listeners.actions.cancel_op_approve import cancel_op_approve
from bot.listeners.actions.cancel_op_deny import cancel_op_deny
from bot.listeners.actions.cancel_op_pick import cancel_op_pick
from bot.slack.messages import (
    APPROVE_ACTION_ID,
    CANCEL_ACTION_ID,
    DENY_ACTION_ID,
    PICK_ACTION_ID,
)


def register(app: AsyncApp) -> None:
    app.action(CANCEL_ACTION_ID)(cancel_op)
    app.action(PICK_ACTION_ID)(cancel_op_pick)
    app.action(APPROVE_ACTION_ID)(cancel_op_approve)
    app.action(DENY_ACTION_ID)(cancel_op_deny)
