"""Starts the sandbox: stand-ins for Google (Operations and IAM Credentials APIs) and Slack,
the page, then the real bot.

The bot gets its settings the way production does (an environment read by
`Settings.from_env`, an allowlist file, the embedded Redis), only built here instead of
taken from the shell, so nothing set outside changes what a newcomer sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from aiohttp import web

from bot.config import Settings, StartupError
from bot.google.credentials import AnonymousTokens
from bot.policy.allowlist import load_allowlist
from bot.runtime.logs import JsonFormatter
from bot.runtime.redis_server import EmbeddedRedis
from bot.sandbox import workspace
from bot.sandbox.page import SandboxPage
from bot.server import EVENTS_PATH, serve
from bot.standins.iam_credentials import IamCredentialsStandIn
from bot.standins.operations_api import OperationsStandIn
from bot.standins.runner import BackgroundServer
from bot.standins.slack_api import SlackStandIn
from bot.standins.slack_client import SlackClientApi

HOST = "127.0.0.1"
LOG_FILE = "bot.log"


def run_sandbox(port: int) -> None:
    # Closing the terminal stops it as Ctrl-C does, so the temporary folder goes too.
    signal.signal(signal.SIGHUP, _as_ctrl_c)
    data_dir = Path(tempfile.mkdtemp(prefix="cancel-op-sandbox-"))
    try:
        with contextlib.ExitStack() as stack:
            stack.callback(_log_to_file(data_dir / LOG_FILE))
            bot_port = _free_port()
            secret = secrets.token_hex(16)
            iam = IamCredentialsStandIn()
            # Tokens of 5 minutes are never kept (the bot renews 5 minutes early): each call
            # asks for one, so the page's Refuse switch shows at the next call.
            iam.state.lifetime_seconds = 300
            iam_server = BackgroundServer(iam.make_app).start()
            stack.callback(iam_server.stop)
            operations = OperationsStandIn()
            operations.minted = iam.minted  # so it knows which account each token is
            google_server = BackgroundServer(operations.make_app).start()
            stack.callback(google_server.stop)
            page = SandboxPage(google_server.url, iam_server.url)
            request_url = f"http://{HOST}:{bot_port}{EVENTS_PATH}"
            slack_server = _start_slack(port, request_url, secret, page)
            stack.callback(slack_server.stop)
            env = {
                "SLACK_BOT_TOKEN": "xoxb-sandbox-" + secrets.token_hex(8),
                "SLACK_SIGNING_SECRET": secret,
                "SLACK_API_URL": f"{slack_server.url}/api/",
                "OPERATIONS_API_URL": f"{google_server.url}/v1",
                "IAM_CREDENTIALS_API_URL": f"{iam_server.url}/v1",
                "GOOGLE_AUTH": "anonymous",
                "PORT": str(bot_port),
                "BOT_DATA_DIR": str(data_dir),
                "ALLOWLIST_FILE": str(data_dir / "allowlist.yaml"),
                # Short waits, so a thread ends while you watch it.
                "POLL_INITIAL_SECONDS": "1",
                "POLL_MAX_SECONDS": "3",
                "WATCH_TIMEOUT_SECONDS": "900",
            }
            (data_dir / "allowlist.yaml").write_text(workspace.ALLOWLIST)
            settings = Settings.from_env(env)
            allowlist = load_allowlist(settings.allowlist_file, settings.operations_service)
            embedded = EmbeddedRedis(data_dir)
            redis_url = embedded.start()
            stack.callback(embedded.stop)
            slack_server.call(page.seed(slack_server.url))
            print(f"cancel-op sandbox: the bot's logs go to {data_dir / LOG_FILE}", flush=True)
            address = f"cancel-op sandbox: open {slack_server.url}/ in a browser (Ctrl-C stops it)"
            asyncio.run(
                serve(
                    settings,
                    redis_url,
                    allowlist,
                    AnonymousTokens(),
                    host=HOST,
                    on_listening=lambda: print(address, flush=True),
                )
            )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    # SIGINT is Ctrl-C both inside the event loop (a clean stop) and outside it.
    signal.raise_signal(signal.SIGINT)


def _log_to_file(path: Path) -> Callable[[], None]:
    """All the bot's log lines to a file; only warnings and worse reach the terminal, so
    the page's address stays the last thing printed while all goes well. Returns the undo."""
    root = logging.getLogger()
    terminal = list(root.handlers)
    for handler in terminal:
        handler.setLevel(logging.WARNING)
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(JsonFormatter())
    root.addHandler(to_file)

    def undo() -> None:
        root.removeHandler(to_file)
        to_file.close()
        for handler in terminal:
            handler.setLevel(logging.NOTSET)

    return undo


def _start_slack(port: int, request_url: str, secret: str, page: SandboxPage) -> BackgroundServer:
    """Stand-in Slack: its Web API, the client routes the page uses, and the page itself."""
    slack = SlackStandIn()
    slack.state.usergroups[workspace.ROTATION] = [workspace.ROTATION_MEMBER]
    slack.state.authors[workspace.ALERTS_TOKEN] = workspace.ALERTS_BOT
    client = SlackClientApi(
        slack, request_url, secret, {workspace.CHANNEL: workspace.CHANNEL_NAME}, workspace.USERS
    )

    async def make_app() -> web.Application:
        app = await slack.make_app()
        client.add_routes(app)
        page.add_routes(app)
        return app

    server = BackgroundServer(make_app, port=port)
    try:
        server.start()
    except OSError as exc:
        server.stop()
        raise StartupError(
            "--port",
            f"cannot listen on {HOST}:{port} ({exc.strerror})",
            "Pass --port with a free port, or --port 0 for any free one",
        ) from None
    slack.permalink_page = f"{server.url}/"  # "See the thread" opens it on the page
    return server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])
