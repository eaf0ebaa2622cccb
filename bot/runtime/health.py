"""GET /healthz and GET /metrics, served by every process (HTTP, Socket Mode, worker).

/healthz is 200 only when Redis answers and accepts a write and the poller's loop ran
lately; otherwise 503 with the reasons in its JSON body.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import redis.asyncio as redis
from aiohttp import web

from bot.runtime import metrics
from bot.watch.poller import Watcher
from bot.watch.store import WATCHES_KEY

HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
# Written on every check: a full (maxmemory) or read-only Redis fails it. The TTL keeps
# the key from outliving the checks.
HEALTH_KEY = "{cancel-op}:health"
HEALTH_KEY_TTL_MS = 10_000
# A poller whose loop has not run for this long is stuck.
LOOP_STALE_SECONDS = 30.0
_REDIS_CHECK_SECONDS = 2.0


def health_app(store: redis.Redis, watcher: Watcher) -> web.Application:
    async def health(_: web.Request) -> web.Response:
        redis_trouble = await redis_write_problem(store)
        poller = watcher.snapshot()
        reasons = [f"redis {' '.join(redis_trouble)}"] if redis_trouble else []
        age = poller["last_loop_age_seconds"]
        if age is None:
            reasons.append("the poller has not run its loop yet")
        elif isinstance(age, float | int) and age > LOOP_STALE_SECONDS:
            reasons.append(f"the poller's loop last ran {age:.0f} s ago")
        body: dict[str, Any] = {
            "status": "unhealthy" if reasons else "ok",
            "reason": "; ".join(reasons) or None,
            "redis": redis_trouble[0] if redis_trouble else "ok",
            "poller": poller,
        }
        return web.json_response(body, status=503 if reasons else 200)

    async def scrape(_: web.Request) -> web.Response:
        with contextlib.suppress(redis.RedisError, TimeoutError, OSError):
            count = await asyncio.wait_for(store.hlen(WATCHES_KEY), _REDIS_CHECK_SECONDS)
            metrics.WATCHES_ACTIVE.set(count)
        return web.Response(body=metrics.render(), headers={"Content-Type": metrics.CONTENT_TYPE})

    application = web.Application()
    application.router.add_get(HEALTH_PATH, health)
    application.router.add_get(METRICS_PATH, scrape)
    return application


async def redis_write_problem(store: redis.Redis) -> tuple[str, str] | None:
    """None when Redis took a write just now; else its state and why."""
    try:
        await asyncio.wait_for(
            store.set(HEALTH_KEY, "ok", px=HEALTH_KEY_TTL_MS), _REDIS_CHECK_SECONDS
        )
    except redis.ResponseError as exc:  # read-only replica, maxmemory reached
        return "refuses writes", f"({exc})"
    except (redis.RedisError, TimeoutError, OSError) as exc:
        return "unavailable", f"({type(exc).__name__})"
    return None
