"""All Block Kit the bot shows: modals, messages and ephemeral replies, built in one place."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any, Literal

from bot.approval.clicks import ClickResult, Refusal
from bot.approval.store import ApprovalRequest
from bot.google.operations import Operation, OperationsError, Outcome
from bot.google.rpc import Place, RpcCode
from bot.policy.allowlist import ApprovalRule, Decision
from bot.policy.names import (
    CANONICAL_API_URL,
    EXPECTED_SHAPE,
    PARENT_SHAPE,
    SEGMENT_CHARACTERS,
    OperationName,
    OperationParent,
)
from bot.slack import limits, times

Blocks = list[dict[str, Any]]
View = dict[str, Any]

CONFIRM_CALLBACK_ID = "cancel_op_confirm"
CANCEL_ACTION_ID = "cancel_op"  # public: alert pipelines put this button on their alerts
PICK_ACTION_ID = "cancel_op_pick"
APPROVE_ACTION_ID = "cancel_op_approve"  # public: the two buttons of an approval request
DENY_ACTION_ID = "cancel_op_deny"
REASON_ID = "reason"  # public: block_id and action_id of the confirmation's reason input
PICK_LIMIT = 20
LIST_LIMIT = 10
_TITLE = "Cancel operation"


# How much of each piece of outside text a message keeps, well inside the block limits
# so that what surrounds it always fits too.
_GOOGLE_TEXT = 1500  # an error message from Google
_STATUS_TEXT = 500  # an operation's statusMessage
_FIELD_TEXT = 300  # verb, target, times
_REASON_TEXT = 300  # why a name was refused, a Slack error code
_LINK_TEXT = 1000  # a permalink kept in Redis
_TYPED_TEXT = 120  # what a person typed, repeated back in a refusal
_WHY_TEXT = 1000  # why a person asks to cancel a protected operation
_APPROVERS_TEXT = 1500  # who may approve, as mentions
_HALF_ENTITY = re.compile(r"&[a-z]*$")  # what a cut can leave of `&amp;`, `&lt;` or `&gt;`


def escape(text: str) -> str:
    """Slack's own escaping, so user-supplied text cannot form mentions or links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fit(text: str, limit: int) -> str:
    """Text from Google or a person: escaped, then cut to `limit` characters with "…"."""
    escaped = escape(text[: limit + 1])
    if len(text) <= limit and limits.slack_length(escaped) <= limit:
        return escaped
    return _HALF_ENTITY.sub("", _prefix(escaped, limit - 1)) + "…"


def _cap(text: str, limit: int) -> str:
    """A last guard on a whole text: cut at `limit` without splitting an entity or a link."""
    if limits.slack_length(text) <= limit:
        return text
    cut = _HALF_ENTITY.sub("", _prefix(text, limit - 1))
    if cut.rfind("<") > cut.rfind(">"):
        cut = cut[: cut.rfind("<")]
    return cut + "…"


def _prefix(text: str, units: int) -> str:
    """The longest start of `text` that is at most `units` Slack characters long."""
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > units:
            return text[:index]
    return text


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cap(text, limits.SECTION_TEXT)}}


def _context(text: str) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": _cap(text, limits.CONTEXT_TEXT)}],
    }


def _button_section(text: str, action_id: str, label: str, value: str) -> dict[str, Any]:
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": _cap(text, limits.SECTION_TEXT)},
        "accessory": {
            "type": "button",
            "action_id": action_id,
            "text": {"type": "plain_text", "text": label},
            "value": value,  # operation names only: checked, so far shorter than the limit
        },
    }


def _modal(blocks: Blocks, *, submit: str = "", close: str = "Close", **extra: Any) -> View:
    view: View = {
        "type": "modal",
        "callback_id": CONFIRM_CALLBACK_ID,
        "title": {"type": "plain_text", "text": _TITLE},
        "close": {"type": "plain_text", "text": close},
        "blocks": blocks,
        **extra,
    }
    if submit:
        view["submit"] = {"type": "plain_text", "text": submit}
    return view


# Ephemeral replies

Subcommand = Literal["cancel", "status", "list"]
# Each subcommand's usage line: what to type, and what it does.
_USAGES: dict[Subcommand, tuple[str, str]] = {
    "cancel": (f"/cancel-op {EXPECTED_SHAPE}", "show it and ask you to confirm the cancel"),
    "status": ("/cancel-op status NAME", "its current state"),
    "list": (f"/cancel-op list {PARENT_SHAPE}", "running operations there"),
}


def _usage_line(subcommand: Subcommand) -> str:
    typed, does = _USAGES[subcommand]
    return f"`{typed}`: {does}"


def usage_text() -> str:
    return (
        "*Cancel a Google Cloud long-running operation*\n"
        + "\n".join(_usage_line(subcommand) for subcommand in _USAGES)
        + "\nThe name may carry the API's URL in front, or sit in backticks or a link. On an "
        "alert, use the message's *More actions → Cancel operation*.\n"
        "Example: `/cancel-op projects/my-project/locations/global/operations/operation-123`"
    )


def invalid_name_text(typed: str, reason: str, subcommand: Subcommand = "cancel") -> str:
    """A refused name or location: what was typed, why, and that subcommand's usage."""
    wanted = "a location" if subcommand == "list" else "an operation name"
    command = "/cancel-op" if subcommand == "cancel" else f"/cancel-op {subcommand}"
    if typed.strip():
        said = f"{_typed(typed)} is not {wanted} I can use: {_fit(reason, _REASON_TEXT)}."
    else:
        said = f"`{command}` needs {wanted}."
    shape = f" (NAME is `{EXPECTED_SHAPE}`)" if subcommand == "status" else ""
    return (
        f":warning: {said} Nothing was sent to Google.\n"
        f"Usage: {_usage_line(subcommand)}{shape}\n"
        f"Its segments hold {SEGMENT_CHARACTERS}; it may sit behind `{CANONICAL_API_URL}/`, "
        "in backticks or in a link."
    )


def unknown_word_text(word: str) -> str:
    """The first word is neither a subcommand nor the start of an operation name."""
    return (
        f":warning: I don't know {_typed(word)}: it is neither `status`, `list`, `help` nor an "
        f"operation name. Nothing was sent to Google.\n{usage_text()}"
    )


def _typed(text: str) -> str:
    """What a person typed, repeated back on one line: Slack does not echo slash commands."""
    shown = _fit(" ".join(html.unescape(text.strip()).splitlines()), _TYPED_TEXT)
    # A code span cannot hold a backtick, so such text is quoted instead.
    return f"“{shown}”" if "`" in shown else f"`{shown}`"


def denied_text(decision: Decision, name: OperationName | OperationParent) -> str:
    text = (
        f":no_entry: You may not do that with `{name}` here: the allowlist does not grant you "
        f"`{decision.permission}` on it in this channel. Nothing was sent to Google. "
        "Ask your platform team to add you (or your on-call user group) to the allowlist."
    )
    return f"{text}\n{decision.note}" if decision.note else text


def denied_any_text(decision: Decision, count: int) -> str:
    """None of the `count` names in a message may be cancelled by this caller here."""
    text = (
        f":no_entry: That message names {count} operations, and the allowlist grants you "
        f"`{decision.permission}` on none of them in this channel. Nothing was sent to Google. "
        "Ask your platform team to add you (or your on-call user group) to the allowlist."
    )
    return f"{text}\n{decision.note}" if decision.note else text


def no_name_found_text() -> str:
    return (
        ":mag: I found no operation name in that message. I look for "
        f"`{EXPECTED_SHAPE}` in its text, blocks and attachments. "
        "You can also type `/cancel-op NAME`."
    )


def cannot_open_text(reason: str) -> str:
    said = _fit(reason, _REASON_TEXT)
    return f":warning: Slack would not open the confirmation ({said}). Please try again."


def status_reply(name: OperationName, operation: Operation) -> tuple[str, Blocks]:
    text = f"`{name}`: {_state(operation)}"
    blocks = _operation_blocks(name, operation)
    if operation.error is not None:
        blocks += outcome_blocks(operation.error.code, operation.error.message, Place.FINAL_STATE)
    return text, blocks


def lookup_failed(subject: str, error: OperationsError) -> tuple[str, Blocks]:
    text = f"I could not read {subject} from Google."
    return text, [_section(text), *error_blocks(error, Place.LOOKUP)]


def list_reply(parent: OperationParent, running: list[Operation], total: int) -> tuple[str, Blocks]:
    text = f"{total} running operation{'s' if total != 1 else ''} in `{parent}`."
    blocks: Blocks = [_section(f"*{text}*")]
    shown = running[:LIST_LIMIT]
    for operation in shown:
        running_for = _running_for(operation)
        label = " · ".join(
            [_fit(x, _FIELD_TEXT) for x in (operation.verb, operation.target) if x]
            + ([f"running for {running_for}"] if running_for else [])
        )
        line = f"`{_fit(operation.name, _FIELD_TEXT)}`\n{label}"
        blocks.append(_button_section(line, CANCEL_ACTION_ID, "Cancel…", operation.name))
    if total > len(shown):
        blocks.append(_context(f"{total - len(shown)} more not shown."))
    return text, blocks


def forged_text(what: str) -> str:
    """A crafted or altered modal: `what` is "confirmation" or "choice"."""
    return (
        f":no_entry: This {what} was not issued by me, or was changed. Nothing was sent to "
        "Google. Start again with `/cancel-op`."
    )


def not_yours_text(what: str) -> str:
    return (
        f":no_entry: This {what} belongs to someone else. Nothing was sent to Google. "
        "Start your own with `/cancel-op`."
    )


def unavailable_text() -> str:
    return (
        ":hourglass: I can't work right now: my state store (Redis) is not answering. "
        "Nothing was sent to Google. Try again in a minute, or cancel from the Cloud console."
    )


def _see(link: str, what: str) -> str:
    """A link reading "See <what>", cut to Slack's limits; nothing without a link."""
    return f" <{_fit(link, _LINK_TEXT)}|See {what}>." if link else ""


def already_cancelling_text(name: OperationName, requester: str, link: str) -> str:
    where = _see(link, "the thread")
    return (
        f":information_source: `{name}` is already being cancelled: <@{requester}> asked "
        f"for it.{where} Nothing more was sent to Google."
    )


# Modals


def loading_view(name: OperationName) -> View:
    return _modal([_section(f":hourglass_flowing_sand: Looking up `{name}`…")])


def _operation_blocks(name: OperationName, operation: Operation) -> Blocks:
    """What an operation is: the same fields wherever it is shown."""
    fields = [
        ("Name", f"`{name}`"),
        ("Verb", _fit(operation.verb, _FIELD_TEXT) or "—"),
        ("Target", _fit(operation.target, _FIELD_TEXT) or "—"),
        ("Created", _moment(operation.create_time, with_age=True) or "—"),
        ("State", _state(operation)),
    ]
    blocks: Blocks = [
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": _cap(f"*{k}*\n{v}", limits.FIELD_TEXT)}
                for k, v in fields
            ],
        }
    ]
    if operation.status_message:
        blocks.append(_context(f"Status: {_fit(operation.status_message, _STATUS_TEXT)}"))
    return blocks


def _state(operation: Operation) -> str:
    outcome = operation.outcome
    if outcome is Outcome.RUNNING:
        running_for = _running_for(operation)
        return (
            "Running"
            + (f" for {running_for}" if running_for else "")
            + (" (cancel requested)" if operation.requested_cancellation else "")
        )
    if outcome is Outcome.COMPLETED:
        return "Done: completed"
    if outcome is Outcome.NO_RESULT:
        return "Done: no result reported"
    assert operation.error is not None  # CANCELLED and FAILED carry one
    return f"Done: {operation.error.code.name}"


def _moment(timestamp: str, *, with_age: bool = False) -> str:
    """A time from Google as a date token (each reader's own zone), with its age if asked;
    text that is not a timestamp is shown as it came, escaped."""
    moment = times.parse_timestamp(timestamp)
    if moment is None:
        return _fit(timestamp, _FIELD_TEXT)
    age = f" ({times.duration_text(_seconds_since(moment))} ago)" if with_age else ""
    return times.slack_date(moment) + age


def _running_for(operation: Operation) -> str:
    """How long a running operation has run, in words; empty when its start is unknown."""
    started = times.parse_timestamp(operation.create_time)
    return times.duration_text(_seconds_since(started)) if started else ""


def _seconds_since(moment: datetime) -> float:
    return (datetime.now(UTC) - moment).total_seconds()


def confirmation_view(
    name: OperationName,
    operation: Operation,
    metadata: str,
    account: str | None = None,
    approval: ApprovalRule | None = None,
) -> View:
    blocks = _operation_blocks(name, operation)
    blocks.append(_context(acting_as_text(account)))
    if operation.done:
        blocks.append(
            _section(":white_check_mark: This operation has already finished: nothing to cancel.")
        )
        return _modal(blocks)
    blocks.append({"type": "divider"})
    blocks.append(
        _section(
            "Cancelling is best effort: Google may still finish the operation, and some "
            "services do not support cancelling at all. I'll report what happens in the channel."
        )
    )
    if approval is None:
        return _modal(
            blocks, submit="Cancel operation", close="Keep running", private_metadata=metadata
        )
    wait = times.duration_text(approval.expires_after_seconds)
    blocks.append(
        _section(
            ":lock: *This operation is protected: a second person must approve the cancel.* "
            f"Nothing is sent to Google until one of {_approvers(approval.members())} "
            f"(never you) approves it in the channel, within {wait}."
        )
    )
    blocks.append(_reason_input())
    return _modal(
        blocks, submit="Ask for approval", close="Keep running", private_metadata=metadata
    )


def _reason_input() -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": REASON_ID,
        "label": {"type": "plain_text", "text": "Why cancel it?"},
        "element": {
            "type": "plain_text_input",
            "action_id": REASON_ID,
            "multiline": True,
            "max_length": _WHY_TEXT,
            "placeholder": {"type": "plain_text", "text": "What the approvers should know"},
        },
    }


def _approvers(members: list[str]) -> str:
    """Allowlist members as mentions: a user, or a user group's handle."""
    mentions = [
        f"<@{escape(m.removeprefix('user:'))}>"
        if m.startswith("user:")
        else f"<!subteam^{escape(m.removeprefix('usergroup:'))}>"
        for m in members
    ]
    text = ", ".join(mentions) or "nobody"
    return _cap(text, _APPROVERS_TEXT)


def lookup_failed_view(name: OperationName, error: OperationsError) -> View:
    _, blocks = lookup_failed(f"`{name}`", error)
    return _modal([*blocks, _context("So I can't offer to cancel it.")])


def pick_view(names: list[OperationName], metadata: str) -> View:
    """Several names in one alert: the engineer picks the one to cancel."""
    blocks: Blocks = [_section("This message names several operations. Which one?")]
    for name in names[:PICK_LIMIT]:
        blocks.append(_button_section(f"`{name}`", PICK_ACTION_ID, "Choose", str(name)))
    if len(names) > PICK_LIMIT:
        blocks.append(_context(f"{len(names) - PICK_LIMIT} more not shown; use `/cancel-op NAME`."))
    return _modal(blocks, private_metadata=metadata)


def refusal_view(text: str) -> View:
    return _modal([_section(text)])


def queuing_view(name: OperationName) -> View:
    """A confirm whose submission Redis has not answered within Slack's 3 s."""
    text = (
        f":hourglass_flowing_sand: Queuing the cancel of `{name}`: my state store (Redis) is "
        "slow to answer. This updates when it has."
    )
    return _modal([_section(text)])


def queued_late_view(name: OperationName, channel: str) -> View:
    """The late answer: the cancel is queued, and the channel's thread follows it."""
    text = (
        f":white_check_mark: The cancel of `{name}` is queued; its thread in <#{channel}> "
        "follows it. You can close this."
    )
    return _modal([_section(text)])


# Channel and thread messages


def request_message(
    name: OperationName, requester: str, account: str = "", approver: str = ""
) -> tuple[str, Blocks]:
    approved = f" <@{approver}> approved it." if approver else ""
    text = f"<@{requester}> asked to cancel `{name}`.{approved}"
    return text, [_section(f":octagonal_sign: {text}"), _context(acting_as_text(account))]


def acting_as_text(account: str | None) -> str:
    """Whose Google identity the bot uses for a request: a service account, or its own."""
    if account:
        return f":bust_in_silhouette: Acting in Google Cloud as `{escape(account)}`."
    return ":bust_in_silhouette: Acting in Google Cloud with the bot's own credentials."


# Approval requests (two-person rule)


def _expiry(request: ApprovalRequest) -> str:
    return times.slack_date(datetime.fromtimestamp(request.expires_ms / 1000, UTC))


def _why(request: ApprovalRequest) -> str:
    return f"*Why:* {_fit(request.reason, _WHY_TEXT)}"


def approval_request_message(name: OperationName, request: ApprovalRequest) -> tuple[str, Blocks]:
    """Who asks to cancel what and why, who may approve, until when; Approve and Deny."""
    text = f"<@{request.requester}> asks to cancel `{name}`; it needs a second person's approval."
    approvers = _approvers(request.approvers.split())
    buttons = [
        ("Approve", APPROVE_ACTION_ID, "primary"),
        ("Deny", DENY_ACTION_ID, "danger"),
    ]
    return text, [
        _section(f":raised_hand: *{text}*"),
        _section(_why(request)),
        _context(
            f"May approve: {approvers} (not the requester). "
            f"Expires {_expiry(request)}; nothing is sent to Google before someone approves."
        ),
        _context(acting_as_text(request.account)),
        {
            "type": "actions",
            "block_id": "approval",
            "elements": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "text": {"type": "plain_text", "text": label},
                    "style": style,
                    "value": request.id,  # an opaque id: the request itself stays in Redis
                }
                for label, action_id, style in buttons
            ],
        },
    ]


def approval_decided_message(name: OperationName, request: ApprovalRequest) -> tuple[str, Blocks]:
    """The request as decided: who approved or denied it, or that it expired; no buttons."""
    asked = f"<@{request.requester}>'s request to cancel `{name}`"
    if request.state == "approved":
        text = f"<@{request.decided_by}> approved {asked}."
        detail = ":white_check_mark: The cancel is on its way; follow-ups in this thread."
    elif request.state == "denied":
        text = f"<@{request.decided_by}> denied {asked}."
        detail = ":no_entry: Nothing was sent to Google."
    else:
        text = f"Nobody approved {asked} by {_expiry(request)}: it expired."
        detail = (
            ":hourglass: Nothing was sent to Google. If it still needs cancelling, ask again "
            "with `/cancel-op`."
        )
    approvers = _approvers(request.approvers.split())
    return text, [
        _section(f"*{text}*\n{detail}"),
        _section(_why(request)),
        _context(f"Approvers: {approvers}."),
    ]


def approval_refusal_text(click: ClickResult) -> str:
    """Why a click on Approve or Deny changed nothing, told only to the one who clicked."""
    request, refusal = click.request, click.refusal
    if refusal is Refusal.UNAVAILABLE:
        return unavailable_text()
    if request is None or refusal is None:
        return ":warning: I know of no such approval request. Nothing was sent to Google."
    approvers = _approvers(request.approvers.split())
    if refusal is Refusal.OWN_REQUEST:
        text = f"You asked for this cancel, so someone else must decide it: {approvers}."
    elif refusal is Refusal.NOT_APPROVER:
        text = f"Only {approvers} may decide this request."
    elif refusal is Refusal.DECIDED:
        by = f" by <@{click.decided_by}>" if click.decided_by else ""
        text = f"This request was already {click.state}{by}."
    elif refusal is Refusal.EXPIRED:
        text = "This request has expired. The requester can ask again with `/cancel-op`."
    else:
        permission = click.requester_decision.permission if click.requester_decision else ""
        text = (
            f"<@{request.requester}> no longer holds `{permission}` on this operation here, "
            "so their cancel cannot go ahead."
        )
    note = click.note or (click.requester_decision.note if click.requester_decision else "")
    said = f":no_entry: {text} Nothing more was sent to Google."
    return f"{said}\n{note}" if note else said


def approval_pending_text(name: OperationName, request: ApprovalRequest) -> str:
    """A second request for an operation that already waits for approval joins it."""
    where = _see(request.link, "the request")
    return (
        f":information_source: `{name}` already waits for approval: <@{request.requester}> "
        f"asked for its cancel.{where} Nothing more was sent to Google."
    )


def approval_not_posted_text(channel: str, reason: str) -> str:
    """The approval request could not be posted, so it was withdrawn."""
    said = _fit(reason, _REASON_TEXT)
    return (
        f":warning: I couldn't post your approval request in <#{channel}> ({said}), so nobody "
        "could approve it; I withdrew it and nothing was sent to Google. Add me to the "
        "channel (`/invite @cancel-op`) and ask again."
    )


def no_other_approver_text(name: OperationName) -> str:
    """The only approver of a protected operation is the person asking."""
    return (
        f":no_entry: Cancelling `{name}` needs a second person's approval, and the allowlist "
        "names nobody but you to give it. Nothing was sent to Google. Ask your platform team "
        "to add approvers to its `approval` block."
    )


def now_protected_text(name: OperationName) -> str:
    """A confirmation opened before its operation was protected, submitted after."""
    return (
        f":lock: Cancelling `{name}` now needs a second person's approval, which this "
        "confirmation did not ask for. Nothing was sent to Google. Open it again "
        f"(`/cancel-op {name}`) to say why and ask for approval."
    )


def reason_missing_text() -> str:
    return "Say why it must be cancelled: the approvers decide on it."


def approval_status_blocks(request: ApprovalRequest) -> Blocks:
    """`/cancel-op status`: the operation's pending approval request."""
    where = _see(request.link, "the request")
    asked = times.slack_date(datetime.fromtimestamp(request.created_ms / 1000, UTC))
    return [
        _section(
            f":raised_hand: *Waiting for approval:* <@{request.requester}> asked to cancel it "
            f"{asked}.{where}\n{_why(request)}"
        ),
        _context(
            f"May approve: {_approvers(request.approvers.split())}. Expires {_expiry(request)}."
        ),
    ]


def approved_by_blocks(requester: str, approver: str) -> Blocks:
    """The last word of a protected operation's cancel names both people."""
    return [_context(f"Requested by <@{requester}>, approved by <@{approver}>.")]


def cancel_answer(error: OperationsError | None) -> tuple[str, Blocks]:
    if error is None:
        text = "Google accepted the cancel request (OK)."
        detail = (
            "Cancellation is best effort: the operation may still complete. "
            "I'll post its final state in this thread."
        )
        return text, [_section(f":white_check_mark: *{text}*\n{detail}")]
    text = f"Google answered the cancel request with {error.code.name}."
    if error.token_refused:
        text = (
            f"I did not send the cancel: Google's IAM Credentials API answered "
            f"{error.code.name} when I asked for a token to act as `{escape(error.account)}`."
        )
    return text, [
        _section(f":x: *{text}*"),
        *error_blocks(error, Place.CANCEL_ANSWER),
    ]


def error_blocks(error: OperationsError, place: Place) -> Blocks:
    """A failed Google call in words; a token refused for a service account is told as such
    wherever it happened, since nothing reached the Operations API then."""
    where = Place.TOKEN if error.token_refused else place
    return outcome_blocks(error.code, error.message, where, error.account)


def outcome_blocks(code: RpcCode, message: str, place: Place, account: str = "") -> Blocks:
    """A code in words: what it means and what to do next where it is shown (`place`), as
    `account` (the service account the bot acted as; "" for its own credentials)."""
    detail = f"Google said: {_fit(message, _GOOGLE_TEXT)}" if message else ""
    meaning, next_step = code.meaning_at(place, account), code.next_step_at(place, account)
    return [
        _section(f"*{code.name}* (code {code.number}): {meaning}\n*Next:* {next_step}"),
        *([_context(detail)] if detail else []),
    ]


def cannot_post_text(channel: str, reason: str) -> str:
    said = _fit(reason, _REASON_TEXT)
    return (
        f":warning: I couldn't post in <#{channel}> ({said}), so I'm reporting here. "
        "To get follow-ups in the channel next time, add me there: type `/invite @cancel-op` "
        "in it (for a private channel, a member must invite me)."
    )


# Follow-ups from the watcher


def status_message(name: OperationName, google_status: str) -> tuple[str, Blocks]:
    said = f" Google's status: {_fit(google_status, _STATUS_TEXT)}." if google_status else ""
    text = f"`{name}` is still running.{said} I'm watching it and will post here when it ends."
    return text, [_context(f":hourglass_flowing_sand: {text}")]


def status_ended(name: OperationName, summary: str) -> tuple[str, Blocks]:
    text = f"`{name}` has ended: {summary}. See below."
    return text, [_context(f":checkered_flag: {text}")]


def final_message(name: OperationName, operation: Operation) -> tuple[str, str, Blocks]:
    """(summary, text, blocks) for a done operation: cancelled, completed anyway, failed, or
    ended without saying how."""
    ended = f" at {_moment(operation.end_time)}" if operation.end_time else ""
    outcome, error = operation.outcome, operation.error
    if outcome is Outcome.COMPLETED:
        text = f"`{name}` completed{ended} despite the cancellation."
        detail = (
            "Google finished the operation before it could stop it, so its result stands. "
            "*Next:* check what it changed, and undo that if it must not stay."
        )
        return "completed", text, [_section(f":warning: *{text}*\n{detail}")]
    if outcome is Outcome.NO_RESULT or error is None:
        text = f"`{name}` ended{ended}, but Google reported neither a result nor an error."
        detail = (
            "So I cannot tell whether it was cancelled or finished its work. *Next:* check it "
            "and what it drives in the Cloud console before starting anything again."
        )
        return "ended without a result", text, [_section(f":grey_question: *{text}*\n{detail}")]
    if outcome is Outcome.CANCELLED:
        text = f"`{name}` was cancelled{ended} ({error.code.name})."
        return error.code.name, text, [_section(f":white_check_mark: *{text}*"),
                *outcome_blocks(error.code, error.message, Place.FINAL_STATE)]  # fmt: skip
    text = f"`{name}` failed{ended} with {error.code.name}."
    return (f"failed ({error.code.name})", text, [_section(f":x: *{text}*"),
            *outcome_blocks(error.code, error.message, Place.FINAL_STATE)])  # fmt: skip


def timeout_message(name: OperationName, watched_seconds: float) -> tuple[str, Blocks]:
    span = times.duration_text(watched_seconds)
    text = f"`{name}` is still running after {span}; I have stopped watching it."
    detail = (
        "The cancel request may have been ignored. *Next:* check it in the Cloud console, "
        "and stop the work it drives another way if it must not finish."
    )
    return text, [_section(f":hourglass: *{text}*\n{detail}")]


def lost_track_message(name: OperationName, error: OperationsError) -> tuple[str, Blocks]:
    text = f"I lost track of `{name}`: Google kept answering {error.code.name}. I stopped watching."
    return text, [
        _section(f":warning: *{text}*"),
        *error_blocks(error, Place.LOOKUP),
    ]
