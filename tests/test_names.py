"""Operation names: what is accepted, what is refused, and the URLs they can ever build."""

from __future__ import annotations

import re

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.names import InvalidName, OperationName, parse_operation_name

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
        ("projects/p%2F/locations/l/operations/o", "letters, digits"),
        ("projects/p/locations/l/operations/o/extra", "shape"),
        ("operations/o", "shape"),
        ("projects/p/locations/l/operations/" + "o" * 129, "longer than 128"),
        ("<https://x/v1/projects/a/locations/l/operations/o|projects/b/locations/l/operations/o>",
         "link's text"),
        ("projects/p/locations/l/operations/o &amp; more", "letters, digits"),
    ],
)  # fmt: skip
def test_refusals_say_why(text: str, reason: str) -> None:
    with pytest.raises(InvalidName) as refused:
        parse_operation_name(text)
    assert reason in refused.value.reason
