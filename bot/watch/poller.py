"""The poller: carries each confirmed cancel from the request to the operation's final state.

A watch goes through three stages, each run by whichever worker claims it:
  cancel  send the cancel (before anything reaches Slack), then post who asked for what
          and Google's answer;
  watch   poll the operation with backoff and keep one status message current, until it
          is done, Google keeps failing, or WATCH_TIMEOUT_SECONDS have passed;
  ending  the last word is known and recorded: post it, close the status message.
Every side effect has an idempotency key, so a step retried after a crash or a lease that
ran out repeats nothing that already happened. Every Slack post has a bounded life and
falls back (the thread, else the requester's DM, else the audit stream and the log), so
no step waits on Slack; every Google call has a deadline, so every watch ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis.asyncio as redis

from bot.google.operations import OperationsClient, OperationsError
from bot.google.rpc import RpcCode
from bot.policy.audit import Audit
from bot.policy.names import OperationName, parse_operation_name
from bot.runtime import metrics
from bot.slack import messages
from bot.slack.posts import OncePoster, PostInProgress, SlackPostFailed
from bot.watch.handover import finish_or_hand_back
from bot.watch.schedule import PollSchedule
from bot.watch.store import Claim, Watch, WatchStore, posted_key

T = TypeVar("T")

log = logging.getLogger(__name__)

# How many claimed watches one worker works on at once, and claims in one round trip.
# 128 keeps 10,000 watches on schedule; 512 did too, at twice the memory per watch
# (bench/poller.py).
MAX_IN_FLIGHT = 128
CLAIM_BATCH = 200
# With nothing due, look again at least this often (other replicas add watches too).
IDLE_WAIT_MS = 500
# Consecutive failed polls (other than "slow down") before the thread is told.
MAX_POLL_ERRORS = 5
# Another step holds a side effect's key (it is sending the cancel or a post): look again
# this soon; the hold ends with that call's own deadline, not with a lease.
IN_PROGRESS_RETRY_MS = 1_000
# A step that crashed (a bug, an answer nothing expected) is tried again this soon, at most
# this many times in a row, and never past the watch's deadline: then the watch ends.
CRASH_RETRY_MS = 5_000
MAX_CRASHES = 5
# A status message appears only for operations still running after this long.
STATUS_AFTER_MS = 30_000
# Logged liveness figures cover this long.
REPORT_EVERY_SECONDS = 30.0
# The longest one Google call (with its retries) may take: well inside a lease, so a
# server that trickles its answer cannot hold a step open while its lease is renewed.
GOOGLE_CALL_SECONDS = 10.0
# Google is busy or out of reach: wait the longest the schedule allows; the watch's
# deadline, not a count, ends a run of these.
_SLOW_DOWN = frozenset({RpcCode.RESOURCE_EXHAUSTED, RpcCode.UNAVAILABLE, RpcCode.DEADLINE_EXCEEDED})
# What status_text says once the status message cannot be posted or edited (deleted, or
# the bot removed): it is skipped from then on.
STATUS_GONE = "-"


@dataclass(frozen=True)
class _Again:
    watch: Watch
    delay_ms: int


@dataclass(frozen=True)
class _Done:
    watch: Watch


class _ClaimLost(Exception):
    """Another worker holds the watch now: this step stops without saving."""


@dataclass
class Liveness:
    last_loop: float = 0.0
    backlog: int = 0
    redis_ok: bool = True
    lags_ms: list[int] = field(default_factory=list)
    polls: int = 0


class Watcher:
    def __init__(
        self,
        store: WatchStore,
        poster: OncePoster,
        polling: OperationsClient,
        operations: OperationsClient,
        audit: Audit,
        schedule: PollSchedule,
        watch_timeout_ms: int,
        lease_ms: int,
    ) -> None:
        self.store = store
        self._poster = poster
        self._polling = polling  # answers at once: a busy Google pushes the next poll later
        self._operations = operations  # retries: the cancel itself should get through
        self._audit = audit
        self._schedule = schedule
        self._timeout_ms = watch_timeout_ms
        self._lease_ms = lease_ms
        self._google_seconds = min(GOOGLE_CALL_SECONDS, lease_ms * 2 / 3000)
        self._wake = asyncio.Event()
        self._tasks: dict[asyncio.Task[None], Claim] = {}
        self._beside: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = []
        self.liveness = Liveness()

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    def run_beside(self, job: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        """Run `job(stop)` for as long as the poller runs (the approvals' expiry driver), so
        every process that polls also does it."""
        self._beside.append(job)

    def wake(self) -> None:
        """A watch was just added here: claim it now rather than at the next idle tick."""
        self._wake.set()

    # Lifecycle: run until stopped, then let in-flight steps end.

    async def run(self, stop: asyncio.Event) -> None:
        helpers = [asyncio.create_task(self._report(stop)), asyncio.create_task(self._renew(stop))]
        helpers += [asyncio.create_task(job(stop)) for job in self._beside]
        try:
            while not stop.is_set():
                await self._loop_once(stop)
        finally:
            for helper in helpers:
                helper.cancel()
            await finish_or_hand_back(self._tasks, self.store)

    async def _renew(self, stop: asyncio.Event) -> None:
        """Renew the leases of every step in flight, so a slow Slack or Google never lets
        another worker start the same step; a step whose lease was lost anyway stops."""
        while not stop.is_set():
            await _sleep_or_stop(stop, self._lease_ms / 3000)
            held = dict(self._tasks)
            if not held:
                continue
            try:
                lost = await self.store.renew(list(held.values()), self._lease_ms)
            except (redis.RedisError, OSError):
                continue  # leases may still run; each step's own save will tell
            for task, claim in held.items():
                if claim.token in lost and not task.done():
                    log.warning("lease lost mid-step; another worker has the watch")
                    task.cancel()

    async def _loop_once(self, stop: asyncio.Event) -> None:
        free = MAX_IN_FLIGHT - len(self._tasks)
        if free <= 0:
            await asyncio.wait(list(self._tasks), return_when=asyncio.FIRST_COMPLETED, timeout=1)
            return
        limit = min(free, CLAIM_BATCH)
        try:
            batch = await self.store.claim(limit, self._lease_ms)
        except (redis.RedisError, OSError):
            self._redis_state(ok=False)
            await _sleep_or_stop(stop, 1.0)
            return
        self._redis_state(ok=True)
        self.liveness.last_loop = time.time()
        self.liveness.backlog = batch.backlog
        for claim in batch.claims:
            self.liveness.lags_ms.append(batch.now_ms - claim.due_ms)
            metrics.POLL_LAG.observe(max(0, batch.now_ms - claim.due_ms) / 1000)
            task = asyncio.create_task(self._run_claim(claim, batch.now_ms))
            self._tasks[task] = claim
            task.add_done_callback(self._forget)
        if len(batch.claims) == limit:
            return  # more may be due: claim again at once
        wait_ms = IDLE_WAIT_MS
        if batch.next_due_ms is not None:
            wait_ms = max(0, min(wait_ms, batch.next_due_ms - batch.now_ms))
        self._wake.clear()
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_ms / 1000):
                await self._wake.wait()

    def _redis_state(self, *, ok: bool) -> None:
        if ok != self.liveness.redis_ok:
            if ok:
                log.warning("redis is back; watching resumes")
            else:
                log.error("redis is unavailable; watches wait until it is back")
        self.liveness.redis_ok = ok

    async def _report(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await _sleep_or_stop(stop, REPORT_EVERY_SECONDS)
            log.info("poller", extra={"poller": self.snapshot(reset=True)})

    def snapshot(self, *, reset: bool = False) -> dict[str, object]:
        lags = self.liveness.lags_ms
        figures: dict[str, object] = {
            "last_loop_age_seconds": _seconds_since(self.liveness.last_loop),
            "in_flight": len(self._tasks),
            "due_unclaimed": self.liveness.backlog,
            "redis": "ok" if self.liveness.redis_ok else "unavailable",
            "claimed": len(lags),
            "lag_p50_ms": _percentile(lags, 50),
            "lag_p99_ms": _percentile(lags, 99),
        }
        if reset:
            self.liveness.lags_ms = []
        return figures

    # One claimed watch: load, take one step, save or finish.

    async def _run_claim(self, claim: Claim, now_ms: int) -> None:
        try:
            if not claim.watch_json:
                return
            watch = Watch.from_json(claim.watch_json)
            if not watch.started_ms:
                watch = watch.but(started_ms=now_ms)  # Redis's clock, as every replica sees it
            try:
                step = await self._step(claim, watch, now_ms)
            except PostInProgress:
                step = _Again(watch, IN_PROGRESS_RETRY_MS)
            except _ClaimLost:
                return
            except Exception:
                log.exception("watch step crashed", extra={"watch": claim.watch_id})
                step = await self._after_crash(watch, now_ms)
            if isinstance(step, _Done):
                await self.store.finish(claim, step.watch)
            else:
                await self.store.save(claim, step.watch, step.delay_ms)
        except (redis.RedisError, OSError) as exc:
            # The lease runs out and the watch falls due again: nothing is lost.
            log.warning("watch step not saved (redis)",
                        extra={"watch": claim.watch_id, "error": repr(exc)})  # fmt: skip
        except Exception:
            log.exception("watch step crashed", extra={"watch": claim.watch_id})

    async def _step(self, claim: Claim, watch: Watch, now_ms: int) -> _Again | _Done:
        name = parse_operation_name(watch.operation)
        if watch.stage == "cancel":
            return await self._send_cancel(claim, watch, name)
        if watch.stage == "watch":
            polled = await self._poll(watch, name, now_ms)
            if isinstance(polled, _Again):
                return polled
            # What Google said is kept before anything is posted: a step cut short from
            # here on posts the same last word and does not ask Google again.
            if not await self.store.checkpoint(claim, polled):
                raise _ClaimLost(claim.token)
            watch = polled
        try:
            return await self._end(watch, name)
        except PostInProgress:
            return _Again(watch, IN_PROGRESS_RETRY_MS)  # keeps the checkpointed last word

    async def _after_crash(self, watch: Watch, now_ms: int) -> _Again | _Done:
        """A crashed step is tried again a few times within the deadline, then the watch
        ends, so no bug or unreadable answer keeps a watch (and its cancel) going for ever."""
        crashes = watch.crashes + 1
        if crashes < MAX_CRASHES and now_ms - watch.started_ms < self._timeout_ms:
            return _Again(watch.but(crashes=crashes), CRASH_RETRY_MS)
        log.error("watch abandoned after repeated crashes", extra={"watch": watch.id})
        await self._record_end(watch, "abandoned:step_crashed")
        return _Done(watch)

    # Stage "cancel"

    async def _send_cancel(self, claim: Claim, watch: Watch, name: OperationName) -> _Again | _Done:
        error = await self._cancel_once(claim, watch, name)  # first: no Slack post holds it back
        watch = await self._post_request(watch, name)
        if watch.post_channel:
            await self.store.set_link(
                watch, await self._poster.permalink(watch.post_channel, watch.thread_ts)
            )
        text, blocks = messages.cancel_answer(error)
        await self._deliver(watch, "answer", text, blocks)
        if error is not None:
            return _Done(watch)
        ceiling = self._schedule.first_ceiling()
        return _Again(watch.but(stage="watch", delay_ms=ceiling), self._schedule.wait(ceiling))

    async def _cancel_once(
        self, claim: Claim, watch: Watch, name: OperationName
    ) -> OperationsError | None:
        """Send the cancel unless this watch already did; the answer is kept with the key."""
        key = posted_key(watch.id, "cancel")
        sent = await self.store.recall(key)
        if sent is None:
            # One sender at a time: a step whose lease lapsed (Redis slow) must not send
            # it beside its successor. Held no longer than the call can take, so a
            # sender that died only delays the cancel.
            in_flight = posted_key(watch.id, "cancel:sending")
            hold_ms = int(self._google_seconds * 1000) + IN_PROGRESS_RETRY_MS
            if not await self.store.hold(in_flight, claim.token, hold_ms):
                raise PostInProgress(in_flight)
            try:
                await self._within_deadline(self._operations.cancel(name, watch.account or None))
                outcome = "OK|"
            except OperationsError as exc:
                outcome = exc.to_record()
            except asyncio.CancelledError:
                # Cut short (shutdown, lost lease): the next step sends it at once; Google
                # may get it twice, which cancelling tolerates.
                await self.store.release(in_flight, claim.token)
                raise
            await self.store.remember(key, outcome)
            error = OperationsError.from_record(outcome)
            code = error.code.name if error else "OK"
            metrics.CANCELS.labels(code).inc()
            await self._audit.record(
                "cancel_sent", actor=watch.requester, operation=watch.operation,
                channel=watch.channel, outcome=code, acting_as=watch.account,
                google_message=error.message if error else "",
                token_refused=bool(error and error.token_refused),
            )  # fmt: skip
            sent = outcome
        return OperationsError.from_record(sent, watch.account)

    async def _post_request(self, watch: Watch, name: OperationName) -> Watch:
        """Post where the request came from; if the bot may not, in the requester's DM;
        the watch comes back with where its follow-ups go ("" when Slack took neither)."""
        text, blocks = messages.request_message(
            name, watch.requester, watch.account, watch.approver
        )
        try:
            channel, ts = await self._poster.post(
                posted_key(watch.id, "request"), watch.channel, text, blocks,
                watch.origin_thread_ts,
            )  # fmt: skip
            return watch.but(post_channel=channel, thread_ts=watch.origin_thread_ts or ts)
        except SlackPostFailed as failed:
            reason = failed.failure.reason
        notice = messages.cannot_post_text(watch.channel, reason)
        try:
            dm, ts = await self._poster.post(
                posted_key(watch.id, "dm"), watch.requester, notice, None
            )
        except SlackPostFailed as failed:
            await self._unheard(watch, "request", text, failed.failure.reason)
            return watch
        watch = watch.but(post_channel=dm, thread_ts=ts)
        await self._deliver(watch, "request:dm", text, blocks)
        return watch

    # Stage "watch"

    async def _poll(self, watch: Watch, name: OperationName, now_ms: int) -> _Again | Watch:
        """One poll: when to poll again, or the watch ending with its last word."""
        watched_ms = now_ms - watch.started_ms
        if watched_ms >= self._timeout_ms:
            return self._timed_out(watch, name, watched_ms)
        self.liveness.polls += 1
        try:
            operation = await self._within_deadline(self._polling.get(name, watch.account or None))
        except OperationsError as exc:
            return self._poll_failed(watch, name, exc, watched_ms)
        watch = watch.but(polls=watch.polls + 1, errors=0, last_error="")
        if operation.done:
            summary, text, blocks = messages.final_message(name, operation)
            return _ending(watch, text, blocks, outcome=summary, summary=summary)
        if watched_ms >= STATUS_AFTER_MS:
            watch = await self._keep_status(watch, name, operation.status_message)
        ceiling = self._schedule.next_ceiling(watch.delay_ms or self._schedule.first_ceiling())
        wait = self._within_watch(watched_ms, self._schedule.wait(ceiling))
        return _Again(watch.but(delay_ms=ceiling), wait)

    def _poll_failed(
        self, watch: Watch, name: OperationName, exc: OperationsError, watched_ms: int
    ) -> _Again | Watch:
        watch = watch.but(polls=watch.polls + 1, last_error=exc.to_record())
        if exc.code in _SLOW_DOWN:
            return _Again(watch, self._within_watch(watched_ms, self._schedule.busy_wait()))
        errors = watch.errors + 1
        if errors < MAX_POLL_ERRORS:
            wait = self._within_watch(watched_ms, self._schedule.wait(watch.delay_ms))
            return _Again(watch.but(errors=errors), wait)
        text, blocks = messages.lost_track_message(name, exc)
        return _ending(watch, text, blocks, f"lost_track:{exc.code.name}", "watching stopped")

    def _timed_out(self, watch: Watch, name: OperationName, watched_ms: int) -> Watch:
        """The deadline, whatever Google answered last: its error if it failed, else
        "still running"."""
        error = OperationsError.from_record(watch.last_error, watch.account)
        if error is not None:
            text, blocks = messages.lost_track_message(name, error)
            return _ending(watch, text, blocks, f"lost_track:{error.code.name}", "watching stopped")
        text, blocks = messages.timeout_message(name, watched_ms / 1000)
        return _ending(watch, text, blocks, "timeout", "still running, watching stopped")

    def _within_watch(self, watched_ms: int, wait_ms: int) -> int:
        """A wait cut so the next step comes no later than the watch's deadline."""
        return max(0, min(wait_ms, self._timeout_ms - watched_ms))

    async def _within_deadline(self, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._google_seconds):
                return await call
        except TimeoutError:
            raise OperationsError(
                RpcCode.DEADLINE_EXCEEDED,
                f"the Operations API did not answer within {self._google_seconds:g} s",
            ) from None

    async def _keep_status(self, watch: Watch, name: OperationName, google_status: str) -> Watch:
        """One status message per watch, edited only when what it says changes; skipped
        from the first time Slack will not take it."""
        text, blocks = messages.status_message(name, google_status)
        if not watch.post_channel or watch.status_text in (text, STATUS_GONE):
            return watch
        key = posted_key(watch.id, "status")
        try:
            channel, ts = await self._poster.post(
                key, watch.post_channel, text, blocks, watch.thread_ts
            )
            if watch.status_text:  # it exists with other words
                await self._poster.update(channel, ts, text, blocks)
        except PostInProgress:
            return watch  # being posted elsewhere; this poll's news goes on without it
        except SlackPostFailed as failed:
            reason = failed.failure.reason
            log.warning("status message given up", extra={"watch": watch.id, "slack_error": reason})
            return watch.but(status_text=STATUS_GONE)
        return watch.but(status_text=text)

    # Stage "ending"

    async def _end(self, watch: Watch, name: OperationName) -> _Done:
        text, blocks = json.loads(watch.last_word)
        await self._deliver(watch, "final", text, blocks)
        await self._end_status(watch, name)
        await self._record_end(watch, watch.outcome)
        return _Done(watch)

    async def _end_status(self, watch: Watch, name: OperationName) -> None:
        posted = await self._poster.posted(posted_key(watch.id, "status"))
        if posted is None or watch.status_text == STATUS_GONE:
            return
        text, blocks = messages.status_ended(name, watch.summary)
        try:
            await self._poster.update(*posted, text, blocks)
        except SlackPostFailed as failed:
            reason = failed.failure.reason
            log.warning("status not closed", extra={"watch": watch.id, "slack_error": reason})

    async def _record_end(self, watch: Watch, outcome: str) -> None:
        await self._audit.record(
            "final_state", actor=watch.requester, operation=watch.operation,
            channel=watch.channel, outcome=outcome, acting_as=watch.account, polls=watch.polls,
        )  # fmt: skip

    # Where follow-ups go

    async def _deliver(self, watch: Watch, kind: str, text: str, blocks: messages.Blocks) -> None:
        """Post a follow-up in the watch's thread, else in the requester's DM, else into
        the audit stream and the log: each place tried once, within its budget."""
        places = [(posted_key(watch.id, kind), watch.post_channel, watch.thread_ts)]
        if not watch.post_channel.startswith("D"):  # not already the DM
            places.append((posted_key(watch.id, f"{kind}:dm"), watch.requester, ""))
        reason = "nowhere to post"
        for key, channel, thread_ts in places:
            if not channel:
                continue
            try:
                await self._poster.post(key, channel, text, blocks, thread_ts)
                return
            except SlackPostFailed as failed:
                reason = failed.failure.reason
                log.warning(
                    "follow-up not posted; trying the next place",
                    extra={"watch": watch.id, "kind": kind, "slack_error": reason},
                )
        await self._unheard(watch, kind, text, reason)

    async def _unheard(self, watch: Watch, kind: str, text: str, reason: str) -> None:
        """Slack took a message nowhere: it goes to the audit stream and the log, once."""
        key = posted_key(watch.id, f"{kind}:audit")
        if await self.store.recall(key) is not None:
            return
        log.error("message reached no one in Slack",
                  extra={"watch": watch.id, "kind": kind, "slack_error": reason})  # fmt: skip
        await self._audit.record(
            "undelivered", actor=watch.requester, operation=watch.operation,
            channel=watch.channel, outcome=reason, acting_as=watch.account, kind=kind, text=text,
        )  # fmt: skip
        await self.store.remember(key, reason)


def _ending(watch: Watch, text: str, blocks: messages.Blocks, outcome: str, summary: str) -> Watch:
    if watch.approver:  # a protected operation's last word names both people
        blocks = [*blocks, *messages.approved_by_blocks(watch.requester, watch.approver)]
    return watch.but(
        stage="ending", last_word=json.dumps([text, blocks]), outcome=outcome, summary=summary
    )


def _seconds_since(moment: float) -> float | None:
    """None before the first loop (0.0), never seconds since 1970."""
    return round(time.time() - moment, 3) if moment else None


def _percentile(values: list[int], q: int) -> int | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return int(statistics.quantiles(values, n=100, method="inclusive")[q - 1])


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
