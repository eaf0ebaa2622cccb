"""Real redis-server processes with particular setups (password, TLS only, full, replica),
and a TCP port that accepts connections and never answers."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.runtime.redis_server import answers, redis_server_binary
from tests.slack_driver import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tls_redis_server() -> Path:
    """Debian's redis-server (built with TLS); the embedded one has no TLS."""
    found = shutil.which("redis-server", path="/usr/bin:/usr/local/bin")
    if found is None:
        reason = "no redis-server with TLS: apt-get install redis-server"
        if os.environ.get("CANCEL_OP_TLS_TESTS") == "required":
            pytest.fail(reason + " (CANCEL_OP_TLS_TESTS=required)")
        pytest.skip(reason)
    return Path(found)


@contextmanager
def redis_process(
    workdir: Path, *args: str, binary: Path | None = None, ready_url: str | None = None
) -> Iterator[None]:
    """A redis-server with `args`, stopped at the end; ready once `ready_url` answers PING
    (default: when its port accepts connections)."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [str(binary or redis_server_binary()), "--save", "", "--appendonly", "no",
               "--dir", str(workdir), *args]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: process.poll() is not None or _answers(ready_url), timeout=20,
                 what="redis-server to start")  # fmt: skip
        assert process.poll() is None, f"redis-server exited: {command}"
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def _answers(url: str | None) -> bool:
    if url is None:
        return False
    return answers(redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1))


def write_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (cert, key, ca) paths."""
    now = datetime.datetime.now(datetime.UTC)

    def certificate(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None,
        signer: ec.EllipticCurvePrivateKey, *, ca: bool,
    ) -> x509.Certificate:  # fmt: skip
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("cancel-op test CA", ca_key, None, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate("127.0.0.1", key, ca_cert.subject, ca_key, ca=False)
    paths = directory / "server.crt", directory / "server.key", directory / "ca.crt"
    paths[0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths[2].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return paths


class SilentServer:
    """Listens on 127.0.0.1, accepts every connection, reads nothing and answers nothing."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self) -> None:
        self._listener.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()
