"""What a click on Approve or Deny came to, for the person who clicked."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from bot.approval.store import ApprovalRequest
from bot.policy.allowlist import Decision


class Refusal(Enum):
    """Why a click on Approve or Deny changed nothing."""

    UNKNOWN = "unknown"  # no such request (a crafted value, or long gone)
    OWN_REQUEST = "own_request"
    NOT_APPROVER = "not_approver"
    DECIDED = "decided"  # someone decided it already (or the same person, clicking twice)
    EXPIRED = "expired"
    REQUESTER_NOT_ALLOWED = "requester_not_allowed"
    UNAVAILABLE = "unavailable"  # Redis did not answer


@dataclass(frozen=True)
class ClickResult:
    """What one click came to: `refusal` is None when this click decided the request."""

    request: ApprovalRequest | None
    refusal: Refusal | None = None
    state: str = ""  # the request's state, when it was already decided
    decided_by: str = ""
    note: str = ""  # why a group lookup may have refused an approver
    requester_decision: Decision | None = None  # when the requester lost their grant
