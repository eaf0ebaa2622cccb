"""The approval store's one decision, against a real Redis: what it writes with it."""

from __future__ import annotations

import asyncio

import redis.asyncio as aredis

from bot.approval.store import ApprovalRequest, ApprovalStore

BEFORE = "asked-as@prod-ops.iam.gserviceaccount.com"
NOW = "approved-as@prod-ops.iam.gserviceaccount.com"


def test_an_approval_records_the_account_checked_at_the_click_for_whoever_carries_it_out(
    redis_url: str,
) -> None:
    """A process that dies after deciding leaves the cancel to another, which must act as
    the account the requester's grant had at the approval, not the one from asking."""

    async def run() -> list[str]:
        client = aredis.Redis.from_url(redis_url, decode_responses=True)
        store = ApprovalStore(client)
        try:
            made = []
            for operation in ("op-approved", "op-denied"):
                request = ApprovalRequest(
                    store.new_id(), f"projects/p/locations/l/operations/{operation}", "U0ADA",
                    "C0OPS", "", "stuck", "user:U0LEAD", account=BEFORE,
                )  # fmt: skip
                await store.open(f"view-{operation}", request, 60_000, 5_000)
                made.append(request)
            approved, denied = made
            await store.decide(approved, "approved", "U0LEAD", 5_000, NOW)
            await store.decide(denied, "denied", "U0LEAD", 5_000)
            loaded = [await store.load(r.id) for r in made]
            return [r.account if r else "" for r in loaded]
        finally:
            await client.aclose()

    assert asyncio.run(run()) == [NOW, BEFORE]
