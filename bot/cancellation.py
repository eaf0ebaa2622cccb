"""A confirmed cancel becomes a watch in Redis; the poller carries it out from there.

Two keys make it happen once. The submission key absorbs Slack retries and double clicks
of one modal; the operation's active key makes a second engineer's cancel of the same
operation a pointer to the first one's thread instead of a second request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.names import OperationName
from bot.watch_store import Owner, Watch, WatchStore

# Slack redelivers an interaction within seconds; a day covers any retry with room to spare.
SUBMISSION_KEY_TTL_SECONDS = 24 * 3600


class DuplicateSubmission(Exception):
    """The same modal was submitted again (double click or Slack retry)."""


@dataclass(frozen=True)
class CancelRequest:
    name: OperationName
    requester: str
    channel: str
    thread_ts: str  # the alert's ts when started from a message, else ""


class Cancellations:
    def __init__(self, store: WatchStore, wake_poller: Callable[[], None]) -> None:
        self._store = store
        self._wake_poller = wake_poller

    async def request(self, submission_id: str, request: CancelRequest) -> Owner | None:
        """Queue the cancel. None: queued. Otherwise who is already cancelling it.

        Raises DuplicateSubmission for a repeat of one modal, and redis.RedisError when
        the store is down; in both cases nothing is sent to Google.
        """
        if not await self._store.claim_submission(submission_id, SUBMISSION_KEY_TTL_SECONDS):
            raise DuplicateSubmission(submission_id)
        watch = Watch(
            id=self._store.new_id(),
            operation=str(request.name),
            requester=request.requester,
            channel=request.channel,
            origin_thread_ts=request.thread_ts,
            started_ms=0,  # set from Redis's clock when first claimed
        )
        owner = await self._store.enqueue(watch)
        if owner is None:
            self._wake_poller()
        return owner
