"""Posts that happen once per idempotency key and have a bounded life, however often a
watch step is retried: transient failures are tried again within a budget, then given up."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as redis
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.slack.messages import Blocks
from bot.slack.outcomes import SlackFailure, classify
from bot.watch.store import RELEASE_IF_OURS

# Tries of one Slack call, and the longest it may take in all (capped by the lease):
# past either, the post is given up and its caller falls back to another place.
POST_ATTEMPTS = 3
POST_BUDGET_SECONDS = 20.0
FIRST_BACKOFF_SECONDS = 0.25
# Slack refused the message's blocks (too long a text from Google, say): the same words
# as plain text still tell the person what happened.
_BLOCKS_REFUSED = frozenset({"invalid_blocks", "invalid_blocks_format"})
_PENDING = "pending:"
# Time to record Slack's answer after the call, within a post's pending mark.
_RECORD_SECONDS = 2.0
_FAILED = "failed:"


class PostInProgress(Exception):
    """Another step holds this side effect's key (or died holding it): try again later."""


class SlackPostFailed(Exception):
    """Slack would not take this post, now or within its budget; it will not be tried again."""

    def __init__(self, failure: SlackFailure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


def slack_error(exc: SlackApiError) -> str:
    return classify(exc).reason


class OncePoster:
    def __init__(
        self, slack: AsyncWebClient, store: redis.Redis, lease_ms: int, ttl_seconds: int
    ) -> None:
        self._slack = slack
        self._redis = store
        self._ttl = ttl_seconds
        self._release = store.register_script(RELEASE_IF_OURS)
        self._budget = min(POST_BUDGET_SECONDS, lease_ms / 1000)

    async def post(
        self, key: str, channel: str, text: str, blocks: Blocks | None, thread_ts: str = ""
    ) -> tuple[str, str]:
        """Post unless a message for `key` exists; return that message's (channel, ts).

        Raises SlackPostFailed when Slack refused it, now or on an earlier try.
        """
        raw = str(await self._redis.get(key) or "")
        if raw.startswith(_FAILED):
            raise SlackPostFailed(SlackFailure(raw.removeprefix(_FAILED), transient=False))
        existing = _posted(raw)
        if existing is not None:
            return existing
        # The pending mark outlives the post's budget (its call cannot run longer) by a
        # moment to record the answer, so a worker that died mid-post delays the message
        # only that long; it cannot block it for ever.
        marker = f"{_PENDING}{uuid.uuid4().hex}"
        pending_ms = int((self._budget + _RECORD_SECONDS) * 1000)
        if not await self._redis.set(key, marker, nx=True, px=pending_ms):
            raise PostInProgress(key)
        try:
            response = await self._post_fitting(channel, text, blocks, thread_ts)
        except SlackPostFailed as failed:
            # Given up for good: a retried step goes straight to the fallback, so the
            # message cannot appear late in one place after it went to another.
            await self._redis.set(key, _FAILED + failed.failure.reason, ex=self._ttl)
            raise
        except asyncio.CancelledError:
            # Cut short at shutdown (or a lost lease): free the key at once, so the watch's
            # next worker posts without waiting for the mark to expire.
            await self._release(keys=[key], args=[marker])
            raise
        posted = (str(response.get("channel", channel)), str(response.get("ts", "")))
        await self._redis.set(key, " ".join(posted), ex=self._ttl)
        return posted

    async def _post_fitting(
        self, channel: str, text: str, blocks: Blocks | None, thread_ts: str
    ) -> AsyncSlackResponse:
        """Post with blocks; if Slack refuses them, once more as plain text."""
        try:
            return await self._call(
                lambda: self._slack.chat_postMessage(
                    channel=channel, text=text, blocks=blocks, thread_ts=thread_ts or None
                )
            )
        except SlackPostFailed as failed:
            if not blocks or failed.failure.reason not in _BLOCKS_REFUSED:
                raise
        return await self._call(
            lambda: self._slack.chat_postMessage(
                channel=channel, text=text, thread_ts=thread_ts or None
            )
        )

    async def posted(self, key: str) -> tuple[str, str] | None:
        """The (channel, ts) posted under `key`, if that post happened."""
        return _posted(str(await self._redis.get(key) or ""))

    async def update(self, channel: str, ts: str, text: str, blocks: Blocks) -> None:
        """Edit a message in place (twice to the same content is harmless); raises
        SlackPostFailed, e.g. message_not_found once someone deleted it."""
        await self._call(
            lambda: self._slack.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        )

    async def permalink(self, channel: str, ts: str) -> str:
        """The message's link, or "" when Slack will not say."""
        try:
            response = await self._call(
                lambda: self._slack.chat_getPermalink(channel=channel, message_ts=ts)
            )
        except SlackPostFailed:
            return ""
        return str(response.get("permalink", ""))

    async def _call(self, send: Callable[[], Awaitable[AsyncSlackResponse]]) -> AsyncSlackResponse:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._budget
        for attempt in range(POST_ATTEMPTS):
            try:
                async with asyncio.timeout_at(deadline):
                    return await send()
            except Exception as exc:  # every failure is read by classify(), once
                failure = classify(exc)
            wait = max(failure.retry_after or 0.0, FIRST_BACKOFF_SECONDS * 2**attempt)
            if not failure.transient or loop.time() + wait >= deadline:
                raise SlackPostFailed(failure)
            if attempt < POST_ATTEMPTS - 1:
                await asyncio.sleep(wait)
        raise SlackPostFailed(failure)


def _posted(raw: str) -> tuple[str, str] | None:
    if not raw or raw.startswith((_PENDING, _FAILED)):
        return None
    channel, _, ts = raw.partition(" ")
    return channel, ts
