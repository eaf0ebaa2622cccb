"""/healthz and /metrics: 503 with the reason when Redis refuses writes (full, read-only
replica); every process serves both; /metrics counts a real cancel end to end."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

import bot.runtime.health
from bot.standins.operations_api import OperationsStandIn
from bot.standins.runner import BackgroundServer
from bot.standins.slack_api import SlackStandIn
from tests.conftest import ONCALL, RunningBot
from tests.listeners.flow import OP, closed, confirm, open_modal, seed
from tests.redis_processes import free_port, redis_process
from tests.slack_driver import wait_for
from tests.test_shutdown import add_watches
from tests.test_startup import base_env, workdir

__all__ = ["workdir"]  # fixture used by name below

FAST = {"POLL_INITIAL_SECONDS": "0.05", "POLL_MAX_SECONDS": "0.2"}
METRIC_NAMES = {
    "cancel_op_cancels_total",
    "cancel_op_watches_active",
    "cancel_op_poll_lag_seconds",
    "cancel_op_google_requests_total",
    "cancel_op_slack_errors_total",
}


def get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None


def healthz_when(base_url: str, status: int) -> httpx.Response:
    def answered() -> httpx.Response | None:
        response = get(f"{base_url}/healthz")
        return response if response is not None and response.status_code == status else None

    found: httpx.Response = wait_for(answered, timeout=30, what=f"/healthz {status}")
    return found


def samples(base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    response = httpx.get(f"{base_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_a_full_redis_makes_healthz_503_with_the_reason(
    tmp_path: Path, start_bot: Callable[..., RunningBot]
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with redis_process(tmp_path / "full", "--port", str(port), "--bind", "127.0.0.1",
                       ready_url=url):  # fmt: skip
        running = start_bot(redis=url, **FAST)
        healthz_when(running.server.url, 200)
        client = redis.Redis.from_url(url)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1mb")
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            for i in range(100):  # 10 MB at most: well past 1 MB
                client.set(f"filler:{i}", "x" * 100_000)
        body = healthz_when(running.server.url, 503).json()
        assert body["redis"] == "refuses writes"
        assert "used memory > 'maxmemory'" in body["reason"]
        client.config_set("maxmemory", "0")
        healthz_when(running.server.url, 200)
        client.close()


def test_a_read_only_replica_and_a_stalled_poller_make_healthz_503_with_the_reasons(
    tmp_path: Path, start_bot: Callable[..., RunningBot], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot.runtime.health, "LOOP_STALE_SECONDS", 1.0)  # instead of waiting 30 s
    first, other = free_port(), free_port()
    with (
        redis_process(tmp_path / "first", "--port", str(first), "--bind", "127.0.0.1",
                      ready_url=f"redis://127.0.0.1:{first}/0"),
        redis_process(tmp_path / "other", "--port", str(other), "--bind", "127.0.0.1",
                      ready_url=f"redis://127.0.0.1:{other}/0"),
    ):  # fmt: skip
        running = start_bot(redis=f"redis://127.0.0.1:{first}/0", **FAST)
        healthz_when(running.server.url, 200)
        client = redis.Redis(port=first)
        client.replicaof("127.0.0.1", str(other))  # now a read-only replica
        # A due watch arrives by replication; claiming it is a write, so the poller stalls.
        add_watches(f"redis://127.0.0.1:{other}/0")
        body = healthz_when(running.server.url, 503).json()
        assert body["redis"] == "refuses writes" and body["status"] == "unhealthy"
        assert "read only replica" in body["reason"]
        wait_for(lambda: "the poller's loop last ran" in
                 httpx.get(f"{running.server.url}/healthz").json()["reason"],
                 what="the stalled poller in /healthz")  # fmt: skip
        client.replicaof("NO", "ONE")
        healthz_when(running.server.url, 200)
        client.close()


def test_metrics_count_a_real_cancel_and_a_slack_error(
    start_bot: Callable[..., RunningBot], slack: SlackStandIn, google: OperationsStandIn
) -> None:
    running = start_bot(**FAST)
    base = running.server.url
    before = samples(base)
    assert {name for name, _ in before} >= {
        "cancel_op_watches_active", "cancel_op_poll_lag_seconds_count"
    }  # fmt: skip
    seed(google, polls_until_done=2)
    slack.state.closed_channels["C0CLOSED"] = "not_in_channel"  # the request goes to the DM
    ack = confirm(running, open_modal(running, slack, ONCALL, channel="C0CLOSED"), ONCALL)
    assert closed(ack)
    wait_for(lambda: [m for m in slack.state.messages if "was cancelled" in m.text], timeout=30,
             what="the final message")  # fmt: skip
    after = samples(base)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("cancel_op_cancels_total", outcome="OK") == 1
    assert grew("cancel_op_google_requests_total", method="cancel", code="OK") == 1
    # The modal's read and three polls, the last one done.
    assert grew("cancel_op_google_requests_total", method="get", code="OK") == 4
    assert grew("cancel_op_slack_errors_total", error="not_in_channel") == 1
    assert grew("cancel_op_poll_lag_seconds_count") >= 3  # the cancel step and each poll
    assert after[("cancel_op_watches_active", ())] == 0  # the watch ended


def test_google_errors_are_counted_by_their_rpc_code(
    start_bot: Callable[..., RunningBot], slack: SlackStandIn, google: OperationsStandIn
) -> None:
    running = start_bot(**FAST)
    before = samples(running.server.url)
    seed(google)
    google.state.script("POST", OP, 400, "FAILED_PRECONDITION", "Operation is not cancellable.")
    confirm(running, open_modal(running, slack, ONCALL), ONCALL)
    wait_for(lambda: google.state.requests_for(OP, "cancel"), what="the cancel")
    key = ("cancel_op_cancels_total", (("outcome", "FAILED_PRECONDITION"),))
    after = wait_for(lambda: (s := samples(running.server.url)).get(key) and s, what="the count")
    assert after[key] - before.get(key, 0.0) == 1
    google_key = ("cancel_op_google_requests_total",
                  (("code", "FAILED_PRECONDITION"), ("method", "cancel")))  # fmt: skip
    assert after[google_key] - before.get(google_key, 0.0) == 1


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        ("serve", {"SLACK_APP_TOKEN": "xapp-1-test-app-token", "SLACK_SIGNING_SECRET": ""}),
        ("worker", {}),
    ],
    ids=["socket-mode", "worker"],
)
def test_socket_mode_and_worker_serve_healthz_and_metrics_on_port(
    command: str,
    extra: dict[str, str],
    workdir: Path,
    redis_url: str,
    slack_server: tuple[SlackStandIn, BackgroundServer],
    google_server: tuple[OperationsStandIn, BackgroundServer],
) -> None:
    env = base_env(workdir, REDIS_URL=redis_url, SLACK_API_URL=f"{slack_server[1].url}/api/",
                   OPERATIONS_API_URL=f"{google_server[1].url}/v1", **extra)  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", command], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        base = f"http://127.0.0.1:{env['PORT']}"
        body = healthz_when(base, 200).json()
        assert body["redis"] == "ok" and body["poller"]["last_loop_age_seconds"] is not None
        assert {name.removesuffix("_count") for name, _ in samples(base)} >= METRIC_NAMES - {
            "cancel_op_cancels_total", "cancel_op_google_requests_total",
            "cancel_op_slack_errors_total",
        }  # fmt: skip
        if command == "worker":  # it receives no Slack requests
            assert httpx.post(f"{base}/slack/events").status_code in (404, 405)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr


def test_a_port_in_use_stops_start_up_with_one_line(workdir: Path, redis_url: str) -> None:
    with redis_process(workdir / "busy", "--port", str(port := free_port()), "--bind",
                       "127.0.0.1", ready_url=f"redis://127.0.0.1:{port}/0"):  # fmt: skip
        env = base_env(workdir, REDIS_URL=redis_url, PORT=str(port))
        result = subprocess.run([sys.executable, "-m", "bot", "worker"], env=env,
                                capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cancel-op: PORT: cannot listen on")


def listening_ports(pid: int) -> set[int]:
    """TCP ports a process listens on, from its socket descriptors and /proc/net (Linux)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target.removeprefix("socket:[").rstrip("]"))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.mark.parametrize("port_set", [True, False], ids=["PORT-set", "PORT-unset"])
def test_a_worker_listens_on_port_only_when_it_is_set(
    port_set: bool, workdir: Path, redis_url: str
) -> None:
    env = base_env(workdir, REDIS_URL=redis_url)
    port = int(env["PORT"])
    if not port_set:
        del env["PORT"]
    log = workdir / "worker.log"
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "bot", "worker"], env=env,
                                   stdout=output, stderr=output)  # fmt: skip
    try:
        wait_for(lambda: "poller started" in log.read_text(), timeout=30, what="the worker")
        assert listening_ports(process.pid) == ({port} if port_set else set())
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
