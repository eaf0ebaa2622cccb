"""A confirmed cancel becomes a watch in Redis; the poller carries it out from there.

One atomic step records the modal's submission with its watch and queues it: Slack's
retries, double clicks and Redis's own resends of the step get the first answer again,
and a second engineer's cancel of the same operation joins the first one's watch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.policy.names import OperationName
from bot.watch.store import Submission, Watch, WatchStore

# Slack redelivers an interaction within seconds; a day covers any retry with room to spare.
SUBMISSION_KEY_TTL_SECONDS = 24 * 3600


@dataclass(frozen=True)
class CancelRequest:
    name: OperationName
    requester: str
    channel: str
    thread_ts: str  # the alert's ts when started from a message, else ""
    account: str = ""  # the service account to act as (the granting binding's); "": the bot's
    approver: str = ""  # who approved it, when the operation needed approval


class Cancellations:
    def __init__(self, store: WatchStore, wake_poller: Callable[[], None]) -> None:
        self._store = store
        self._wake_poller = wake_poller

    async def request(self, submission_id: str, request: CancelRequest) -> Submission:
        """Queue the cancel, or say whose cancel of the operation this one joins.

        Raises redis.RedisError when the store is down; then nothing is sent to Google.
        """
        watch = Watch(
            id=self._store.new_id(),
            operation=str(request.name),
            requester=request.requester,
            channel=request.channel,
            origin_thread_ts=request.thread_ts,
            started_ms=0,  # set from Redis's clock when first claimed
            account=request.account,
            approver=request.approver,
        )
        submission = await self._store.submit(submission_id, watch, SUBMISSION_KEY_TTL_SECONDS)
        if submission.queued:
            self._wake_poller()
        return submission
