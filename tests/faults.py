"""What the fault tests check after each fault: the promises of design.md, read from the
stand-ins and from Redis."""

from __future__ import annotations

import redis

from bot.policy.audit import AUDIT_STREAM
from bot.standins.operations_api import OperationsStandIn
from bot.standins.slack_api import Message, SlackStandIn
from bot.watch.store import DUE_KEY, PREFIX, WATCHES_KEY

# Words only a watch's last message says (the final state, the timeout, lost track).
LAST_WORDS = ("was cancelled", "despite the cancellation", " failed ", "still running after",
              "lost track")  # fmt: skip
# Every Slack method the poller calls.
POSTING = ("chat.postMessage", "chat.update", "chat.getPermalink")


def audit_entries(redis_url: str, event: str, operation: str) -> list[dict[str, str]]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        entries: list[tuple[str, dict[str, str]]] = client.xrange(AUDIT_STREAM)  # type: ignore[assignment]
    finally:
        client.close()
    return [
        fields
        for _, fields in entries
        if fields.get("event") == event and fields.get("operation") == operation
    ]


def last_words_in_slack(slack: SlackStandIn, name: str) -> list[Message]:
    said = [m for m in slack.state.messages if name in m.text]
    return [m for m in said if any(words in m.text for words in LAST_WORDS)]


def last_words(slack: SlackStandIn, redis_url: str, name: str) -> list[str]:
    """Where each last word about `name` went: a channel id, or "audit"."""
    places = [m.channel for m in last_words_in_slack(slack, name)]
    unheard = audit_entries(redis_url, "undelivered", name)
    return places + ["audit" for entry in unheard if entry.get("kind") == "final"]


def watches_left(redis_url: str) -> int:
    """Watches, due entries and active keys still in Redis."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        active = list(client.scan_iter(f"{PREFIX}:active:*"))
        return int(client.hlen(WATCHES_KEY)) + int(client.zcard(DUE_KEY)) + len(active)
    finally:
        client.close()


def cancels_sent(google: OperationsStandIn, name: str) -> int:
    return len(google.state.requests_for(name, "cancel"))
