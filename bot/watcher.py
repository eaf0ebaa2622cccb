"""The poller: carries each confirmed cancel from the request to the operation's final state.

A watch goes through two stages, each run by whichever worker claims it:
  cancel  post who asked for what, send the cancel, post Google's answer;
  watch   poll the operation with backoff, keep one status message current, and post the
          final state (cancelled, completed anyway, failed, or still running at timeout).
Every side effect has an idempotency key, so a step retried after a crash, a lease that
ran out, or a Slack outage repeats nothing that already happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
from dataclasses import dataclass, field

import redis.asyncio as redis
from slack_sdk.errors import SlackApiError

from bot import messages, metrics
from bot.audit import Audit
from bot.handover import finish_or_hand_back
from bot.names import OperationName, parse_operation_name
from bot.operations import OperationsClient, OperationsError
from bot.polling import PollSchedule
from bot.rpc import RpcCode
from bot.slack_posts import CANNOT_POST, OncePoster, PostInProgress, slack_error
from bot.watch_store import Claim, Watch, WatchStore, posted_key

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
# A step that failed on Slack or Redis is tried again this soon.
RETRY_STEP_MS = 5_000
# A status message appears only for operations still running after this long.
STATUS_AFTER_MS = 30_000
# Logged liveness figures cover this long.
REPORT_EVERY_SECONDS = 30.0
_SLOW_DOWN = frozenset({RpcCode.RESOURCE_EXHAUSTED, RpcCode.UNAVAILABLE})


@dataclass(frozen=True)
class _Again:
    watch: Watch
    delay_ms: int


@dataclass(frozen=True)
class _Done:
    watch: Watch


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
        self._wake = asyncio.Event()
        self._tasks: dict[asyncio.Task[None], Claim] = {}
        self.liveness = Liveness()

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    def wake(self) -> None:
        """A watch was just added here: claim it now rather than at the next idle tick."""
        self._wake.set()

    # Lifecycle: run until stopped, then let in-flight steps end.

    async def run(self, stop: asyncio.Event) -> None:
        helpers = [asyncio.create_task(self._report(stop)), asyncio.create_task(self._renew(stop))]
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
                if claim.watch_id in lost and not task.done():
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
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), wait_ms / 1000)

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
                step = await self._step(watch, now_ms)
            except PostInProgress:
                step = _Again(watch, self._lease_ms)
            except (SlackApiError, OSError) as exc:
                log.warning("watch step failed; retrying", extra={"error": _describe(exc)})
                step = _Again(watch, RETRY_STEP_MS)
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

    async def _step(self, watch: Watch, now_ms: int) -> _Again | _Done:
        name = parse_operation_name(watch.operation)
        if watch.stage == "cancel":
            return await self._send_cancel(watch, name)
        return await self._poll(watch, name, now_ms)

    # Stage "cancel"

    async def _send_cancel(self, watch: Watch, name: OperationName) -> _Again | _Done:
        channel, thread_ts = await self._post_request(watch, name)
        watch = watch.but(post_channel=channel, thread_ts=thread_ts)
        if channel:
            await self.store.set_link(watch, await self._poster.permalink(channel, thread_ts))
        error = await self._cancel_once(watch, name)
        text, blocks = messages.cancel_answer(error)
        if channel:
            await self._poster.post(
                posted_key(watch.id, "answer"), channel, text, blocks, thread_ts
            )
        if error is not None:
            return _Done(watch)
        ceiling = self._schedule.first_ceiling()
        return _Again(watch.but(stage="watch", delay_ms=ceiling), self._schedule.wait(ceiling))

    async def _cancel_once(self, watch: Watch, name: OperationName) -> OperationsError | None:
        """Send the cancel unless this watch already did; the answer is kept with the key."""
        key = posted_key(watch.id, "cancel")
        sent = await self.store.recall(key)
        if sent is None:
            try:
                await self._operations.cancel(name)
                outcome = "OK|"
            except OperationsError as exc:
                outcome = f"{exc.code.name}|{exc.message}"
            await self.store.remember(key, outcome)
            code, _, message = outcome.partition("|")
            metrics.CANCELS.labels(code).inc()
            await self._audit.record(
                "cancel_sent", actor=watch.requester, operation=watch.operation,
                channel=watch.channel, outcome=code, google_message=message,
            )  # fmt: skip
            sent = outcome
        code, _, message = sent.partition("|")
        return None if code == "OK" else OperationsError(RpcCode[code], message)

    async def _post_request(self, watch: Watch, name: OperationName) -> tuple[str, str]:
        """Post where the request came from; if the bot may not, in the requester's DM."""
        text, blocks = messages.request_message(name, watch.requester)
        key = posted_key(watch.id, "request")
        try:
            channel, ts = await self._poster.post(
                key, watch.channel, text, blocks, watch.origin_thread_ts
            )
            return channel, watch.origin_thread_ts or ts
        except SlackApiError as exc:
            reason = slack_error(exc)
            if reason not in CANNOT_POST:
                raise
        notice = messages.cannot_post_text(watch.channel, reason)
        dm, ts = await self._poster.post(posted_key(watch.id, "dm"), watch.requester, notice, None)
        await self._poster.post(key, dm, text, blocks, ts)
        return dm, ts

    # Stage "watch"

    async def _poll(self, watch: Watch, name: OperationName, now_ms: int) -> _Again | _Done:
        self.liveness.polls += 1
        try:
            operation = await self._polling.get(name)
        except OperationsError as exc:
            if exc.code in _SLOW_DOWN:
                return _Again(watch.but(polls=watch.polls + 1), self._schedule.busy_wait())
            errors = watch.errors + 1
            if errors < MAX_POLL_ERRORS:
                ceiling = watch.delay_ms
                return _Again(watch.but(errors=errors), self._schedule.wait(ceiling))
            text, blocks = messages.lost_track_message(name, exc)
            await self._follow_up(watch, "final", text, blocks)
            await self._record_end(watch, f"lost_track:{exc.code.name}")
            return _Done(watch)
        watch = watch.but(polls=watch.polls + 1, errors=0)
        if operation.done:
            summary, text, blocks = messages.final_message(name, operation)
            await self._follow_up(watch, "final", text, blocks)
            await self._end_status(watch, name, summary)
            await self._record_end(watch, summary)
            return _Done(watch)
        watched_ms = now_ms - watch.started_ms
        if watched_ms >= self._timeout_ms:
            text, blocks = messages.timeout_message(name, watched_ms / 1000)
            await self._follow_up(watch, "final", text, blocks)
            await self._end_status(watch, name, "still running, watching stopped")
            await self._record_end(watch, "timeout")
            return _Done(watch)
        if watched_ms >= STATUS_AFTER_MS:
            watch = await self._keep_status(watch, name, operation.status_message)
        ceiling = self._schedule.next_ceiling(watch.delay_ms or self._schedule.first_ceiling())
        wait = min(self._schedule.wait(ceiling), self._timeout_ms - watched_ms)
        return _Again(watch.but(delay_ms=ceiling), wait)

    async def _keep_status(self, watch: Watch, name: OperationName, google_status: str) -> Watch:
        """One status message per watch, edited only when what it says changes."""
        text, blocks = messages.status_message(name, google_status)
        if not watch.post_channel or watch.status_text == text:
            return watch
        key = posted_key(watch.id, "status")
        channel, ts = await self._poster.post(
            key, watch.post_channel, text, blocks, watch.thread_ts
        )
        if watch.status_text:  # it exists with other words
            await self._poster.update(channel, ts, text, blocks)
        return watch.but(status_text=text)

    async def _end_status(self, watch: Watch, name: OperationName, summary: str) -> None:
        posted = await self._poster.posted(posted_key(watch.id, "status"))
        if posted is not None:
            text, blocks = messages.status_ended(name, summary)
            await self._poster.update(*posted, text, blocks)

    async def _follow_up(self, watch: Watch, kind: str, text: str, blocks: messages.Blocks) -> None:
        if watch.post_channel:
            await self._poster.post(
                posted_key(watch.id, kind), watch.post_channel, text, blocks, watch.thread_ts
            )

    async def _record_end(self, watch: Watch, outcome: str) -> None:
        await self._audit.record(
            "final_state", actor=watch.requester, operation=watch.operation,
            channel=watch.channel, outcome=outcome, polls=watch.polls,
        )  # fmt: skip


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return f"slack:{slack_error(exc)}"
    return type(exc).__name__


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
        await asyncio.wait_for(stop.wait(), seconds)
