"""Posts that happen once per idempotency key, however often a watch step is retried."""

from __future__ import annotations

import uuid

import redis.asyncio as redis
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.messages import Blocks

# Slack errors that mean "this bot may not post there": the user can fix them by inviting it.
CANNOT_POST = frozenset(
    {"not_in_channel", "channel_not_found", "is_archived", "restricted_action", "access_denied"}
)


class PostInProgress(Exception):
    """Another worker holds this post's key (or died holding it): try again later."""


def slack_error(exc: SlackApiError) -> str:
    return str(exc.response.get("error", "unknown"))


class OncePoster:
    def __init__(
        self, slack: AsyncWebClient, store: redis.Redis, lease_ms: int, ttl_seconds: int
    ) -> None:
        self._slack = slack
        self._redis = store
        self._lease_ms = lease_ms
        self._ttl = ttl_seconds

    async def post(
        self, key: str, channel: str, text: str, blocks: Blocks | None, thread_ts: str = ""
    ) -> tuple[str, str]:
        """Post unless a message for `key` exists; return that message's (channel, ts)."""
        existing = await self.posted(key)
        if existing is not None:
            return existing
        # The pending mark expires with the lease, so a worker that died mid-post only
        # delays the message; it cannot block it for ever.
        marker = f"pending:{uuid.uuid4().hex}"
        if not await self._redis.set(key, marker, nx=True, px=self._lease_ms):
            raise PostInProgress(key)
        try:
            response = await self._slack.chat_postMessage(
                channel=channel, text=text, blocks=blocks, thread_ts=thread_ts or None
            )
        except BaseException:  # cancelled at shutdown too: the watch's next worker posts at once
            await self._redis.delete(key)
            raise
        posted = (str(response.get("channel", channel)), str(response.get("ts", "")))
        await self._redis.set(key, " ".join(posted), ex=self._ttl)
        return posted

    async def posted(self, key: str) -> tuple[str, str] | None:
        """The (channel, ts) posted under `key`, if that post happened."""
        raw = await self._redis.get(key)
        existing = str(raw) if raw else ""
        if not existing or existing.startswith("pending:"):
            return None
        channel, _, ts = existing.partition(" ")
        return channel, ts

    async def update(self, channel: str, ts: str, text: str, blocks: Blocks) -> None:
        """Edit a message in place; editing twice to the same content is harmless."""
        await self._slack.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)

    async def permalink(self, channel: str, ts: str) -> str:
        try:
            response = await self._slack.chat_getPermalink(channel=channel, message_ts=ts)
        except SlackApiError:
            return ""
        return str(response.get("permalink", ""))
