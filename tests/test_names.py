"""Operation names: what is accepted, what is refused, and the URLs they can ever build."""

from __future__ import annotations

import re

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.policy.names import InvalidName, OperationName, parse_operation_name, parse_parent

BASE = "http://127.0.0.1:9/v1"
SEGMENT_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
SAFE_URL = re.compile(
    re.escape(BASE)
    + r"/projects/[A-Za-z0-9._~-]+/locations/[A-Za-z0-9._~-]+/operations/[A-Za-z0-9._~-]+(:cancel)?"
)
segments = st.text(alphabet=SEGMENT_CHARS, min_size=1, max_size=128).filter(
    lambda s: s not in (".", "..")
)


def assert_safe(text: str) -> None:
    try:
        name = parse_operation_name(text, (BASE,))
    except InvalidName:
        return
    for url in (name.url(BASE), name.url(BASE, "cancel")):
        assert SAFE_URL.fullmatch(url)
        # httpx sends exactly this path: nothing to normalise, escape or re-route.
        assert httpx.URL(url).raw_path.decode() == url.removeprefix("http://127.0.0.1:9")


@given(st.text(max_size=2000))
def test_no_input_builds_a_url_outside_the_operations_path(text: str) -> None:
    assert_safe(text)


hostile = st.text(alphabet=SEGMENT_CHARS[-8:] + "/%?#.: \x00\n<>|`&;@\\", max_size=40)


@given(hostile, hostile, hostile, st.sampled_from(["", "`", "<", "https://x/v1/"]))
def test_near_names_with_hostile_segments_never_escape(
    project: str, location: str, operation: str, wrapper: str
) -> None:
    text = f"projects/{project}/locations/{location}/operations/{operation}"
    closing = {"`": "`", "<": ">"}.get(wrapper, "")
    assert_safe(f"{wrapper}{text}{closing}")


@given(segments, segments, segments)
def test_every_well_formed_name_round_trips(project: str, location: str, operation: str) -> None:
    name = OperationName(project, location, operation)
    for written in (
        str(name),
        f"`{name}`",
        f"https://cloudaicompanion.googleapis.com/v1/{name}",
        f"<https://cloudaicompanion.googleapis.com/v1/{name}>",
        f"<{BASE}/{name}|{name}>",
    ):
        assert parse_operation_name(written, (BASE,)) == name


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("projects/p/locations/l/operations/..", "cannot be '..'"),
        ("projects/p/locations//operations/o", "location is empty"),
        ("projects/p%2F/locations/l/operations/o", "contains “%” (U+0025) at position 11"),
        ("projects/p/locations/l/operations/o/extra", "shape"),
        ("operations/o", "shape"),
        ("projects/p/locations/l/operations/" + "o" * 129, "longer than 128"),
        ("<https://x/v1/projects/a/locations/l/operations/o|projects/b/locations/l/operations/o>",
         "link's text"),
        ("projects/p/locations/l/operations/o &amp; more", "contains a space at position 36"),
        ("projects/p/locations/l", "names a location, not one operation"),
        ("", "nothing was given"),
    ],
)  # fmt: skip
def test_refusals_say_why(text: str, reason: str) -> None:
    with pytest.raises(InvalidName) as refused:
        parse_operation_name(text)
    assert reason in refused.value.reason


@pytest.mark.parametrize(
    ("char", "described"),
    [
        ("\u200b", "an invisible character (U+200B, zero width space)"),
        ("\u200d", "an invisible character (U+200D, zero width joiner)"),
        ("\ufeff", "an invisible character (U+FEFF, byte order mark)"),
        ("\u00ad", "an invisible character (U+00AD, soft hyphen)"),
        ("\u202e", "an invisible character (U+202E, right-to-left override)"),
        ("\u2066", "an invisible character (U+2066, left-to-right isolate)"),
        ("\u00a0", "an invisible character (U+00A0, no-break space)"),
        ("\u3000", "an invisible character (U+3000, ideographic space)"),
        ("\x07", "an invisible character (U+0007)"),
        ("\n", "a line break"),
        ("ö", "“ö” (U+00F6)"),
        ("ℓ", "“ℓ” (U+2113)"),
    ],
)
@pytest.mark.parametrize("where", ["middle", "end"])
def test_a_character_no_name_holds_is_named_with_its_position(
    char: str, described: str, where: str
) -> None:
    """A reader cannot see invisible characters, and "ö" is a letter: both must be named."""
    text = f"projects/sh{char}p/locations/l/operations/o"
    position = 12
    if where == "end":
        text, position = f"projects/shop/locations/l/operations/o{char}x", 39
    with pytest.raises(InvalidName) as refused:
        parse_operation_name(text)
    assert f"contains {described} at position {position};" in refused.value.reason
    assert "ASCII letters, digits and - . _ ~" in refused.value.reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("projects/shop-prod", "does not have the shape projects/PROJECT/locations/LOCATION"),
        ("projects/p/locations/l/operations/o", "names one operation, not a location"),
        ("projects/shöp/locations/l", "contains “ö” (U+00F6) at position 12"),
        (" ", "nothing was given"),
    ],
)
def test_locations_are_refused_with_their_own_reasons(text: str, reason: str) -> None:
    with pytest.raises(InvalidName) as refused:
        parse_parent(text)
    assert reason in refused.value.reason
