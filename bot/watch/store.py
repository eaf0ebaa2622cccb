"""Watches in Redis: one per confirmed cancel, from the cancel request to the final state.

A watch is due at a time (a sorted set scored by milliseconds of Redis's own clock).
Workers claim due watches with a lease: the claim moves the score to now + lease, so a
worker that dies leaves its watches to fall due again and another worker takes them
(at-least-once). Each claim gets a token; only the holder of the current token may
save or finish the watch, so a worker that lost its lease cannot undo newer work.

Every key carries the hash tag {cancel-op}: each script's keys share one slot, so the
same scripts run on Redis Cluster.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, replace
from typing import Any

import redis.asyncio as redis

PREFIX = "{cancel-op}"
DUE_KEY = f"{PREFIX}:due"  # sorted set: watch id -> due time (ms, Redis clock)
WATCHES_KEY = f"{PREFIX}:watches"  # hash: watch id -> Watch as JSON
CLAIMS_KEY = f"{PREFIX}:claims"  # hash: watch id -> token of the current claim
CLAIM_SEQ_KEY = f"{PREFIX}:claim-seq"  # counter that makes claim tokens unique
# Saves in one script call at most: keeps each call to a few milliseconds of Redis's time.
SAVE_BATCH = 256


def active_key(operation: str) -> str:
    """Hash {watch, requester, link} of the watch that owns an operation's cancel."""
    return f"{PREFIX}:active:{operation}"


def submission_key(submission_id: str) -> str:
    return f"{PREFIX}:submission:{submission_id}"


def posted_key(watch_id: str, kind: str) -> str:
    """Idempotency key of one post a watch makes: 'pending:<token>' while posting, then ts."""
    return f"{PREFIX}:posted:{watch_id}:{kind}"


# Submitting must be atomic and answer a repeat as it answered the first time: two
# engineers (or replicas) confirming the same operation at once end with one watch, the
# loser learns who won, and a resend of this very script (redis-py retries a call whose
# answer timed out) finds its own submission and gets the same answer, not "duplicate".
_SUBMIT = """
local seen = redis.call('GET', KEYS[4])
if seen then
  local kind, watch, requester = string.match(seen, '^(%a+)|([^|]*)|(.*)$')
  local link = ''
  if redis.call('HGET', KEYS[3], 'watch') == watch then
    link = redis.call('HGET', KEYS[3], 'link') or ''
  end
  return {kind, watch, requester, link}
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  local owner = redis.call('HMGET', KEYS[3], 'watch', 'requester', 'link')
  local watch, requester = owner[1] or '', owner[2] or ''
  redis.call('SET', KEYS[4], 'joined|' .. watch .. '|' .. requester, 'EX', ARGV[5])
  return {'joined', watch, requester, owner[3] or ''}
end
redis.call('SET', KEYS[4], 'queued|' .. ARGV[1] .. '|' .. ARGV[3], 'EX', ARGV[5])
redis.call('HSET', KEYS[3], 'watch', ARGV[1], 'requester', ARGV[3], 'link', '')
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], t[1] * 1000 + math.floor(t[2] / 1000), ARGV[1])
return {'queued', ARGV[1], ARGV[3], ''}
"""

# Claim must be atomic: reading due ids and pushing them past the lease in one step is
# what keeps two workers from claiming the same watch for the same period.
_CLAIM = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, ARGV[1])
local result = {now}
for i = 1, #due, 2 do
  local token = tostring(redis.call('INCR', KEYS[3]))
  redis.call('ZADD', KEYS[1], now + ARGV[2], due[i])
  redis.call('HSET', KEYS[2], due[i], token)
  table.insert(result, due[i])
  table.insert(result, due[i + 1])
  table.insert(result, token)
  table.insert(result, redis.call('HGET', KEYS[4], due[i]) or '')
end
local next_due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
table.insert(result, 2, next_due[2] or -1)
table.insert(result, 3, redis.call('ZCOUNT', KEYS[1], '-inf', now))
return result
"""

# Save and finish check the token and write in one step, so a worker whose lease ran
# out (and whose watch another worker now holds) changes nothing. One call saves every
# step that ended since the last call: ARGV holds (id, token, watch, delay) per save.
_SAVE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local saved = {}
for i = 1, #ARGV, 4 do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 2])
    redis.call('ZADD', KEYS[1], now + ARGV[i + 3], ARGV[i])
    table.insert(saved, 1)
  else
    table.insert(saved, 0)
  end
end
return saved
"""

# Renewal checks each token too: a worker keeps a lease only while it still holds it.
# One call renews every watch a worker holds; it returns the tokens of the claims another
# worker holds now (tokens, not watch ids: the same worker may hold a newer claim of the
# same watch, which must go on). A claim that is gone was released by its own step
# (saved or finished) while the renewal was on its way: not lost.
_RENEW = """
local t = redis.call('TIME')
local due = t[1] * 1000 + math.floor(t[2] / 1000) + ARGV[1]
local lost = {}
for i = 2, #ARGV, 2 do
  local holder = redis.call('HGET', KEYS[2], ARGV[i])
  if holder == ARGV[i + 1] then
    redis.call('ZADD', KEYS[1], 'XX', due, ARGV[i])
  elseif holder then
    table.insert(lost, ARGV[i + 1])
  end
end
return lost
"""

_FINISH = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('HGET', KEYS[4], 'watch') == ARGV[1] then redis.call('DEL', KEYS[4]) end
return 1
"""

# Hand-back checks the token too: a watch another worker took over meanwhile stays its own.
# Due now and unclaimed, a handed-back watch goes to whichever worker claims next.
_HAND_BACK = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('ZADD', KEYS[1], 'XX', now, ARGV[i])
  end
end
return 1
"""

# A step records its progress mid-way (before posting what it learnt), so a step cut short
# never asks Google the same question again; only the current claim's holder may.
_CHECKPOINT = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
"""

# Release deletes a hold (or a post's pending mark) only while it is still ours: one that
# expired and was taken by another step stays that step's.
RELEASE_IF_OURS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_SET_LINK = """
if redis.call('HGET', KEYS[1], 'watch') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'link', ARGV[2])
end
return 1
"""


@dataclass(frozen=True)
class Watch:
    """Everything a worker needs to carry a cancel on, whoever started it."""

    id: str
    operation: str
    requester: str
    channel: str  # where the request came from
    origin_thread_ts: str  # the alert's ts when started from a message, else ""
    started_ms: int
    # "cancel": send the cancel, then post; "watch": poll until done or the deadline;
    # "ending": the last word is known (last_word) and only its posts remain
    stage: str = "cancel"
    post_channel: str = ""  # where the bot's messages actually went (may be a DM)
    thread_ts: str = ""  # the thread of follow-ups
    polls: int = 0
    errors: int = 0  # consecutive failed polls
    crashes: int = 0  # consecutive steps that crashed
    delay_ms: int = 0  # the current backoff ceiling
    status_text: str = ""  # what the status message says now; STATUS_GONE once it cannot be
    last_error: str = ""  # "CODE|message" of the latest failed poll, cleared by a good one
    last_word: str = ""  # JSON [text, blocks] of the final follow-up, once known
    outcome: str = ""  # the final state for the audit, once known
    summary: str = ""  # the final state in a few words, for the status message
    # The service account every Google call of the watch acts as; "" for the bot's own
    # credentials (and for watches stored before accounts were kept).
    account: str = ""
    approver: str = ""  # who approved the cancel, when the operation needed approval

    def to_json(self) -> str:
        # Its fields are flat strings and numbers: vars() is the same dict as asdict(),
        # without the recursive copy that was a twentieth of a worker's CPU.
        return json.dumps(vars(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Watch:
        return cls(**json.loads(text))

    def but(self, **changes: Any) -> Watch:
        return replace(self, **changes)


@dataclass(frozen=True)
class Claim:
    watch_id: str
    token: str
    due_ms: int
    watch_json: str  # the watch as stored when claimed ("" if it vanished)


@dataclass(frozen=True)
class ClaimBatch:
    now_ms: int
    next_due_ms: int | None  # earliest due time left after this claim, if any
    backlog: int  # watches due and still unclaimed after this claim
    claims: list[Claim]


@dataclass(frozen=True)
class Submission:
    """What became of one modal submission, the same however often it is repeated."""

    queued: bool  # True: a watch exists for it; False: it joins another's watch
    watch_id: str
    requester: str  # who asked first: the submitter, or the owner of the joined watch
    link: str  # the joined watch's thread, once posted


class WatchStore:
    def __init__(self, client: redis.Redis, active_ttl_ms: int) -> None:
        self._redis = client
        self._active_ttl_ms = active_ttl_ms
        # Side-effect records outlive any watch that could still repeat them.
        self.record_ttl_seconds = active_ttl_ms // 1000 + 86_400
        self._submit = client.register_script(_SUBMIT)
        self._claim = client.register_script(_CLAIM)
        self._save = client.register_script(_SAVE)
        self._finish = client.register_script(_FINISH)
        self._renew = client.register_script(_RENEW)
        self._set_link = client.register_script(_SET_LINK)
        self._hand_back = client.register_script(_HAND_BACK)
        self._checkpoint = client.register_script(_CHECKPOINT)
        self._release = client.register_script(RELEASE_IF_OURS)
        # Saves wait here while one call is on its way, then go together in the next: one
        # Redis call per batch instead of one per poll, the poller's largest CPU cost.
        self._unsaved: list[tuple[list[str | int], asyncio.Future[bool]]] = []
        self._saving: asyncio.Task[None] | None = None

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    async def submit(self, submission_id: str, watch: Watch, ttl_seconds: int) -> Submission:
        """Queue the watch for a submission, unless the operation already has one."""
        kind, watch_id, requester, link = await self._submit(
            keys=[DUE_KEY, WATCHES_KEY, active_key(watch.operation), submission_key(submission_id)],
            args=[watch.id, watch.to_json(), watch.requester, self._active_ttl_ms, ttl_seconds],
        )
        return Submission(kind == "queued", str(watch_id), str(requester), str(link))

    async def enqueue(self, watch: Watch) -> Submission:
        """Add a watch due now, as its own submission (tools and benchmarks)."""
        return await self.submit(watch.id, watch, self.record_ttl_seconds)

    async def claim(self, limit: int, lease_ms: int) -> ClaimBatch:
        raw = await self._claim(
            keys=[DUE_KEY, CLAIMS_KEY, CLAIM_SEQ_KEY, WATCHES_KEY], args=[limit, lease_ms]
        )
        now_ms, next_due, backlog = int(raw[0]), int(float(raw[1])), int(raw[2])
        claims = [
            Claim(str(raw[i]), str(raw[i + 2]), int(float(raw[i + 1])), str(raw[i + 3]))
            for i in range(3, len(raw), 4)
        ]
        return ClaimBatch(now_ms, None if next_due < 0 else next_due, backlog, claims)

    async def save(self, claim: Claim, watch: Watch, delay_ms: int) -> bool:
        """Store the watch and make it due again after delay_ms; False if the claim was lost."""
        saved: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        args: list[str | int] = [claim.watch_id, claim.token, watch.to_json(), max(0, delay_ms)]
        self._unsaved.append((args, saved))
        if self._saving is None:
            self._saving = asyncio.create_task(self._save_unsaved())
        return await saved

    async def _save_unsaved(self) -> None:
        batch: list[tuple[list[str | int], asyncio.Future[bool]]] = []
        try:
            while self._unsaved:
                batch, self._unsaved = self._unsaved[:SAVE_BATCH], self._unsaved[SAVE_BATCH:]
                try:
                    results = await self._save(
                        keys=[DUE_KEY, CLAIMS_KEY, WATCHES_KEY],
                        args=[arg for args, _ in batch for arg in args],
                    )
                    for (_, saved), result in zip(batch, results, strict=True):
                        if not saved.done():  # a step cancelled meanwhile no longer waits
                            saved.set_result(bool(result))
                except Exception as exc:  # each step handles it as it did its own save's
                    for _, saved in batch:
                        if not saved.done():
                            saved.set_exception(exc)
        except asyncio.CancelledError:  # the loop is closing: no step waits for ever
            for _, saved in [*batch, *self._unsaved]:
                saved.cancel()
            self._unsaved = []
            raise
        finally:
            self._saving = None

    async def renew(self, claims: list[Claim], lease_ms: int) -> set[str]:
        """Keep these claims for another lease; returns the tokens of those another worker
        holds now."""
        args: list[str | int] = [lease_ms]
        for claim in claims:
            args += [claim.watch_id, claim.token]
        lost = await self._renew(keys=[DUE_KEY, CLAIMS_KEY], args=args)
        return {str(token) for token in lost}

    async def finish(self, claim: Claim, watch: Watch) -> bool:
        return bool(
            await self._finish(
                keys=[DUE_KEY, CLAIMS_KEY, WATCHES_KEY, active_key(watch.operation)],
                args=[claim.watch_id, claim.token],
            )
        )

    async def hand_back(self, claims: list[Claim]) -> None:
        """Release claims whose steps will not finish here: their watches fall due now."""
        args = [part for claim in claims for part in (claim.watch_id, claim.token)]
        await self._hand_back(keys=[DUE_KEY, CLAIMS_KEY], args=args)

    async def checkpoint(self, claim: Claim, watch: Watch) -> bool:
        """Store the watch mid-step, keeping the claim; False if the claim was lost."""
        return bool(
            await self._checkpoint(
                keys=[CLAIMS_KEY, WATCHES_KEY], args=[claim.watch_id, claim.token, watch.to_json()]
            )
        )

    async def set_link(self, watch: Watch, link: str) -> None:
        await self._set_link(keys=[active_key(watch.operation)], args=[watch.id, link])

    async def hold(self, key: str, token: str, ttl_ms: int) -> bool:
        """Take `key` for a side effect in progress, for `ttl_ms`; False if someone else
        holds it. A resend of the SET (redis-py retries after a timeout) finds our own
        token and still holds."""
        if await self._redis.set(key, token, nx=True, px=ttl_ms):
            return True
        return str(await self._redis.get(key) or "") == token

    async def release(self, key: str, token: str) -> None:
        """Give up a hold taken with `token`, so the next step need not wait it out."""
        await self._release(keys=[key], args=[token])

    async def recall(self, key: str) -> str | None:
        value = await self._redis.get(key)
        return None if value is None else str(value)

    async def remember(self, key: str, value: str) -> None:
        await self._redis.set(key, value, ex=self.record_ttl_seconds)
