"""Runs `python -m bot sandbox` as a newcomer does, and finds the page's address it prints."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

_ADDRESS = re.compile(r"open (http://127\.0\.0\.1:\d+)/")
_LOG_FILE = re.compile(r"logs go to (\S+)$")


@dataclass
class Sandbox:
    process: subprocess.Popen[str]
    url: str
    log: IO[str]  # its stderr, in a file: a pipe nobody reads would fill and stall it
    bot_log: Path  # where it said the bot's own log lines go, in its temporary folder

    def stop(self) -> str:
        """Ctrl-C, as a person stops it; returns what it wrote to stderr."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        logged = self.logged()
        self.log.close()
        return logged

    def logged(self) -> str:
        self.log.seek(0)
        return self.log.read()


def start_sandbox(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> Sandbox:
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed with the Sandbox's process)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env if env is not None else dict(os.environ),
    )
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    bot_log = Path()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            line = process.stdout.readline()
            named = _LOG_FILE.search(line.strip())
            if named:
                bot_log = Path(named.group(1))
            found = _ADDRESS.search(line)
            if found:
                return Sandbox(process, found.group(1), log, bot_log)
        if process.poll() is not None:
            break
    process.kill()
    process.wait()
    stderr = Sandbox(process, "", log, bot_log).logged()
    raise AssertionError(f"the sandbox did not print its address; stderr: {stderr[-2000:]}")
