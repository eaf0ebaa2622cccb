"""The allowlist's `approval` blocks: which cancels need a second person, who that may be,
and how a mistake in a block is reported."""

from __future__ import annotations

import asyncio

from bot.policy.allowlist import ApprovalRule, parse_allowlist
from bot.policy.names import OperationName
from tests.test_allowlist import Groups

PROD = OperationName("prod-1", "us-central1", "op-1")
DEV = OperationName("dev-1", "us-central1", "op-1")

PROTECTED = """
bindings:
  - permission: cloudaicompanion.operations.cancel
    members: [usergroup:S0ONCALL]
    resources: [projects/prod-*/locations/*/operations/*]
    approval:
      approvers: [usergroup:S0LEADS, user:U0MANAGER]
  - permission: cloudaicompanion.operations.cancel
    members: [user:U0ADA]
    channels: [C0PROD]
    approval:
      approvers: [user:U0GRACE]
      expires_after_seconds: 120
  - permission: cloudaicompanion.operations.cancel
    members: [user:U0DEV]
"""


def rule_for(name: OperationName, channel: str) -> ApprovalRule | None:
    return parse_allowlist(PROTECTED, "cloudaicompanion").approval_for(name, channel)


def test_an_operation_covered_by_a_binding_with_approval_needs_it_whoever_asks() -> None:
    rule = rule_for(PROD, "C0OTHER")
    assert rule is not None
    assert rule.users == {"U0MANAGER"} and rule.groups == ("S0LEADS",)
    assert rule.expires_after_seconds == 900  # the default


def test_approvers_are_the_union_and_the_shortest_expiry_wins() -> None:
    rule = rule_for(PROD, "C0PROD")
    assert rule is not None
    assert rule.users == {"U0MANAGER", "U0GRACE"} and rule.groups == ("S0LEADS",)
    assert rule.expires_after_seconds == 120


def test_what_no_approval_block_covers_needs_none() -> None:
    assert rule_for(DEV, "C0OTHER") is None


def test_approvers_may_be_named_or_in_a_group_and_never_the_requester() -> None:
    rule = ApprovalRule(frozenset({"U0MANAGER"}), ("S0LEADS",))
    groups = Groups({"S0LEADS": frozenset({"U0LEAD"})})

    def admits(user: str, requester: str = "U0ADA") -> bool:
        return asyncio.run(rule.admits(user, requester, groups)).allowed

    assert admits("U0MANAGER") and admits("U0LEAD")
    assert not admits("U0STRANGER")
    assert not admits("U0MANAGER", requester="U0MANAGER")
    assert not admits("U0LEAD", requester="U0LEAD")


def test_a_group_that_cannot_be_read_refuses_with_a_note() -> None:
    rule = ApprovalRule(frozenset(), ("S0GONE",))
    check = asyncio.run(rule.admits("U0LEAD", "U0ADA", Groups({})))
    assert not check.allowed and "user group" in check.note


def test_another_spelling_of_a_protected_project_still_needs_approval() -> None:
    """Google takes `PROD-1` and a project's number for the same project: a broad binding
    without approval must not let either spelling past the protected pattern."""
    policy = parse_allowlist(
        PROTECTED + "  - permission: cloudaicompanion.operations.cancel\n"
        "    members: [usergroup:S0ONCALL]\n",
        "cloudaicompanion",
    )
    for project in ("PROD-1", "Prod-1", "123456789012"):
        name = OperationName(project, "us-central1", "op-1")
        rule = policy.approval_for(name, "C0OTHER")
        assert rule is not None and rule.groups == ("S0LEADS",), project
    assert policy.approval_for(OperationName("DEV-1", "us-central1", "op-1"), "C0OTHER") is None
