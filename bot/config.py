"""Settings from the environment, read and checked once at start-up."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis.asyncio as aioredis

DEFAULT_OPERATIONS_API_URL = "https://cloudaicompanion.googleapis.com/v1"
DEFAULT_IAM_CREDENTIALS_API_URL = "https://iamcredentials.googleapis.com/v1"
DEFAULT_PORT = 3000

# Numeric bounds: beyond them a value is a typo or would break Redis (scores and TTLs in
# milliseconds), so start-up refuses it instead of failing later.
POLL_SECONDS_RANGE = (0.01, 3600.0)  # a poll at least once an hour
POLL_MULTIPLIER_RANGE = (1.0, 10.0)
WATCH_TIMEOUT_RANGE = (1.0, 7 * 86_400.0)  # a week: longer-running operations need a person
# Renewal runs every lease/3 (tests use 1 s leases); 10 min of a dead
# worker holding a watch is the most anyone would wait.
WATCH_LEASE_RANGE = (1.0, 600.0)
PORT_RANGE = (1, 65535)


class StartupError(Exception):
    """Start-up cannot go on; printed as one line naming the setting and the fix."""

    def __init__(self, setting: str, problem: str, fix: str) -> None:
        super().__init__(f"{setting}: {problem}. {fix}")
        self.setting = setting


@dataclass(frozen=True)
class Settings:
    slack_bot_token: str
    slack_signing_secret: str
    slack_app_token: str
    slack_api_url: str | None
    port: int | None  # None: PORT unset (serve listens on DEFAULT_PORT, worker on none)
    redis_url: str | None
    data_dir: Path
    operations_api_url: str
    operations_service: str
    google_auth: str
    allowlist_file: Path
    poll_initial_seconds: float
    poll_multiplier: float
    poll_max_seconds: float
    watch_timeout_seconds: float
    watch_lease_seconds: float
    iam_credentials_api_url: str = DEFAULT_IAM_CREDENTIALS_API_URL

    @property
    def http_port(self) -> int:
        return DEFAULT_PORT if self.port is None else self.port

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, needs_slack_requests: bool = True) -> Settings:
        """`needs_slack_requests` is False for `worker`, which never receives Slack requests."""
        read = _Reader(env)
        bot_token = read.required("SLACK_BOT_TOKEN", "set it to the app's Bot User OAuth Token")
        if not bot_token.startswith("xoxb-"):
            raise StartupError(
                "SLACK_BOT_TOKEN", "is not a bot token", "Use the token that starts with xoxb-"
            )
        app_token = read.text("SLACK_APP_TOKEN", "")
        if app_token and not app_token.startswith("xapp-"):
            raise StartupError(
                "SLACK_APP_TOKEN",
                "is not an app-level token",
                "Use the token that starts with xapp- (Socket Mode), or unset it for HTTP mode",
            )
        signing_secret = read.text("SLACK_SIGNING_SECRET", "")
        if needs_slack_requests and not app_token and not signing_secret:
            raise StartupError(
                "SLACK_SIGNING_SECRET",
                "is required in HTTP mode",
                "Set it to the app's Signing Secret, or set SLACK_APP_TOKEN for Socket Mode",
            )
        poll_initial = read.number("POLL_INITIAL_SECONDS", 1.0, POLL_SECONDS_RANGE)
        poll_max = read.number("POLL_MAX_SECONDS", 20.0, POLL_SECONDS_RANGE)
        if poll_max < poll_initial:
            raise StartupError(
                "POLL_MAX_SECONDS",
                f"({poll_max:g}) is below POLL_INITIAL_SECONDS ({poll_initial:g})",
                "Raise it or lower POLL_INITIAL_SECONDS",
            )
        return cls(
            slack_bot_token=bot_token,
            slack_signing_secret=signing_secret,
            slack_app_token=app_token,
            slack_api_url=read.url("SLACK_API_URL", None),
            port=read.whole_number("PORT", PORT_RANGE),
            redis_url=read.redis_url(),
            data_dir=Path(read.text("BOT_DATA_DIR", "./.cancel-op")),
            operations_api_url=read.url("OPERATIONS_API_URL", DEFAULT_OPERATIONS_API_URL)
            or DEFAULT_OPERATIONS_API_URL,
            operations_service=read.service(),
            google_auth=read.choice("GOOGLE_AUTH", "adc", ("adc", "anonymous")),
            allowlist_file=Path(read.text("ALLOWLIST_FILE", "allowlist.yaml")),
            poll_initial_seconds=poll_initial,
            poll_multiplier=read.number("POLL_MULTIPLIER", 1.5, POLL_MULTIPLIER_RANGE),
            poll_max_seconds=poll_max,
            watch_timeout_seconds=read.number("WATCH_TIMEOUT_SECONDS", 21600, WATCH_TIMEOUT_RANGE),
            watch_lease_seconds=read.number("WATCH_LEASE_SECONDS", 15, WATCH_LEASE_RANGE),
            iam_credentials_api_url=read.url(
                "IAM_CREDENTIALS_API_URL", DEFAULT_IAM_CREDENTIALS_API_URL
            )
            or DEFAULT_IAM_CREDENTIALS_API_URL,
        )


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str, default: str) -> str:
        return self._env.get(name, default).strip() or default

    def required(self, name: str, fix: str) -> str:
        value = self.text(name, "")
        if not value:
            raise StartupError(name, "is not set", fix[0].upper() + fix[1:])
        return value

    def number(self, name: str, default: float, bounds: tuple[float, float]) -> float:
        raw = self.text(name, "")
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise StartupError(name, f"{raw!r} is not a number", "Set it to a number") from None
        _check_range(name, raw, value, bounds)  # also refuses nan and inf
        return value

    def whole_number(self, name: str, bounds: tuple[int, int]) -> int | None:
        raw = self.text(name, "")
        if not raw:
            return None
        try:
            value = int(raw)
        except ValueError:
            raise StartupError(
                name, f"{raw!r} is not a whole number", "Set it to a whole number"
            ) from None
        _check_range(name, raw, value, bounds)
        return value

    def url(self, name: str, default: str | None) -> str | None:
        raw = self.text(name, "")
        if not raw:
            return default
        try:
            parts = urlsplit(raw)
        except ValueError:  # an unclosed [IPv6] bracket
            parts = urlsplit("")
        spaced = not raw.isprintable() or " " in raw  # control characters, undecodable bytes
        if parts.scheme not in ("http", "https") or not parts.netloc or spaced:
            raise StartupError(name, f"{raw!r} is not an http(s) URL", "Set it to a full URL")
        if parts.query or parts.fragment or raw.endswith(("?", "#")):  # paths are added after it
            raise StartupError(
                name, f"{raw!r} has a query or fragment", "Set it to the base URL alone"
            )
        try:
            parts.port  # noqa: B018 (read only to check it)
        except ValueError:
            raise StartupError(
                name, f"{raw!r} has no valid port", "Set a port from 1 to 65535, or none"
            ) from None
        return raw.rstrip("/")

    def redis_url(self) -> str | None:
        raw = self.text("REDIS_URL", "")
        if not raw:
            return None
        try:
            scheme = urlsplit(raw).scheme
            # Builds (without connecting) the connection the bot will use, so a bad port,
            # db or query option is refused here rather than as a traceback later.
            if scheme in ("redis", "rediss", "unix"):
                aioredis.ConnectionPool.from_url(raw).make_connection()  # type: ignore[no-untyped-call]
        except (ValueError, TypeError, aioredis.RedisError) as exc:
            raise StartupError(
                "REDIS_URL",
                f"cannot be used ({type(exc).__name__}: {_without_password(str(exc), raw)})",
                "Check its host, port, db and ?options (ssl_* options need rediss://)",
            ) from None
        if scheme not in ("redis", "rediss", "unix"):
            raise StartupError(
                "REDIS_URL",
                "is not a Redis URL",
                "Use redis://host:port/db, rediss://… or unix:///path, or unset it for the "
                "embedded Redis",
            )
        return raw

    def service(self) -> str:
        value = self.text("OPERATIONS_SERVICE", "cloudaicompanion")
        if re.fullmatch(r"[a-z][a-z0-9-]{0,62}", value) is None:
            raise StartupError(
                "OPERATIONS_SERVICE",
                f"{value!r} is not a service name",
                "Use the service's short name as in IAM permissions, e.g. cloudaicompanion",
            )
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default)
        if value not in choices:
            raise StartupError(name, f"{value!r} is not known", f"Use one of: {', '.join(choices)}")
        return value


def _check_range(name: str, raw: str, value: float, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if not low <= value <= high:  # False for nan too
        raise StartupError(
            name, f"{raw!r} is out of range", f"Set it to at least {low:g} and at most {high:g}"
        )


def _without_password(message: str, url: str) -> str:
    """An error message that may quote the URL, with its password taken out."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return message.replace(password, "***") if password else message
