"""Parse and check Google long-running operation names.

A name is checked before any request is built, and URLs are built from the checked
segments only, so nothing a user types can steer a request elsewhere.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

CANONICAL_API_URL = "https://cloudaicompanion.googleapis.com/v1"
EXPECTED_SHAPE = "projects/PROJECT/locations/LOCATION/operations/OPERATION"
PARENT_SHAPE = "projects/PROJECT/locations/LOCATION"
MAX_INPUT_LENGTH = 1024
MAX_SEGMENT_LENGTH = 128

_SEGMENT = re.compile(r"[A-Za-z0-9._~-]{1,128}")
_NAME = re.compile(r"projects/([^/]*)/locations/([^/]*)/operations/([^/]*)")
_PARENT = re.compile(r"projects/([^/]*)/locations/([^/]*)")
# A name inside free text ends at anything a segment cannot hold.
_CANDIDATE = re.compile(
    r"projects/[A-Za-z0-9._~-]+/locations/[A-Za-z0-9._~-]+/operations/[A-Za-z0-9._~-]+"
)
_SLACK_LINK = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")
# Characters a name may hold anywhere: its segments' characters and the slashes between them.
_NAME_CHAR = re.compile(r"[A-Za-z0-9._~/-]")
SEGMENT_CHARACTERS = "ASCII letters, digits and - . _ ~"
# Characters that print as nothing or as a plain space: a reader cannot see them in a reply.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cn", "Zs", "Zl", "Zp"})
_CHARACTER_NAMES = {
    "\n": "a line break",
    "\t": "a tab",
    " ": "a space",
    "\ufeff": "an invisible character (U+FEFF, byte order mark)",
}


class InvalidName(ValueError):
    """The text is not an operation name; `reason` says why in plain words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class OperationName:
    project: str
    location: str
    operation: str

    def __post_init__(self) -> None:
        for label, value in (
            ("project", self.project),
            ("location", self.location),
            ("operation", self.operation),
        ):
            _check_segment(label, value)

    @property
    def path(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/operations/{self.operation}"

    def url(self, base_url: str, action: str = "") -> str:
        """`{base}/{name}` or `{base}/{name}:{action}`, from checked segments only."""
        suffix = f":{action}" if action else ""
        return f"{base_url.rstrip('/')}/{self.path}{suffix}"

    def __str__(self) -> str:
        return self.path


@dataclass(frozen=True)
class OperationParent:
    """Where operations are listed: `projects/{project}/locations/{location}`."""

    project: str
    location: str

    def __post_init__(self) -> None:
        _check_segment("project", self.project)
        _check_segment("location", self.location)

    @property
    def path(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    def operations_url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.path}/operations"

    def __str__(self) -> str:
        return self.path


def parse_parent(text: str, api_urls: tuple[str, ...] = ()) -> OperationParent:
    """Read `projects/P/locations/L` with the same rules as a name."""
    candidate = _strip(text, api_urls)
    _check_characters(candidate, text)
    match = _PARENT.fullmatch(candidate)
    if match is None:
        if _NAME.fullmatch(candidate) is not None:
            raise InvalidName("it names one operation, not a location: drop /operations/…")
        raise InvalidName(f"it does not have the shape {PARENT_SHAPE}")
    return OperationParent(*match.groups())


def find_operation_names(texts: Iterable[str]) -> list[OperationName]:
    """Every well-formed operation name in free text (an alert), in order, once each."""
    found: dict[OperationName, None] = {}
    for text in texts:
        for candidate in _CANDIDATE.findall(html.unescape(text)[:20_000]):
            try:
                found[parse_operation_name(candidate)] = None
            except InvalidName:
                continue
    return list(found)


def parse_operation_name(text: str, api_urls: tuple[str, ...] = ()) -> OperationName:
    """Read a name as a user may paste it: bare, behind the API's URL, in backticks or a link.

    `api_urls` are further base URLs accepted in front of the name (the configured one).
    """
    candidate = _strip(text, api_urls)
    _check_characters(candidate, text)
    match = _NAME.fullmatch(candidate)
    if match is None:
        if _PARENT.fullmatch(candidate) is not None:
            raise InvalidName("it names a location, not one operation: add /operations/OPERATION")
        raise InvalidName(f"it does not have the shape {EXPECTED_SHAPE}")
    project, location, operation = match.groups()
    return OperationName(project, location, operation)


def _strip(text: str, api_urls: tuple[str, ...]) -> str:
    """Undo what surrounds a pasted path: Slack formatting and the API's URL."""
    if len(text) > MAX_INPUT_LENGTH:
        raise InvalidName(f"that is {len(text)} characters long; a name is far shorter")
    if not text.strip():
        raise InvalidName("nothing was given")
    candidate = _unwrap_slack_formatting(text.strip())
    for prefix in (CANONICAL_API_URL, *api_urls):
        prefix = prefix.rstrip("/") + "/"
        if candidate.startswith(prefix):
            return candidate[len(prefix) :]
    return candidate


def _unwrap_slack_formatting(text: str) -> str:
    # Code spans first (`x` or ```x```), then a Slack link <target|label> or <target>.
    for fence in ("```", "`"):
        if len(text) >= 2 * len(fence) and text.startswith(fence) and text.endswith(fence):
            text = text[len(fence) : -len(fence)].strip()
            break
    link = _SLACK_LINK.fullmatch(text)
    if link is not None:
        target, label = link.group(1), link.group(2)
        target = html.unescape(target)
        shown = html.unescape(label) if label is not None else ""
        if _looks_like_name(shown) and _strip_api_url(shown) != _strip_api_url(target):
            raise InvalidName("the link's text and its target name different operations")
        return target
    return html.unescape(text)


def _looks_like_name(text: str) -> bool:
    return "projects/" in text


def _strip_api_url(text: str) -> str:
    index = text.find("projects/")
    return text[index:] if index >= 0 else text


def _check_segment(label: str, value: str) -> None:
    if not value:
        raise InvalidName(f"the {label} is empty")
    if len(value) > MAX_SEGMENT_LENGTH:
        raise InvalidName(f"the {label} is longer than {MAX_SEGMENT_LENGTH} characters")
    if _SEGMENT.fullmatch(value) is None:
        raise InvalidName(f"the {label} may hold only {SEGMENT_CHARACTERS}")
    if value in (".", ".."):
        raise InvalidName(f"the {label} cannot be {value!r}")


def _check_characters(candidate: str, typed: str) -> None:
    """Refuse the first character no name can hold, saying which and where it was typed."""
    for char in candidate:
        if _NAME_CHAR.fullmatch(char) is None:
            position = html.unescape(typed).find(char) + 1
            where = f" at position {position}" if position else ""
            raise InvalidName(
                f"it contains {describe_character(char)}{where}; a name holds only "
                f"{SEGMENT_CHARACTERS} between its slashes"
            )


def describe_character(char: str) -> str:
    """`“ö” (U+00F6)`, or for what prints as nothing, `an invisible character (U+200B, …)`."""
    code = f"U+{ord(char):04X}"
    if char in _CHARACTER_NAMES:
        return _CHARACTER_NAMES[char]
    if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
        name = unicodedata.name(char, "").lower()
        return f"an invisible character ({code}{', ' + name if name else ''})"
    return f"“{char}” ({code})"
