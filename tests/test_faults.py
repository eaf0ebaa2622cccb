"""The poller's promises under the faults real Slack, Google and Redis produce: a confirmed
cancel is sent, exactly one last word reaches the thread, the DM or the audit, and every
watch ends (nothing left in Redis, no more polls)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator

import aiohttp
import pytest
import redis

import bot.watch.poller
from bot.app import connect_redis, slack_client
from bot.config import Settings
from bot.google.credentials import AnonymousTokens
from bot.google.operations import OperationsClient
from bot.policy.audit import Audit
from bot.policy.names import parse_operation_name
from bot.runtime.redis_server import EmbeddedRedis
from bot.slack.posts import OncePoster
from bot.standins.operations_api import OperationsStandIn
from bot.standins.runner import BackgroundServer
from bot.standins.slack_api import SlackFault, SlackStandIn
from bot.watch.poller import Watcher
from bot.watch.schedule import PollSchedule
from bot.watch.store import WatchStore
from bot.watch.submission import Cancellations, CancelRequest
from tests.conftest import ONCALL, ROTATION_MEMBER, RunningBot, bot_env
from tests.faults import POSTING, audit_entries, cancels_sent, last_words, watches_left
from tests.listeners.flow import OP, closed, confirm, open_modal, seed, shown_modal, view_text
from tests.redis_proxy import RedisProxy
from tests.slack_driver import wait_for

# A lease of 1 s is also each Slack post's budget; the watch ends 3 s after it starts.
FAULTY = {
    "POLL_INITIAL_SECONDS": "0.05",
    "POLL_MAX_SECONDS": "0.2",
    "WATCH_LEASE_SECONDS": "1",
    "WATCH_TIMEOUT_SECONDS": "3",
}
DM = "D" + ONCALL[1:]


@pytest.fixture
def faulty_bot(start_bot: Callable[..., RunningBot]) -> RunningBot:
    return start_bot(**FAULTY)


def requested(running: RunningBot, view: dict[str, object], user: str = ONCALL) -> None:
    ack = confirm(running, view, user)
    assert closed(ack)


def ended(redis_url: str, timeout: float = 30.0) -> None:
    wait_for(lambda: watches_left(redis_url) == 0, timeout, what="the watch to end")


@pytest.mark.parametrize(
    "fault",
    [
        SlackFault.error("restricted_action_read_only_channel"),
        SlackFault.error("token_revoked"),
        SlackFault.rate_limited(retry_after=1),
        SlackFault.proxy_page(502),
        SlackFault.proxy_page(200, content_type="application/json"),
    ],
    ids=["read-only-channel", "token-revoked", "ratelimited", "html-502", "non-json-200"],
)
def test_a_confirmed_cancel_reaches_google_whatever_slack_answers(
    faulty_bot: RunningBot,
    slack: SlackStandIn,
    google: OperationsStandIn,
    redis_url: str,
    fault: SlackFault,
) -> None:
    seed(google, polls_until_done=1)
    view = open_modal(faulty_bot, slack, ONCALL)
    for method in POSTING:
        slack.state.fail(method, fault)
    requested(faulty_bot, view)
    wait_for(lambda: cancels_sent(google, OP) == 1, what="the cancel to reach Google")
    ended(redis_url)
    # Slack took nothing: the last word is in the audit stream, once.
    assert last_words(slack, redis_url, OP) == ["audit"]
    assert cancels_sent(google, OP) == 1


def test_slow_slack_answers_are_waited_for_within_a_posts_budget(
    faulty_bot: RunningBot, slack: SlackStandIn, google: OperationsStandIn, redis_url: str
) -> None:
    seed(google, polls_until_done=1)
    view = open_modal(faulty_bot, slack, ONCALL)
    slack.state.fail("chat.postMessage", SlackFault.slow(0.3))
    requested(faulty_bot, view)
    ended(redis_url)
    assert last_words(slack, redis_url, OP) == ["C0CHANNEL"]


def test_the_bot_removed_from_the_channel_mid_watch_says_its_last_word_in_the_dm(
    faulty_bot: RunningBot, slack: SlackStandIn, google: OperationsStandIn, redis_url: str
) -> None:
    operation = seed(google, polls_until_done=10**6)
    requested(faulty_bot, open_modal(faulty_bot, slack, ONCALL))
    wait_for(lambda: len(slack.state.messages) >= 2, what="the request and Google's answer")
    slack.state.closed_channels["C0CHANNEL"] = "not_in_channel"
    operation.polls_until_done = 0
    ended(redis_url)
    assert last_words(slack, redis_url, OP) == [DM]


def test_a_deleted_status_message_is_skipped_and_the_watch_ends(
    faulty_bot: RunningBot,
    slack: SlackStandIn,
    google: OperationsStandIn,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bot.watch.poller, "STATUS_AFTER_MS", 0)
    operation = seed(google, polls_until_done=10**6, status_message="Indexing 10%")
    requested(faulty_bot, open_modal(faulty_bot, slack, ONCALL))
    status = wait_for(
        lambda: [m for m in slack.state.messages if "Indexing 10%" in m.text], what="status"
    )[0]
    slack.state.messages.remove(status)  # someone deleted it
    operation.status_message = "Indexing 55%"
    wait_for(lambda: slack.state.calls_to("chat.update"), what="the edit Slack refuses")
    operation.polls_until_done = 0
    ended(redis_url)
    assert last_words(slack, redis_url, OP) == ["C0CHANNEL"]
    assert len(slack.state.calls_to("chat.update")) == 1  # never tried again


@pytest.mark.parametrize(
    ("status", "rpc_status"), [(503, "UNAVAILABLE"), (429, "RESOURCE_EXHAUSTED")]
)
def test_google_failing_for_ever_ends_the_watch_at_its_deadline_and_frees_the_operation(
    faulty_bot: RunningBot,
    slack: SlackStandIn,
    google: OperationsStandIn,
    redis_url: str,
    status: int,
    rpc_status: str,
) -> None:
    seed(google, polls_until_done=10**6)
    view = open_modal(faulty_bot, slack, ONCALL)
    google.state.fail("GET", OP, status, rpc_status, "try again later")
    requested(faulty_bot, view)
    ended(redis_url)
    [final] = [m for m in slack.state.messages if "lost track" in m.text]
    assert rpc_status in final.text
    assert last_words(slack, redis_url, OP) == ["C0CHANNEL"]
    # The operation's cancel is free again: a later confirm starts a new watch.
    google.state.heal()
    faulty_bot.driver.command(OP, user=ROTATION_MEMBER)
    requested(faulty_bot, shown_modal(slack, updates=2), ROTATION_MEMBER)
    wait_for(lambda: cancels_sent(google, OP) == 2, what="the second cancel")


def test_a_trickling_google_answer_cannot_hold_a_poll_open(
    faulty_bot: RunningBot, slack: SlackStandIn, google: OperationsStandIn, redis_url: str
) -> None:
    seed(google, polls_until_done=10**6)
    view = open_modal(faulty_bot, slack, ONCALL)
    google.state.trickle[("GET", OP)] = 1.0  # a byte a second: minutes for one answer
    requested(faulty_bot, view)
    ended(redis_url)
    [final] = [m for m in slack.state.messages if "lost track" in m.text]
    assert "DEADLINE_EXCEEDED" in final.text


def test_a_google_error_text_longer_than_slack_allows_in_a_block_still_ends_the_watch(
    faulty_bot: RunningBot, slack: SlackStandIn, google: OperationsStandIn, redis_url: str
) -> None:
    operation = seed(google, polls_until_done=10**6)
    requested(faulty_bot, open_modal(faulty_bot, slack, ONCALL))
    wait_for(lambda: len(slack.state.messages) >= 2, what="the request and Google's answer")
    operation.done = True
    operation.error = {"code": 13, "message": "stack frame\n" * 500}
    ended(redis_url)
    assert last_words(slack, redis_url, OP) == ["C0CHANNEL"]


@pytest.fixture
def proxy(redis_url: str) -> Iterator[RedisProxy]:
    running = RedisProxy(redis_url).start()
    yield running
    running.stop()


def test_a_submission_redis_answers_after_the_socket_timeout_is_queued_once(
    start_bot: Callable[..., RunningBot],
    slack: SlackStandIn,
    google: OperationsStandIn,
    redis_url: str,
    proxy: RedisProxy,
) -> None:
    running = start_bot(redis=proxy.url, **FAULTY)
    seed(google, polls_until_done=1)
    view = open_modal(running, slack, ONCALL)
    # Redis runs the submission, but answers after the client's 2 s socket timeout: the
    # client sends it again and must get the same answer, with a watch behind it.
    proxy.delay_reply_to(b"submission:", 2.5)
    updates = len(slack.state.calls_to("views.update"))
    ack = confirm(running, view, ONCALL)
    # Later than Slack waits for an answer: the modal says it is queuing, then what came of it.
    assert ack["response_action"] == "update" and "Queuing the cancel" in view_text(ack["view"])
    late = shown_modal(slack, updates=updates + 1)
    assert "is queued" in view_text(late) and "<#C0CHANNEL>" in view_text(late)
    assert proxy.faults.marked == 1
    wait_for(lambda: cancels_sent(google, OP) == 1, what="the cancel to reach Google")
    ended(redis_url)
    assert last_words(slack, redis_url, OP) == ["C0CHANNEL"]
    assert [e["actor"] for e in audit_entries(redis_url, "confirmed", OP)] == [ONCALL]


def test_a_repeated_submission_gets_the_first_answer_and_a_real_duplicate_is_told_whose(
    faulty_bot: RunningBot, slack: SlackStandIn, google: OperationsStandIn, redis_url: str
) -> None:
    seed(google, polls_until_done=10**6)
    view = open_modal(faulty_bot, slack, ONCALL)
    requested(faulty_bot, view)
    request = wait_for(lambda: slack.state.messages, what="the request message")[0]
    requested(faulty_bot, view)  # Slack's retry of the same submission
    faulty_bot.driver.command(OP, user=ROTATION_MEMBER)
    second = confirm(faulty_bot, shown_modal(slack, updates=2), ROTATION_MEMBER)
    text = view_text(second["view"])
    assert second["response_action"] == "update" and f"<@{ONCALL}>" in text
    wait_for(lambda: cancels_sent(google, OP) == 1, what="the cancel")
    assert f"p{request.ts.replace('.', '')}" in text  # a link to the first thread


def test_redis_out_of_memory_refuses_the_cancel_and_says_so(
    start_bot: Callable[..., RunningBot],
    slack: SlackStandIn,
    google: OperationsStandIn,
    own_redis: EmbeddedRedis,
) -> None:
    running = start_bot(redis=own_redis.url, **FAULTY)
    seed(google, polls_until_done=1)
    view = open_modal(running, slack, ONCALL)
    admin = redis.Redis.from_url(own_redis.url)
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)
    try:
        ack = confirm(running, view, ONCALL)
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()
    assert not closed(ack) and "Redis" in view_text(ack["view"])
    assert audit_entries(own_redis.url, "cancel_sent", OP) == []
    assert cancels_sent(google, OP) == 0


def test_google_out_of_reach_while_watching_ends_the_watch_at_its_deadline(
    slack: SlackStandIn,
    google: OperationsStandIn,
    slack_server: tuple[SlackStandIn, BackgroundServer],
    google_server: tuple[OperationsStandIn, BackgroundServer],
    redis_url: str,
) -> None:
    seed(google, polls_until_done=10**6)
    settings = Settings.from_env(bot_env(slack_server[1].url, google_server[1].url, **FAULTY))
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}/v1"

        async def scenario() -> None:
            store = connect_redis(redis_url)
            async with aiohttp.ClientSession() as session, aiohttp.ClientSession() as http:
                # The cancel reaches Google; every poll after it finds the port closed.
                watcher = Watcher(
                    WatchStore(store, active_ttl_ms=10_000),
                    OncePoster(slack_client(settings, session), store, 1000, 3600),
                    OperationsClient(http, refused, AnonymousTokens()).without_retries(),
                    OperationsClient(http, settings.operations_api_url, AnonymousTokens()),
                    Audit(store), PollSchedule(50, 1.5, 200),
                    watch_timeout_ms=3000, lease_ms=1000,
                )  # fmt: skip
                request = CancelRequest(parse_operation_name(OP), ONCALL, "C0CHANNEL", "")
                cancellations = Cancellations(watcher.store, watcher.wake)
                await cancellations.request("view", request)
                stop = asyncio.Event()
                running = asyncio.create_task(watcher.run(stop))
                for _ in range(600):
                    if watches_left(redis_url) == 0:
                        break
                    await asyncio.sleep(0.05)
                stop.set()
                await running
            await store.aclose()

        asyncio.run(scenario())
    assert watches_left(redis_url) == 0
    assert cancels_sent(google, OP) == 1
    [final] = [m for m in slack.state.messages if "lost track" in m.text]
    assert "UNAVAILABLE" in final.text
