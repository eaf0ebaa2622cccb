"""Real parts for every test: a redis-server, stand-in Slack and Google over HTTP, the bot."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.config import Settings
from bot.google.credentials import AnonymousTokens, TokenSource
from bot.policy.allowlist import Allowlist, parse_allowlist
from bot.runtime.redis_server import EmbeddedRedis
from bot.server import Bot, running_bot, web_app
from bot.standins.iam_credentials import IamCredentialsStandIn
from bot.standins.operations_api import OperationsStandIn
from bot.standins.runner import BackgroundServer
from bot.standins.slack_api import SlackStandIn
from tests.sandbox_process import Sandbox, start_sandbox
from tests.slack_driver import SlackDriver

BOT_TOKEN = "xoxb-test-bot-token-000"
SIGNING_SECRET = "test-signing-secret-123"
ONCALL = "U0ONCALL"
ROTATION_MEMBER = "U0ROTA"
STRANGER = "U0STRANGER"
ROTATION = "S0ROTATION"
DEFAULT_ALLOWLIST = f"""
bindings:
  - permission: cloudaicompanion.operations.cancel
    members:
      - user:{ONCALL}
      - usergroup:{ROTATION}
"""


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """REDIS_URL when set; else a redis-server of our own, as the bot itself would start."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    data_dir = Path(tempfile.mkdtemp(prefix="co-redis-"))
    server = EmbeddedRedis(data_dir)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    """A redis-server of the test's own, for tests that stop, fill or restart it."""
    data_dir = Path(tempfile.mkdtemp(prefix="co-r-"))
    server = EmbeddedRedis(data_dir)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(autouse=True)
def clean_redis(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def slack_server() -> Iterator[tuple[SlackStandIn, BackgroundServer]]:
    standin = SlackStandIn()
    server = BackgroundServer(standin.make_app).start()
    yield standin, server
    server.stop()


@pytest.fixture(scope="session")
def google_server() -> Iterator[tuple[OperationsStandIn, BackgroundServer]]:
    standin = OperationsStandIn()
    server = BackgroundServer(standin.make_app).start()
    yield standin, server
    server.stop()


@pytest.fixture(scope="session")
def iam_server(
    google_server: tuple[OperationsStandIn, BackgroundServer],
) -> Iterator[tuple[IamCredentialsStandIn, BackgroundServer]]:
    """The IAM Credentials API; the Operations API stand-in knows the tokens it mints."""
    standin = IamCredentialsStandIn()
    server = BackgroundServer(standin.make_app).start()
    google_server[0].minted = standin.minted
    yield standin, server
    server.stop()


@pytest.fixture
def iam(iam_server: tuple[IamCredentialsStandIn, BackgroundServer]) -> IamCredentialsStandIn:
    standin = iam_server[0]
    standin.reset()
    return standin


@pytest.fixture
def slack(slack_server: tuple[SlackStandIn, BackgroundServer]) -> SlackStandIn:
    standin = slack_server[0]
    standin.reset()
    standin.state.usergroups[ROTATION] = [ROTATION_MEMBER]
    return standin


@pytest.fixture
def google(google_server: tuple[OperationsStandIn, BackgroundServer]) -> OperationsStandIn:
    standin = google_server[0]
    standin.reset()
    return standin


def bot_env(slack_url: str, google_url: str, **overrides: str) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": f"{slack_url}/api/",
        "OPERATIONS_API_URL": f"{google_url}/v1",
        "GOOGLE_AUTH": "anonymous",
        **overrides,
    }


@dataclass
class RunningBot:
    bot: Bot
    driver: SlackDriver
    server: BackgroundServer
    process: BotServer  # stop() ends it as a restart would; the fixture's teardown then skips it


class BotServer:
    """The bot's real HTTP app, served on 127.0.0.1 from a thread of its own."""

    def __init__(
        self, settings: Settings, redis_url: str, allowlist: Allowlist, tokens: TokenSource
    ) -> None:
        self._stack = contextlib.AsyncExitStack()
        self.bot: Bot | None = None
        self._stop_poller: asyncio.Event | None = None
        self._poller: asyncio.Task[None] | None = None
        self.stopped = False

        async def make_app() -> web.Application:
            self.bot = await self._stack.enter_async_context(
                running_bot(settings, redis_url, allowlist, tokens)
            )
            # As in `serve`: the poller runs in the same process and loop.
            self._stop_poller = asyncio.Event()
            self._poller = asyncio.create_task(self.bot.services.watcher.run(self._stop_poller))
            return web_app(self.bot)

        self.server = BackgroundServer(make_app).start()

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True

        async def shut_down() -> None:
            assert self._stop_poller is not None and self._poller is not None
            self._stop_poller.set()
            await self._poller
            await self._stack.aclose()

        self.server.call(shut_down())
        self.server.stop()


@pytest.fixture
def start_bot(
    slack: SlackStandIn,
    google: OperationsStandIn,
    slack_server: tuple[SlackStandIn, BackgroundServer],
    google_server: tuple[OperationsStandIn, BackgroundServer],
    redis_url: str,
) -> Iterator[Callable[..., RunningBot]]:
    started: list[tuple[BotServer, SlackDriver]] = []

    def start(
        allowlist: str | Allowlist = DEFAULT_ALLOWLIST,
        *,
        redis: str | None = None,
        tokens: TokenSource | None = None,
        **env: Any,
    ) -> RunningBot:
        settings = Settings.from_env(bot_env(slack_server[1].url, google_server[1].url, **env))
        policy = (
            allowlist
            if isinstance(allowlist, Allowlist)
            else parse_allowlist(allowlist, settings.operations_service)
        )
        server = BotServer(settings, redis or redis_url, policy, tokens or AnonymousTokens())
        driver = SlackDriver(server.server.url, SIGNING_SECRET, slack_server[1].url)
        started.append((server, driver))
        assert server.bot is not None
        return RunningBot(server.bot, driver, server.server, server)

    yield start
    for server, driver in started:
        driver.close()
        server.stop()


@pytest.fixture
def running(start_bot: Callable[..., RunningBot]) -> RunningBot:
    return start_bot()


@pytest.fixture
def service_account(
    tmp_path: Path,
    google_server: tuple[OperationsStandIn, BackgroundServer],
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """A service-account key whose token endpoint is the local stand-in, set as ADC."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = tmp_path / "sa.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "test-project",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "cancel-op@test-project.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"{google_server[1].url}/token",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    return path


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """One `python -m bot sandbox` for the tests that use its page; each uses its own
    operation or user, so they do not depend on each other's order."""
    running = start_sandbox()
    yield running
    running.stop()
