"""Approval requests in Redis: one record per request, one pending request per operation,
and a sorted set of what falls due (a request's expiry, or a decision's unfinished effects).

Every decision goes through one script, so double clicks, Slack's retries, replicas and two
approvers clicking at the same moment end with exactly one outcome. Keys carry the hash tag
{cancel-op}, like the watches', so each script's keys share one slot on Redis Cluster.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from typing import Any, Literal

import redis.asyncio as redis

from bot.watch.store import PREFIX

DUE_KEY = f"{PREFIX}:approval-due"  # sorted set: request id -> due time (ms, Redis clock)
# After its expiry, a record is kept this long for `status`, late clicks and the audit.
RECORD_TTL_SECONDS = 7 * 86_400
# The pending mark outlives the expiry by this much, so a request no driver expires (no
# poller running) still frees its operation.
PENDING_GRACE_MS = 60_000

# "withdrawn": Slack would not take the request's message, so nobody could decide it.
State = Literal["pending", "approved", "denied", "expired", "withdrawn"]


def record_key(request_id: str) -> str:
    return f"{PREFIX}:approval:{request_id}"


def pending_key(operation: str) -> str:
    """The id of the operation's pending request, while there is one."""
    return f"{PREFIX}:approval-pending:{operation}"


def view_key(view_id: str) -> str:
    """What one modal submission opened or joined: 'opened|id' or 'joined|id'."""
    return f"{PREFIX}:approval-view:{view_id}"


def posted_key(request_id: str) -> str:
    """Idempotency key of the request's message in Slack (see OncePoster)."""
    return f"{PREFIX}:posted:approval:{request_id}"


# Opening must be atomic: two engineers (or a resend of the same submission) asking at
# once end with one pending request, and a repeat gets the first answer. The request falls
# due first when its message must be posted by (`post_within`), so a process that dies
# before posting leaves the post to the driver; once posted, it falls due at its expiry.
_OPEN = """
local seen = redis.call('GET', KEYS[1])
if seen then
  local kind, id = string.match(seen, '^(%a+)|(.*)$')
  return {kind, id, 0}
end
local pending = redis.call('GET', KEYS[2])
if pending then
  redis.call('SET', KEYS[1], 'joined|' .. pending, 'EX', ARGV[3])
  return {'joined', pending, 1}
end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local expires = now + tonumber(ARGV[2])
redis.call('HSET', KEYS[4], 'state', 'pending', 'created_ms', now, 'expires_ms', expires,
           unpack(ARGV, 6))
redis.call('EXPIRE', KEYS[4], ARGV[3])
redis.call('SET', KEYS[2], ARGV[1], 'PX', tonumber(ARGV[2]) + tonumber(ARGV[4]))
redis.call('ZADD', KEYS[3], math.min(expires, now + tonumber(ARGV[5])), ARGV[1])
redis.call('SET', KEYS[1], 'opened|' .. ARGV[1], 'EX', ARGV[3])
return {'opened', ARGV[1], 1}
"""

# The one decision: checked and written in one step against Redis's own clock. A click
# after the expiry is "too late" even before the driver has expired it; an expiry before
# its time changes nothing. The decided request falls due again after `finish_within`,
# so if whoever decided dies before carrying the decision out, the driver does it.
_DECIDE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing', '', ''} end
local f = redis.call('HMGET', KEYS[1], 'state', 'decided_by', 'expires_ms')
if f[1] ~= 'pending' then return {'already', f[1] or '', f[2] or ''} end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local due = now >= tonumber(f[3])
if ARGV[2] == 'expired' then
  if not due then return {'not_due', 'pending', ''} end
elseif due then
  return {'too_late', 'pending', ''}
end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'decided_by', ARGV[3], 'decided_ms', now)
if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'account', ARGV[6]) end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
return {'decided', ARGV[2], ARGV[3]}
"""

# Only a pending request waits for its expiry; a decided one stays due for its effects.
_DUE_AT_EXPIRY = """
local f = redis.call('HMGET', KEYS[1], 'state', 'expires_ms')
if f[1] ~= 'pending' then return 0 end
redis.call('ZADD', KEYS[2], 'XX', f[2], ARGV[1])
return 1
"""

# Claiming pushes each due request past a lease in the same step that reads it, so two
# replicas never carry out the same request's expiry at once.
_CLAIM = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])
for _, id in ipairs(due) do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id)
end
local next_due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {now, next_due[2] or -1, unpack(due)}
"""


@dataclass(frozen=True)
class ApprovalRequest:
    """One request for a second person's approval of one cancel, as kept in Redis."""

    id: str
    operation: str
    requester: str
    channel: str
    thread_ts: str  # the alert's ts when started from a message, else ""
    reason: str
    approvers: str  # the approvers as written in the allowlist, space-separated
    # The service account the requester's grant acts as when asked ("": the bot's own).
    account: str = ""
    state: State = "pending"
    created_ms: int = 0  # Redis's clock
    expires_ms: int = 0
    decided_by: str = ""
    decided_ms: int = 0
    link: str = ""  # the request message's permalink, once posted

    def thread_of(self, posted_ts: str) -> str:
        """The thread the cancel's follow-ups go to: the alert's, else the request's own."""
        return self.thread_ts or posted_ts


_INTS = frozenset({"created_ms", "expires_ms", "decided_ms"})
_STORED = tuple(f.name for f in fields(ApprovalRequest))


@dataclass(frozen=True)
class Opened:
    opened: bool  # False: it joins the operation's pending request
    request_id: str
    first_time: bool  # False for a repeat of the same submission


@dataclass(frozen=True)
class Verdict:
    """What a decision came to: 'decided' (this call decided), 'already' (decided before),
    'too_late' (past its expiry), 'not_due' or 'missing'."""

    outcome: str
    state: str
    decided_by: str


@dataclass(frozen=True)
class DueBatch:
    now_ms: int
    next_due_ms: int | None
    request_ids: list[str]


class ApprovalStore:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._open = client.register_script(_OPEN)
        self._decide = client.register_script(_DECIDE)
        self._claim = client.register_script(_CLAIM)
        self._due_at_expiry = client.register_script(_DUE_AT_EXPIRY)

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    async def open(
        self, submission_id: str, request: ApprovalRequest, wait_ms: int, post_within_ms: int
    ) -> Opened:
        """Record a pending request for a submission, unless its operation has one."""
        written = {
            name: str(getattr(request, name))
            for name in ("id", "operation", "requester", "channel", "thread_ts", "reason",
                         "approvers", "account")
        }  # fmt: skip
        kind, request_id, fresh = await self._open(
            keys=[view_key(submission_id), pending_key(request.operation), DUE_KEY,
                  record_key(request.id)],
            args=[request.id, wait_ms, RECORD_TTL_SECONDS, PENDING_GRACE_MS, post_within_ms,
                  *(part for item in written.items() for part in item)],
        )  # fmt: skip
        return Opened(kind == "opened", str(request_id), bool(int(fresh)))

    async def load(self, request_id: str) -> ApprovalRequest | None:
        if not request_id.isalnum():  # a button's value is untrusted: no key built from junk
            return None
        raw = await self._redis.hgetall(record_key(request_id))
        if not raw:
            return None
        values: dict[str, Any] = {
            k: (int(v) if k in _INTS else str(v)) for k, v in raw.items() if k in _STORED
        }
        return ApprovalRequest(**values)

    async def pending_for(self, operation: str) -> ApprovalRequest | None:
        request_id = await self._redis.get(pending_key(operation))
        return None if request_id is None else await self.load(str(request_id))

    async def decide(
        self,
        request: ApprovalRequest,
        state: State,
        actor: str,
        finish_within_ms: int,
        account: str | None = None,
    ) -> Verdict:
        """`account`: the service account the requester's grant acts as now, written with
        an approval so whoever carries it out acts as it (None: keep the one from asking)."""
        outcome, decided, by = await self._decide(
            keys=[record_key(request.id), pending_key(request.operation), DUE_KEY],
            args=[request.id, state, actor, finish_within_ms, int(account is not None),
                  account or ""],
        )  # fmt: skip
        return Verdict(str(outcome), str(decided), str(by))

    async def claim_due(self, limit: int, lease_ms: int) -> DueBatch:
        raw = await self._claim(keys=[DUE_KEY], args=[limit, lease_ms])
        next_due = int(float(raw[1]))
        return DueBatch(int(raw[0]), None if next_due < 0 else next_due, [str(i) for i in raw[2:]])

    async def due_at_expiry(self, request_id: str) -> None:
        """The request's message is posted: it falls due next at its expiry, if pending."""
        await self._due_at_expiry(keys=[record_key(request_id), DUE_KEY], args=[request_id])

    async def first_time(self, request_id: str, what: str) -> bool:
        """True once per request and `what` (an audit entry, say), however often asked."""
        return bool(await self._redis.hsetnx(record_key(request_id), f"done:{what}", "1"))

    async def finished(self, request_id: str) -> None:
        """The request's decision is carried out: nothing more falls due for it."""
        await self._redis.zrem(DUE_KEY, request_id)

    async def set_link(self, request_id: str, link: str) -> None:
        await self._redis.hset(record_key(request_id), "link", link)
