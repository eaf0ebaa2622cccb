"""One JSON object a log line, as Cloud Logging reads it (`severity`, `message`, `time`),
with Slack and Google secrets scrubbed on the way out."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

# Token shapes that must never reach a log: Slack tokens, OAuth bearer tokens, and Google
# access tokens without their "Bearer" (an IAM Credentials answer kept in an exception).
_SECRET = re.compile(
    r"(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|Bearer\s+[^\s\"']+|ya29\.[A-Za-z0-9._~+/-]+)"
)
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)))
# Cloud Logging's LogSeverity names, from the highest level each covers.
_SEVERITIES = (
    (logging.CRITICAL, "CRITICAL"),
    (logging.ERROR, "ERROR"),
    (logging.WARNING, "WARNING"),
    (logging.INFO, "INFO"),
)


def redact(text: str) -> str:
    return _SECRET.sub("[redacted]", text)


def severity_of(levelno: int) -> str:
    """Cloud Logging's severity for a Python log level; levels below INFO are DEBUG."""
    return next((name for floor, name in _SEVERITIES if levelno >= floor), "DEBUG")


def rfc3339(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")
    return moment.removesuffix("+00:00") + "Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": severity_of(record.levelno),
            "message": record.getMessage(),
            "time": rfc3339(record.created),
            "logger": record.name,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Client libraries log request details at DEBUG/INFO; keep them to warnings.
    for noisy in ("slack_bolt", "slack_sdk", "httpx", "httpcore", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Python's warnings and uncaught exceptions would otherwise print plain text to stderr.
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def _log_uncaught(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    logging.getLogger("cancel_op").critical(
        "uncaught %s: %s", kind.__name__, error, exc_info=(kind, error, trace)
    )
