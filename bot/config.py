"""Settings from the environment, read and checked once at start-up."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_OPERATIONS_API_URL = "https://cloudaicompanion.googleapis.com/v1"


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
    port: int
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
        poll_initial = read.number("POLL_INITIAL_SECONDS", 1.0, minimum=0.01)
        poll_max = read.number("POLL_MAX_SECONDS", 20.0, minimum=0.01)
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
            port=int(read.number("PORT", 3000, minimum=1, maximum=65535, whole=True)),
            redis_url=read.redis_url(),
            data_dir=Path(read.text("BOT_DATA_DIR", "./.cancel-op")),
            operations_api_url=read.url("OPERATIONS_API_URL", DEFAULT_OPERATIONS_API_URL)
            or DEFAULT_OPERATIONS_API_URL,
            operations_service=read.service(),
            google_auth=read.choice("GOOGLE_AUTH", "adc", ("adc", "anonymous")),
            allowlist_file=Path(read.text("ALLOWLIST_FILE", "allowlist.yaml")),
            poll_initial_seconds=poll_initial,
            poll_multiplier=read.number("POLL_MULTIPLIER", 1.5, minimum=1.0),
            poll_max_seconds=poll_max,
            watch_timeout_seconds=read.number("WATCH_TIMEOUT_SECONDS", 21600, minimum=1),
            watch_lease_seconds=read.number("WATCH_LEASE_SECONDS", 60, minimum=1),
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

    def number(
        self,
        name: str,
        default: float,
        *,
        minimum: float,
        maximum: float | None = None,
        whole: bool = False,
    ) -> float:
        raw = self.text(name, "")
        if not raw:
            return default
        try:
            value = int(raw) if whole else float(raw)
        except ValueError:
            kind = "a whole number" if whole else "a number"
            raise StartupError(name, f"{raw!r} is not {kind}", f"Set it to {kind}") from None
        if value != value or value < minimum or (maximum is not None and value > maximum):
            bounds = f"at least {minimum:g}" + (f" and at most {maximum:g}" if maximum else "")
            raise StartupError(name, f"{raw!r} is out of range", f"Set it to {bounds}")
        return value

    def url(self, name: str, default: str | None) -> str | None:
        raw = self.text(name, "")
        if not raw:
            return default
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise StartupError(name, f"{raw!r} is not an http(s) URL", "Set it to a full URL")
        return raw.rstrip("/")

    def redis_url(self) -> str | None:
        raw = self.text("REDIS_URL", "")
        if not raw:
            return None
        if urlsplit(raw).scheme not in ("redis", "rediss", "unix"):
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
