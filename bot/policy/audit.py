"""The audit trail: every decision as one structured log line and one entry of a capped stream."""

from __future__ import annotations

import logging
import time
from typing import Any, cast

import redis.asyncio as redis

from bot.runtime.logs import redact

AUDIT_STREAM = "cancel-op:audit"
# About a year of a busy team's decisions; older entries are trimmed (approximately, cheaply).
AUDIT_MAX_ENTRIES = 100_000

# `acting_as` of an entry whose Google calls (if any) carry the bot's own credentials.
OWN_IDENTITY = "bot"

log = logging.getLogger("cancel_op.audit")


class Audit:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    async def record(
        self,
        event: str,
        *,
        actor: str,
        operation: str,
        channel: str,
        outcome: str,
        acting_as: str | None = None,
        **extra: Any,
    ) -> None:
        """Log and append one decision; a Redis outage loses the stream entry, never the log.

        `acting_as`: the service account the request's Google calls act as (None or "":
        the bot's own identity)."""
        entry: dict[str, str] = {
            "event": event,
            "actor": actor,
            "operation": operation,
            "channel": channel,
            "outcome": outcome,
            "acting_as": acting_as or OWN_IDENTITY,
            "at": f"{time.time():.3f}",
            **{key: redact(str(value)) for key, value in extra.items()},
        }
        log.info("audit %s", event, extra={"audit": entry})
        try:
            await self._redis.xadd(
                AUDIT_STREAM,
                cast("dict[Any, Any]", entry),
                maxlen=AUDIT_MAX_ENTRIES,
                approximate=True,
            )
        except redis.RedisError:
            log.warning("audit stream unavailable; entry kept in the log only", extra=entry)
