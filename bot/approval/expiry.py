"""The expiry driver: claims due approval requests from Redis and carries them out.

It runs beside the poller in every process that runs one. A claim pushes a request past a
lease, so several replicas share the work and a replica that dies mid-way leaves its
requests to fall due again; after a restart, whatever fell due meanwhile is claimed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as redis

from bot.approval.flow import Approvals

log = logging.getLogger(__name__)

# Requests claimed in one round trip; expiries are rare, this is only a bound.
CLAIM_BATCH = 50
# With nothing due, look again at least this often (other replicas add requests too).
IDLE_WAIT_SECONDS = 1.0


class ExpiryDriver:
    def __init__(self, approvals: Approvals, lease_ms: int) -> None:
        self._approvals = approvals
        self._lease_ms = lease_ms

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            wait = IDLE_WAIT_SECONDS
            try:
                batch = await self._approvals.store.claim_due(CLAIM_BATCH, self._lease_ms)
            except (redis.RedisError, OSError):
                log.warning("approval expiry waits for redis")
            else:
                await asyncio.gather(*(self._settle(i) for i in batch.request_ids))
                if len(batch.request_ids) == CLAIM_BATCH:
                    continue  # more may be due
                if batch.next_due_ms is not None:
                    wait = max(0.0, min(wait, (batch.next_due_ms - batch.now_ms) / 1000))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await stop.wait()

    async def _settle(self, request_id: str) -> None:
        try:
            await self._approvals.expire(request_id)
        except Exception:  # its lease runs out and it falls due again: nothing is lost
            log.exception("approval request not settled", extra={"request": request_id})
