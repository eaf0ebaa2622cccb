"""Slack entry points, grouped by surface; each folder's register(app) wires its listeners."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.listeners import actions, commands, shortcuts, views


def register(app: AsyncApp) -> None:
    commands.register(app)
    shortcuts.register(app)
    actions.register(app)
    views.register(app)
