"""SIGTERM: `serve` and `worker` exit 0 within 8 s even while Google and Slack never answer,
and the watches whose steps were cut short are handed back, due at once, for another worker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from bot.standins.operations_api import FakeOperation, OperationsStandIn
from bot.standins.runner import BackgroundServer
from bot.standins.slack_api import SlackStandIn
from bot.watch.store import CLAIMS_KEY, DUE_KEY, WATCHES_KEY, Watch, WatchStore, posted_key
from tests.conftest import BOT_TOKEN, DEFAULT_ALLOWLIST, ONCALL, SIGNING_SECRET
from tests.redis_processes import SilentServer, free_port
from tests.slack_driver import wait_for

# The contract: SIGTERM ends every process within 8 s (Cloud Run allows 10).
EXIT_DEADLINE_SECONDS = 8
POLLING = "projects/p/locations/l/operations/hangs-on-get"
POSTING = "projects/p/locations/l/operations/hangs-on-post"


def bot_process(command: str, tmp_path: Path, redis_url: str, slack_url: str,
                google_url: str) -> subprocess.Popen[bytes]:  # fmt: skip
    allowlist = tmp_path / "allowlist.yaml"
    allowlist.write_text(DEFAULT_ALLOWLIST)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": f"{slack_url}/api/",
        "OPERATIONS_API_URL": f"{google_url}/v1",
        "GOOGLE_AUTH": "anonymous",
        "REDIS_URL": redis_url,
        "ALLOWLIST_FILE": str(allowlist),
        "PORT": str(free_port()),
        "POLL_INITIAL_SECONDS": "0.05",
        "POLL_MAX_SECONDS": "0.2",
        # A post cut short whose pending mark could not be freed in time waits out a lease.
        "WATCH_LEASE_SECONDS": "3",
    }
    log = open(tmp_path / f"{command}-{len(list(tmp_path.iterdir()))}.log", "wb")  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-m", "bot", command], env=env, stdout=log,
                            stderr=log)  # fmt: skip


def add_watches(redis_url: str) -> dict[str, str]:
    """One watch polling (its next step a GET) and one about to post its request to Slack
    (Google already took its cancel: the cancel goes first)."""

    async def add() -> dict[str, str]:
        client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        store = WatchStore(client, active_ttl_ms=3_600_000)
        polling = Watch(store.new_id(), POLLING, ONCALL, "C0CHANNEL", "", 0, stage="watch",
                        post_channel="C0CHANNEL", thread_ts="1700000000.000100")  # fmt: skip
        posting = Watch(store.new_id(), POSTING, ONCALL, "C0CHANNEL", "", 0)
        for watch in (polling, posting):
            assert (await store.enqueue(watch)).queued
        await store.remember(posted_key(posting.id, "cancel"), "OK|")
        await client.aclose()
        return {POLLING: polling.id, POSTING: posting.id}

    return asyncio.run(add())


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_sigterm_exits_0_in_time_while_calls_hang_and_hands_the_watches_back(
    command: str,
    tmp_path: Path,
    redis_url: str,
    slack: SlackStandIn,
    google: OperationsStandIn,
    slack_server: tuple[SlackStandIn, BackgroundServer],
    google_server: tuple[OperationsStandIn, BackgroundServer],
) -> None:
    silent_google, silent_slack = SilentServer(), SilentServer()
    ids = add_watches(redis_url)
    stuck = bot_process(command, tmp_path, redis_url,
                        f"http://127.0.0.1:{silent_slack.port}",
                        f"http://127.0.0.1:{silent_google.port}")  # fmt: skip
    try:
        wait_for(lambda: silent_google.connections and silent_slack.connections, timeout=30,
                 what="a Google GET and a Slack post, both hanging")  # fmt: skip
        stuck.send_signal(signal.SIGTERM)
        returncode = stuck.wait(timeout=EXIT_DEADLINE_SECONDS)  # raises if it takes longer
    finally:
        stuck.kill()
        silent_google.close()
        silent_slack.close()
    assert returncode == 0, (tmp_path / f"{command}-1.log").read_text()

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    for watch_id in ids.values():
        assert client.hget(WATCHES_KEY, watch_id), "the watch was lost"
        assert client.hget(CLAIMS_KEY, watch_id) is None, "the watch is still claimed"
        score = client.zscore(DUE_KEY, watch_id)
        assert score is not None and score <= now_ms, "the watch is not due: it waits a lease"
    client.close()

    for name in (POLLING, POSTING):
        google.state.add(FakeOperation(name, polls_until_done=1))
        google.state.operations[name].done = True
        google.state.operations[name].error = {"code": 1, "message": "Operation was cancelled."}
    second = bot_process("worker", tmp_path, redis_url, slack_server[1].url, google_server[1].url)
    try:
        for name in (POLLING, POSTING):
            wait_for(lambda name=name: [m for m in slack.state.messages
                                        if name in m.text and "was cancelled" in m.text],
                     timeout=30, what=f"{name} to end")  # fmt: skip
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0
    assert len([m for m in slack.state.messages if POSTING in m.text
                and "asked to cancel" in m.text]) == 1  # fmt: skip
    assert google.state.requests_for(POSTING, "cancel") == [], "the cancel went twice"


def test_sigterm_while_waiting_for_redis_at_start_up_exits_0(
    tmp_path: Path, slack_server: tuple[SlackStandIn, BackgroundServer]
) -> None:
    silent_redis = SilentServer()
    waiting = bot_process("worker", tmp_path, f"redis://127.0.0.1:{silent_redis.port}/0",
                          slack_server[1].url, "http://127.0.0.1:1")  # fmt: skip
    try:
        wait_for(lambda: silent_redis.connections, timeout=30, what="the start-up Redis check")
        waiting.send_signal(signal.SIGTERM)
        assert waiting.wait(timeout=EXIT_DEADLINE_SECONDS) == 0
    finally:
        waiting.kill()
        silent_redis.close()
