"""The allowlist file: what it grants, and how a mistake in it is reported."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.allowlist import Action, AllowlistError, GroupLookupError, load_allowlist, parse_allowlist
from bot.names import OperationName

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


def test_the_example_allowlist_in_the_repository_loads() -> None:
    path = Path(__file__).resolve().parent.parent / "allowlist.example.yaml"
    policy = load_allowlist(path, "cloudaicompanion")
    assert [b.permission.rsplit(".", 1)[1] for b in policy.bindings] == ["cancel", "get", "list"]
