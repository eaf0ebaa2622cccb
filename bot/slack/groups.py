"""Slack user-group membership for the allowlist: usergroups.users.list, cached briefly."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from slack_sdk.errors import SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.policy.allowlist import GroupLookupError

# Rotations change at hand-offs; a minute is fresh enough and spares Slack's rate limits.
MEMBERSHIP_TTL_SECONDS = 60.0
# The allowlist waits for lookups only GROUP_LOOKUP_BUDGET_SECONDS; one that ends later still
# fills the cache, so trying again a moment later works even when Slack is slow.
LOOKUP_TIMEOUT_SECONDS = 5.0


class SlackGroupDirectory:
    def __init__(self, client: AsyncWebClient, ttl: float = MEMBERSHIP_TTL_SECONDS) -> None:
        self._client = client
        self._ttl = ttl
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    async def members(self, group_id: str) -> frozenset[str]:
        cached = self._cache.get(group_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            response = await asyncio.wait_for(
                self._client.usergroups_users_list(usergroup=group_id),
                LOOKUP_TIMEOUT_SECONDS,
            )
        except (SlackClientError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise GroupLookupError(group_id) from exc
        users = response.get("users")
        members = (
            frozenset(u for u in users if isinstance(u, str))
            if isinstance(users, list)
            else frozenset()
        )
        self._cache[group_id] = (time.monotonic() + self._ttl, members)
        return members
