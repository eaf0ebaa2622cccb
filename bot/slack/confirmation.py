"""What a confirmation modal is about, carried in its private_metadata and signed.

Slack hands the metadata back on submit, but a crafted request can carry anything, so
the context is signed with a key derived from the bot token and everything in it is
checked again on submit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass


class TamperedMetadata(ValueError):
    """The metadata was not written by this bot, or was changed since."""


@dataclass(frozen=True)
class ConfirmContext:
    operation: str  # the name as checked when the modal opened; parsed again on submit
    requester: str  # Slack user who opened the modal
    channel: str  # where the request message goes
    thread_ts: str = ""  # set when started from a message: follow-ups go in its thread


class MetadataSigner:
    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), b"cancel-op modal metadata", hashlib.sha256).digest()

    def dump(self, context: ConfirmContext) -> str:
        body = json.dumps(asdict(context), separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(body)}.{_b64(self._sign(body))}"

    def load(self, metadata: str) -> ConfirmContext:
        try:
            body_part, signature_part = metadata.split(".")
            body = base64.urlsafe_b64decode(body_part + "==")
            signature = base64.urlsafe_b64decode(signature_part + "==")
        except ValueError as exc:
            raise TamperedMetadata("unreadable") from exc
        if not hmac.compare_digest(signature, self._sign(body)):
            raise TamperedMetadata("bad signature")
        try:
            return ConfirmContext(**json.loads(body))
        except (ValueError, TypeError) as exc:
            raise TamperedMetadata("unexpected content") from exc

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
