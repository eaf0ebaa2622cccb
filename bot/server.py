"""Runs the bot: HTTP (`POST /slack/events`, `GET /healthz`) or Socket Mode."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import httpx
import redis.asyncio as redis
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from bot.allowlist import Allowlist
from bot.app import build_app, build_services, connect_redis, slack_client
from bot.config import Settings
from bot.google_auth import TokenSource
from bot.operations import MAX_IN_FLIGHT
from bot.services import Services

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"


@dataclass
class Bot:
    """The running pieces, so tests and `serve` start and stop them the same way."""

    app: AsyncApp
    services: Services
    http: httpx.AsyncClient
    slack_session: aiohttp.ClientSession

    async def close(self) -> None:
        await self.http.aclose()
        await self.slack_session.close()
        await self.services.redis.aclose()


@contextlib.asynccontextmanager
async def running_bot(
    settings: Settings, redis_url: str, allowlist: Allowlist, tokens: TokenSource
) -> AsyncIterator[Bot]:
    slack_session = aiohttp.ClientSession()
    slack = slack_client(settings, slack_session)
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(10.0, connect=5.0),
        limits=httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT),
    )
    services = build_services(settings, connect_redis(redis_url), allowlist, slack, http, tokens)
    bot = Bot(build_app(services, slack), services, http, slack_session)
    try:
        yield bot
    finally:
        await bot.close()


def web_app(bot: Bot) -> web.Application:
    async def events(request: web.Request) -> web.Response:
        bolt_response = await bot.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    async def health(_: web.Request) -> web.Response:
        redis_ok = await redis_answers(bot.services.redis)
        status = 200 if redis_ok else 503
        return web.json_response({"redis": "ok" if redis_ok else "unavailable"}, status=status)

    application = web.Application()
    application.router.add_post(EVENTS_PATH, events)
    application.router.add_get(HEALTH_PATH, health)
    return application


async def redis_answers(store: redis.Redis) -> bool:
    try:
        return bool(await asyncio.wait_for(store.ping(), 1.0))
    except (redis.RedisError, TimeoutError, OSError):
        return False


async def serve(
    settings: Settings, redis_url: str, allowlist: Allowlist, tokens: TokenSource
) -> None:
    async with running_bot(settings, redis_url, allowlist, tokens) as bot:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if settings.socket_mode:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            handler = AsyncSocketModeHandler(bot.app, settings.slack_app_token)
            await handler.connect_async()  # type: ignore[no-untyped-call]
            log.info("serving over Socket Mode")
            await stop.wait()
            await handler.close_async()  # type: ignore[no-untyped-call]
            return
        runner = web.AppRunner(web_app(bot), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "0.0.0.0", settings.port).start()
        log.info("serving HTTP", extra={"port": settings.port, "path": EVENTS_PATH})
        await stop.wait()
        await runner.cleanup()
