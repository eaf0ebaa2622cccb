"""Prometheus metrics of this process (served at GET /metrics) and the hooks that count them.

The registry is the process's own, not prometheus-client's global one: one process runs one
bot, and nothing else registers here. Tests that run several bots in one process read how
much a counter grew, never its absolute value.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

REGISTRY = CollectorRegistry()
CONTENT_TYPE = CONTENT_TYPE_LATEST

CANCELS = Counter(
    "cancel_op_cancels",
    "Cancels sent to Google, by Google's answer (google.rpc code name, OK on success).",
    ["outcome"],
    registry=REGISTRY,
)
WATCHES_ACTIVE = Gauge(
    "cancel_op_watches_active",
    "Watches in Redis, shared by every worker; read from Redis at each scrape.",
    registry=REGISTRY,
)
POLL_LAG = Histogram(
    "cancel_op_poll_lag_seconds",
    "How long after a watch step fell due a worker claimed it.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
    registry=REGISTRY,
)
GOOGLE_REQUESTS = Counter(
    "cancel_op_google_requests",
    "HTTP calls to Google, by verb (get, cancel, list of the Operations API; "
    "generateAccessToken of the IAM Credentials API) and google.rpc code name.",
    ["method", "code"],
    registry=REGISTRY,
)
APPROVALS = Counter(
    "cancel_op_approvals",
    "Steps of two-person approval requests, each counted once wherever it happened: "
    "requested, joined, approved, denied, expired, withdrawn.",
    ["step"],
    registry=REGISTRY,
)
SLACK_ERRORS = Counter(
    "cancel_op_slack_errors",
    "Failed Slack API calls, by Slack's error string, ratelimited, http_5xx or connection.",
    ["error"],
    registry=REGISTRY,
)
# Slack's error strings are a short fixed vocabulary; anything longer is not one of them.
_MAX_ERROR_LABEL = 64


def render() -> bytes:
    return generate_latest(REGISTRY)


def count_google_call(method: str, url: str, code: str) -> None:
    """One HTTP call to the Operations API and its google.rpc code name ("OK" on success)."""
    path = urlsplit(url).path
    verb = "cancel" if path.endswith(":cancel") else "list" if path.endswith("/operations") else ""
    GOOGLE_REQUESTS.labels(verb or method.lower(), code).inc()


def count_token_request(code: str) -> None:
    """One token asked of the IAM Credentials API for a service account, and its code."""
    GOOGLE_REQUESTS.labels("generateAccessToken", code).inc()


class SlackErrorCounter(AsyncRetryHandler):
    """Counts every failed Slack API call (each attempt) and never asks for a retry.

    slack_sdk shows every response and every exception of every call to its retry
    handlers, which makes them the one place that sees all Slack calls; put first in the
    client's list, it sees each attempt before a real handler retries it.
    """

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        label = _slack_error_label(response, error)
        if label is not None:
            SLACK_ERRORS.labels(label[:_MAX_ERROR_LABEL]).inc()
        return False


def _slack_error_label(response: HttpResponse | None, error: Exception | None) -> str | None:
    if error is not None:
        status = getattr(getattr(error, "response", None), "status", 0)
        if isinstance(error, SlackApiError):  # a body that is not JSON
            return "http_5xx" if isinstance(status, int) and status >= 500 else "invalid_response"
        return "connection"
    if response is None:
        return None
    if response.status_code == 429:
        return "ratelimited"
    if response.status_code >= 500:
        return "http_5xx"
    body: Any = response.body
    if isinstance(body, dict) and body.get("ok") is False:
        return str(body.get("error") or "unknown")
    return None
