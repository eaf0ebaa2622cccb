"""REDIS_URL at start-up: wait up to 10 s for the server to answer and accept a write, and
turn what went wrong (password, TLS, no answer) into one line that says how to fix it."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from bot.config import StartupError
from bot.runtime.health import HEALTH_KEY, HEALTH_KEY_TTL_MS

START_TIMEOUT_SECONDS = 10.0
# A server that is still starting refuses connections: try again this soon.
_RETRY_SECONDS = 0.2
_TLS_FIX = (
    "Use rediss:// for a TLS port and redis:// for a plain one; when the server's "
    "certificate is not trusted here (Heroku Redis), add ?ssl_cert_reqs=none"
)


def wait_for_redis(url: str, timeout: float = START_TIMEOUT_SECONDS) -> None:
    """Return once `url` answers PING and takes a write; else raise StartupError."""
    shown = redacted_url(url)
    deadline = time.monotonic() + timeout
    last_problem = "no answer"
    while (remaining := deadline - time.monotonic()) > 0:
        client = redis.Redis.from_url(
            url, socket_timeout=remaining, socket_connect_timeout=remaining
        )
        try:
            client.ping()
            client.set(HEALTH_KEY, "start-up", px=HEALTH_KEY_TTL_MS)
            return
        except redis.AuthenticationError as exc:
            raise _password_refused(shown, url, exc) from None
        except redis.ResponseError as exc:
            raise StartupError(
                "REDIS_URL",
                f"{shown} refuses writes ({exc})",
                "Point REDIS_URL at a writable primary with memory to spare",
            ) from None
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            tls_problem = _tls_failure(exc)
            if tls_problem is not None:
                raise StartupError(
                    "REDIS_URL", f"{shown}: the TLS handshake failed ({tls_problem})", _TLS_FIX
                ) from None
            if urlsplit(url).scheme == "redis" and _hung_up(exc):
                raise StartupError(
                    "REDIS_URL",
                    f"{shown} closed the connection without answering (a TLS-only port?)",
                    _TLS_FIX,
                ) from None
            last_problem = str(exc).rstrip(".")
        finally:
            client.close()
        time.sleep(min(_RETRY_SECONDS, max(0.0, deadline - time.monotonic())))
    fix = "Check the host and port, that the server runs, and that this machine may reach it"
    if urlsplit(url).scheme == "rediss":  # a plain port waits for ever on a TLS hello
        fix += "; a port without TLS needs redis://, not rediss://"
    raise StartupError(
        "REDIS_URL", f"{shown} did not answer within {timeout:g} s ({last_problem})", fix
    )


def redacted_url(url: str) -> str:
    """The URL with its password (in the authority or the query) replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None and "password" not in dict(parse_qsl(parts.query)):
        return url
    netloc = parts.netloc
    if parts.password is not None:
        host = netloc.rpartition("@")[2]
        netloc = f"{parts.username or ''}:***@{host}"
    query = urlencode(
        [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)], safe="*"
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _password_refused(shown: str, url: str, exc: redis.AuthenticationError) -> StartupError:
    if urlsplit(url).password is None and "password" not in urlsplit(url).query:
        return StartupError(
            "REDIS_URL",
            f"{shown} requires a password",
            "Put it in REDIS_URL: redis://:PASSWORD@host:port/0 (or rediss:// for TLS)",
        )
    return StartupError(
        "REDIS_URL",
        f"{shown} refused the password ({str(exc).rstrip('.')})",
        "Put the server's current password in REDIS_URL: redis://:PASSWORD@host:port/0",
    )


def _tls_failure(exc: BaseException) -> str | None:
    """The SSL error behind a connection error, if the TLS handshake is what failed."""
    for seen in _chain(exc):
        if isinstance(seen, ssl.SSLError):
            return str(getattr(seen, "reason", None) or seen)
    return None


def _hung_up(exc: BaseException) -> bool:
    """The server took the connection and dropped it unanswered, as a TLS-only port does
    with plain text (a server still starting refuses the connection instead)."""
    return "closed by server" in str(exc) or any(
        isinstance(seen, ConnectionResetError) or "reset by peer" in str(seen)
        for seen in _chain(exc)
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__
