"""REDIS_URL at start-up, against real redis-servers: a refused password, a TLS-only server
(as Heroku Redis and Memorystore serve it), a port that never answers; `worker` needs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bot.runtime.redis_startup import redacted_url
from tests.redis_processes import (
    SilentServer,
    free_port,
    redis_process,
    silent_server,
    tls_redis_server,
    write_tls_files,
)
from tests.slack_driver import wait_for
from tests.test_startup import base_env, healthy, run_bot, start, stop, workdir

__all__ = ["silent_server", "workdir"]  # fixtures used by name below

PASSWORD = "s3cret-Pa55word"


def refused_with_one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cancel-op: REDIS_URL: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def serves_healthy(env: dict[str, str]) -> None:
    process = start(env)
    try:
        response = wait_for(lambda: healthy(env["PORT"]), timeout=30, what="/healthz 200")
        assert response.json()["redis"] == "ok"
    finally:
        stop(process)


def test_worker_without_redis_url_refuses_to_start(workdir: Path) -> None:
    line = refused_with_one_line(run_bot(base_env(workdir), "worker"))
    assert "is required by `worker`" in line


def test_a_refused_or_missing_password_stops_start_up_and_the_right_one_works(
    workdir: Path,
) -> None:
    port = free_port()
    good = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    with redis_process(workdir / "redis", "--port", str(port), "--bind", "127.0.0.1",
                       "--requirepass", PASSWORD, ready_url=good):  # fmt: skip
        wrong = base_env(workdir, REDIS_URL=f"redis://:wrong-{PASSWORD}@127.0.0.1:{port}/0")
        line = refused_with_one_line(run_bot(wrong, "worker"))
        assert "refused the password" in line
        assert f"redis://:***@127.0.0.1:{port}/0" in line
        assert PASSWORD not in line

        line = refused_with_one_line(
            run_bot(base_env(workdir, REDIS_URL=f"redis://127.0.0.1:{port}/0"))
        )
        assert "requires a password" in line

        serves_healthy(base_env(workdir, REDIS_URL=good))


def test_tls_only_redis_with_auth_works_as_heroku_redis_is_reached(workdir: Path) -> None:
    binary = tls_redis_server()
    cert, key, ca = write_tls_files(workdir)
    port = free_port()
    url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_cert_reqs=none"
    with redis_process(
        workdir / "redis", "--port", "0", "--bind", "127.0.0.1", "--tls-port", str(port),
        "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
        "--tls-auth-clients", "no", "--requirepass", PASSWORD, binary=binary, ready_url=url,
    ):  # fmt: skip
        serves_healthy(base_env(workdir, REDIS_URL=url))

        plain = base_env(workdir, REDIS_URL=f"redis://:{PASSWORD}@127.0.0.1:{port}/0")
        line = refused_with_one_line(run_bot(plain, "worker"))
        assert "rediss://" in line and PASSWORD not in line

        # Without ssl_cert_reqs=none the self-signed certificate is not trusted here.
        verified = base_env(workdir, REDIS_URL=f"rediss://:{PASSWORD}@127.0.0.1:{port}/0")
        line = refused_with_one_line(run_bot(verified, "worker"))
        assert "TLS handshake failed" in line and "ssl_cert_reqs=none" in line


def test_rediss_to_a_plain_port_says_to_use_redis_url_without_tls(workdir: Path) -> None:
    port = free_port()
    with redis_process(workdir / "redis", "--port", str(port), "--bind", "127.0.0.1",
                       ready_url=f"redis://127.0.0.1:{port}/0"):  # fmt: skip
        env = base_env(workdir, REDIS_URL=f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none")
        line = refused_with_one_line(run_bot(env, "worker"))
        assert "needs redis://, not rediss://" in line


def test_a_server_that_never_answers_stops_start_up_after_10_s(
    workdir: Path, silent_server: SilentServer
) -> None:
    env = base_env(workdir, REDIS_URL=f"redis://127.0.0.1:{silent_server.port}/0")
    # run_bot's own timeout (60 s) fails the test if the process waits for ever.
    line = refused_with_one_line(run_bot(env))
    assert "did not answer within 10 s" in line
    assert silent_server.connections, "the bot never reached the server"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
        ("rediss://user:p%40ss@h:6380/0?ssl_cert_reqs=none",
         "rediss://user:***@h:6380/0?ssl_cert_reqs=none"),
        ("redis://h:1/0?password=pw&db=2", "redis://h:1/0?password=***&db=2"),
        ("unix:///tmp/r.sock", "unix:///tmp/r.sock"),
    ],
)  # fmt: skip
def test_messages_show_redis_url_without_its_password(url: str, shown: str) -> None:
    assert redacted_url(url) == shown
