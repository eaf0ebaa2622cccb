"""A confirmed cancel, once: claim it, tell the channel, ask Google, report Google's answer.

Two keys make it happen once. The submission key absorbs Slack retries and double clicks
of one modal; the operation key makes a second engineer's cancel of the same operation
a pointer to the first one's thread instead of a second request.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import redis.asyncio as redis
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import messages
from bot.audit import Audit
from bot.names import OperationName
from bot.operations import OperationsClient, OperationsError

log = logging.getLogger(__name__)

# Slack redelivers an interaction within seconds; a day covers any retry with room to spare.
SUBMISSION_KEY_TTL_SECONDS = 24 * 3600
# Slack errors that mean "this bot may not post there": the user can fix them by inviting it.
_CANNOT_POST = frozenset(
    {"not_in_channel", "channel_not_found", "is_archived", "restricted_action", "access_denied"}
)


def submission_key(submission_id: str) -> str:
    return f"cancel-op:submission:{{{submission_id}}}"


def active_key(name: OperationName) -> str:
    return f"cancel-op:active:{{{name}}}"


@dataclass(frozen=True)
class CancelRequest:
    name: OperationName
    requester: str
    channel: str
    thread_ts: str  # the alert's ts when started from a message, else ""


@dataclass(frozen=True)
class ActiveCancel:
    """Who is already cancelling an operation, and where to read about it."""

    requester: str
    link: str


class Cancellations:
    def __init__(
        self,
        store: redis.Redis,
        operations: OperationsClient,
        slack: AsyncWebClient,
        audit: Audit,
        active_ttl_seconds: float,
    ) -> None:
        self._redis = store
        self._operations = operations
        self._slack = slack
        self._audit = audit
        # The operation key lives as long as the operation may be watched, then some.
        self._active_ttl = int(active_ttl_seconds) + 600

    async def claim(self, submission_id: str, request: CancelRequest) -> ActiveCancel | None:
        """Take both keys. None: go ahead. Raises DuplicateSubmission for a repeat of one modal.

        Raises redis.RedisError when the store is down, before anything is sent.
        """
        if not await self._redis.set(
            submission_key(submission_id), "1", nx=True, ex=SUBMISSION_KEY_TTL_SECONDS
        ):
            raise DuplicateSubmission(submission_id)
        owner = json.dumps({"requester": request.requester, "link": ""})
        if await self._redis.set(active_key(request.name), owner, nx=True, ex=self._active_ttl):
            return None
        current = await self._redis.get(active_key(request.name))
        data = json.loads(current) if current else {}
        return ActiveCancel(str(data.get("requester", "")), str(data.get("link", "")))

    async def run(self, request: CancelRequest) -> None:
        """Post the request message, send the cancel, reply with Google's answer."""
        channel, ts = await self._post_request(request)
        if ts:
            await self._remember_link(request.name, request.requester, channel, ts)
        error: OperationsError | None = None
        try:
            await self._operations.cancel(request.name)
        except OperationsError as exc:
            error = exc
        outcome = "OK" if error is None else error.code.name
        await self._audit.record(
            "cancel_sent",
            actor=request.requester,
            operation=str(request.name),
            channel=request.channel,
            outcome=outcome,
            google_message=error.message if error else "",
        )
        if error is not None:
            # Nothing to watch: let the next engineer try again straight away.
            await self._redis.delete(active_key(request.name))
        text, blocks = messages.cancel_answer(error)
        if channel:
            try:
                await self._post(channel, text, blocks, ts)
            except SlackApiError as exc:
                log.warning("answer not posted", extra={"slack_error": exc.response.get("error")})

    async def _post_request(self, request: CancelRequest) -> tuple[str, str]:
        """Post where the request came from; if the bot may not, DM the requester instead."""
        text, blocks = messages.request_message(request.name, request.requester)
        try:
            channel, ts = await self._post(request.channel, text, blocks, request.thread_ts)
            return channel, request.thread_ts or ts
        except SlackApiError as exc:
            reason = str(exc.response.get("error", "unknown"))
            if reason not in _CANNOT_POST:
                log.warning("request message not posted", extra={"slack_error": reason})
                return "", ""
        notice = messages.cannot_post_text(request.channel, reason)
        try:
            channel, ts = await self._post(request.requester, notice, None)
        except SlackApiError as exc:
            log.warning(
                "could not reach the requester either",
                extra={"slack_error": exc.response.get("error", "unknown")},
            )
            return "", ""
        await self._post(channel, text, blocks, ts)
        return channel, ts

    async def _post(
        self, channel: str, text: str, blocks: messages.Blocks | None, thread_ts: str = ""
    ) -> tuple[str, str]:
        """Post and return the message's (channel ID, ts)."""
        response = await self._slack.chat_postMessage(
            channel=channel, text=text, blocks=blocks, thread_ts=thread_ts or None
        )
        return str(response.get("channel", channel)), str(response.get("ts", ""))

    async def _remember_link(
        self, name: OperationName, requester: str, channel: str, ts: str
    ) -> None:
        try:
            response = await self._slack.chat_getPermalink(channel=channel, message_ts=ts)
            link = str(response.get("permalink", ""))
        except SlackApiError:
            link = ""
        owner = json.dumps({"requester": requester, "link": link})
        await self._redis.set(active_key(name), owner, xx=True, keepttl=True)


class DuplicateSubmission(Exception):
    """The same modal was submitted again (double click or Slack retry)."""
