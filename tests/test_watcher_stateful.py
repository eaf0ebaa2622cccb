"""Random schedules of Slack, Google and Redis faults and worker kills, against the poller's
promises: every confirmed cancel is sent, every watch ends and leaves nothing in Redis,
and each says its last word (in the thread, the DM or the audit)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import pytest
import redis
import redis.asyncio as aredis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from bot.app import build_watcher, connect_redis, slack_client
from bot.config import Settings
from bot.google.credentials import AnonymousTokens
from bot.google.operations import OperationsClient
from bot.policy.names import parse_operation_name
from bot.runtime.proxies import EnvironmentProxies
from bot.server import google_session
from bot.standins.operations_api import Behaviour, FakeOperation, OperationsStandIn
from bot.standins.runner import BackgroundServer
from bot.standins.slack_api import SlackFault, SlackStandIn
from bot.watch.poller import Watcher
from bot.watch.submission import Cancellations, CancelRequest
from tests.conftest import ONCALL, bot_env
from tests.faults import POSTING, cancels_sent, last_words, watches_left
from tests.redis_proxy import RedisProxy
from tests.slack_driver import wait_for

T = TypeVar("T")
LEASE_SECONDS = 1.0
TIMEOUT_SECONDS = 2.0
REDIS_SOCKET_TIMEOUT_SECONDS = 2.0  # bot.app.connect_redis's
BEHAVIOURS = [Behaviour.CANCELS, Behaviour.COMPLETES, Behaviour.FAILS]
SLACK_FAULTS = [
    SlackFault.error("not_in_channel"),
    SlackFault.error("invalid_auth"),
    SlackFault.rate_limited(retry_after=1),
    SlackFault.proxy_page(503),
    SlackFault.proxy_page(200, content_type="application/json"),
    SlackFault.slow(0.3),
]


class LoopThread:
    """An event loop in a thread of its own: the workers run there between the rules."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


@dataclass
class Parts:
    """What every example shares: the stand-ins, Redis behind its proxy, settings."""

    slack: SlackStandIn
    google: OperationsStandIn
    redis_url: str
    proxy: RedisProxy
    settings: Settings


@dataclass
class Worker:
    watcher: Watcher
    stop: asyncio.Event
    task: asyncio.Task[None]


@dataclass
class World:
    """One example's clients and workers, all in one event loop."""

    redis: aredis.Redis
    session: aiohttp.ClientSession
    http: aiohttp.ClientSession  # Google's, as the bot opens it
    cancellations: Cancellations | None = None
    workers: list[Worker] = field(default_factory=list)


class PollerUnderFaults(RuleBasedStateMachine):
    parts: Parts  # set by the test before the machine runs

    def __init__(self) -> None:
        super().__init__()
        parts = self.parts
        parts.slack.reset()
        parts.google.reset()
        parts.proxy.heal()
        flush = redis.Redis.from_url(parts.redis_url)
        flush.flushdb()
        flush.close()
        self.thread = LoopThread()
        self.world = self.thread.call(self._open())
        self.confirmed: list[str] = []
        self.names = itertools.count()
        self.kills = 0
        self.redis_faults = 0

    async def _open(self) -> World:
        parts = self.parts
        world = World(
            connect_redis(parts.proxy.url),
            aiohttp.ClientSession(),
            google_session(EnvironmentProxies()),
        )  # fmt: skip
        for _ in range(2):
            self._start_worker(world)

        def wake_all() -> None:
            for worker in world.workers:
                worker.watcher.wake()

        world.cancellations = Cancellations(world.workers[0].watcher.store, wake_all)
        return world

    def _start_worker(self, world: World) -> None:
        settings_ = self.parts.settings
        operations = OperationsClient(world.http, settings_.operations_api_url, AnonymousTokens())
        slack = slack_client(settings_, world.session)
        watcher = build_watcher(settings_, world.redis, slack, operations)
        stop = asyncio.Event()
        world.workers.append(Worker(watcher, stop, asyncio.create_task(watcher.run(stop))))

    # Rules

    @initialize(
        behaviours=st.lists(st.sampled_from(BEHAVIOURS), min_size=1, max_size=3),
        polls=st.integers(0, 4),
    )
    def some_cancels_are_confirmed(self, behaviours: list[Behaviour], polls: int) -> None:
        for behaviour in behaviours:
            self.confirm(behaviour, polls)

    @rule(behaviour=st.sampled_from(BEHAVIOURS), polls=st.integers(0, 4))
    def confirm(self, behaviour: Behaviour, polls: int) -> None:
        name = f"projects/p/locations/l/operations/prop-{next(self.names)}"
        self.parts.google.state.add(FakeOperation(name, behaviour, polls_until_done=polls))
        request = CancelRequest(parse_operation_name(name), ONCALL, "C0CHANNEL", "")
        cancellations = self.world.cancellations
        assert cancellations is not None
        try:
            submission = self.thread.call(cancellations.request(uuid.uuid4().hex, request))
        except redis.RedisError:
            return  # the person is told Redis is unavailable; nothing was queued
        assert submission.queued
        self.confirmed.append(name)

    @rule(fault=st.sampled_from(SLACK_FAULTS), method=st.sampled_from(POSTING))
    def slack_fails(self, fault: SlackFault, method: str) -> None:
        self.parts.slack.state.fail(method, fault)

    @rule()
    def slack_heals(self) -> None:
        self.parts.slack.state.heal()

    @precondition(lambda self: bool(self.confirmed))
    @rule(data=st.data(), answer=st.sampled_from(["unavailable", "exhausted", "trickle"]))
    def google_fails(self, data: st.DataObject, answer: str) -> None:
        name = data.draw(st.sampled_from(self.confirmed))
        state = self.parts.google.state
        if answer == "trickle":
            state.trickle[("GET", name)] = 1.0
        elif answer == "unavailable":
            state.fail("GET", name, 503, "UNAVAILABLE", "The service is currently unavailable.")
        else:
            state.fail("GET", name, 429, "RESOURCE_EXHAUSTED", "Quota exceeded.")

    @rule(delay=st.sampled_from([0.2, 2.5]), seconds=st.floats(0.2, 1.0))
    def redis_answers_late(self, delay: float, seconds: float) -> None:
        if delay >= REDIS_SOCKET_TIMEOUT_SECONDS:  # the client gives up and sends again
            self.redis_faults += 1
        self.parts.proxy.faults.delay_seconds = delay
        time.sleep(seconds)
        self.parts.proxy.heal()

    @rule(seconds=st.floats(0.2, 1.0))
    def redis_drops_replies(self, seconds: float) -> None:
        self.redis_faults += 1
        self.parts.proxy.faults.drop = True
        time.sleep(seconds)
        self.parts.proxy.heal()

    @rule(data=st.data())
    def kill_a_worker(self, data: st.DataObject) -> None:
        """Gone at once, as after kill -9: its steps stop mid-way and it releases nothing."""
        index = data.draw(st.integers(0, len(self.world.workers) - 1))
        self.kills += 1

        async def kill() -> None:
            worker = self.world.workers.pop(index)
            worker.task.cancel()
            for task in list(worker.watcher._tasks):
                task.cancel()
            self._start_worker(self.world)

        self.thread.call(kill())

    @rule(seconds=st.floats(0.1, 0.8))
    def time_passes(self, seconds: float) -> None:
        time.sleep(seconds)

    # The promises, once the schedule is over and Redis answers again

    def teardown(self) -> None:
        parts = self.parts
        try:
            parts.proxy.heal()
            # The deadline, two leases, and each Slack post's budget in two places.
            wait_for(lambda: watches_left(parts.redis_url) == 0, timeout=60,
                     what="every watch to end")  # fmt: skip
            for name in self.confirmed:
                sent = cancels_sent(parts.google, name)
                assert 1 <= sent <= 1 + self.kills, f"{name}: {sent} cancels sent"
                said = last_words(parts.slack, parts.redis_url, name)
                assert said, f"{name}: no last word anywhere"
                # A kill, or Redis failing, between Slack taking a post and the bot
                # recording it may repeat that post (at least once, see the README).
                if not self.kills and not self.redis_faults:
                    assert len(said) == 1, f"{name}: last word said {said}"
        finally:
            self.thread.call(self._close())
            self.thread.stop()

    async def _close(self) -> None:
        """Stop the workers and close the clients, each in bounded time: what a killed
        worker left behind (a shielded Redis call, a trickling read) is cancelled."""
        for worker in self.world.workers:
            worker.stop.set()
        await asyncio.wait([w.task for w in self.world.workers], timeout=15)
        leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.wait(leftovers, timeout=5)
        for closing in (self.world.http.close(), self.world.session.close(),
                        self.world.redis.aclose()):  # fmt: skip
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await closing


@pytest.fixture
def parts(
    slack_server: tuple[SlackStandIn, BackgroundServer],
    google_server: tuple[OperationsStandIn, BackgroundServer],
    redis_url: str,
) -> Iterator[Parts]:
    proxy = RedisProxy(redis_url).start()
    env = bot_env(
        slack_server[1].url,
        google_server[1].url,
        WATCH_LEASE_SECONDS=str(LEASE_SECONDS),
        WATCH_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS),
        POLL_INITIAL_SECONDS="0.05",
        POLL_MAX_SECONDS="0.2",
    )
    yield Parts(slack_server[0], google_server[0], redis_url, proxy, Settings.from_env(env))
    proxy.stop()


def test_the_pollers_promises_hold_under_random_faults_and_kills(parts: Parts) -> None:
    PollerUnderFaults.parts = parts
    run_state_machine_as_test(
        PollerUnderFaults,
        settings=settings(
            max_examples=4,
            stateful_step_count=8,
            deadline=None,
            # Each example takes seconds of real time: a failure is reported as found,
            # unshrunk and not replayed later (real time makes no two runs alike).
            phases=[Phase.explicit, Phase.generate],
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
