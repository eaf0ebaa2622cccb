"""Logs as Cloud Logging reads them: every stderr line of `serve` and `worker` is a JSON
object with `severity`, `message` and `time`, and a normal start warns about nothing."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from bot.runtime.logs import JsonFormatter
from bot.standins.runner import BackgroundServer
from bot.standins.slack_api import SlackStandIn
from tests.bot_process import BotProcess
from tests.conftest import BOT_TOKEN, DEFAULT_ALLOWLIST
from tests.google_auth_standins import TokenEndpoint, write_service_account_key
from tests.test_startup import base_env


@pytest.mark.parametrize(
    ("level", "severity"),
    [(5, "DEBUG"), (logging.DEBUG, "DEBUG"), (logging.INFO, "INFO"), (25, "INFO"),
     (logging.WARNING, "WARNING"), (logging.ERROR, "ERROR"), (logging.CRITICAL, "CRITICAL")],
)  # fmt: skip
def test_each_level_has_its_cloud_logging_severity(level: int, severity: str) -> None:
    record = logging.LogRecord("bot", level, "", 0, "watch %s ended", ("w1",), None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["severity"] == severity
    assert entry["message"] == "watch w1 ended"
    assert "level" not in entry
    assert entry["time"].endswith("Z")
    assert datetime.fromisoformat(entry["time"]).utcoffset() is not None


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Short on purpose: the embedded Redis listens on a Unix socket under BOT_DATA_DIR.
    path = Path(tempfile.mkdtemp(prefix="co-", dir="/tmp"))
    (path / "allowlist.yaml").write_text(DEFAULT_ALLOWLIST)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def adc_env(short_dir: Path) -> Iterator[dict[str, str]]:
    """Settings of a production start: Google credentials from a key file (no token is
    fetched until a Google call), Slack's token in the environment."""
    endpoint = TokenEndpoint()
    server = BackgroundServer(endpoint.make_app).start()
    key = write_service_account_key(short_dir / "key.json", endpoint, f"{server.url}/token")
    yield base_env(short_dir, GOOGLE_AUTH="adc", GOOGLE_APPLICATION_CREDENTIALS=str(key),
                   CLOUDSDK_CONFIG=str(short_dir / "gcloud"))  # fmt: skip
    server.stop()


def test_serve_prints_only_json_and_no_warning_from_start_to_stop(
    adc_env: dict[str, str],
) -> None:
    bot = BotProcess(adc_env, "serve")  # with its embedded Redis, as in the Quick start
    try:
        bot.wait_until_healthy(adc_env["PORT"])
    finally:
        assert bot.stop() == 0, bot.lines
    entries = bot.log_entries()
    assert "serving HTTP" in [e["message"] for e in entries]
    # Such as Bolt's "token will be unused" or aiohttp's "Unclosed client session".
    assert bot.warnings() == []
    assert BOT_TOKEN not in "\n".join(bot.lines)


def test_worker_prints_only_json_and_no_warning_from_start_to_stop(
    adc_env: dict[str, str], redis_url: str
) -> None:
    bot = BotProcess({**adc_env, "REDIS_URL": redis_url}, "worker")
    try:
        bot.wait_for_line("poller started")
    finally:
        assert bot.stop() == 0, bot.lines
    assert bot.warnings() == []


def test_socket_mode_prints_only_json_and_no_warning_from_start_to_stop(
    adc_env: dict[str, str],
    slack: SlackStandIn,
    slack_server: tuple[SlackStandIn, BackgroundServer],
    redis_url: str,
) -> None:
    env = {**adc_env, "SLACK_APP_TOKEN": "xapp-1-test-app-token", "REDIS_URL": redis_url,
           "SLACK_API_URL": f"{slack_server[1].url}/api/"}  # fmt: skip
    bot = BotProcess(env, "serve")
    try:
        bot.wait_for_line("serving over Socket Mode")
    finally:
        assert bot.stop() == 0, bot.lines
    assert bot.warnings() == []
