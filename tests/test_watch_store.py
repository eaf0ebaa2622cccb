"""Leases and submissions in Redis, on the real scripts: what a renewal reports as lost,
and what a repeated submission is told."""

from __future__ import annotations

import asyncio
from typing import cast

import aiohttp
import redis.asyncio as aredis
from slack_sdk.web.async_client import AsyncWebClient

from bot.google.credentials import AnonymousTokens
from bot.google.operations import OperationsClient
from bot.policy.audit import Audit
from bot.slack.posts import OncePoster
from bot.watch.poller import Watcher
from bot.watch.schedule import PollSchedule
from bot.watch.store import DUE_KEY, SAVE_BATCH, WATCHES_KEY, Watch, WatchStore
from tests.conftest import ONCALL

NAME = "projects/prod-1/locations/global/operations/op-lease"


def test_renewal_reports_a_watch_another_worker_took_not_one_its_own_step_released(
    redis_url: str,
) -> None:
    async def scenario() -> tuple[set[str], set[str], set[str]]:
        client = aredis.Redis.from_url(redis_url, decode_responses=True)
        store = WatchStore(client, active_ttl_ms=3_600_000)
        watch = Watch(store.new_id(), NAME, ONCALL, "C0CHANNEL", "", 0)
        await store.enqueue(watch)
        [mine] = (await store.claim(10, lease_ms=60_000)).claims
        held = await store.renew([mine], lease_ms=60_000)
        assert await store.save(mine, watch, delay_ms=0)  # the step ends, racing the renewal
        released = await store.renew([mine], lease_ms=60_000)
        [again] = (await store.claim(10, lease_ms=1)).claims  # due again at once
        await asyncio.sleep(0.01)  # that lease runs out: another worker takes the watch
        [theirs] = (await store.claim(10, lease_ms=60_000)).claims
        assert theirs.token != again.token
        taken = await store.renew([again], lease_ms=60_000)
        # The lost claim's token, not the watch id: a newer claim of the same watch by
        # the same worker must not be cancelled with it.
        assert taken == {again.token}
        await client.aclose()
        return held, released, taken

    held, released, taken = asyncio.run(scenario())
    assert held == set()
    assert released == set()  # not "lost": nobody else has it
    assert len(taken) == 1


def test_a_submission_sent_again_gets_its_first_answer_and_another_joins_the_first_watch(
    redis_url: str,
) -> None:
    async def scenario() -> None:
        client = aredis.Redis.from_url(redis_url, decode_responses=True)
        store = WatchStore(client, active_ttl_ms=3_600_000)
        mine = Watch(store.new_id(), NAME, ONCALL, "C0CHANNEL", "", 0)
        first = await store.submit("view-1", mine, ttl_seconds=60)
        # As redis-py resends a script whose answer timed out: same id, a new watch object.
        again = await store.submit("view-1", mine.but(id=store.new_id()), ttl_seconds=60)
        theirs = Watch(store.new_id(), NAME, "U0OTHER", "C0CHANNEL", "", 0)
        joined = await store.submit("view-2", theirs, ttl_seconds=60)
        watches = await client.hkeys(WATCHES_KEY)
        await client.aclose()
        assert first.queued and again == first and first.watch_id == mine.id
        assert watches == [mine.id]
        assert not joined.queued
        assert (joined.watch_id, joined.requester) == (mine.id, ONCALL)

    asyncio.run(scenario())


def test_a_lost_lease_stops_only_its_own_step_not_a_newer_step_of_the_same_watch(
    redis_url: str,
) -> None:
    async def scenario() -> tuple[bool, bool]:
        client = aredis.Redis.from_url(redis_url, decode_responses=True)
        store = WatchStore(client, active_ttl_ms=3_600_000)
        http = aiohttp.ClientSession()
        google = OperationsClient(http, "http://127.0.0.1:9/v1", AnonymousTokens())
        poster = OncePoster(AsyncWebClient(), client, lease_ms=300, ttl_seconds=60)
        watcher = Watcher(store, poster, google, google, Audit(client), PollSchedule(),
                          watch_timeout_ms=60_000, lease_ms=300)  # fmt: skip
        await store.enqueue(Watch(store.new_id(), NAME, ONCALL, "C0CHANNEL", "", 0))
        [old] = (await store.claim(10, lease_ms=1)).claims
        # The old step is still running when its lease runs out (Redis was unreachable,
        # say) and the same worker claims the watch again for a newer step.
        await asyncio.sleep(0.01)
        [new] = (await store.claim(10, lease_ms=60_000)).claims
        old_step = asyncio.create_task(asyncio.sleep(30))
        new_step = asyncio.create_task(asyncio.sleep(30))
        watcher._tasks.update({old_step: old, new_step: new})
        stop = asyncio.Event()
        renewing = asyncio.create_task(watcher._renew(stop))
        await asyncio.wait([old_step], timeout=10)
        stop.set()
        await renewing
        cancelled = old_step.cancelled(), new_step.cancelled()
        new_step.cancel()
        await http.close()
        await client.aclose()
        return cancelled

    old_cancelled, new_cancelled = asyncio.run(scenario())
    assert old_cancelled
    assert not new_cancelled


def test_saves_that_end_together_each_get_their_own_answer_and_a_lost_claim_changes_nothing(
    redis_url: str,
) -> None:
    async def scenario() -> None:
        client = aredis.Redis.from_url(redis_url, decode_responses=True)
        store = WatchStore(client, active_ttl_ms=3_600_000)
        lost_watch = Watch(store.new_id(), NAME, ONCALL, "C0CHANNEL", "", 0)
        await store.enqueue(lost_watch)
        [lost] = (await store.claim(10, lease_ms=1)).claims
        await asyncio.sleep(0.01)  # that lease runs out: another worker takes the watch
        [theirs] = (await store.claim(10, lease_ms=60_000)).claims
        # More steps than one script call saves, so the saves go in several calls.
        watches = [Watch(store.new_id(), f"{NAME}-{i}", ONCALL, "C0CHANNEL", "", 0)
                   for i in range(SAVE_BATCH + 44)]  # fmt: skip
        for watch in watches:
            await store.enqueue(watch)
        claims = {c.watch_id: c for c in (await store.claim(1000, lease_ms=60_000)).claims}
        assert len(claims) == len(watches)
        answers = await asyncio.gather(
            store.save(lost, lost_watch.but(polls=7), delay_ms=0),
            *(store.save(claims[w.id], w.but(polls=1), delay_ms=3_600_000) for w in watches),
        )
        stored = {str(k): str(v) for k, v in (await client.hgetall(WATCHES_KEY)).items()}
        scores = await client.zrange(DUE_KEY, 0, -1, withscores=True)
        due = dict(cast(list[tuple[str, float]], scores))
        await client.aclose()
        assert answers == [False] + [True] * len(watches)
        assert Watch.from_json(stored[lost_watch.id]).polls == 0  # the other worker's watch
        assert due[lost_watch.id] >= theirs.due_ms + 60_000  # still under the other's lease
        assert all(Watch.from_json(stored[w.id]).polls == 1 for w in watches)
        assert min(due[w.id] for w in watches) > max(c.due_ms for c in claims.values()) + 3_500_000

    asyncio.run(scenario())
