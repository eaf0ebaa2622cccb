"""Two-person approval over real HTTP: signed requests, the Slack and Google stand-ins and a
real Redis. A protected cancel reaches Google only after an approver's click, exactly once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis.asyncio as aredis

from bot.approval.store import ApprovalStore
from bot.standins.operations_api import OperationsStandIn
from bot.standins.slack_api import SlackStandIn
from tests.conftest import ONCALL, ROTATION, ROTATION_MEMBER, STRANGER, RunningBot
from tests.faults import audit_entries, cancels_sent
from tests.listeners.actions.approval_flow import (
    APPROVE,
    DENY,
    LEAD,
    LEAD_MEMBER,
    LEADS,
    PROTECTED,
    approval_message,
    ask,
    click,
    click_body,
    decided,
    ephemeral_reply,
    nothing_due,
    protected,
    request_id,
)
from tests.listeners.flow import OP, closed, open_modal, seed, view_text
from tests.slack_driver import wait_for
from tests.test_health import samples


@pytest.fixture
def running(
    start_bot: Callable[..., RunningBot], slack: SlackStandIn, google: OperationsStandIn
) -> RunningBot:
    """This module's bot: PROTECTED's allowlist, and the operation it protects seeded."""
    seed(google)
    return start(start_bot, slack)


def start(
    start_bot: Callable[..., RunningBot], slack: SlackStandIn, **kwargs: object
) -> RunningBot:
    slack.state.usergroups[LEADS] = [LEAD_MEMBER]
    allowlist = kwargs.pop("allowlist", PROTECTED)
    return start_bot(allowlist, **kwargs)


def test_a_protected_cancel_waits_for_an_approver_then_goes_ahead_in_the_requests_thread(
    running: RunningBot,
    slack: SlackStandIn,
    google: OperationsStandIn,
    redis_url: str,
) -> None:
    view = open_modal(running, slack, ONCALL)
    shown = view_text(view)
    assert "protected" in shown and f"<@{LEAD}>" in shown and f"<!subteam^{LEADS}>" in shown
    assert any(b.get("block_id") == "reason" for b in view["blocks"])
    acked = ask(running, slack, reason="rollout <!channel> stuck & burning")
    assert closed(acked), view_text(acked["view"])
    message = approval_message(slack)
    assert f"<@{ONCALL}>" in message.text and OP in message.text
    body = str(message.blocks)
    assert "rollout &lt;!channel&gt; stuck &amp; burning" in body  # escaped: no mention
    assert "<!date^" in body and f"<@{LEAD}>" in body
    assert cancels_sent(google, OP) == 0  # nothing reaches Google before the click
    requested = audit_entries(redis_url, "approval_requested", OP)
    assert [(e["actor"], e["reason"]) for e in requested] == [
        (ONCALL, "rollout <!channel> stuck & burning")
    ]

    click(running, message, LEAD, APPROVE)
    decided(message, f"<@{LEAD}> approved")
    wait_for(lambda: cancels_sent(google, OP) == 1, what="the cancel")
    final = wait_for(
        lambda: next((m for m in slack.state.messages if "was cancelled" in m.text), None),
        what="the final state",
    )
    assert final.thread_ts == message.ts  # the follow-ups live in the request's thread
    assert f"approved by <@{LEAD}>" in str(final.blocks) and f"<@{ONCALL}>" in str(final.blocks)
    approved = audit_entries(redis_url, "approval_approved", OP)
    assert [(e["actor"], e["requester"]) for e in approved] == [(LEAD, ONCALL)]
    assert cancels_sent(google, OP) == 1


def test_deny_edits_the_request_and_sends_nothing(
    running: RunningBot,
    slack: SlackStandIn,
    google: OperationsStandIn,
    redis_url: str,
) -> None:
    before = samples(running.server.url)
    ask(running, slack)
    message = approval_message(slack)
    click(running, message, LEAD, DENY)
    decided(message, f"<@{LEAD}> denied")
    # A later Approve, by another approver or anyone, changes nothing and says who decided.
    click(running, message, LEAD_MEMBER, APPROVE)
    assert f"already denied by <@{LEAD}>" in ephemeral_reply(slack)
    click(running, message, STRANGER, APPROVE)
    assert f"already denied by <@{LEAD}>" in ephemeral_reply(slack, 2)
    wait_for(lambda: nothing_due(redis_url), what="the decision carried out")
    assert cancels_sent(google, OP) == 0
    assert [e["actor"] for e in audit_entries(redis_url, "approval_denied", OP)] == [LEAD]
    key = ("cancel_op_approvals_total", (("step", "denied"),))
    assert samples(running.server.url)[key] - before.get(key, 0.0) == 1  # once, like the audit


def test_the_requester_cannot_approve_their_own_request(
    start_bot: Callable[..., RunningBot], slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    running = start(start_bot, slack)  # ONCALL is among the approvers too
    ask(running, slack)
    message = approval_message(slack)
    click(running, message, ONCALL, APPROVE)
    assert "someone else must decide it" in ephemeral_reply(slack)
    assert cancels_sent(google, OP) == 0
    assert any(b["type"] == "actions" for b in message.blocks)  # still waiting
    click(running, message, LEAD, APPROVE)
    wait_for(lambda: cancels_sent(google, OP) == 1, what="the cancel")


def test_a_stranger_is_told_why_not_and_nothing_changes(
    running: RunningBot,
    slack: SlackStandIn,
    google: OperationsStandIn,
    redis_url: str,
) -> None:
    ask(running, slack)
    message = approval_message(slack)
    for action in (APPROVE, DENY):
        click(running, message, STRANGER, action)
    assert f"Only <@{LEAD}>" in ephemeral_reply(slack, 1)
    assert "Only" in ephemeral_reply(slack, 2)
    assert cancels_sent(google, OP) == 0
    assert any(b["type"] == "actions" for b in message.blocks)
    refused = audit_entries(redis_url, "approval_refused", OP)
    assert [(e["actor"], e["outcome"]) for e in refused] == [(STRANGER, "not_approver")] * 2


def test_a_crafted_request_id_is_refused(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    ask(running, slack)
    message = approval_message(slack)
    for value in ("0" * 32, "../../etc", "x" * 2000):
        running.driver.post(click_body(running, message, LEAD, APPROVE, value=value))
    wait_for(lambda: len(slack.state.responses) >= 3, what="three replies")
    assert all("no such approval request" in r["text"] for r in slack.state.responses)
    assert cancels_sent(google, OP) == 0


def test_a_member_of_an_approver_user_group_may_approve(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    ask(running, slack)
    message = approval_message(slack)
    click(running, message, LEAD_MEMBER, APPROVE)
    decided(message, f"<@{LEAD_MEMBER}> approved")
    wait_for(lambda: cancels_sent(google, OP) == 1, what="the cancel")


def test_two_approvers_clicking_at_once_make_one_decision_and_one_cancel(
    start_bot: Callable[..., RunningBot],
    slack: SlackStandIn,
    google: OperationsStandIn,
    redis_url: str,
) -> None:
    seed(google)
    running = start(start_bot, slack)
    replica = start(start_bot, slack)
    ask(running, slack)
    message = approval_message(slack)
    clicks = [(running, LEAD, APPROVE), (replica, LEAD_MEMBER, APPROVE),
              (running, LEAD_MEMBER, DENY), (replica, LEAD, APPROVE)]  # fmt: skip
    with ThreadPoolExecutor(len(clicks)) as pool:
        bodies = [(bot, click_body(bot, message, user, action)) for bot, user, action in clicks]
        answers = list(pool.map(lambda each: each[0].driver.post(each[1]), bodies))
    assert all(a.status_code == 200 for a in answers)
    wait_for(lambda: len(slack.state.responses) >= 3, what="the three losers told")
    wait_for(lambda: nothing_due(redis_url), what="the decision carried out")
    decisions = [e for event in ("approval_approved", "approval_denied")
                 for e in audit_entries(redis_url, event, OP)]  # fmt: skip
    assert len(decisions) == 1
    winner, verdict = decisions[0]["actor"], decisions[0]["outcome"]
    decided(message, f"<@{winner}> {verdict}")
    assert all(f"already {verdict} by <@{winner}>" in r["text"] for r in slack.state.responses)
    wait_for(lambda: running.bot.services.watcher.snapshot()["in_flight"] == 0)
    assert cancels_sent(google, OP) == (1 if verdict == "approved" else 0)


def test_double_clicks_and_slack_retries_send_one_cancel(
    running: RunningBot,
    slack: SlackStandIn,
    google: OperationsStandIn,
    redis_url: str,
) -> None:
    ask(running, slack)
    message = approval_message(slack)
    body = click_body(running, message, LEAD, APPROVE)
    with ThreadPoolExecutor(4) as pool:  # the same delivery, four times at once
        list(pool.map(lambda _: running.driver.post(body), range(4)))
    wait_for(lambda: nothing_due(redis_url), what="the decision carried out")
    wait_for(lambda: len(slack.state.thread(message.channel, message.ts)) >= 4,
             what="the request, its answer and the final state in the thread")  # fmt: skip
    assert cancels_sent(google, OP) == 1
    assert len(audit_entries(redis_url, "approval_approved", OP)) == 1
    edits = [c for c in slack.state.calls_to("chat.update") if c.args.get("ts") == message.ts]
    assert len(edits) == 1


def test_a_request_survives_a_restart_before_the_approval(
    start_bot: Callable[..., RunningBot], slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    first = start(start_bot, slack)
    ask(first, slack)
    message = approval_message(slack)
    first.process.stop()  # a deploy: the process that recorded the request is gone
    second = start(start_bot, slack)
    click(second, message, LEAD, APPROVE)
    decided(message, f"<@{LEAD}> approved")
    wait_for(lambda: cancels_sent(google, OP) == 1, what="the cancel")


def test_an_unanswered_request_expires_once_across_replicas_and_a_late_click_sends_nothing(
    start_bot: Callable[..., RunningBot],
    slack: SlackStandIn,
    google: OperationsStandIn,
    redis_url: str,
) -> None:
    seed(google)
    running = start(start_bot, slack, allowlist=protected(1))
    start(start_bot, slack, allowlist=protected(1))  # a second replica, expiring too
    ask(running, slack)
    message = approval_message(slack)
    decided(message, "it expired")
    wait_for(lambda: nothing_due(redis_url), what="the expiry carried out")
    edits = [c for c in slack.state.calls_to("chat.update") if c.args.get("ts") == message.ts]
    assert len(edits) == 1
    expired = audit_entries(redis_url, "approval_expired", OP)
    assert [(e["actor"], e["reason"]) for e in expired] == [("cancel-op", "stuck rollout")]
    click(running, message, LEAD, APPROVE)
    assert "expired" in ephemeral_reply(slack)
    assert cancels_sent(google, OP) == 0


def test_a_second_request_joins_the_pending_one(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn, redis_url: str
) -> None:
    before = samples(running.server.url)
    ask(running, slack)
    message = approval_message(slack)
    ack = ask(running, slack, user=ROTATION_MEMBER, reason="me too")
    assert "already waits for approval" in view_text(ack["view"])
    assert f"<@{ONCALL}>" in view_text(ack["view"])
    assert [m for m in slack.state.messages if "needs a second person" in m.text] == [message]
    [requested] = audit_entries(redis_url, "approval_requested", OP)
    joined = audit_entries(redis_url, "approval_joined", OP)
    assert [(e["actor"], e["reason"], e["request"]) for e in joined] == [
        (ROTATION_MEMBER, "me too", requested["request"])
    ]
    after = samples(running.server.url)
    for step in ("requested", "joined"):
        key = ("cancel_op_approvals_total", (("step", step),))
        assert after[key] - before.get(key, 0.0) == 1, step


def test_a_submission_without_a_reason_is_sent_back(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    view = open_modal(running, slack, ONCALL)
    ack = running.driver.submit(view, user=ONCALL).json()
    assert ack["response_action"] == "errors" and "reason" in ack["errors"]
    assert ask(running, slack, reason="   ")["response_action"] == "errors"
    assert slack.state.messages == [] and cancels_sent(google, OP) == 0


def test_a_confirmation_opened_before_its_operation_was_protected_is_refused_plainly(
    start_bot: Callable[..., RunningBot], slack: SlackStandIn, google: OperationsStandIn
) -> None:
    """A deploy protects the operation while its confirmation is open: that modal has no
    reason input to flag, so it says what changed, and nothing is sent."""
    seed(google)
    unprotected = "\n".join(
        line for line in PROTECTED.splitlines() if not line.strip().startswith("approv")
    )
    before = start(start_bot, slack, allowlist=unprotected)
    view = open_modal(before, slack, ONCALL)
    assert not any(b.get("block_id") == "reason" for b in view["blocks"])
    after = start(start_bot, slack)
    ack = after.driver.submit(view, user=ONCALL).json()
    assert ack["response_action"] == "update"
    assert "now needs a second person's approval" in view_text(ack["view"])
    assert slack.state.messages == [] and cancels_sent(google, OP) == 0


def test_an_approver_taken_off_the_allowlist_since_the_request_may_not_decide_it(
    start_bot: Callable[..., RunningBot], slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    running = start(start_bot, slack)
    ask(running, slack)
    message = approval_message(slack)
    redeployed = start(start_bot, slack, allowlist=PROTECTED.replace(f"user:{LEAD}, ", ""))
    click(redeployed, message, LEAD, APPROVE)
    assert "may decide this request" in ephemeral_reply(slack)
    click(redeployed, message, LEAD_MEMBER, APPROVE)  # still an approver, through the group
    decided(message, f"<@{LEAD_MEMBER}> approved")
    wait_for(lambda: cancels_sent(google, OP) == 1, what="the cancel")


def test_approval_checks_the_requesters_own_grant_again(
    start_bot: Callable[..., RunningBot], slack: SlackStandIn, google: OperationsStandIn
) -> None:
    seed(google)
    running = start(start_bot, slack)
    ask(running, slack, user=ROTATION_MEMBER)
    message = approval_message(slack)
    slack.state.usergroups[ROTATION] = []  # off the rotation since asking
    replica = start(start_bot, slack)  # its group cache has not seen them yet
    click(replica, message, LEAD, APPROVE)
    assert "no longer holds `cloudaicompanion.operations.cancel`" in ephemeral_reply(slack)
    assert cancels_sent(google, OP) == 0


def test_status_shows_a_pending_approval(
    running: RunningBot, slack: SlackStandIn, google: OperationsStandIn
) -> None:
    ask(running, slack, reason="disk filling up")
    approval_message(slack)
    wait_for(lambda: running.bot.services.approvals.store is not None)
    running.driver.command(f"status {OP}", user=ONCALL)
    reply = wait_for(lambda: slack.state.responses and slack.state.responses[-1])
    shown = str(reply["blocks"])
    assert "Waiting for approval" in shown and "disk filling up" in shown
    assert f"<@{LEAD}>" in shown and "See the request" in shown


def test_a_request_slack_will_not_take_is_withdrawn_and_the_requester_told(
    running: RunningBot,
    slack: SlackStandIn,
    google: OperationsStandIn,
    redis_url: str,
) -> None:
    slack.state.closed_channels["C0CHANNEL"] = "not_in_channel"
    assert closed(ask(running, slack))
    told = wait_for(lambda: next((m for m in slack.state.messages if m.channel == f"D{ONCALL[1:]}"),
                                 None), what="the requester's DM")  # fmt: skip
    assert "withdrew it" in told.text and "not_in_channel" in told.text
    withdrawn = audit_entries(redis_url, "approval_withdrawn", OP)
    assert [e["actor"] for e in withdrawn] == ["cancel-op"]
    # The operation is free again: once the bot is in the channel, a new request opens.
    del slack.state.closed_channels["C0CHANNEL"]
    assert closed(ask(running, slack))
    approval_message(slack)
    assert cancels_sent(google, OP) == 0


def test_a_request_recorded_by_a_process_that_died_before_posting_is_posted_by_another(
    start_bot: Callable[..., RunningBot],
    slack: SlackStandIn,
    google: OperationsStandIn,
    redis_url: str,
) -> None:
    seed(google)
    first = start(start_bot, slack, WATCH_LEASE_SECONDS="1")
    approvals = first.bot.services.approvals
    rule = first.bot.services.allowlist.approval_for(first.bot.services.parse_name(OP), "C0CHANNEL")
    assert rule is not None
    # What the submission's listener records just before it would post; then it dies.
    opened = first.server.call(
        approvals.open("V0DIED", first.bot.services.parse_name(OP), ONCALL, "C0CHANNEL", "",
                       "disk full", rule)
    )  # fmt: skip
    first.process.stop()
    assert slack.state.messages == []
    second = start(start_bot, slack, WATCH_LEASE_SECONDS="1")
    message = approval_message(slack)
    assert opened.request_id in str(message.blocks)
    click(second, message, LEAD, APPROVE)
    wait_for(lambda: cancels_sent(google, OP) == 1, what="the cancel")


def test_a_requester_who_is_the_only_approver_is_refused_at_submit(
    start_bot: Callable[..., RunningBot],
    slack: SlackStandIn,
    google: OperationsStandIn,
    redis_url: str,
) -> None:
    seed(google)
    approvers = f"[user:{LEAD}, usergroup:{LEADS}, user:{ONCALL}]"
    only_me = PROTECTED.replace(approvers, f"[user:{ONCALL}]")
    assert only_me != PROTECTED
    running = start(start_bot, slack, allowlist=only_me)
    ack = ask(running, slack)
    assert "names nobody but you" in view_text(ack["view"])
    assert slack.state.messages == [] and cancels_sent(google, OP) == 0
    assert [e["outcome"] for e in audit_entries(redis_url, "denied", OP)] == ["no_other_approver"]


def test_an_approval_whose_process_died_before_carrying_it_out_is_carried_out_once(
    running: RunningBot,
    slack: SlackStandIn,
    google: OperationsStandIn,
    redis_url: str,
) -> None:
    """What a clicker killed right after the decision leaves in Redis: the decision, nothing
    of its effects. The process still running sends the cancel, audits and edits, once."""
    ask(running, slack)
    message = approval_message(slack)

    async def decide_and_die() -> None:
        client = aredis.Redis.from_url(redis_url, decode_responses=True)
        store = ApprovalStore(client)
        request = await store.load(request_id(message))
        assert request is not None
        verdict = await store.decide(request, "approved", LEAD, finish_within_ms=500)
        assert verdict.outcome == "decided"
        await client.aclose()

    asyncio.run(decide_and_die())
    decided(message, f"<@{LEAD}> approved")
    wait_for(lambda: nothing_due(redis_url), what="the decision carried out")
    wait_for(lambda: cancels_sent(google, OP) == 1, what="the cancel")
    approved = audit_entries(redis_url, "approval_approved", OP)
    assert [(e["actor"], e["requester"]) for e in approved] == [(LEAD, ONCALL)]
    wait_for(lambda: "was cancelled" in json.dumps([m.text for m in slack.state.messages]),
             what="the final state")  # fmt: skip
    assert cancels_sent(google, OP) == 1
