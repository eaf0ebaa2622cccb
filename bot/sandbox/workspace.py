"""The sandbox's world: its people, channel, user group, allowlist, operations and alerts.

Fixed, so that a newcomer, the browser tests and the README's screenshots all meet the
same on-call engineer, the same alert and the same operations; only their times follow
the clock (each operation started some minutes before the sandbox did).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.listeners.shortcuts import SHORTCUT_CALLBACK_ID
from bot.slack.messages import CANCEL_ACTION_ID
from bot.standins.operations_api import Behaviour
from bot.standins.slack_api import BOT_USER

CHANNEL = "C0ALERTS"
CHANNEL_NAME = "prod-alerts"
ONCALL = "U0ADA"
ROTATION_MEMBER = "U0GRACE"
NOT_ALLOWED = "U0SAM"
ALERTS_BOT = "U0ALERTS"
ROTATION = "S0ONCALL"
ROTATION_HANDLE = "platform-oncall"
ALERTS_TOKEN = "xoxb-sandbox-alert-pipeline"

USERS: dict[str, str] = {
    ONCALL: "Ada (on-call, in the allowlist)",
    ROTATION_MEMBER: f"Grace (member of @{ROTATION_HANDLE})",
    NOT_ALLOWED: "Sam (not in the allowlist)",
}
# Everyone the page can name in a message: the people above, the bot, the alert pipeline.
DIRECTORY: dict[str, str] = {
    ONCALL: "Ada",
    ROTATION_MEMBER: "Grace",
    NOT_ALLOWED: "Sam",
    BOT_USER: "cancel-op",
    ALERTS_BOT: "Alertmanager",
    "USLACKBOT": "Slackbot",
}

# The message shortcut as manifest.yaml declares it (tests/test_manifest.py compares them).
SHORTCUT = {"name": "Cancel operation", "callback_id": SHORTCUT_CALLBACK_ID}

SERVICE = "cloudaicompanion"
# Ada's cancels act as this service account, so Google's IAM decides too; Grace's use the
# bot's own credentials. The panel shows which identity each Google call carried.
IMPERSONATED = "oncall-cancel@shop-prod.iam.gserviceaccount.com"
PARENT = "projects/shop-prod/locations/us-central1"
PROTECTED_PATTERN = f"{PARENT}/operations/operation-purge-*"
ALLOWLIST = f"""\
# The sandbox's allowlist: Ada directly, Grace through the on-call user group; Sam is
# in neither, so every request of Sam's is refused. Ada's cancels act as {IMPERSONATED}.
# Purges are protected: a second person of the same people approves them (never the one
# who asked).
bindings:
  - permission: {SERVICE}.operations.cancel
    members: [user:{ONCALL}]
    impersonate: {IMPERSONATED}
  - permission: {SERVICE}.operations.cancel
    members: [usergroup:{ROTATION}]
  - permission: {SERVICE}.operations.cancel
    members: [user:{ONCALL}, usergroup:{ROTATION}]
    resources: [{PROTECTED_PATTERN}]
    approval:
      approvers: [user:{ONCALL}, usergroup:{ROTATION}]
      expires_after_seconds: 900
  - permission: {SERVICE}.operations.get
    members: [user:{ONCALL}, usergroup:{ROTATION}]
  - permission: {SERVICE}.operations.list
    members: [user:{ONCALL}, usergroup:{ROTATION}]
"""

BEHAVIOURS: dict[Behaviour, str] = {
    Behaviour.CANCELS: "cancels cleanly",
    Behaviour.COMPLETES: "completes despite the cancel",
    Behaviour.UNIMPLEMENTED: "cannot be cancelled (UNIMPLEMENTED)",
    Behaviour.NOT_CANCELLABLE: "is not cancellable now (FAILED_PRECONDITION)",
    Behaviour.FAILS: "fails while stopping",
}


@dataclass(frozen=True)
class SeededOperation:
    operation_id: str
    behaviour: Behaviour
    verb: str
    target: str
    status: str = ""
    progress: int | None = None  # % done when seeded; it grows a point a minute
    age_minutes: int = 40  # how long before seeding it started
    done: bool = False
    ended_minutes_ago: int = 0  # for one already done
    alert: str = ""  # the alert that names it, if any

    @property
    def name(self) -> str:
        return f"{PARENT}/operations/{self.operation_id}"

    def seed(self) -> dict[str, Any]:
        """As the Operations stand-in's seed endpoint takes it."""
        return {
            "name": self.name,
            "behaviour": self.behaviour.value,
            "verb": self.verb,
            "target": f"{PARENT}/{self.target}",
            "status_message": self.status,
            "progress": self.progress,
            "created_seconds_ago": self.age_minutes * 60,
            "done": self.done,
            "ended_seconds_ago": self.ended_minutes_ago * 60,
            # A GET or two still sees it running after the cancel, as with Google.
            "polls_until_done": 2,
        }


CANCELS = SeededOperation(
    "operation-rollout-7421",
    Behaviour.CANCELS,
    "update",
    "codeRepositoryIndexes/shop-web",
    status="Re-indexing",
    progress=41,
    age_minutes=47,
    alert="Code index rollout stuck for 45 min",
)
COMPLETES = SeededOperation(
    "operation-reindex-1188",
    Behaviour.COMPLETES,
    "create",
    "codeRepositoryIndexes/payments",
    status="Finalising",
    age_minutes=95,
    alert="Re-index of payments over its time budget",
)
UNIMPLEMENTED = SeededOperation(
    "operation-export-5530",
    Behaviour.UNIMPLEMENTED,
    "export",
    "dataExports/audit-2026-11",
    status="Exporting",
    progress=62,
    age_minutes=185,
    alert="Audit export running for 3 h",
)
NOT_CANCELLABLE = SeededOperation(
    "operation-delete-0931",
    Behaviour.NOT_CANCELLABLE,
    "delete",
    "codeRepositoryIndexes/legacy-monolith",
    status="Deleting",
    progress=88,
    age_minutes=125,
)
FAILS = SeededOperation(
    "operation-migrate-2207",
    Behaviour.FAILS,
    "update",
    "settingBindings/eu-rollout",
    status="Migrating settings",
    progress=12,
    age_minutes=25,
)
# Covered by the binding with `approval`: cancelled only once a second person approves.
PROTECTED = SeededOperation(
    "operation-purge-6610",
    Behaviour.CANCELS,
    "delete",
    "codeRepositoryIndexes/billing-prod",
    status="Purging the billing index",
    progress=18,
    age_minutes=12,
    alert="Billing index purge started outside its change window",
)
ALREADY_DONE = SeededOperation(
    "operation-backup-3316",
    Behaviour.COMPLETES,
    "create",
    "backups/nightly",
    status="Backing up",
    age_minutes=540,
    done=True,
    ended_minutes_ago=500,
)
OPERATIONS = (CANCELS, COMPLETES, UNIMPLEMENTED, NOT_CANCELLABLE, FAILS, PROTECTED, ALREADY_DONE)


def alert_message(title: str, name: str) -> dict[str, Any]:
    """An alert as a pipeline posts it (README, "Putting a Cancel button on your alerts")."""
    text = f"{title}: operation `{name}` has run too long."
    return {
        "channel": CHANNEL,
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f":rotating_light: *{title}*"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"Operation `{name}`"}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": "severity: page · team: platform"}],
            },
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": CANCEL_ACTION_ID,
                        "text": {"type": "plain_text", "text": "Cancel operation"},
                        "style": "danger",
                        "value": name,
                    }
                ],
            },
        ],
    }


def plain_alert_message(name: str) -> dict[str, Any]:
    """An alert with no button, as Alertmanager's own receiver posts: text with the name."""
    return {
        "channel": CHANNEL,
        "text": f":warning: Index deletion has run for 2 h. Operation `{name}` (no button: use "
        "*More actions → Cancel operation* on this message).",
    }


def alerts() -> list[dict[str, Any]]:
    """Oldest first, so the clean cancel is the newest alert, at the bottom."""
    posted = [plain_alert_message(NOT_CANCELLABLE.name)]
    for operation in (PROTECTED, UNIMPLEMENTED, COMPLETES, CANCELS):
        posted.append(alert_message(operation.alert, operation.name))
    return posted
