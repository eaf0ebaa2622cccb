"""Who may do what to which operation, mirroring an IAM policy; deny by default.

The file is read once at start-up; any mistake in it stops start-up with the file, line
and reason, since a half-read policy could grant or deny the wrong people.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Protocol

import yaml

from bot.policy.names import OperationName, OperationParent

_MEMBER_PREFIXES = ("user:", "usergroup:")
_SLACK_ID = re.compile(r"[A-Z0-9]{2,32}")
_PATTERN_SEGMENT = re.compile(r"[A-Za-z0-9._~*-]{1,128}")
ALL_OPERATIONS = ("projects/*/locations/*/operations/*",)
_BINDING_KEYS = frozenset(
    {"permission", "members", "resources", "channels", "impersonate", "approval"}
)
# Service-account emails as Google forms them: user-made accounts (NAME@PROJECT.iam…, with
# the domain of a domain-scoped project after PROJECT), the default accounts of App Engine
# (PROJECT@appspot…) and Compute Engine (NUMBER-compute@developer…), Google APIs' and Cloud
# Build's (NUMBER@cloudservices…, NUMBER@cloudbuild…) and service agents (service-NUMBER@gcp-sa-…).
_SA_ID = r"[a-z][a-z0-9-]{4,28}[a-z0-9]"  # an account or project ID: 6 to 30 characters
_SERVICE_ACCOUNT = re.compile(
    rf"{_SA_ID}@{_SA_ID}(?:\.[a-z0-9-]+)*\.iam\.gserviceaccount\.com"
    rf"|{_SA_ID}@appspot\.gserviceaccount\.com"
    r"|[0-9]{1,20}-compute@developer\.gserviceaccount\.com"
    r"|[0-9]{1,20}@(?:cloudservices|cloudbuild)\.gserviceaccount\.com"
    r"|service-[0-9]{1,20}@gcp-sa-[a-z0-9-]{1,50}\.iam\.gserviceaccount\.com"
)
_APPROVAL_KEYS = frozenset({"approvers", "expires_after_seconds"})
# An approval request lives at least a minute (time to read it) and at most a day.
DEFAULT_APPROVAL_SECONDS = 900
APPROVAL_SECONDS_RANGE = (60, 86_400)


class Action(Enum):
    CANCEL = "cancel"
    GET = "get"
    LIST = "list"

    def permission(self, service: str) -> str:
        return f"{service}.operations.{self.value}"


class AllowlistError(Exception):
    """The allowlist file cannot be used; the message names file, line and reason."""


class GroupDirectory(Protocol):
    """Who is in a Slack user group (an on-call rotation, say)."""

    async def members(self, group_id: str) -> frozenset[str]: ...


class GroupLookupError(Exception):
    """Group membership could not be read; the check fails closed."""


# Checks run between Slack's request and views.open, whose trigger_id lives 3 s: all group
# lookups together get half of that.
GROUP_LOOKUP_BUDGET_SECONDS = 1.5


@dataclass(frozen=True)
class ApprovalRule:
    """Who may approve a protected cancel (users, and members of user groups), and how long
    a request waits for them."""

    users: frozenset[str]
    groups: tuple[str, ...]
    expires_after_seconds: int = DEFAULT_APPROVAL_SECONDS

    def members(self) -> list[str]:
        """The approvers as written in the allowlist: users first, then user groups."""
        return [f"user:{u}" for u in sorted(self.users)] + [f"usergroup:{g}" for g in self.groups]

    def has_approvers_besides(self, requester: str) -> bool:
        """Whether anyone but the requester could approve (a group is assumed to have others)."""
        return bool(self.groups) or bool(self.users - {requester})

    async def admits(self, user: str, requester: str, groups: GroupDirectory) -> ApproverCheck:
        """May `user` decide `requester`'s request? Never their own; groups asked within the
        same budget as every other check."""
        if user == requester:
            return ApproverCheck(False)
        if user in self.users:
            return ApproverCheck(True)
        member_of, failed = await _memberships(groups, user, self.groups, _any_group)
        return ApproverCheck(bool(member_of), _GROUP_NOTE if failed and not member_of else "")


@dataclass(frozen=True)
class ApproverCheck:
    allowed: bool
    note: str = ""  # set when a group lookup failed, which may be why it was refused


@dataclass(frozen=True)
class Binding:
    permission: str
    users: frozenset[str]
    groups: tuple[str, ...]
    resources: tuple[str, ...] = ALL_OPERATIONS
    channels: frozenset[str] | None = None
    impersonate: str | None = None  # the service account Google calls are made as
    approval: ApprovalRule | None = None

    def applies(self, permission: str, channel: str) -> bool:
        """True when this binding grants `permission` in `channel` (on some resources)."""
        return permission == self.permission and (self.channels is None or channel in self.channels)

    def covers(self, permission: str, resource: str, channel: str) -> bool:
        """True when this binding's permission, resources and channels apply."""
        return self.applies(permission, channel) and any(
            _matches(pattern, resource) for pattern in self.resources
        )


@dataclass(frozen=True)
class Decision:
    allowed: bool
    permission: str
    # Why a denial happened where the caller can do something about it.
    note: str = ""
    # The granting binding's service account, which Google calls for the request act as;
    # None: the bot's own credentials.
    account: str | None = None


@dataclass(frozen=True)
class Grant:
    """What one caller holds for one action in one channel: the resources they may touch."""

    permission: str
    patterns: tuple[str, ...]
    note: str = ""  # set when a group lookup failed, which may be why patterns are missing
    account: str | None = None  # the first held binding's `impersonate`, in file order

    def covers(self, resource: OperationName | OperationParent) -> bool:
        return any(_matches(pattern, resource.path) for pattern in self.patterns)

    def decide(self, resource: OperationName | OperationParent) -> Decision:
        if self.covers(resource):
            return Decision(True, self.permission, account=self.account)
        return Decision(False, self.permission, self.note)


_GROUP_NOTE = (
    "Slack did not tell me in time who is in your user group, so I could not count you "
    "as a member; try again in a minute."
)


@dataclass(frozen=True)
class Allowlist:
    service: str
    bindings: tuple[Binding, ...] = field(default_factory=tuple)

    async def check(
        self,
        action: Action,
        user: str,
        resource: OperationName | OperationParent,
        channel: str,
        groups: GroupDirectory,
    ) -> Decision:
        """May `user` do `action` on `resource` in `channel`? Groups asked only if needed."""
        permission = action.permission(self.service)
        applicable = [b for b in self.bindings if b.covers(permission, resource.path, channel)]
        grant = await _resolve(permission, applicable, user, groups, first_is_enough=True)
        return grant.decide(resource)

    async def grant(
        self,
        action: Action,
        user: str,
        channel: str,
        groups: GroupDirectory,
        within: OperationParent | None = None,
    ) -> Grant:
        """What `user` may do `action` on in `channel` (under `within`, if given), to filter
        many resources at once."""
        permission = action.permission(self.service)
        applicable = [
            b
            for b in self.bindings
            if b.applies(permission, channel)
            and (within is None or b.covers(permission, within.path, channel))
        ]
        return await _resolve(permission, applicable, user, groups, first_is_enough=False)

    def approval_for(self, name: OperationName, channel: str) -> ApprovalRule | None:
        """The approval a cancel of `name` in `channel` needs, whoever asks: every cancel
        binding covering it counts, the approvers are their union, the shortest wait wins."""
        permission = Action.CANCEL.permission(self.service)
        rules = [
            b.approval
            for b in self.bindings
            if b.approval is not None
            and b.applies(permission, channel)
            and any(_may_name_the_same(pattern, name) for pattern in b.resources)
        ]
        if not rules:
            return None
        return ApprovalRule(
            frozenset().union(*(r.users for r in rules)),
            tuple(dict.fromkeys(g for r in rules for g in r.groups)),
            min(r.expires_after_seconds for r in rules),
        )


async def _resolve(
    permission: str,
    bindings: list[Binding],
    user: str,
    groups: GroupDirectory,
    *,
    first_is_enough: bool,
) -> Grant:
    """The bindings among `bindings` (in file order) that hold `user`, by name or by user
    group; with `first_is_enough`, only the first of them in file order."""
    direct = next((i for i, b in enumerate(bindings) if user in b.users), len(bindings))
    # Only bindings before the first held by name can come first through a group.
    unresolved = bindings[:direct] if first_is_enough else bindings
    asked = tuple(dict.fromkeys(g for b in unresolved if user not in b.users for g in b.groups))

    def first_known(member_of: set[str], pending: set[str]) -> bool:
        """Whether the first holding binding is known: every group before it has answered."""
        for binding in unresolved:
            if user in binding.users or member_of.intersection(binding.groups):
                return True
            if pending.intersection(binding.groups):
                return False
        return False

    member_of, failed = await _memberships(
        groups, user, asked, first_known if first_is_enough else None
    )
    held = [b for b in bindings if user in b.users or member_of.intersection(b.groups)]
    if first_is_enough:
        held = held[:1]
    patterns = tuple(dict.fromkeys(p for b in held for p in b.resources))
    account = held[0].impersonate if held else None
    return Grant(permission, patterns, _GROUP_NOTE if failed else "", account)


async def _memberships(
    groups: GroupDirectory,
    user: str,
    group_ids: tuple[str, ...],
    enough: Callable[[set[str], set[str]], bool] | None,
) -> tuple[set[str], bool]:
    """The groups `user` is in, all asked at once within one budget; and whether any failed.

    `enough(member_of, pending)` ends the wait early once it says the answer is known.
    A group not answered within the budget counts as not holding the user, never as
    holding them. Its lookup is left to finish, so the directory's cache has it next time.
    """
    if not group_ids:
        return set(), False
    lookups = {asyncio.ensure_future(groups.members(g)): g for g in group_ids}
    for lookup in lookups:
        lookup.add_done_callback(_consume_outcome)
    member_of: set[str] = set()
    failed = False
    pending = set(lookups)
    deadline = asyncio.get_running_loop().time() + GROUP_LOOKUP_BUDGET_SECONDS
    while pending and not (enough and enough(member_of, {lookups[p] for p in pending})):
        left = deadline - asyncio.get_running_loop().time()
        done, pending = await asyncio.wait(
            pending, timeout=max(left, 0), return_when=asyncio.FIRST_COMPLETED
        )
        if not done:
            break
        for lookup in done:
            if lookup.exception() is not None:
                failed = True
            elif user in lookup.result():
                member_of.add(lookups[lookup])
    return member_of, failed or bool(pending)


def _may_name_the_same(pattern: str, name: OperationName) -> bool:
    """Whether `name` may be an operation `pattern` protects, however it is spelled: Google
    reads project IDs and locations in lower case, and a project number may stand for any
    project ID, so protection errs towards asking (a grant, by contrast, must match)."""
    segments = pattern.split("/")
    if name.project.isdigit():
        segments[1] = "*"
    return _matches("/".join(segments).lower(), name.path.lower())


def _any_group(member_of: set[str], pending: set[str]) -> bool:
    """Membership of any one group is enough."""
    return bool(member_of)


def _consume_outcome(lookup: asyncio.Future[frozenset[str]]) -> None:
    """A lookup that ends after the budget: its failure is expected, not worth a warning."""
    if not lookup.cancelled():
        lookup.exception()


def _matches(pattern: str, resource: str) -> bool:
    """An operation against the whole pattern; a parent (for list) against its first part."""
    resource_parts = resource.split("/")
    pattern_parts = pattern.split("/")[: len(resource_parts)]
    if len(pattern_parts) != len(resource_parts):
        return False
    # `*` stays inside one segment because segments are compared one by one.
    return all(
        fnmatch.fnmatchcase(part, pat.replace("[", "[[]"))
        for pat, part in zip(pattern_parts, resource_parts, strict=True)
    )


def load_allowlist(path: Path, service: str) -> Allowlist:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise AllowlistError(f"{path}: no such file") from exc
    except OSError as exc:
        raise AllowlistError(f"{path}: cannot be read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise AllowlistError(f"{path}:{line}: not UTF-8 text") from exc
    return parse_allowlist(text, service, str(path))


def parse_allowlist(text: str, service: str, source: str = "allowlist") -> Allowlist:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise AllowlistError(f"{source}:{line}: not valid YAML ({exc.problem})") from exc
    except yaml.YAMLError as exc:
        raise AllowlistError(f"{source}: not valid YAML ({exc})") from exc
    reader = _Reader(source, service)
    return Allowlist(service, reader.bindings(root))


class _Reader:
    """Walks the YAML node tree so every complaint can name its line."""

    def __init__(self, source: str, service: str) -> None:
        self.source = source
        self.permissions = {action.permission(service) for action in Action}
        self.cancel_permission = Action.CANCEL.permission(service)

    def fail(self, node: yaml.Node | None, reason: str) -> AllowlistError:
        line = node.start_mark.line + 1 if node is not None else 1
        return AllowlistError(f"{self.source}:{line}: {reason}")

    def bindings(self, root: yaml.Node | None) -> tuple[Binding, ...]:
        if not isinstance(root, yaml.MappingNode):
            raise self.fail(root, "expected a mapping with the key 'bindings'")
        entries = self.mapping(root, frozenset({"bindings"}))
        if "bindings" not in entries:
            raise self.fail(root, "missing key 'bindings'")
        items = entries["bindings"]
        if not isinstance(items, yaml.SequenceNode):
            raise self.fail(items, "'bindings' must be a list")
        return tuple(self.binding(item) for item in items.value)

    def mapping(self, node: yaml.MappingNode, allowed: frozenset[str]) -> dict[str, yaml.Node]:
        result: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):  # `? [a]`: a list or mapping as key
                raise self.fail(key_node, "not a plain key")
            key = key_node.value
            if key not in allowed:
                known = ", ".join(sorted(allowed))
                raise self.fail(key_node, f"unknown key {key!r} (known keys: {known})")
            if key in result:
                raise self.fail(key_node, f"key {key!r} appears twice")
            result[key] = value_node
        return result

    def binding(self, node: yaml.Node) -> Binding:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, "each binding must be a mapping")
        entries = self.mapping(node, _BINDING_KEYS)
        for required in ("permission", "members"):
            if required not in entries:
                raise self.fail(node, f"binding without {required!r}")
        permission = self.scalar(entries["permission"])
        if permission not in self.permissions:
            known = ", ".join(sorted(self.permissions))
            raise self.fail(entries["permission"], f"unknown permission {permission!r} ({known})")
        users, groups = self.members(entries["members"])
        resources: tuple[str, ...] = ALL_OPERATIONS
        if "resources" in entries:
            resources = tuple(self.resource(n) for n in self.sequence(entries["resources"]))
        channels = None
        if "channels" in entries:
            channels = frozenset(
                self.slack_id(n, "channel") for n in self.sequence(entries["channels"])
            )
        impersonate = (
            self.service_account(entries["impersonate"]) if "impersonate" in entries else None
        )
        approval = None
        if "approval" in entries:
            if permission != self.cancel_permission:
                raise self.fail(
                    entries["approval"], f"'approval' is allowed only on {self.cancel_permission}"
                )
            approval = self.approval(entries["approval"])
        return Binding(
            permission, frozenset(users), tuple(groups), resources, channels,
            impersonate=impersonate, approval=approval,
        )  # fmt: skip

    def approval(self, node: yaml.Node) -> ApprovalRule:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, "'approval' must be a mapping with 'approvers'")
        entries = self.mapping(node, _APPROVAL_KEYS)
        if "approvers" not in entries:
            raise self.fail(node, "'approval' without 'approvers'")
        users, groups = self.members(entries["approvers"], "approvers")
        seconds = DEFAULT_APPROVAL_SECONDS
        if "expires_after_seconds" in entries:
            seconds = self.seconds(entries["expires_after_seconds"])
        return ApprovalRule(frozenset(users), tuple(groups), seconds)

    def seconds(self, node: yaml.Node) -> int:
        text = self.scalar(node)
        low, high = APPROVAL_SECONDS_RANGE
        # ASCII digits only (int() reads other scripts' too), and few: int() refuses 4300+.
        plain = text.isascii() and text.isdigit() and len(text) <= len(str(high))
        if not plain or not low <= int(text) <= high:
            raise self.fail(
                node, f"'expires_after_seconds' must be a whole number from {low} to {high}"
            )
        return int(text)

    def members(self, node: yaml.Node, key: str = "members") -> tuple[list[str], list[str]]:
        users: list[str] = []
        groups: list[str] = []
        for item in self.sequence(node):
            member = self.scalar(item)
            if member.startswith("user:"):
                users.append(self.slack_id(item, "user", member.removeprefix("user:")))
            elif member.startswith("usergroup:"):
                groups.append(self.slack_id(item, "user group", member.removeprefix("usergroup:")))
            else:
                raise self.fail(
                    item, f"member {member!r} needs a prefix: {' or '.join(_MEMBER_PREFIXES)}"
                )
        if not users and not groups:
            raise self.fail(node, f"{key!r} is empty")
        return users, groups

    def resource(self, node: yaml.Node) -> str:
        pattern = self.scalar(node)
        parts = pattern.split("/")
        shape_ok = (
            len(parts) == 6
            and parts[0::2] == ["projects", "locations", "operations"]
            and all(_PATTERN_SEGMENT.fullmatch(p) for p in parts[1::2])
        )
        if not shape_ok:
            raise self.fail(
                node,
                f"resource {pattern!r} must look like "
                "projects/PROJECT/locations/LOCATION/operations/OPERATION ('*' allowed)",
            )
        return pattern

    def service_account(self, node: yaml.Node) -> str:
        email = self.scalar(node)
        if _SERVICE_ACCOUNT.fullmatch(email) is None:
            raise self.fail(
                node,
                f"impersonate {email!r} is not a service-account email "
                "(like NAME@PROJECT.iam.gserviceaccount.com)",
            )
        return email

    def slack_id(self, node: yaml.Node, kind: str, value: str | None = None) -> str:
        text = self.scalar(node) if value is None else value
        if _SLACK_ID.fullmatch(text) is None:
            raise self.fail(node, f"{text!r} is not a Slack {kind} ID (like U0123ABCD)")
        return text

    def sequence(self, node: yaml.Node) -> Iterable[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, "expected a list")
        if not node.value:
            raise self.fail(node, "the list is empty")
        return list(node.value)

    def scalar(self, node: yaml.Node) -> str:
        if not isinstance(node, yaml.ScalarNode) or not isinstance(node.value, str):
            raise self.fail(node, "expected a single value")
        return str(node.value).strip()
