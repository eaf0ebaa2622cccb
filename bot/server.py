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
import redis.asyncio as redis
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import build_app, build_services, build_watcher, connect_redis, slack_client
from bot.config import Settings, StartupError
from bot.google.credentials import TokenSource
from bot.google.impersonation import AccountTokens, minter_for
from bot.google.operations import MAX_IN_FLIGHT, OperationsClient
from bot.policy.allowlist import Allowlist
from bot.runtime.health import health_app
from bot.runtime.metrics import SlackErrorCounter
from bot.runtime.proxies import EnvironmentProxies
from bot.services import Services

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
# Requests in flight when SIGTERM comes get this long; Slack wants its ack within 3 s anyway.
HTTP_SHUTDOWN_SECONDS = 3.0


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
    proxies = EnvironmentProxies()
    async with (
        aiohttp.ClientSession(middlewares=(proxies.route,)) as slack_session,
        google_session(proxies) as http,
    ):
        slack = slack_client(settings, slack_session)
        slack.retry_handlers.insert(0, SlackErrorCounter())  # sees every call before a retry
        try:
            accounts = AccountTokens(minter_for(tokens, http, settings.iam_credentials_api_url))
            operations = OperationsClient(
                http, settings.operations_api_url, tokens, accounts=accounts
            )
            yield Clients(store, slack, operations)
        finally:
            await store.aclose()


def google_session(proxies: EnvironmentProxies) -> aiohttp.ClientSession:
    """The Operations API's connections: one per call in flight, connect 5 s, read 10 s.

    Proxies come from the middleware, never from trust_env, which stats and parses
    ~/.netrc in a thread on every request.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=MAX_IN_FLIGHT),
        timeout=aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=10.0),
        middlewares=(proxies.route,),
    )


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

    application = health_app(bot.services.redis, bot.services.watcher)
    application.router.add_post(EVENTS_PATH, events)
    return application


@contextlib.asynccontextmanager
async def listening(application: web.Application, host: str, port: int) -> AsyncIterator[None]:
    """Serve `application` on host:port for the body of the `with`; a port that cannot be
    bound is a wrong setting."""
    runner = web.AppRunner(application, access_log=None, shutdown_timeout=HTTP_SHUTDOWN_SECONDS)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise StartupError(
            "PORT", f"cannot listen on {host}:{port} ({exc.strerror})",
            "Choose a free port; each process needs its own",
        ) from None  # fmt: skip
    try:
        yield
    finally:
        await runner.cleanup()


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
        if settings.socket_mode:
            application = health_app(bot.services.redis, bot.services.watcher)
        else:
            application = web_app(bot)
        async with listening(application, host, settings.http_port):
            poller = asyncio.create_task(bot.services.watcher.run(stop))
            if settings.socket_mode:
                await _serve_socket_mode(bot, settings, stop, on_listening)
            else:
                log.info("serving HTTP", extra={"port": settings.http_port, "path": EVENTS_PATH})
                if on_listening is not None:
                    on_listening()
                await stop.wait()
        await poller


async def _serve_socket_mode(
    bot: Bot, settings: Settings, stop: asyncio.Event, on_listening: Callable[[], None] | None
) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    handler = AsyncSocketModeHandler(bot.app, settings.slack_app_token)
    # slack_sdk retries a connection Slack refuses for ever: SIGTERM must end that too.
    connecting = asyncio.create_task(handler.connect_async())  # type: ignore[no-untyped-call]
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait((connecting, stopping), return_when=asyncio.FIRST_COMPLETED)
    if not connecting.done():
        connecting.cancel()
        log.warning("stopped before Slack accepted the Socket Mode connection")
    else:
        stopping.cancel()
        connecting.result()
        log.info("serving over Socket Mode", extra={"port": settings.http_port})
        if on_listening is not None:
            on_listening()
        await stop.wait()
    # A slow Slack must not hold the exit past the deadline of SIGTERM.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(handler.close_async(), HTTP_SHUTDOWN_SECONDS)  # type: ignore[no-untyped-call]


async def work(settings: Settings, redis_url: str, tokens: TokenSource) -> None:
    """The poller alone: any number of these may run beside `serve` on one Redis. It serves
    /healthz and /metrics only when PORT is set."""
    async with connected(settings, redis_url, tokens) as clients:
        watcher = build_watcher(settings, clients.redis, clients.slack, clients.operations)
        keep_start_up_out_of_collections()
        stop = stop_on_signals()
        serving: contextlib.AbstractAsyncContextManager[None] = contextlib.nullcontext()
        if settings.port is not None:
            serving = listening(health_app(clients.redis, watcher), "0.0.0.0", settings.port)
        async with serving:
            log.info("poller started", extra={"port": settings.port})
            await watcher.run(stop)
