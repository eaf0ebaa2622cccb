"""Durations in words and Google's timestamps as Slack date tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.slack.times import duration_text, parse_timestamp, slack_date, utc_text


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0 seconds"),
        (-5, "0 seconds"),  # a clock a little ahead of Google's
        (1, "1 second"),
        (35, "35 seconds"),  # not "1 minutes"
        (59.4, "59 seconds"),
        (59.6, "1 minute"),
        (89, "1 minute"),
        (90, "2 minutes"),
        (47 * 60 + 10, "47 minutes"),
        (3599, "1 hour"),  # not "60 minutes"
        (2 * 3600, "2 hours"),
        (2 * 3600 + 5 * 60 + 20, "2 hours 5 minutes"),
        (3600 + 60, "1 hour 1 minute"),
        (86_399, "1 day"),
        (86_400 + 3600 + 120, "1 day 1 hour"),
        (2 * 86_400 + 300, "2 days"),  # minutes no longer matter, and no gap in the units
        (3 * 86_400 + 4 * 3600 + 1000, "3 days 4 hours"),
    ],
)
def test_durations_are_rounded_to_their_size_with_proper_plurals(
    seconds: float, words: str
) -> None:
    assert duration_text(seconds) == words


@given(st.floats(0, 10**9, allow_nan=False))
def test_no_duration_reads_as_sixty_of_a_unit_or_one_of_a_plural(seconds: float) -> None:
    words = duration_text(seconds)
    assert "60 minutes" not in words and "24 hours" not in words and "60 seconds" not in words
    assert not any(f" 1 {unit}s" in f" {words}" for unit in ("day", "hour", "minute", "second"))


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-11-24T03:12:00Z", datetime(2026, 11, 24, 3, 12, tzinfo=UTC)),
        ("2026-11-24T03:12:00.123456789Z", datetime(2026, 11, 24, 3, 12, 0, 123456, tzinfo=UTC)),
        ("2026-11-24T05:12:00+02:00", datetime(2026, 11, 24, 3, 12, tzinfo=UTC)),
        ("2026-11-24t03:12:00z", datetime(2026, 11, 24, 3, 12, tzinfo=UTC)),
    ],
)
def test_googles_timestamps_are_read_in_utc(text: str, moment: datetime) -> None:
    assert parse_timestamp(text) == moment


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2026-11-24", "2026-11-24T03:12:00", "2026-13-40T03:12:00Z"]
)
def test_text_that_is_not_a_timestamp_is_none(text: str) -> None:
    assert parse_timestamp(text) is None


def test_a_date_token_carries_the_epoch_and_a_readable_utc_fallback() -> None:
    moment = datetime(2026, 11, 24, 5, 12, tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))
    assert slack_date(moment) == (
        "<!date^1795497120^{date_short_pretty} {time}|2026-11-24 05:12 UTC>"
    )
    assert utc_text(moment) == "2026-11-24 05:12 UTC"
