"""Worker processes sharing one Redis: kill -9 mid-watch, and three workers on 100 watches."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aredis

from bot.standins.operations_api import FakeOperation, OperationsStandIn
from bot.standins.runner import BackgroundServer
from bot.standins.slack_api import Message, SlackStandIn
from bot.watch.store import Watch, WatchStore
from tests.conftest import BOT_TOKEN, DEFAULT_ALLOWLIST, ONCALL
from tests.slack_driver import wait_for

Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn_worker(
    tmp_path: Path,
    redis_url: str,
    slack_server: tuple[SlackStandIn, BackgroundServer],
    google_server: tuple[OperationsStandIn, BackgroundServer],
) -> Iterator[Spawn]:
    allowlist = tmp_path / "allowlist.yaml"
    allowlist.write_text(DEFAULT_ALLOWLIST)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": f"{slack_server[1].url}/api/",
        "OPERATIONS_API_URL": f"{google_server[1].url}/v1",
        "GOOGLE_AUTH": "anonymous",
        "REDIS_URL": redis_url,
        "ALLOWLIST_FILE": str(allowlist),
        "POLL_INITIAL_SECONDS": "0.05",
        "POLL_MAX_SECONDS": "0.3",
        "WATCH_LEASE_SECONDS": "2",
    }
    workers: list[subprocess.Popen[bytes]] = []

    def spawn(**settings: str) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"worker-{len(workers)}.log", "wb")  # noqa: SIM115
        worker = subprocess.Popen([sys.executable, "-m", "bot", "worker"],
                                  env={**env, **settings}, stdout=log, stderr=log)  # fmt: skip
        workers.append(worker)
        return worker

    yield spawn
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        assert worker.wait(timeout=20) in (0, -signal.SIGKILL)


def enqueue(redis_url: str, names: list[str]) -> None:
    async def add() -> None:
        client = aredis.Redis.from_url(redis_url, decode_responses=True)
        store = WatchStore(client, active_ttl_ms=3_600_000)
        for name in names:
            watch = Watch(store.new_id(), name, ONCALL, "C0CHANNEL", "", 0)
            assert (await store.enqueue(watch)).queued
        await client.aclose()

    asyncio.run(add())


def messages_about(slack: SlackStandIn, name: str, words: str) -> list[Message]:
    return [m for m in slack.state.messages if name in m.text and words in m.text]


def test_a_worker_killed_mid_watch_is_taken_over_with_one_final_message(
    spawn_worker: Spawn, slack: SlackStandIn, google: OperationsStandIn, redis_url: str
) -> None:
    name = "projects/p/locations/l/operations/long-running"
    operation = google.state.add(FakeOperation(name, polls_until_done=10**6))
    first = spawn_worker()
    enqueue(redis_url, [name])
    wait_for(lambda: len(google.state.requests_for(name)) >= 3, timeout=20, what="polls")
    first.kill()  # SIGKILL: no chance to hand anything over
    first.wait()
    polls_before = len(google.state.requests_for(name))
    spawn_worker()
    wait_for(lambda: len(google.state.requests_for(name)) > polls_before + 2, timeout=20,
             what="the new worker to take the watch over")  # fmt: skip
    operation.polls_until_done = 0
    wait_for(lambda: messages_about(slack, name, "was cancelled"), timeout=20, what="final")
    assert len(messages_about(slack, name, "asked to cancel")) == 1
    assert len(messages_about(slack, name, "was cancelled")) == 1
    assert len([m for m in slack.state.messages if "accepted the cancel" in m.text]) == 1
    assert len(google.state.requests_for(name, "cancel")) == 1


def test_a_worker_killed_while_sending_the_cancel_is_taken_over_within_a_lease(
    spawn_worker: Spawn, slack: SlackStandIn, google: OperationsStandIn, redis_url: str
) -> None:
    """The cancel in flight holds its key only as long as the call can take, so the next
    worker sends it once the lease is over, not a lease later."""
    name = "projects/p/locations/l/operations/killed-while-cancelling"
    google.state.add(FakeOperation(name, polls_until_done=10**6))
    google.state.trickle[("POST", name)] = 5.0  # the first cancel hangs
    lease = 6.0
    first = spawn_worker(WATCH_LEASE_SECONDS=str(lease))
    enqueue(redis_url, [name])
    wait_for(lambda: google.state.requests_for(name, "cancel"), timeout=30, what="the cancel")
    first.kill()
    first.wait()
    google.state.trickle.clear()
    spawn_worker(WATCH_LEASE_SECONDS=str(lease))
    wait_for(lambda: len(google.state.requests_for(name, "cancel")) == 2, timeout=30,
             what="the next worker to send the cancel")  # fmt: skip
    sent, resent = (r.started for r in google.state.requests_for(name, "cancel"))
    assert resent - sent < lease + 2.0, f"resent {resent - sent:.1f} s later"
    wait_for(lambda: [m for m in slack.state.messages if "accepted the cancel" in m.text],
             what="Google's answer in the thread")  # fmt: skip


def test_three_workers_share_100_watches_each_ended_once_never_polled_twice_at_once(
    spawn_worker: Spawn, slack: SlackStandIn, google: OperationsStandIn, redis_url: str
) -> None:
    google.state.latency_seconds = 0.02  # so two overlapping polls would show
    names = [f"projects/p/locations/l/operations/op-{i:03d}" for i in range(100)]
    for name in names:
        google.state.add(FakeOperation(name, polls_until_done=random.randint(2, 8)))
    for _ in range(3):
        spawn_worker()
    enqueue(redis_url, names)
    wait_for(lambda: len([m for m in slack.state.messages if "was cancelled" in m.text]) == 100,
             timeout=90, what="100 final messages")  # fmt: skip
    for name in names:
        assert len(messages_about(slack, name, "was cancelled")) == 1, name
        assert len(messages_about(slack, name, "asked to cancel")) == 1, name
        assert len(google.state.requests_for(name, "cancel")) == 1, name
        polls = sorted(google.state.requests_for(name), key=lambda r: r.started)
        for earlier, later in itertools.pairwise(polls):
            assert earlier.ended <= later.started, f"{name} polled by two workers at once"
