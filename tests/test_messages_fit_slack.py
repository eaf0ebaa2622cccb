"""Every message and modal the bot builds stays within Slack's limits and escapes outside
text, whatever Google or a person put in it: checked by the same code the Slack stand-in
uses to refuse what real Slack refuses."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.approval.clicks import ClickResult, Refusal
from bot.approval.store import ApprovalRequest
from bot.google.operations import Operation, OperationError, OperationsError
from bot.google.rpc import Place, RpcCode
from bot.policy.allowlist import ApprovalRule, Decision
from bot.policy.names import OperationName, OperationParent
from bot.slack import messages
from bot.slack.confirmation import ConfirmContext, MetadataSigner
from bot.slack.limits import message_problems, view_problems

# Outside text that would become a mention or a link if it were not escaped.
HOSTILE = ("<!channel>", "<@U0EVIL>", "<http://evil.example|click>", "&lt;")

_chars = st.characters(codec="utf-8") | st.sampled_from("&<>`*_~|\n 😀")
short_text = st.text(_chars, max_size=40)
long_text = st.builds(lambda piece, times: piece * times,
                      st.text(_chars, min_size=1, max_size=4), st.integers(500, 7000))  # fmt: skip
hostile_text = st.builds(lambda a, b, c: a + b + c, short_text, st.sampled_from(HOSTILE),
                         short_text | long_text)  # fmt: skip
outside_text = short_text | long_text | hostile_text

segment = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~",
                  min_size=1, max_size=128).filter(lambda s: s not in (".", ".."))  # fmt: skip
names = st.builds(OperationName, segment, segment, segment)
parents = st.builds(OperationParent, segment, segment)
codes = st.sampled_from(list(RpcCode))
places = st.sampled_from(list(Place))
# Google's timestamps, which become date tokens, as well as any other text in their place.
timestamps = st.datetimes(timezones=st.just(UTC)).map(
    lambda moment: moment.isoformat().replace("+00:00", "Z")
)
# The service accounts a request may act as: none, or the longest email Google forms.
accounts = st.sampled_from(["", f"{'a' * 30}@{'p' * 30}.iam.gserviceaccount.com"])
errors = st.builds(OperationsError, codes, outside_text, account=accounts,
                   token_refused=st.booleans())  # fmt: skip
operations = st.builds(
    Operation,
    name=outside_text,
    done=st.booleans(),
    error=st.none() | st.builds(OperationError, codes, outside_text),
    verb=outside_text,
    target=outside_text,
    create_time=timestamps | outside_text,
    end_time=timestamps | outside_text,
    status_message=outside_text,
    requested_cancellation=st.booleans(),
    has_response=st.booleans(),
)
# Listed operations carry checked names: list_running leaves out any other.
listed_operations = st.builds(lambda op, name: replace(op, name=str(name)), operations, names)
users = st.sampled_from(["U0ONCALL", "U0ROTA"])
channels = st.sampled_from(["C0CHANNEL", "D0DM"])
decisions = st.builds(Decision, st.booleans(), st.just("cloudaicompanion.operations.cancel"),
                      st.sampled_from(["", "Slack did not tell me in time."]))  # fmt: skip
SIGNER = MetadataSigner("test-secret")
# Approvers as the allowlist checks them (Slack IDs), up to a long list of them.
members = st.lists(st.sampled_from(["user:U0LEAD", "user:U0MANAGER01", "usergroup:S0LEADS"])
                   | st.from_regex(r"(user:U|usergroup:S)[A-Z0-9]{2,31}", fullmatch=True),
                   min_size=1, max_size=300)  # fmt: skip
epoch_ms = st.integers(0, 4_000_000_000_000)
approval_requests = st.builds(
    ApprovalRequest, id=st.uuids().map(lambda u: u.hex), operation=names.map(str),
    requester=users, channel=channels, thread_ts=st.just(""), reason=outside_text,
    approvers=members.map(" ".join), account=accounts,
    state=st.sampled_from(["pending", "approved", "denied", "expired"]),
    created_ms=epoch_ms, expires_ms=epoch_ms, decided_by=users, decided_ms=epoch_ms,
    link=st.just("") | outside_text,
)  # fmt: skip
rules = st.builds(
    lambda ms, s: ApprovalRule(
        frozenset(m[5:] for m in ms if m.startswith("user:")),
        tuple(m[10:] for m in ms if m.startswith("usergroup:")),
        s,
    ),
    members,
    st.integers(60, 86400),
)
clicks = st.builds(ClickResult, st.none() | approval_requests, st.none() | st.sampled_from(Refusal),
                   st.sampled_from(["approved", "denied", "expired"]), users,
                   st.sampled_from(["", "Slack did not tell me in time."]),
                   st.none() | decisions)  # fmt: skip


def metadata(name: OperationName, user: str, channel: str) -> str:
    return SIGNER.dump(ConfirmContext(str(name), user, channel, "1700000000.000100"))


@dataclass(frozen=True)
class Case:
    kind: str  # "text", "message", "final" or "view": what the builder returns
    rendered: st.SearchStrategy[Any]


CASES: dict[str, Case] = {
    "usage_text": Case("text", st.builds(messages.usage_text)),
    "invalid_name_text": Case("text", st.builds(
        messages.invalid_name_text, outside_text, outside_text,
        st.sampled_from(["cancel", "status", "list"]))),
    "unknown_word_text": Case("text", st.builds(messages.unknown_word_text, outside_text)),
    "denied_text": Case("text", st.builds(messages.denied_text, decisions, names | parents)),
    "denied_any_text": Case("text", st.builds(messages.denied_any_text, decisions,
                                              st.integers(2, 10_000))),
    "no_name_found_text": Case("text", st.builds(messages.no_name_found_text)),
    "cannot_open_text": Case("text", st.builds(messages.cannot_open_text, outside_text)),
    "status_reply": Case("message", st.builds(messages.status_reply, names, operations)),
    "lookup_failed": Case("message", st.builds(
        messages.lookup_failed, names.map(lambda n: f"`{n}`"), errors)),
    "list_reply": Case("message", st.builds(
        messages.list_reply, parents, st.lists(listed_operations, max_size=12),
        st.integers(0, 10**6))),
    "forged_text": Case("text", st.builds(messages.forged_text,
                                          st.sampled_from(["confirmation", "choice"]))),
    "not_yours_text": Case("text", st.builds(messages.not_yours_text,
                                             st.sampled_from(["confirmation", "choice"]))),
    "unavailable_text": Case("text", st.builds(messages.unavailable_text)),
    "already_cancelling_text": Case("text", st.builds(
        messages.already_cancelling_text, names, users, outside_text)),
    "loading_view": Case("view", st.builds(messages.loading_view, names)),
    "confirmation_view": Case("view", st.builds(
        lambda n, op, u, c, a, rule: messages.confirmation_view(
            n, op, metadata(n, u, c), a, rule
        ),
        names, operations, users, channels, accounts, st.none() | rules)),
    "lookup_failed_view": Case("view", st.builds(messages.lookup_failed_view, names, errors)),
    "pick_view": Case("view", st.builds(
        lambda ns, u, c: messages.pick_view(ns, metadata(ns[0], u, c)),
        st.lists(names, min_size=2, max_size=30), users, channels)),
    "queuing_view": Case("view", st.builds(messages.queuing_view, names)),
    "queued_late_view": Case("view", st.builds(messages.queued_late_view, names, channels)),
    "refusal_view": Case("view", st.builds(
        messages.refusal_view, st.builds(messages.denied_text, decisions, names))),
    "request_message": Case("message", st.builds(messages.request_message, names, users,
                                                 accounts, st.just("") | users)),
    "approval_request_message": Case("message", st.builds(
        messages.approval_request_message, names, approval_requests)),
    "approval_decided_message": Case("message", st.builds(
        messages.approval_decided_message, names, approval_requests)),
    "approval_refusal_text": Case("text", st.builds(messages.approval_refusal_text, clicks)),
    "approval_pending_text": Case("text", st.builds(
        messages.approval_pending_text, names, approval_requests)),
    "reason_missing_text": Case("text", st.builds(messages.reason_missing_text)),
    "now_protected_text": Case("text", st.builds(messages.now_protected_text, names)),
    "no_other_approver_text": Case("text", st.builds(messages.no_other_approver_text, names)),
    "approval_not_posted_text": Case("text", st.builds(messages.approval_not_posted_text,
                                                       channels, outside_text)),
    "approval_status_blocks": Case("message", st.builds(
        lambda r: ("", messages.approval_status_blocks(r)), approval_requests)),
    "approved_by_blocks": Case("message", st.builds(
        lambda a, b: ("", messages.approved_by_blocks(a, b)), users, users)),
    "cancel_answer": Case("message", st.builds(messages.cancel_answer, st.none() | errors)),
    "outcome_blocks": Case("message", st.builds(
        lambda code, text, place, a: ("", messages.outcome_blocks(code, text, place, a)),
        codes, outside_text, places, accounts)),
    "error_blocks": Case("message", st.builds(
        lambda error, place: ("", messages.error_blocks(error, place)), errors, places)),
    "acting_as_text": Case("text", st.builds(messages.acting_as_text, st.none() | accounts)),
    "cannot_post_text": Case("text", st.builds(messages.cannot_post_text, channels,
                                               outside_text)),
    "status_message": Case("message", st.builds(messages.status_message, names, outside_text)),
    "status_ended": Case("message", st.builds(
        messages.status_ended, names,
        st.sampled_from(["CANCELLED", "completed", "failed (INTERNAL)",
                         "ended without a result", "still running, watching stopped"]))),
    "final_message": Case("final", st.builds(
        messages.final_message, names, operations.filter(lambda op: op.done))),
    "timeout_message": Case("message", st.builds(
        messages.timeout_message, names, st.floats(0, 10**8, allow_nan=False))),
    "lost_track_message": Case("message", st.builds(messages.lost_track_message, names, errors)),
}  # fmt: skip
# Helpers every builder uses rather than builders of their own.
NOT_BUILDERS = {"escape"}


def test_every_builder_in_messages_is_checked_here() -> None:
    builders = {
        name
        for name, function in inspect.getmembers(messages, inspect.isfunction)
        if function.__module__ == messages.__name__ and not name.startswith("_")
    }
    assert builders - NOT_BUILDERS == set(CASES)


def problems(kind: str, rendered: Any) -> list[str]:
    if kind == "view":
        return view_problems(rendered)
    if kind == "text":
        error, reasons = message_problems(rendered, None)
    else:
        text, blocks = rendered[-2:]
        error, reasons = message_problems(text or "-", blocks)
    return [error, *reasons] if error else []


@pytest.mark.parametrize("builder", sorted(CASES))
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_what_each_builder_renders_fits_slack_and_escapes_outside_text(
    builder: str, data: st.DataObject
) -> None:
    case = CASES[builder]
    rendered = data.draw(case.rendered)
    assert problems(case.kind, rendered) == []
    shown = json.dumps(rendered, ensure_ascii=False)
    for hostile in HOSTILE[:3]:
        assert hostile not in shown


@pytest.mark.parametrize(
    ("check", "payload", "error"),
    [
        (lambda p: message_problems("t", p), [{"type": "section",
          "text": {"type": "mrkdwn", "text": "x" * 3001}}], "invalid_blocks"),
        (lambda p: message_problems("t", p), [{"type": "divider"}] * 51, "invalid_blocks"),
        (lambda p: message_problems("t", p), [{"type": "section", "fields": [
            {"type": "mrkdwn", "text": "x" * 2001}]}], "invalid_blocks"),
        (lambda p: message_problems("t", p), [{"type": "context", "elements": [
            {"type": "mrkdwn", "text": "x"}] * 11}], "invalid_blocks"),
        (lambda p: message_problems("t", p), [{"type": "section",
          "text": {"type": "mrkdwn", "text": "x"}, "accessory": {"type": "button",
          "text": {"type": "plain_text", "text": "b"}, "value": "v" * 2001}}], "invalid_blocks"),
        (lambda p: message_problems("t", p), [{"type": "header",
          "text": {"type": "plain_text", "text": "h" * 151}}], "invalid_blocks"),
        (lambda p: message_problems("t", p), [{"type": "section",
          "text": {"type": "mrkdwn", "text": ""}}], "invalid_blocks"),
        (lambda p: message_problems("😀" * 20_001, p), None, "msg_too_long"),
        (lambda p: message_problems("", p), None, "no_text"),
    ],
)  # fmt: skip
def test_the_checker_refuses_what_slack_refuses(
    check: Callable[[Any], tuple[str, list[str]]], payload: Any, error: str
) -> None:
    assert check(payload)[0] == error


@pytest.mark.parametrize(
    "change",
    [
        {"title": {"type": "plain_text", "text": "t" * 25}},
        {"submit": {"type": "plain_text", "text": "s" * 25}},
        {"close": {"type": "plain_text", "text": "c" * 25}},
        {"private_metadata": "m" * 3001},
        {"blocks": [{"type": "divider"}] * 101},
        {"blocks": []},
    ],
)
def test_the_checker_refuses_modals_slack_refuses(change: dict[str, Any]) -> None:
    view = {**messages.loading_view(OperationName("p", "l", "o")), **change}
    assert view_problems(view) != []
    assert view_problems(messages.loading_view(OperationName("p", "l", "o"))) == []
