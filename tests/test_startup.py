"""`python -m bot`: start-up problems are one clear line; a good start serves and stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from bot.runtime.redis_server import socket_answers
from bot.standins.runner import BackgroundServer
from bot.standins.slack_api import SlackStandIn
from tests.conftest import BOT_TOKEN, DEFAULT_ALLOWLIST, SIGNING_SECRET
from tests.slack_driver import wait_for


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Short on purpose: the embedded Redis listens on a Unix socket under BOT_DATA_DIR.
    path = Path(f"/tmp/co-{os.getpid()}-{time.monotonic_ns() % 10**6}")
    path.mkdir()
    (path / "allowlist.yaml").write_text(DEFAULT_ALLOWLIST)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


def base_env(workdir: Path, **overrides: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(workdir),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "GOOGLE_AUTH": "anonymous",
        "ALLOWLIST_FILE": str(workdir / "allowlist.yaml"),
        "BOT_DATA_DIR": str(workdir / "data"),
        "PORT": str(free_port()),
        # Never look for a metadata server: tests stay on 127.0.0.1.
        "NO_GCE_CHECK": "True",
        "GCE_METADATA_HOST": "127.0.0.1:1",
        "GCE_METADATA_IP": "127.0.0.1:1",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v != ""}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_bot(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("overrides", "setting", "words"),
    [
        ({"SLACK_BOT_TOKEN": ""}, "SLACK_BOT_TOKEN", "is not set"),
        ({"SLACK_BOT_TOKEN": "xoxp-user-token"}, "SLACK_BOT_TOKEN", "xoxb-"),
        ({"SLACK_SIGNING_SECRET": ""}, "SLACK_SIGNING_SECRET", "HTTP mode"),
        ({"SLACK_APP_TOKEN": "abc"}, "SLACK_APP_TOKEN", "xapp-"),
        ({"PORT": "http"}, "PORT", "whole number"),
        ({"PORT": "70000"}, "PORT", "at most 65535"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL", "redis://"),
        ({"OPERATIONS_API_URL": "ftp://x"}, "OPERATIONS_API_URL", "http(s) URL"),
        ({"IAM_CREDENTIALS_API_URL": "iamcredentials.googleapis.com"}, "IAM_CREDENTIALS_API_URL",
         "http(s) URL"),
        ({"GOOGLE_AUTH": "magic"}, "GOOGLE_AUTH", "adc, anonymous"),
        ({"POLL_MULTIPLIER": "0.5"}, "POLL_MULTIPLIER", "at least 1"),
        ({"POLL_MAX_SECONDS": "0.5"}, "POLL_MAX_SECONDS", "POLL_INITIAL_SECONDS"),
        ({"WATCH_TIMEOUT_SECONDS": "soon"}, "WATCH_TIMEOUT_SECONDS", "not a number"),
        ({"WATCH_TIMEOUT_SECONDS": "inf"}, "WATCH_TIMEOUT_SECONDS", "at most 604800"),
        ({"WATCH_TIMEOUT_SECONDS": "1e17"}, "WATCH_TIMEOUT_SECONDS", "at most 604800"),
        ({"WATCH_LEASE_SECONDS": "nan"}, "WATCH_LEASE_SECONDS", "out of range"),
        ({"OPERATIONS_SERVICE": "Bad Name"}, "OPERATIONS_SERVICE", "not a service name"),
        ({"ALLOWLIST_FILE": "/nonexistent/allow.yaml"}, "ALLOWLIST_FILE", "no such file"),
        ({"GOOGLE_AUTH": "adc", "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent.json"},
         "GOOGLE_AUTH", "gcloud auth application-default login"),
        ({"BOT_DATA_DIR": "/tmp/" + "d" * 120}, "BOT_DATA_DIR", "too long"),
    ],
)  # fmt: skip
def test_a_bad_setting_stops_start_up_with_one_line(
    workdir: Path, overrides: dict[str, str], setting: str, words: str
) -> None:
    result = run_bot(base_env(workdir, **overrides))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"cancel-op: {setting}: ")
    assert words in lines[0]
    assert "Traceback" not in result.stderr
    assert BOT_TOKEN not in result.stderr


def test_a_broken_allowlist_names_the_file_and_line(workdir: Path) -> None:
    (workdir / "allowlist.yaml").write_text(
        "bindings:\n  - permission: x.operations.cancel\n    members: [user:U1]\n"
    )
    result = run_bot(base_env(workdir))
    assert result.returncode == 2
    path = workdir / "allowlist.yaml"
    assert result.stderr.strip() == (
        f"cancel-op: ALLOWLIST_FILE: {path}:2: unknown permission 'x.operations.cancel' "
        "(cloudaicompanion.operations.cancel, cloudaicompanion.operations.get, "
        "cloudaicompanion.operations.list). Fix the file, or point ALLOWLIST_FILE at the right one"
    )


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_an_impersonate_that_is_no_service_account_names_the_file_and_line(
    workdir: Path, command: str
) -> None:
    (workdir / "allowlist.yaml").write_text(
        "bindings:\n  - permission: cloudaicompanion.operations.cancel\n"
        "    members: [user:U1]\n    impersonate: oncall@example.com\n"
    )
    result = run_bot(base_env(workdir, REDIS_URL="redis://127.0.0.1:1/0"), command)
    assert result.returncode == 2
    path = workdir / "allowlist.yaml"
    assert result.stderr.strip() == (
        f"cancel-op: ALLOWLIST_FILE: {path}:4: impersonate 'oncall@example.com' is not a "
        "service-account email (like NAME@PROJECT.iam.gserviceaccount.com). Fix the file, or "
        "point ALLOWLIST_FILE at the right one"
    )


def start(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def healthz(port: str) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    except httpx.HTTPError:
        return None


def healthy(port: str) -> httpx.Response | None:
    """/healthz once it says 200: Redis takes writes and the poller's loop has run."""
    response = healthz(port)
    return response if response is not None and response.status_code == 200 else None


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    return stderr


def test_serve_starts_its_own_redis_keeps_data_across_restarts_and_stops_it(
    workdir: Path,
) -> None:
    env = base_env(workdir)
    process = start(env)
    try:
        response = wait_for(lambda: healthy(env["PORT"]), timeout=30, what="/healthz")
        assert response.status_code == 200 and response.json()["redis"] == "ok"
        sock = workdir / "data" / "redis.sock"
        client = redis.Redis(unix_socket_path=str(sock))
        client.set("cancel-op:kept", "1")
        client.close()
    finally:
        stderr = stop(process)
    assert not socket_answers(sock), "the embedded Redis outlived the bot"
    assert BOT_TOKEN not in stderr and SIGNING_SECRET not in stderr

    env["PORT"] = str(free_port())
    process = start(env)
    try:
        wait_for(lambda: healthy(env["PORT"]), timeout=30, what="/healthz after restart")
        client = redis.Redis(unix_socket_path=str(sock))
        assert client.get("cancel-op:kept") == b"1"
        client.close()
    finally:
        stop(process)


def test_the_embedded_redis_dies_with_a_killed_bot(workdir: Path) -> None:
    env = base_env(workdir)
    process = start(env)
    wait_for(lambda: healthy(env["PORT"]), timeout=30, what="/healthz")
    sock = workdir / "data" / "redis.sock"
    assert socket_answers(sock)
    process.kill()
    process.wait()
    wait_for(lambda: not socket_answers(sock), timeout=10, what="the orphaned Redis to stop")


def test_socket_mode_answers_commands_over_the_websocket(
    workdir: Path,
    slack: SlackStandIn,
    slack_server: tuple[SlackStandIn, BackgroundServer],
    redis_url: str,
) -> None:
    env = base_env(workdir, SLACK_APP_TOKEN="xapp-1-test-app-token", SLACK_SIGNING_SECRET="",
                   SLACK_API_URL=f"{slack_server[1].url}/api/", REDIS_URL=redis_url)  # fmt: skip
    process = start(env)
    try:
        wait_for(lambda: slack.state.calls_to("apps.connections.open"), timeout=30,
                 what="the Socket Mode connection")  # fmt: skip
        command = {"command": "/cancel-op", "text": "help", "user_id": "U0ONCALL",
                   "channel_id": "C0CHANNEL", "team_id": "T0000TEST", "trigger_id": "1.t",
                   "response_url": f"{slack_server[1].url}/response/1"}  # fmt: skip
        envelope = {"envelope_id": "env-1", "type": "slash_commands", "payload": command,
                    "accepts_response_payload": True}  # fmt: skip
        slack.state.socket_outbox.append(envelope)

        def acks() -> list[dict[str, object]]:
            return [m for m in slack.state.socket_received if m.get("envelope_id") == "env-1"]

        wait_for(acks, timeout=20, what="the ack")
        # The usage text comes back in the acknowledgement itself, over the websocket.
        assert "/cancel-op projects/PROJECT/locations/LOCATION" in str(acks()[0]["payload"])
    finally:
        stop(process)


def test_a_broken_approval_block_stops_start_up_with_its_line(workdir: Path) -> None:
    (workdir / "allowlist.yaml").write_text(
        "bindings:\n  - permission: cloudaicompanion.operations.cancel\n"
        "    members: [user:U1]\n    approval:\n      approvers: [user:U2]\n"
        "      expires_after_seconds: 5\n"
    )
    result = run_bot(base_env(workdir))
    assert result.returncode == 2
    path = workdir / "allowlist.yaml"
    assert result.stderr.strip() == (
        f"cancel-op: ALLOWLIST_FILE: {path}:6: 'expires_after_seconds' must be a whole number "
        "from 60 to 86400. Fix the file, or point ALLOWLIST_FILE at the right one"
    )
