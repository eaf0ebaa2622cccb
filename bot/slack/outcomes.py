"""What a failed Slack call means: worth trying again soon (transient), or not here (permanent).

The one place that reads Slack's failures; every caller decides from a SlackFailure.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError

# Slack's own words for "busy or broken for a moment"; every other error string is an
# answer about this request (not_in_channel, invalid_blocks, token_revoked, …) that
# asking again will not change.
_TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


@dataclass(frozen=True)
class SlackFailure:
    reason: str  # Slack's error string, or what went wrong on the way
    transient: bool
    retry_after: float | None = None  # seconds Slack asked us to wait (HTTP 429)


def classify(exc: BaseException) -> SlackFailure:
    """Read a failed Slack call once: rate limits, 5xx, broken connections and answers that
    are not Slack's JSON (an HTML 502 from a proxy) are transient; the rest is permanent."""
    if isinstance(exc, SlackApiError):
        return _from_answer(exc)
    if isinstance(exc, TimeoutError):
        return SlackFailure("timeout", transient=True)
    if isinstance(exc, aiohttp.ClientError | OSError | SlackClientError):
        return SlackFailure(f"connection:{type(exc).__name__}", transient=True)
    return SlackFailure(f"unexpected:{type(exc).__name__}", transient=False)


def _from_answer(exc: SlackApiError) -> SlackFailure:
    response = exc.response
    # A body slack_sdk could not read leaves an aiohttp response, not a SlackResponse.
    status = int(getattr(response, "status_code", None) or getattr(response, "status", 0) or 0)
    data = getattr(response, "data", None)
    retry_after = _retry_after(getattr(response, "headers", None))
    if not isinstance(data, dict) or "ok" not in data:
        return SlackFailure(f"non_json_http_{status}", transient=True, retry_after=retry_after)
    error = str(data.get("error") or f"http_{status}")
    transient = status == 429 or status >= 500 or error in _TRANSIENT_ERRORS
    return SlackFailure(error, transient=transient, retry_after=retry_after)


def _retry_after(headers: object) -> float | None:
    if not hasattr(headers, "get"):
        return None
    raw = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except (TypeError, ValueError):
        return None
