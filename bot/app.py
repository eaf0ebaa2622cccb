"""Builds the Bolt app and everything it uses, from checked settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot import listeners
from bot.approval.expiry import ExpiryDriver
from bot.approval.flow import Approvals
from bot.approval.store import ApprovalStore
from bot.config import Settings
from bot.google.operations import OperationsClient
from bot.policy.allowlist import Allowlist
from bot.policy.audit import Audit
from bot.services import CONTEXT_KEY, Services
from bot.slack.confirmation import MetadataSigner
from bot.slack.groups import SlackGroupDirectory
from bot.slack.posts import OncePoster
from bot.watch.poller import Watcher
from bot.watch.schedule import PollSchedule
from bot.watch.store import WatchStore
from bot.watch.submission import Cancellations

# Connections to Redis per process. Hundreds of watch steps share them: a step waits
# for a free one (up to REDIS_POOL_WAIT_SECONDS) rather than failing its save, which
# would leave its watch idle for a whole lease (seen in bench/poller.py).
REDIS_CONNECTIONS = 32
REDIS_POOL_WAIT_SECONDS = 10.0


def connect_redis(url: str) -> redis.Redis:
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_CONNECTIONS,
        timeout=REDIS_POOL_WAIT_SECONDS,
        decode_responses=True,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        # A short reconnect loop rides out a Redis restart without failing the call at hand.
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )
    return redis.Redis.from_pool(pool)


def slack_client(settings: Settings, session: aiohttp.ClientSession) -> AsyncWebClient:
    # One shared session: without it the client opens a new connection pool per call.
    kwargs: dict[str, Any] = {"token": settings.slack_bot_token, "session": session}
    if settings.slack_api_url:
        kwargs["base_url"] = settings.slack_api_url.rstrip("/") + "/"
    return AsyncWebClient(
        **kwargs,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def build_services(
    settings: Settings,
    store: redis.Redis,
    allowlist: Allowlist,
    slack: AsyncWebClient,
    operations: OperationsClient,
) -> Services:
    watcher, approvals = build_poller(settings, store, slack, operations)
    return Services(
        settings=settings,
        redis=store,
        operations=operations,
        allowlist=allowlist,
        groups=SlackGroupDirectory(slack),
        audit=Audit(store),
        cancellations=Cancellations(watcher.store, watcher.wake),
        signer=MetadataSigner(settings.slack_bot_token),
        watcher=watcher,
        approvals=approvals,
    )


def build_watcher(
    settings: Settings, store: redis.Redis, slack: AsyncWebClient, operations: OperationsClient
) -> Watcher:
    """The poller of a process that serves no Slack requests (`worker`)."""
    return build_poller(settings, store, slack, operations)[0]


def build_poller(
    settings: Settings, store: redis.Redis, slack: AsyncWebClient, operations: OperationsClient
) -> tuple[Watcher, Approvals]:
    """The poller, and the approvals whose expiry runs beside it: one of each per process."""
    timeout_ms = int(settings.watch_timeout_seconds * 1000)
    lease_ms = int(settings.watch_lease_seconds * 1000)
    # The operation's active key lives as long as its watch can, plus a lease to finish.
    watch_store = WatchStore(store, active_ttl_ms=timeout_ms + 2 * lease_ms)
    poster = OncePoster(slack, store, lease_ms, watch_store.record_ttl_seconds)
    audit = Audit(store)
    watcher = Watcher(
        watch_store,
        poster,
        operations.without_retries(),
        operations,
        audit,
        PollSchedule(
            initial_ms=int(settings.poll_initial_seconds * 1000),
            multiplier=settings.poll_multiplier,
            max_ms=int(settings.poll_max_seconds * 1000),
        ),
        watch_timeout_ms=timeout_ms,
        lease_ms=lease_ms,
    )
    approvals = Approvals(
        ApprovalStore(store),
        poster,
        Cancellations(watch_store, watcher.wake),
        audit,
        finish_within_ms=lease_ms,
    )
    # Approval requests expire wherever watches are polled: every replica shares the work.
    watcher.run_beside(ExpiryDriver(approvals, lease_ms).run)
    return watcher, approvals


def build_app(services: Services, slack: AsyncWebClient) -> AsyncApp:
    settings = services.settings
    app = AsyncApp(
        client=slack,
        signing_secret=settings.slack_signing_secret or None,
        # Socket Mode requests arrive over an authenticated websocket, not signed HTTP.
        request_verification_enabled=not settings.socket_mode,
        process_before_response=False,
    )

    async def provide_services(
        context: dict[str, Any], next: Callable[[], Awaitable[None]]
    ) -> None:
        context[CONTEXT_KEY] = services
        await next()

    app.use(provide_services)
    listeners.register(app)
    return app
