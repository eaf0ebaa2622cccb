"""Numeric settings: finite and within documented bounds, else refused like any wrong setting."""

from __future__ import annotations

import pytest

from bot.config import Settings, StartupError
from tests.conftest import BOT_TOKEN, SIGNING_SECRET

BASE = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET}


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("WATCH_TIMEOUT_SECONDS", "inf", "out of range"),
        ("WATCH_TIMEOUT_SECONDS", "nan", "out of range"),
        ("WATCH_TIMEOUT_SECONDS", "1e17", "at most 604800"),
        ("WATCH_TIMEOUT_SECONDS", "-5", "at least 1"),
        ("WATCH_TIMEOUT_SECONDS", "0", "at least 1"),
        ("WATCH_LEASE_SECONDS", "0.5", "at least 1"),
        ("WATCH_LEASE_SECONDS", "601", "at most 600"),
        ("WATCH_LEASE_SECONDS", "-inf", "out of range"),
        ("POLL_INITIAL_SECONDS", "0", "at least 0.01"),
        ("POLL_INITIAL_SECONDS", "3601", "at most 3600"),
        ("POLL_MAX_SECONDS", "NaN", "out of range"),
        ("POLL_MAX_SECONDS", "1e9", "at most 3600"),
        ("POLL_MULTIPLIER", "0.5", "at least 1"),
        ("POLL_MULTIPLIER", "11", "at most 10"),
        ("POLL_MULTIPLIER", "infinity", "out of range"),
        ("PORT", "0", "at least 1"),
        ("PORT", "65536", "at most 65535"),
        ("PORT", "-1", "at least 1"),
        ("PORT", "inf", "not a whole number"),
        ("PORT", "80.5", "not a whole number"),
    ],
)
def test_a_number_out_of_its_bounds_is_refused_naming_the_setting(
    name: str, value: str, words: str
) -> None:
    with pytest.raises(StartupError) as refused:
        Settings.from_env({**BASE, name: value})
    assert refused.value.setting == name
    assert str(refused.value).startswith(f"{name}: {value!r}")
    assert words in str(refused.value)


@pytest.mark.parametrize(
    ("name", "value", "field", "expected"),
    [
        ("WATCH_TIMEOUT_SECONDS", "604800", "watch_timeout_seconds", 604800.0),
        ("WATCH_TIMEOUT_SECONDS", "1", "watch_timeout_seconds", 1.0),
        ("WATCH_LEASE_SECONDS", "1", "watch_lease_seconds", 1.0),
        ("WATCH_LEASE_SECONDS", "600", "watch_lease_seconds", 600.0),
        ("POLL_INITIAL_SECONDS", "0.01", "poll_initial_seconds", 0.01),
        ("POLL_MULTIPLIER", "10", "poll_multiplier", 10.0),
        ("PORT", "65535", "port", 65535),
        ("PORT", "1", "port", 1),
    ],
)
def test_the_bounds_themselves_are_accepted(
    name: str, value: str, field: str, expected: float
) -> None:
    settings = Settings.from_env({**BASE, name: value, "POLL_MAX_SECONDS": "3600"})
    assert getattr(settings, field) == expected


def test_defaults_follow_the_design() -> None:
    settings = Settings.from_env(BASE)
    assert settings.watch_lease_seconds == 15  # renewed every 5 s; a dead worker's watch waits 15 s
    assert settings.watch_timeout_seconds == 21600
    assert (settings.poll_initial_seconds, settings.poll_multiplier) == (1.0, 1.5)
    assert settings.poll_max_seconds == 20
    assert settings.port is None and settings.http_port == 3000
    assert settings.iam_credentials_api_url == "https://iamcredentials.googleapis.com/v1"


def test_the_iam_credentials_api_url_is_read_like_the_other_urls() -> None:
    settings = Settings.from_env({**BASE, "IAM_CREDENTIALS_API_URL": "http://127.0.0.1:9/v1/"})
    assert settings.iam_credentials_api_url == "http://127.0.0.1:9/v1"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("redis://127.0.0.1:6379/0?socket_timeout=abc", "Invalid value for"),
        ("redis://127.0.0.1:6379/0?db=x", "Invalid value for"),
        ("redis://127.0.0.1:abc/0", "Port"),
        ("redis://:pw@[::1:1/0", "Invalid IPv6"),
        ("rediss://:s3cret@127.0.0.1:6379/0?ssl_cert_reqs=bogus", "bogus"),
        ("redis://127.0.0.1:6379/0?ssl_cert_reqs=none", "ssl_cert_reqs"),
        ("http://127.0.0.1:6379/0", "is not a Redis URL"),
    ],
)
def test_a_redis_url_the_client_cannot_use_is_refused_at_start_up(url: str, words: str) -> None:
    """Checked before any connection, so a bad option is one line, not a traceback."""
    with pytest.raises(StartupError) as refused:
        Settings.from_env({**BASE, "REDIS_URL": url})
    assert refused.value.setting == "REDIS_URL"
    assert words in str(refused.value)
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize("setting", ["IAM_CREDENTIALS_API_URL", "OPERATIONS_API_URL"])
@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://[::1/v1", "not an http(s) URL"),
        ("http://127.0.0.1:99999/v1", "port"),
        ("http://127.0.0.1:abc/v1", "port"),
        ("http://iam credentials.example/v1", "not an http(s) URL"),
        ("http://127.0.0.1:8080/v1\x01", "not an http(s) URL"),
        ("http://iam\udcff.example/v1", "not an http(s) URL"),  # a byte not UTF-8 in the env
        ("http://127.0.0.1:8080/v1?alt=json", "query"),
        ("http://127.0.0.1:8080/v1#top", "query"),
    ],
)
def test_a_google_url_the_client_cannot_use_is_refused_at_start_up(
    setting: str, url: str, words: str
) -> None:
    """One line naming the setting, not a traceback now or a failed call at 3 a.m."""
    with pytest.raises(StartupError) as refused:
        Settings.from_env({**BASE, setting: url})
    assert refused.value.setting == setting
    assert words in str(refused.value)
