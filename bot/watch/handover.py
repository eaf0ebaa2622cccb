"""The poller's shutdown: steps in flight get a short grace to finish and save, and the
ones still running after it are cancelled and their watches handed back to Redis."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import redis.asyncio as redis

from bot.watch.store import Claim, WatchStore

log = logging.getLogger(__name__)

# SIGTERM to exit within 8 s (Cloud Run allows 10): steps get STEP_GRACE_SECONDS, the
# hand-back HAND_BACK_SECONDS, and the rest of the budget goes to closing connections.
STEP_GRACE_SECONDS = 3.0
HAND_BACK_SECONDS = 1.0


async def finish_or_hand_back(tasks: Mapping[asyncio.Task[None], Claim], store: WatchStore) -> None:
    held = dict(tasks)
    if not held:
        return
    _, unfinished = await asyncio.wait(held, timeout=STEP_GRACE_SECONDS)
    if not unfinished:
        return
    for task in unfinished:
        task.cancel()
    await asyncio.wait(unfinished, timeout=HAND_BACK_SECONDS)
    claims = [held[task] for task in unfinished]
    try:
        await asyncio.wait_for(store.hand_back(claims), HAND_BACK_SECONDS)
    except (redis.RedisError, OSError, TimeoutError):
        # Not lost: the claims' leases run out and the watches fall due then.
        log.warning("watches not handed back; due again when their lease ends",
                    extra={"watches": len(claims)})  # fmt: skip
        return
    log.info("watches handed back for another worker", extra={"watches": len(claims)})
