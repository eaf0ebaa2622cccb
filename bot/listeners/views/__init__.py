from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.listeners.views.cancel_op_confirm import cancel_op_confirm
from bot.slack.messages import CONFIRM_CALLBACK_ID


def register(app: AsyncApp) -> None:
    app.view_submission(CONFIRM_CALLBACK_ID)(cancel_op_confirm)
