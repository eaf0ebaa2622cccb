from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.listeners.commands.cancel_op import cancel_op


def register(app: AsyncApp) -> None:
    app.command("/cancel-op")(cancel_op)
