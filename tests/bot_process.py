"""`python -m bot` in a process of its own, as a platform runs it; its stderr kept line by
line while it runs, so a test can wait for a line and read every line it printed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from tests.slack_driver import wait_for

SEVERITIES = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}  # Cloud Logging's names


class BotProcess:
    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.lines: list[str] = []
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bot", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stderr is not None
        for line in self._process.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, words: str, timeout: float = 30) -> str:
        line: str = self._wait(lambda: next((x for x in self.lines if words in x), None),
                               timeout, f"a log line with {words!r}")  # fmt: skip
        return line

    def wait_until_healthy(self, port: str, timeout: float = 30) -> None:
        self._wait(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), timeout, "/healthz")

    def _wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        try:
            return wait_for(predicate, timeout=timeout, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the bot printed: {self.lines}") from None

    def stop(self) -> int:
        """SIGTERM, as a platform stops it; the exit code once every line is read."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
        return self.wait()

    def wait(self, timeout: float = 30) -> int:
        code = self._process.wait(timeout)
        self._reader.join(timeout)
        return code

    def log_entries(self) -> list[dict[str, Any]]:
        """Every line as Cloud Logging parses it; fails on any line that is not such JSON."""
        entries = []
        for line in self.lines:
            entry = json.loads(line)
            assert isinstance(entry, dict), line
            assert entry["severity"] in SEVERITIES and "level" not in entry, line
            assert isinstance(entry["message"], str), line
            assert datetime.fromisoformat(entry["time"]).utcoffset() is not None, line
            entries.append(entry)
        return entries

    def warnings(self) -> list[dict[str, Any]]:
        """Its log entries above INFO."""
        return [e for e in self.log_entries() if e["severity"] not in ("DEBUG", "INFO")]

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()


def _answers(url: str) -> Any:
    try:
        return httpx.get(url, timeout=1, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False
