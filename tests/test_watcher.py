"""The poller, in the bot's own process: final states, status message, Slack and Redis outages."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import pytest

import bot.watch.poller
from bot.runtime.redis_server import EmbeddedRedis
from bot.standins.operations_api import Behaviour, OperationsStandIn
from bot.standins.slack_api import Message, SlackStandIn
from tests.conftest import ONCALL, ROTATION_MEMBER, RunningBot
from tests.listeners.flow import OP, closed, confirm, open_modal, seed, view_text
from tests.slack_driver import wait_for

FAST = {"POLL_INITIAL_SECONDS": "0.05", "POLL_MAX_SECONDS": "0.2", "WATCH_LEASE_SECONDS": "2"}


@pytest.fixture
def fast_bot(start_bot: Callable[..., RunningBot]) -> RunningBot:
    return start_bot(**FAST)


def cancel(running: RunningBot, slack: SlackStandIn, user: str = ONCALL) -> None:
    ack = confirm(running, open_modal(running, slack, user), user)
    assert closed(ack)


def thread_of(slack: SlackStandIn, count: int, timeout: float = 10.0) -> list[Message]:
    """The request message and its replies, once there are `count` of them."""

    def messages() -> list[Message]:
        if not slack.state.messages:
            return []
        first = slack.state.messages[0]
        return slack.state.thread(first.channel, first.ts)

    thread: list[Message] = wait_for(
        lambda: len(messages()) >= count and messages(), timeout, what=f"{count} messages"
    )
    return thread


def rendered(message: Message) -> str:
    return message.text + str(message.blocks)


@pytest.mark.parametrize(
    ("behaviour", "words"),
    [
        (Behaviour.CANCELS, ["was cancelled", "CANCELLED", "code 1"]),
        (Behaviour.COMPLETES, ["completed", "despite the cancellation", "<!date^1795490400^"
                               "{date_short_pretty} {time}|2026-11-24 03:20 UTC>"]),
        # The operation is over: the advice is about what it left, never to try again.
        (Behaviour.FAILS, ["failed", "INTERNAL", "Backend failure while stopping.",
                           "*Next:* The operation is over and will not resume"]),
    ],
)  # fmt: skip
def test_each_final_state_is_one_thread_message(
    fast_bot: RunningBot,
    slack: SlackStandIn,
    google: OperationsStandIn,
    behaviour: Behaviour,
    words: list[str],
) -> None:
    seed(google, behaviour=behaviour, polls_until_done=3)
    cancel(fast_bot, slack)
    # Slack's Retry-After and the client's backoff between 5xx answers take several seconds.
    request, answer, final = thread_of(slack, 3, timeout=40)
    assert "asked to cancel" in request.text and "OK" in answer.text
    for word in words:
        assert word in rendered(final)
    assert "Next:" in rendered(final)
    polls = google.state.requests_for(OP)
    assert len(polls) == 1 + 4  # the modal's read, then three "running" answers and the last
    # Nothing more is posted or polled once the final state is known.
    wait_for(lambda: fast_bot.bot.services.watcher.snapshot()["in_flight"] == 0)
    assert len(slack.state.messages) == 3
    assert len(google.state.requests_for(OP)) == 5


def test_still_running_at_the_timeout_is_said_and_watching_stops(
    start_bot: Callable[..., RunningBot], slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google, polls_until_done=10**6)
    running = start_bot(**FAST, WATCH_TIMEOUT_SECONDS="1")
    cancel(running, slack)
    final = thread_of(slack, 3)[2]
    assert "stopped watching" in final.text
    assert re.search(r"still running after (1 second|\d+ seconds);", final.text)
    polls = len(google.state.requests_for(OP))
    wait_for(lambda: running.bot.services.watcher.snapshot()["in_flight"] == 0)
    assert len(google.state.requests_for(OP)) == polls


def test_one_status_message_is_kept_up_to_date(
    fast_bot: RunningBot,
    slack: SlackStandIn,
    google: OperationsStandIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bot.watch.poller, "STATUS_AFTER_MS", 0)
    operation = seed(google, polls_until_done=10**6)
    operation.status_message = "Indexing 10%"
    cancel(fast_bot, slack)
    status = thread_of(slack, 3)[2]
    assert "Indexing 10%" in status.text
    operation.status_message = "Indexing 55%"
    wait_for(lambda: "Indexing 55%" in status.text, what="the status message to be edited")
    operation.polls_until_done = 0
    final = thread_of(slack, 4)[3]
    assert "CANCELLED" in final.text
    # Still one status message, edited (just after the final post) to say how it ended.
    wait_for(lambda: "has ended: CANCELLED" in status.text, what="the status message's end")
    assert len(slack.state.messages) == 4
    updates = slack.state.calls_to("chat.update")
    assert len(updates) == 2  # one for the new status, one for the end


def test_an_operation_already_watched_gets_no_second_watch(
    fast_bot: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google, polls_until_done=10**6)
    cancel(fast_bot, slack)
    request = thread_of(slack, 2)[0]
    second = confirm(fast_bot, open_modal(fast_bot, slack, ROTATION_MEMBER), ROTATION_MEMBER)
    text = view_text(second["view"])
    assert "already being cancelled" in text and f"<@{ONCALL}>" in text
    assert f"p{request.ts.replace('.', '')}" in text  # a link to the first thread
    assert len(google.state.requests_for(OP, "cancel")) == 1


def test_slack_errors_for_a_while_lose_no_follow_up_and_post_none_twice(
    start_bot: Callable[..., RunningBot],
    slack: SlackStandIn,
    google: OperationsStandIn,
) -> None:
    # The lease outlasts Slack's Retry-After and the client's own retries.
    fast_bot = start_bot(**{**FAST, "WATCH_LEASE_SECONDS": "20"})
    seed(google, polls_until_done=5)
    slack.state.script("chat.postMessage", 429, {"ok": False, "error": "ratelimited"},
                       {"Retry-After": "1"})  # fmt: skip
    for _ in range(7):
        slack.state.script("chat.postMessage", 500, {"ok": False, "error": "internal_error"})
    cancel(fast_bot, slack)
    # Slack's Retry-After and the client's backoff between 5xx answers take several seconds.
    request, answer, final = thread_of(slack, 3, timeout=40)
    assert "asked to cancel" in request.text
    assert "OK" in answer.text
    assert "CANCELLED" in final.text
    wait_for(lambda: fast_bot.bot.services.watcher.snapshot()["in_flight"] == 0)
    assert len(slack.state.messages) == 3
    assert len(slack.state.calls_to("chat.postMessage")) == 3 + 8
    assert len(google.state.requests_for(OP, "cancel")) == 1


def test_redis_restarting_mid_watch_loses_nothing(
    start_bot: Callable[..., RunningBot],
    slack: SlackStandIn,
    google: OperationsStandIn,
    own_redis: EmbeddedRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    operation = seed(google, polls_until_done=10**6)
    running = start_bot(redis=own_redis.url, **FAST)
    cancel(running, slack)
    thread_of(slack, 2)
    own_redis.stop()
    wait_for(lambda: "redis is unavailable" in caplog.text, what="the outage to be logged")
    # Someone acting meanwhile is told the bot cannot work right now; nothing reaches Google.
    seed(google, "projects/p/locations/l/operations/other")
    view = open_modal(running, slack, ONCALL, text="projects/p/locations/l/operations/other")
    assert "Redis" in view_text(confirm(running, view, ONCALL)["view"])
    assert google.state.requests_for("projects/p/locations/l/operations/other", "cancel") == []
    own_redis.start()
    wait_for(lambda: "redis is back" in caplog.text, what="the recovery to be logged")
    operation.polls_until_done = 0
    final = thread_of(slack, 3)[2]
    assert "CANCELLED" in final.text
    assert len(google.state.requests_for(OP, "cancel")) == 1


def test_an_operation_google_keeps_failing_to_read_is_reported_once_and_dropped(
    fast_bot: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google, polls_until_done=10**6)
    view = open_modal(fast_bot, slack, ONCALL)
    for _ in range(bot.watch.poller.MAX_POLL_ERRORS):
        google.state.script("GET", OP, 404, "NOT_FOUND", "gone")
    confirm(fast_bot, view, ONCALL)
    final = thread_of(slack, 3)[2]
    assert "lost track" in final.text and "NOT_FOUND" in rendered(final)
    wait_for(lambda: fast_bot.bot.services.watcher.snapshot()["in_flight"] == 0)
    polls = len(google.state.requests_for(OP))
    assert polls == 1 + bot.watch.poller.MAX_POLL_ERRORS  # the modal's read, then the failures
    assert len(slack.state.messages) == 3
