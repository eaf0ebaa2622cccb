"""The long-lived parts every listener uses, built once at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis

from bot.approval.flow import Approvals
from bot.config import Settings
from bot.google.operations import OperationsClient
from bot.policy.allowlist import Allowlist, GroupDirectory
from bot.policy.audit import Audit
from bot.policy.names import OperationName, parse_operation_name
from bot.slack.confirmation import MetadataSigner
from bot.watch.poller import Watcher
from bot.watch.submission import Cancellations

CONTEXT_KEY = "cancel_op_services"


@dataclass(frozen=True)
class Services:
    settings: Settings
    redis: redis.Redis
    operations: OperationsClient
    allowlist: Allowlist
    groups: GroupDirectory
    audit: Audit
    cancellations: Cancellations
    signer: MetadataSigner
    watcher: Watcher
    approvals: Approvals

    def parse_name(self, text: str) -> OperationName:
        return parse_operation_name(text, (self.settings.operations_api_url,))


def services_of(context: Mapping[str, Any]) -> Services:
    """The Services that app.py put into every request's Bolt context."""
    services = context[CONTEXT_KEY]
    assert isinstance(services, Services)
    return services
