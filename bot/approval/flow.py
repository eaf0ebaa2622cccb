"""The life of an approval request: asked, posted, decided once, and carried out.

Checks that need a person (is this an approver? does the requester still hold the cancel?)
run before the decision; the decision itself is one Redis script. Carrying it out (the
cancel, the edit of the message, the audit entry) may happen twice after a crash, so each
of its parts is idempotent: the cancel by its submission key, the audit by a mark on the
record, and the edit by writing the same words again.
"""

from __future__ import annotations

import logging

import redis.asyncio as redis

from bot.approval.clicks import ClickResult, Refusal
from bot.approval.store import ApprovalRequest, ApprovalStore, Opened, State, posted_key
from bot.policy.allowlist import Action, Allowlist, ApprovalRule, Decision, GroupDirectory
from bot.policy.audit import Audit
from bot.policy.names import OperationName, parse_operation_name
from bot.runtime import metrics
from bot.slack import messages
from bot.slack.posts import OncePoster, PostInProgress, SlackPostFailed
from bot.watch.submission import Cancellations, CancelRequest

log = logging.getLogger(__name__)

# The actor of an expiry in the audit: nobody decided it.
EXPIRY_ACTOR = "cancel-op"
# What a person typed as the reason is kept to this many characters.
REASON_LIMIT = 1000


def rule_of(request: ApprovalRequest) -> ApprovalRule:
    """The approvers named when the request was made: those the message promised."""
    members = request.approvers.split()
    users = frozenset(m.removeprefix("user:") for m in members if m.startswith("user:"))
    groups = tuple(m.removeprefix("usergroup:") for m in members if m.startswith("usergroup:"))
    return ApprovalRule(users, groups)


class Approvals:
    def __init__(
        self,
        store: ApprovalStore,
        poster: OncePoster,
        cancellations: Cancellations,
        audit: Audit,
        finish_within_ms: int,
    ) -> None:
        self.store = store
        self._poster = poster
        self._cancellations = cancellations
        self._audit = audit
        # How long whoever decided has to carry the decision out before the driver does.
        self._finish_within_ms = finish_within_ms

    # Asking

    async def open(
        self,
        submission_id: str,
        name: OperationName,
        requester: str,
        channel: str,
        thread_ts: str,
        reason: str,
        rule: ApprovalRule,
        account: str | None = None,
    ) -> Opened:
        """Record the request for one modal submission (the same answer on every repeat),
        or join the operation's pending one. Raises redis.RedisError."""
        request = ApprovalRequest(
            id=self.store.new_id(),
            operation=str(name),
            requester=requester,
            channel=channel,
            thread_ts=thread_ts,
            reason=reason[:REASON_LIMIT],
            approvers=" ".join(rule.members()),
            account=account or "",
        )
        opened = await self.store.open(
            submission_id, request, rule.expires_after_seconds * 1000, self._finish_within_ms
        )
        if opened.first_time:  # once per submission, whatever Slack's retries
            step = "requested" if opened.opened else "joined"
            metrics.APPROVALS.labels(step).inc()
            await self._audit.record(
                f"approval_{step}", actor=requester, operation=str(name), channel=channel,
                outcome="pending", acting_as=account, reason=request.reason,
                approvers=request.approvers, request=opened.request_id,
            )  # fmt: skip
        return opened

    async def post(self, request_id: str) -> None:
        """Post the request with its buttons, once; if it was decided meanwhile, show that.
        If Slack will not take it, nobody can decide it: it is withdrawn and the requester
        told why. Another process posting it now finishes the job (PostInProgress)."""
        request = await self.store.load(request_id)
        if request is None:
            return
        name = parse_operation_name(request.operation)
        text, blocks = messages.approval_request_message(name, request)
        try:
            channel, ts = await self._poster.post(
                posted_key(request.id), request.channel, text, blocks, request.thread_ts
            )
        except SlackPostFailed as failed:
            await self._withdraw(request, failed.failure.reason)
            return
        except PostInProgress:
            return
        await self.store.set_link(request.id, await self._poster.permalink(channel, ts))
        await self.store.due_at_expiry(request.id)
        current = await self.store.load(request_id)
        if current is not None and current.state != "pending":
            await self._show_decision(current)

    async def _withdraw(self, request: ApprovalRequest, reason: str) -> None:
        log.warning("approval request not posted; withdrawn",
                    extra={"request": request.id, "slack_error": reason})  # fmt: skip
        verdict = await self.store.decide(
            request, "withdrawn", EXPIRY_ACTOR, self._finish_within_ms
        )
        if verdict.outcome != "decided":
            return
        text = messages.approval_not_posted_text(request.channel, reason)
        try:
            await self._poster.post(f"{posted_key(request.id)}:dm", request.requester, text, None)
        except (SlackPostFailed, PostInProgress):
            log.warning("requester not told of the withdrawn request",
                        extra={"request": request.id})  # fmt: skip
        await self.carry_out(await self.store.load(request.id) or request)

    # Deciding

    async def approve(
        self, request_id: str, approver: str, allowlist: Allowlist, groups: GroupDirectory
    ) -> ClickResult:
        """Approve and send the cancel, if `approver` may and the requester still may cancel."""
        return await self._click(request_id, approver, "approved", allowlist, groups)

    async def deny(
        self, request_id: str, approver: str, allowlist: Allowlist, groups: GroupDirectory
    ) -> ClickResult:
        return await self._click(request_id, approver, "denied", allowlist, groups)

    async def _click(
        self,
        request_id: str,
        user: str,
        state: State,
        allowlist: Allowlist,
        groups: GroupDirectory,
    ) -> ClickResult:
        try:
            request = await self.store.load(request_id)
            if request is None:
                return ClickResult(None, Refusal.UNKNOWN)
            checked = await self._check_click(request, user, state, allowlist, groups)
            if isinstance(checked, ClickResult):
                await self._record_refusal(request, user, checked)
                return checked
            account = (checked.account or "") if isinstance(checked, Decision) else None
            verdict = await self.store.decide(request, state, user, self._finish_within_ms, account)
            if verdict.outcome != "decided":
                result = _refusal_of(request, verdict.outcome, verdict.state, verdict.decided_by)
                await self._record_refusal(request, user, result)
                return result
            decided = await self.store.load(request.id)
            await self.carry_out(decided or request)
        except redis.RedisError:
            log.warning("approval click not handled (redis)", extra={"request": request_id})
            return ClickResult(None, Refusal.UNAVAILABLE)
        return ClickResult(decided or request)

    async def _check_click(
        self,
        request: ApprovalRequest,
        user: str,
        state: State,
        allowlist: Allowlist,
        groups: GroupDirectory,
    ) -> ClickResult | Decision | None:
        """A refusal; else, for an approval, the requester's own grant as checked again."""
        if request.state != "pending":  # whoever clicks learns who decided it
            return _refusal_of(request, "already", request.state, request.decided_by)
        if user == request.requester:
            return ClickResult(request, Refusal.OWN_REQUEST)
        name = parse_operation_name(request.operation)
        check = await rule_of(request).admits(user, request.requester, groups)
        current = allowlist.approval_for(name, request.channel)
        if check.allowed and current is not None:
            # A redeploy since the request may have taken them off the approvers.
            check = await current.admits(user, request.requester, groups)
        if not check.allowed:
            return ClickResult(request, Refusal.NOT_APPROVER, note=check.note)
        if state != "approved":
            return None
        # The requester may have left the rotation since asking: the cancel is theirs.
        granted = await allowlist.check(
            Action.CANCEL, request.requester, name, request.channel, groups
        )
        if not granted.allowed:
            return ClickResult(request, Refusal.REQUESTER_NOT_ALLOWED, requester_decision=granted)
        return granted

    async def _record_refusal(
        self, request: ApprovalRequest, user: str, result: ClickResult
    ) -> None:
        await self._audit.record(
            "approval_refused", actor=user, operation=request.operation, channel=request.channel,
            outcome=result.refusal.value if result.refusal else "", acting_as=request.account,
            request=request.id,
        )  # fmt: skip

    async def expire(self, request_id: str) -> None:
        """A request claimed from the due set: post it if nobody has, else expire it if
        still pending; then carry out whatever it is now (an expiry, or a decision whose
        effects were cut short)."""
        request = await self.store.load(request_id)
        if request is None:
            await self.store.finished(request_id)
            return
        if request.state == "pending":
            verdict = await self.store.decide(
                request, "expired", EXPIRY_ACTOR, self._finish_within_ms
            )
            if verdict.outcome == "not_due":
                await self.post(request_id)  # its poster died before posting it
                return
            request = await self.store.load(request_id) or request
        await self.carry_out(request)

    # Carrying a decision out

    async def carry_out(self, request: ApprovalRequest) -> None:
        """The decision's effects, each safe to repeat: audit once, the cancel once, the
        message edited; then nothing more falls due for the request. Whoever carries them
        out (the clicker, or the driver after the clicker stopped short) reads the same
        record, so the cancel acts as the account the approval recorded."""
        if await self.store.first_time(request.id, "audit"):
            metrics.APPROVALS.labels(request.state).inc()
            await self._audit.record(
                f"approval_{request.state}", actor=request.decided_by,
                operation=request.operation, channel=request.channel, outcome=request.state,
                acting_as=request.account, requester=request.requester,
                reason=request.reason, request=request.id,
            )  # fmt: skip
        if request.state == "approved":
            await self._send_cancel(request)
        await self._show_decision(request)
        await self.store.finished(request.id)

    async def _send_cancel(self, request: ApprovalRequest) -> None:
        """The cancel as an unprotected confirm sends it, its follow-ups in the request's
        thread; the submission key is the request's, so a repeat joins the first. It is
        the requester's cancel, acting as their grant's account as checked at approval."""
        posted = await self._poster.posted(posted_key(request.id))
        thread = request.thread_of(posted[1] if posted else "")
        cancel = CancelRequest(
            parse_operation_name(request.operation),
            request.requester,
            posted[0] if posted else request.channel,
            thread,
            account=request.account,
            approver=request.decided_by,
        )
        await self._cancellations.request(f"approval:{request.id}", cancel)

    async def _show_decision(self, request: ApprovalRequest) -> None:
        posted = await self._poster.posted(posted_key(request.id))
        if posted is None:
            return  # never posted: nobody saw buttons to take back
        text, blocks = messages.approval_decided_message(
            parse_operation_name(request.operation), request
        )
        try:
            await self._poster.update(*posted, text, blocks)
        except SlackPostFailed as failed:
            reason = failed.failure.reason
            log.warning("approval message not edited",
                        extra={"request": request.id, "slack_error": reason})  # fmt: skip


def _refusal_of(request: ApprovalRequest, outcome: str, state: str, by: str) -> ClickResult:
    if outcome == "too_late" or state == "expired":
        return ClickResult(request, Refusal.EXPIRED, state="expired")
    if outcome == "missing":
        return ClickResult(None, Refusal.UNKNOWN)
    if state == "withdrawn":  # by the bot itself: nobody to name
        return ClickResult(request, Refusal.DECIDED, state=state)
    return ClickResult(request, Refusal.DECIDED, state=state, decided_by=by)
