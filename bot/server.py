"""Runs the bot: `serve` (HTTP or Socket Mode, with the poller in-process) and `worker`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import httpx
import redis.asyncio as redis
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.allowlist import Allowlist
from bot.app import build_app, build_services, build_watcher, connect_redis, slack_client
from bot.config import Settings
from bot.google_auth import TokenSource
from bot.http_transport import AiohttpTransport
from bot.operations import MAX_IN_FLIGHT, OperationsClient
from bot.proxies import EnvironmentProxies
from bot.services import Services

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"


@dataclass(frozen=True)
class Clients:
    """The connections a process holds: Redis, Slack, Google."""

    redis: redis.Redis
    slack: AsyncWebClient
    operations: OperationsClient


@contextlib.asynccontextmanager
async def connected(
    settings: Settings, redis_url: str, tokens: TokenSource
) -> AsyncIterator[Clients]:
    store = connect_redis(redis_url)
    async with (
        aiohttp.ClientSession(middlewares=(EnvironmentProxies().route,)) as slack_session,
        httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, connect=5.0),
            transport=AiohttpTransport(max_connections=MAX_IN_FLIGHT),
        ) as http,
    ):
        try:
            yield Clients(
                store,
                slack_client(settings, slack_session),
                OperationsClient(http, settings.operations_api_url, tokens),
            )
        finally:
            await store.aclose()


@dataclass(frozen=True)
class Bot:
    app: AsyncApp
    services: Services


@contextlib.asynccontextmanager
async def running_bot(
    settings: Settings, redis_url: str, allowlist: Allowlist, tokens: TokenSource
) -> AsyncIterator[Bot]:
    async with connected(settings, redis_url, tokens) as clients:
        services = build_services(
            settings, clients.redis, allowlist, clients.slack, clients.operations
        )
        yield Bot(build_app(services, clients.slack), services)


def web_app(bot: Bot) -> web.Application:
    async def events(request: web.Request) -> web.Response:
        bolt_response = await bot.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    async def health(_: web.Request) -> web.Response:
        redis_ok = await redis_answers(bot.services.redis)
        body = {
            "redis": "ok" if redis_ok else "unavailable",
            "poller": bot.services.watcher.snapshot(),
        }
        return web.json_response(body, status=200 if redis_ok else 503)

    application = web.Application()
    application.router.add_post(EVENTS_PATH, events)
    application.router.add_get(HEALTH_PATH, health)
    return application


async def redis_answers(store: redis.Redis) -> bool:
    try:
        return bool(await asyncio.wait_for(store.ping(), 1.0))
    except (redis.RedisError, TimeoutError, OSError):
        return False


def keep_start_up_out_of_collections() -> None:
    """Modules, the Bolt app and the clients live as long as the process. Frozen, the
    garbage collector stops walking them on every full collection, which otherwise held
    up all requests in flight for 50-180 ms at a time under load (bench/ack_latency.py)."""
    gc.collect()
    gc.freeze()


def stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve(
    settings: Settings,
    redis_url: str,
    allowlist: Allowlist,
    tokens: TokenSource,
    *,
    host: str = "0.0.0.0",
    on_listening: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM; `on_listening` runs once requests can arrive."""
    async with running_bot(settings, redis_url, allowlist, tokens) as bot:
        keep_start_up_out_of_collections()
        stop = stop_on_signals()
        poller = asyncio.create_task(bot.services.watcher.run(stop))
        if settings.socket_mode:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            handler = AsyncSocketModeHandler(bot.app, settings.slack_app_token)
            await handler.connect_async()  # type: ignore[no-untyped-call]
            log.info("serving over Socket Mode")
            if on_listening is not None:
                on_listening()
            await stop.wait()
            await handler.close_async()  # type: ignore[no-untyped-call]
        else:
            runner = web.AppRunner(web_app(bot), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, host, settings.port).start()
            log.info("serving HTTP", extra={"port": settings.port, "path": EVENTS_PATH})
            if on_listening is not None:
                on_listening()
            await stop.wait()
            await runner.cleanup()
        await poller


async def work(settings: Settings, redis_url: str, tokens: TokenSource) -> None:
    """The poller alone: any number of these may run beside `serve` on one Redis."""
    async with connected(settings, redis_url, tokens) as clients:
        watcher = build_watcher(settings, clients.redis, clients.slack, clients.operations)
        keep_start_up_out_of_collections()
        log.info("poller started")
        await watcher.run(stop_on_signals())
