"""Durations and moments in words a reader takes in at a glance, and as Slack date tokens
that each reader sees in their own time zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_UNITS = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))
# RFC 3339 as Google writes it: up to nanoseconds, `Z` or an offset.
_RFC3339 = re.compile(
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", re.IGNORECASE
)


def plural(count: int, unit: str) -> str:
    """`1 minute`, `2 minutes`, `0 seconds`."""
    return f"{count} {unit}{'' if count == 1 else 's'}"


def duration_text(seconds: float) -> str:
    """A duration rounded to what matters at its size: `35 seconds`, `1 minute`,
    `2 hours 5 minutes`, `3 days 4 hours`. Negative durations (clock skew) read as 0."""
    seconds = max(0.0, seconds)
    if seconds < 59.5:
        return plural(round(seconds), "second")
    # Round to the smaller of the two units shown first, so 59 min 50 s reads `1 hour`.
    step = 60 if seconds < 86_400 - 1_800 else 3_600
    total = round(seconds / step) * step
    parts: list[str] = []
    for unit, size in _UNITS:
        if total >= size and len(parts) < 2:
            count, total = divmod(total, size)
            parts.append(plural(int(count), unit))
        elif parts:
            break  # `2 days 5 minutes` would skip the hours: stop at the first gap
    return " ".join(parts)


def parse_timestamp(text: str) -> datetime | None:
    """An RFC 3339 timestamp from Google, or None when the text is not one."""
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        return None
    whole, fraction, zone = match.groups()
    micro = (fraction or "").ljust(6, "0")[:6]
    try:
        moment = datetime.fromisoformat(f"{whole}.{micro}{'+00:00' if zone in 'Zz' else zone}")
    except ValueError:
        return None
    return moment.astimezone(UTC)


def utc_text(moment: datetime) -> str:
    """`2026-11-24 03:12 UTC`: what a reader sees where Slack cannot render a date token."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def slack_date(moment: datetime) -> str:
    """A date token: Slack shows it in each reader's own zone, `utc_text` elsewhere."""
    epoch = int(moment.timestamp())
    return f"<!date^{epoch}^{{date_short_pretty}} {{time}}|{utc_text(moment)}>"
