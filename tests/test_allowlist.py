"""The allowlist file: what it grants, and how a mistake in it is reported."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import bot.policy.allowlist
from bot.policy.allowlist import (
    Action,
    AllowlistError,
    GroupLookupError,
    load_allowlist,
    parse_allowlist,
)
from bot.policy.names import OperationName, parse_parent

NAME = OperationName("prod-1", "us-central1", "op-1")


class Groups:
    def __init__(self, members: dict[str, frozenset[str]]) -> None:
        self._members = members
        self.asked: list[str] = []

    async def members(self, group_id: str) -> frozenset[str]:
        self.asked.append(group_id)
        if group_id not in self._members:
            raise GroupLookupError(group_id)
        return self._members[group_id]


def allowed(text: str, action: Action, user: str, name: OperationName = NAME,
            channel: str = "C1", groups: Groups | None = None) -> bool:  # fmt: skip
    policy = parse_allowlist(text, "cloudaicompanion")
    decision = asyncio.run(policy.check(action, user, name, channel, groups or Groups({})))
    return decision.allowed


CANCEL = "bindings:\n  - permission: cloudaicompanion.operations.cancel\n    members: [user:U1]\n"
CANCEL_FOR_U1 = """
bindings:
  - permission: cloudaicompanion.operations.cancel
    members: [user:U1]
"""


def test_nothing_is_allowed_without_a_binding() -> None:
    assert not allowed("bindings: []", Action.CANCEL, "U1")
    assert not allowed(CANCEL_FOR_U1, Action.CANCEL, "U2")


def test_a_permission_grants_only_itself() -> None:
    assert allowed(CANCEL_FOR_U1, Action.CANCEL, "U1")
    assert not allowed(CANCEL_FOR_U1, Action.GET, "U1")
    assert not allowed(CANCEL_FOR_U1, Action.LIST, "U1")


def test_the_service_name_is_part_of_the_permission() -> None:
    with pytest.raises(AllowlistError, match="unknown permission"):
        parse_allowlist(CANCEL_FOR_U1, "aiplatform")
    text = CANCEL_FOR_U1.replace("cloudaicompanion", "aiplatform")
    policy = parse_allowlist(text, "aiplatform")
    assert asyncio.run(policy.check(Action.CANCEL, "U1", NAME, "C1", Groups({}))).allowed


def test_groups_are_asked_only_when_a_binding_applies() -> None:
    text = """
bindings:
  - permission: cloudaicompanion.operations.cancel
    members: [usergroup:S1]
    channels: [C9]
"""
    groups = Groups({"S1": frozenset({"U5"})})
    assert not allowed(text, Action.CANCEL, "U5", channel="C1", groups=groups)
    assert groups.asked == []
    assert allowed(text, Action.CANCEL, "U5", channel="C9", groups=groups)


def test_a_group_that_cannot_be_read_denies_with_a_note() -> None:
    text = CANCEL_FOR_U1.replace("user:U1", "usergroup:S404")
    policy = parse_allowlist(text, "cloudaicompanion")
    decision = asyncio.run(policy.check(Action.CANCEL, "U1", NAME, "C1", Groups({})))
    assert not decision.allowed
    assert "user group" in decision.note


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ("projects/prod-*/locations/*/operations/*", True),
        ("projects/prod-1/locations/us-central1/operations/op-1", True),
        ("projects/*/locations/europe-*/operations/*", False),
        ("projects/prod/locations/*/operations/*", False),
        ("projects/*-1/locations/*/operations/op-*", True),
    ],
)
def test_resource_patterns_match_segment_by_segment(pattern: str, matches: bool) -> None:
    text = CANCEL_FOR_U1 + f"    resources: ['{pattern}']\n"
    assert allowed(text, Action.CANCEL, "U1") is matches


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("bindings:\n  - permission: [\n", 3, "not valid YAML"),
        ("- just a list\n", 1, "expected a mapping"),
        ("bindigns: []\n", 1, "unknown key 'bindigns'"),
        ("? [bindings]\n: []\n", 1, "not a plain key"),
        (CANCEL + "    approval: {? [approvers] : [user:U2]}\n", 4, "not a plain key"),
        ("bindings:\n  - permission: cloudaicompanion.operations.cancel\n"
         "    members: [user:U1]\n    channel: [C1]\n", 4, "unknown key 'channel'"),
        ("bindings:\n  - permission: cloudaicompanion.operations.cancel\n"
         "    members:\n      - U1\n", 4, "needs a prefix"),
        ("bindings:\n  - permission: cloudaicompanion.operations.cancel\n"
         "    members:\n      - group:S1\n", 4, "needs a prefix"),
        ("bindings:\n  - permission: cloudaicompanion.operations.delete\n"
         "    members: [user:U1]\n", 2, "unknown permission"),
        ("bindings:\n  - members: [user:U1]\n", 2, "without 'permission'"),
        ("bindings:\n  - permission: cloudaicompanion.operations.cancel\n"
         "    members: [user:U1]\n    resources: [projects/p/operations/*]\n", 4, "must look like"),
        ("bindings:\n  - permission: cloudaicompanion.operations.cancel\n"
         "    members: [user:someone@example.com]\n", 3, "not a Slack user ID"),
        ("bindings:\n  - permission: cloudaicompanion.operations.cancel\n"
         "    members: []\n", 3, "empty"),
        ("bindings:\n  - permission: cloudaicompanion.operations.cancel\n"
         "    members: [user:U1]\n    impersonate: oncall@example.com\n", 4,
         "impersonate 'oncall@example.com' is not a service-account email"),
        ("bindings:\n  - permission: cloudaicompanion.operations.cancel\n"
         "    members: [user:U1]\n"
         "    impersonate: sa@prod-ops.iam.gserviceaccount.com.evil.example\n", 4,
         "NAME@PROJECT.iam.gserviceaccount.com"),
        ("bindings:\n  - permission: cloudaicompanion.operations.cancel\n"
         "    members: [user:U1]\n    impersonate: [a@b.iam.gserviceaccount.com]\n", 4,
         "expected a single value"),
        ("bindings:\n  - permission: cloudaicompanion.operations.cancel\n"
         "    members: [user:U1]\n    impersonate:\n", 4, "not a service-account email"),
        (CANCEL + "    approval:\n      approvers: [user:U2]\n      expire: 60\n", 6,
         "unknown key 'expire'"),
        (CANCEL + "    approval:\n      approvers: []\n", 5, "empty"),
        (CANCEL + "    approval:\n      expires_after_seconds: 60\n", 5, "without 'approvers'"),
        (CANCEL + "    approval:\n      approvers: [U2]\n", 5, "needs a prefix"),
        (CANCEL + "    approval:\n      approvers: [user:U2]\n      expires_after_seconds: 59\n",
         6, "from 60 to 86400"),
        (CANCEL + "    approval:\n      approvers: [user:U2]\n      expires_after_seconds: 86401\n",
         6, "from 60 to 86400"),
        (CANCEL + "    approval:\n      approvers: [user:U2]\n      expires_after_seconds: 1.5e3\n",
         6, "whole number"),
        (CANCEL + "    approval:\n      approvers: [user:U2]\n      expires_after_seconds: -60\n",
         6, "whole number"),
        (CANCEL + "    approval:\n      approvers: [user:U2]\n      expires_after_seconds: 6²\n",
         6, "whole number"),
        (CANCEL + "    approval:\n      approvers: [user:U2]\n"
         f"      expires_after_seconds: {'9' * 5000}\n", 6, "whole number"),
        (CANCEL + "    approval: [user:U2]\n", 4, "must be a mapping"),
        (CANCEL.replace("cancel", "get") + "    approval:\n      approvers: [user:U2]\n", 5,
         "only on cloudaicompanion.operations.cancel"),
    ],
)  # fmt: skip
def test_mistakes_name_the_file_line_and_reason(
    tmp_path: Path, text: str, line: int, reason: str
) -> None:
    path = tmp_path / "allowlist.yaml"
    path.write_text(text)
    with pytest.raises(AllowlistError) as refused:
        load_allowlist(path, "cloudaicompanion")
    message = str(refused.value)
    assert message.startswith(f"{path}:{line}: ")
    assert reason in message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(AllowlistError, match="no such file"):
        load_allowlist(tmp_path / "missing.yaml", "cloudaicompanion")


def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "allowlist.yaml"
    path.write_bytes(b"bindings:\n  - permission: cloudaicompanion.operations.cancel\xff\n")
    with pytest.raises(AllowlistError, match=r"allowlist.yaml:2: not UTF-8 text"):
        load_allowlist(path, "cloudaicompanion")


def test_the_example_allowlist_in_the_repository_loads() -> None:
    path = Path(__file__).resolve().parent.parent / "allowlist.example.yaml"
    policy = load_allowlist(path, "cloudaicompanion")
    assert [b.permission.rsplit(".", 1)[1] for b in policy.bindings] == [
        "cancel", "cancel", "get", "list"
    ]  # fmt: skip
    billing = OperationName("prod-billing", "us-central1", "op-1")
    rule = policy.approval_for(billing, "C0000INCIDENTS")
    assert rule is not None and rule.groups == ("S0000LEADS",)
    assert policy.approval_for(NAME, "C0000INCIDENTS") is None


class SlowGroups(Groups):
    """Groups that answer after a delay each (or never), counting lookups in flight at once."""

    def __init__(self, members: dict[str, frozenset[str]], delays: dict[str, float]) -> None:
        super().__init__(members)
        self._delays = delays
        self._in_flight = 0
        self.most_in_flight = 0

    async def members(self, group_id: str) -> frozenset[str]:
        self._in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self._in_flight)
        try:
            await asyncio.sleep(self._delays.get(group_id, 0.0))
            return await super().members(group_id)
        finally:
            self._in_flight -= 1


TWO_GROUPS = """
bindings:
  - permission: cloudaicompanion.operations.cancel
    members: [usergroup:S1]
  - permission: cloudaicompanion.operations.cancel
    members: [usergroup:S2]
"""


def test_group_lookups_run_at_once() -> None:
    groups = SlowGroups({"S1": frozenset(), "S2": frozenset({"U1"})}, {"S1": 0.2, "S2": 0.2})
    assert allowed(TWO_GROUPS, Action.CANCEL, "U1", groups=groups)
    assert groups.most_in_flight == 2


def test_a_group_not_answered_within_the_budget_is_not_membership(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bot.policy.allowlist, "GROUP_LOOKUP_BUDGET_SECONDS", 0.1)
    groups = SlowGroups({"S1": frozenset(), "S2": frozenset({"U1"})}, {"S2": 30.0})
    policy = parse_allowlist(TWO_GROUPS, "cloudaicompanion")
    decision = asyncio.run(policy.check(Action.CANCEL, "U1", NAME, "C1", groups))
    assert not decision.allowed
    assert "in time" in decision.note


def test_one_group_answering_yes_is_enough_while_another_is_still_slow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bot.policy.allowlist, "GROUP_LOOKUP_BUDGET_SECONDS", 5.0)
    groups = SlowGroups({"S1": frozenset(), "S2": frozenset({"U1"})}, {"S1": 30.0})
    assert allowed(TWO_GROUPS, Action.CANCEL, "U1", groups=groups)


def test_a_grant_covers_the_union_of_the_callers_bindings_in_that_channel() -> None:
    text = """
bindings:
  - permission: cloudaicompanion.operations.list
    members: [user:U1]
    resources: [projects/p/locations/l/operations/batch-*]
  - permission: cloudaicompanion.operations.list
    members: [usergroup:S1]
    resources: [projects/q/locations/*/operations/*]
  - permission: cloudaicompanion.operations.list
    members: [user:U1]
    resources: [projects/p/locations/l/operations/*]
    channels: [C9]
  - permission: cloudaicompanion.operations.cancel
    members: [user:U1]
"""
    policy = parse_allowlist(text, "cloudaicompanion")
    groups = Groups({"S1": frozenset({"U1"})})
    grant = asyncio.run(policy.grant(Action.LIST, "U1", "C1", groups))
    covered = [
        name.operation
        for name in (
            OperationName("p", "l", "batch-7"),
            OperationName("p", "l", "payroll-export"),
            OperationName("q", "eu", "any"),
            OperationName("r", "l", "batch-1"),
        )
        if grant.covers(name)
    ]
    assert covered == ["batch-7", "any"]
    in_c9 = asyncio.run(policy.grant(Action.LIST, "U1", "C9", groups))
    assert in_c9.covers(OperationName("p", "l", "payroll-export"))


@pytest.mark.parametrize(
    "account",
    [
        "oncall-cancel@prod-ops.iam.gserviceaccount.com",
        "oncall-cancel@my-project.example.com.iam.gserviceaccount.com",  # domain-scoped project
        "prod-ops@appspot.gserviceaccount.com",  # App Engine's default
        "123456789012-compute@developer.gserviceaccount.com",  # Compute Engine's default
        "123456789012@cloudbuild.gserviceaccount.com",
        "service-123456789012@gcp-sa-cloudaicompanion.iam.gserviceaccount.com",
    ],
)
def test_impersonate_takes_the_service_account_emails_google_forms(account: str) -> None:
    text = f"{CANCEL_FOR_U1}    impersonate: {account}\n"
    policy = parse_allowlist(text, "cloudaicompanion")
    decision = asyncio.run(policy.check(Action.CANCEL, "U1", NAME, "C1", Groups({})))
    assert decision.allowed and decision.account == account


ACCOUNTS = """
bindings:
  - permission: cloudaicompanion.operations.cancel
    members: [user:U9]
    impersonate: nobody-else@prod-ops.iam.gserviceaccount.com
  - permission: cloudaicompanion.operations.cancel
    members: [usergroup:S1]
    resources: [projects/prod-*/locations/*/operations/*]
    impersonate: rota-cancel@prod-ops.iam.gserviceaccount.com
  - permission: cloudaicompanion.operations.cancel
    members: [user:U1]
    impersonate: u1-cancel@prod-ops.iam.gserviceaccount.com
  - permission: cloudaicompanion.operations.cancel
    members: [usergroup:S2]
  - permission: cloudaicompanion.operations.list
    members: [user:U1]
    resources: [projects/prod-1/locations/l/operations/batch-*]
    impersonate: u1-list@prod-ops.iam.gserviceaccount.com
  - permission: cloudaicompanion.operations.list
    members: [user:U1]
    impersonate: u1-list-all@prod-ops.iam.gserviceaccount.com
"""


def account_for(user: str, name: OperationName, groups: Groups) -> str | None:
    policy = parse_allowlist(ACCOUNTS, "cloudaicompanion")
    decision = asyncio.run(policy.check(Action.CANCEL, user, name, "C1", groups))
    assert decision.allowed
    return decision.account


def test_the_first_granting_binding_in_file_order_names_the_account_even_through_a_group() -> None:
    groups = Groups({"S1": frozenset({"U1"}), "S2": frozenset({"U1"})})
    # The group binding comes before the one naming U1: it grants, so its account is used.
    assert account_for("U1", NAME, groups) == "rota-cancel@prod-ops.iam.gserviceaccount.com"
    # Outside its resources it does not grant: the next binding's account.
    other = OperationName("staging", "l", "op")
    assert account_for("U1", other, groups) == "u1-cancel@prod-ops.iam.gserviceaccount.com"
    # Not in the group: the binding naming U1.
    assert account_for("U1", NAME, Groups({"S1": frozenset()})) == (
        "u1-cancel@prod-ops.iam.gserviceaccount.com"
    )
    # A binding without impersonate: the bot's own credentials.
    assert account_for("U2", NAME, Groups({"S1": frozenset(), "S2": frozenset({"U2"})})) is None


def test_only_groups_of_bindings_before_the_first_held_by_name_are_asked() -> None:
    groups = Groups({"S1": frozenset()})
    assert account_for("U1", NAME, groups) == "u1-cancel@prod-ops.iam.gserviceaccount.com"
    assert groups.asked == ["S1"]  # S2's binding comes after U1's own: never asked


def test_an_earlier_group_binding_is_waited_for_even_when_a_later_one_answers_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bot.policy.allowlist, "GROUP_LOOKUP_BUDGET_SECONDS", 5.0)
    text = """
bindings:
  - permission: cloudaicompanion.operations.cancel
    members: [usergroup:S1]
    impersonate: first-binding@prod-ops.iam.gserviceaccount.com
  - permission: cloudaicompanion.operations.cancel
    members: [usergroup:S2]
    impersonate: second-binding@prod-ops.iam.gserviceaccount.com
"""
    policy = parse_allowlist(text, "cloudaicompanion")
    groups = SlowGroups({"S1": frozenset({"U1"}), "S2": frozenset({"U1"})}, {"S1": 0.3})
    decision = asyncio.run(policy.check(Action.CANCEL, "U1", NAME, "C1", groups))
    assert decision.account == "first-binding@prod-ops.iam.gserviceaccount.com"
    # S1 answering "not a member" lets S2's binding grant, with its own account.
    groups = SlowGroups({"S1": frozenset(), "S2": frozenset({"U1"})}, {"S1": 0.3})
    decision = asyncio.run(policy.check(Action.CANCEL, "U1", NAME, "C1", groups))
    assert decision.account == "second-binding@prod-ops.iam.gserviceaccount.com"


def test_a_list_grant_acts_as_the_first_binding_that_grants_list_on_the_parent() -> None:
    policy = parse_allowlist(ACCOUNTS, "cloudaicompanion")
    parent = parse_parent("projects/prod-1/locations/l")
    grant = asyncio.run(policy.grant(Action.LIST, "U1", "C1", Groups({}), within=parent))
    assert grant.decide(parent).account == "u1-list@prod-ops.iam.gserviceaccount.com"
    # Per-operation filtering is the union of the bindings, as before.
    assert grant.covers(OperationName("prod-1", "l", "anything"))
    other = parse_parent("projects/prod-2/locations/l")
    grant = asyncio.run(policy.grant(Action.LIST, "U1", "C1", Groups({}), within=other))
    assert grant.decide(other).account == "u1-list-all@prod-ops.iam.gserviceaccount.com"
