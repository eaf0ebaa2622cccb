from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.listeners.shortcuts.cancel_op_from_message import cancel_op_from_message

SHORTCUT_CALLBACK_ID = "cancel_op_from_message"  # public: in manifest.yaml


def register(app: AsyncApp) -> None:
    app.shortcut(SHORTCUT_CALLBACK_ID)(cancel_op_from_message)
