"""Leases in Redis: what a renewal reports as lost, on the real scripts."""

from __future__ import annotations

import asyncio

import redis.asyncio as aredis

from bot.watch_store import Watch, WatchStore
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
        await client.aclose()
        return held, released, taken

    held, released, taken = asyncio.run(scenario())
    assert held == set()
    assert released == set()  # not "lost": nobody else has it
    assert len(taken) == 1
